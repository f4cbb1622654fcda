// Shape inference.
#include "passes/infer_shapes.h"

#include "ir/op_table.h"

namespace ffc {

void infer_op_shapes(Graph& g, int op_index) {
  const Op& op = g.ops[op_index];
  std::vector<TensorType> declared;
  for (TensorId t : op.outputs) declared.push_back(g.type(t));
  std::vector<TensorType> out = op.info().infer(op, g.input_types(op), declared);
  FFC_CHECK(out.size() == op.outputs.size());
  for (size_t i = 0; i < out.size(); ++i) g.tensors[op.outputs[i]].type = out[i];
}

void infer_shapes(Graph& g) {
  for (size_t i = 0; i < g.ops.size(); ++i) infer_op_shapes(g, static_cast<int>(i));
}

}  // namespace ffc
