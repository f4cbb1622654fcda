// Diagnostics: formatting of locations and the internal-error path.
#include "ir/diag.h"

#include <cstdio>
#include <cstdlib>

namespace ffc {

std::string SourceLoc::str() const {
  if (file.empty()) return "<unknown>";
  if (line <= 0) return file;
  if (col <= 0) return fmt::format("{}:{}", file, line);
  return fmt::format("{}:{}:{}", file, line, col);
}

UserError::UserError(const SourceLoc& loc, const std::string& message)
    : std::runtime_error(loc.known() ? loc.str() + ": error: " + message : "error: " + message),
      loc_(loc),
      message_(message) {}

void internal_error_at(const char* file, int line, const std::string& message) {
  std::fprintf(stderr, "ffc: internal error at %s:%d: %s\nThis is a bug in ffc; please report it.\n",
               file, line, message.c_str());
  std::abort();
}

}  // namespace ffc
