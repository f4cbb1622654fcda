// The textual form of the Graph IR, which is also the .ff model format.
//
//   # comment lines before `model` are the model's header
//   model tiny
//
//   data = input() : f32[N,1,28,28]
//   conv1 = conv2d(data, out_channels=8, kernel=[3,3], activation=relu) : f32[N,8,26,26]
//
// Attributes equal to their defaults are left out. Comment and blank lines are kept with the op
// that follows them, so a file in this form prints back byte for byte.
#pragma once

#include <string>
#include <string_view>

#include "ir/graph.h"

namespace ffc {

/// Prints a graph in .ff syntax.
std::string print_graph(const Graph& g);

/// Prints a name, quoted when it is not a plain identifier.
std::string print_name(std::string_view name);

/// Whether a name prints without quotes: a letter or `_`, then letters, digits and `_ . - /`.
bool is_plain_name(std::string_view name);

}  // namespace ffc
