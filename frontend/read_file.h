// Reading an input file (model, strategy) whole, with the errors a user can act on.
#pragma once

#include <string>

namespace ffc {

/// The bytes of the file at `path`. A missing or unreadable file, or a directory, is a UserError
/// naming the path.
std::string read_input_file(const std::string& path);

}  // namespace ffc
