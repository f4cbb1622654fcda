// Diagnostics: source locations, user errors and internal errors.
//
// A user's mistake (a bad model file, a strategy that does not fit the model) is a UserError: it
// carries a location and a message the user can act on, and the driver turns it into exit code 1.
// A broken invariant inside ffc is an internal error: it is a bug report, never the user's fault.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace ffc {

/// Where something came from: a file position (1-based line and column; 0 when unknown), or just a
/// file name, or a name such as an ONNX node.
struct SourceLoc {
  std::string file;
  int line = 0;
  int col = 0;

  /// Prints as `file:line:col`, dropping the parts that are unknown.
  std::string str() const;
  bool known() const { return !file.empty(); }
};

/// An error in the user's input. `what()` is the full message, location first.
class UserError : public std::runtime_error {
 public:
  UserError(const SourceLoc& loc, const std::string& message);
  const SourceLoc& loc() const { return loc_; }
  const std::string& message() const { return message_; }

 private:
  SourceLoc loc_;
  std::string message_;
};

/// Throws a UserError at `loc` with a formatted message.
template <typename... Args>
[[noreturn]] void user_error(const SourceLoc& loc, fmt::format_string<Args...> f, Args&&... args) {
  throw UserError(loc, fmt::format(f, std::forward<Args>(args)...));
}

/// Reports a broken internal invariant and aborts: a bug in ffc, not in the input.
[[noreturn]] void internal_error_at(const char* file, int line, const std::string& message);

#define FFC_INTERNAL_ERROR(...) ::ffc::internal_error_at(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__))
#define FFC_CHECK(cond, ...)                                                         \
  do {                                                                               \
    if (!(cond)) ::ffc::internal_error_at(__FILE__, __LINE__, "check failed: " #cond); \
  } while (0)

}  // namespace ffc
