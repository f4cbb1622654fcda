// Shape inference: gives every tensor the type its producer's table entry infers.
#pragma once

#include "ir/graph.h"

namespace ffc {

/// Infers the type of every op's outputs, in graph order, from its inputs and attributes. `input`
/// ops keep their declared types. Requires every input to be defined before it is used. Throws
/// UserError naming the first op whose inputs or attributes do not fit its kind.
void infer_shapes(Graph& g);

/// Infers the outputs of one op whose inputs already have their types.
void infer_op_shapes(Graph& g, int op_index);

}  // namespace ffc
