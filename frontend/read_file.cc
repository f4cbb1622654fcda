// Reading an input file whole.
#include "frontend/read_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/diag.h"

namespace ffc {

std::string read_input_file(const std::string& path) {
  // A directory opens as a stream that reads nothing; it must not pass for an empty file.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw UserError({path, 0, 0}, "is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError({path, 0, 0}, "cannot read the file");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw UserError({path, 0, 0}, "cannot read the file");
  return ss.str();
}

}  // namespace ffc
