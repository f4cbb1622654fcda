// The Graph IR verifier: the structural invariants every pass must preserve.
#pragma once

#include "ir/graph.h"

namespace ffc {

/// Checks that op and tensor names are unique, every input is defined before it is used, every op
/// has the operand count and attributes its table entry asks for, and every tensor's type is what
/// shape inference gives. Throws UserError at the first problem, naming the op and its location.
void verify_graph(const Graph& g);

}  // namespace ffc
