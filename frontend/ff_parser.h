// The .ff model format parser: text in the form ir/printer.h prints, to a verified Graph.
#pragma once

#include <string>
#include <string_view>

#include "ir/graph.h"

namespace ffc {

/// Parses .ff text. `file` names the source in diagnostics. Every op's types are inferred as it is
/// read; a type written after an op must match. Throws UserError at `file:line:col` on bad input.
Graph parse_ff(std::string_view text, const std::string& file);

/// Reads and parses a .ff file; a file that cannot be read is a UserError.
Graph parse_ff_file(const std::string& path);

}  // namespace ffc
