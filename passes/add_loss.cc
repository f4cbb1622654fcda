// Adds the training loss.
#include "passes/add_loss.h"

#include "ir/op_table.h"
#include "passes/infer_shapes.h"

namespace ffc {

std::optional<LossKind> parse_loss_kind(const std::string& s) {
  if (s == "cross_entropy") return LossKind::cross_entropy;
  if (s == "mse") return LossKind::mse;
  return std::nullopt;
}

int find_loss(const Graph& g) {
  for (size_t i = 0; i < g.ops.size(); ++i)
    if (g.ops[i].kind == OpKind::softmax_cross_entropy || g.ops[i].kind == OpKind::mse_loss) return static_cast<int>(i);
  return -1;
}

TensorId network_output(const Graph& g) {
  std::vector<std::vector<int>> readers = g.consumers();
  std::vector<TensorId> outs;
  for (const Op& op : g.ops) {
    if (op.kind == OpKind::input) continue;
    for (TensorId t : op.outputs)
      if (readers[t].empty() && g.type(t).dtype != DType::i64) outs.push_back(t);
  }
  SourceLoc loc{g.name, 0, 0};
  if (outs.empty()) throw UserError(loc, "the model has no output to train: every op's result is read by another");
  if (outs.size() > 1) {
    std::vector<std::string> names;
    for (TensorId t : outs) names.push_back(g.tensors[t].name);
    throw UserError(loc, fmt::format("the model has {} outputs ({}); training needs one, or a loss op in the model",
                                     outs.size(), fmt::join(names, ", ")));
  }
  return outs[0];
}

namespace {
std::string fresh_name(const Graph& g, const std::string& base) {
  std::string name = base;
  for (int i = 1; g.find_op(name) >= 0 || g.find_tensor(name) >= 0; ++i) name = fmt::format("{}{}", base, i);
  return name;
}
}  // namespace

int add_loss(Graph& g, std::optional<LossKind> kind) {
  if (int existing = find_loss(g); existing >= 0) return existing;
  TensorId out = network_output(g);
  const TensorType& type = g.type(out);
  LossKind k = kind ? *kind : (type.rank() >= 2 ? LossKind::cross_entropy : LossKind::mse);
  SourceLoc loc{g.name, 0, 0};
  std::string labels = fresh_name(g, "labels");
  if (k == LossKind::cross_entropy) {
    if (type.rank() < 2)
      throw UserError(loc, fmt::format("cross entropy needs an output with a class dim, but '{}' is {}",
                                       g.tensors[out].name, type.str()));
    // A softmax output: the loss takes its input, whose softmax it computes itself.
    TensorId logits = out;
    const Op& producer = g.ops[g.tensors[out].producer];
    if (producer.kind == OpKind::softmax) {
      int64_t axis = producer.attr_int("axis");
      if (axis == -1 || axis == type.rank() - 1) logits = producer.inputs[0];
    }
    int in = g.add_op(labels, OpKind::input, {}, {}, loc);
    Shape s(type.shape.begin(), type.shape.end() - 1);
    g.tensors[g.ops[in].outputs[0]].type = TensorType{DType::i64, s};
    int loss = g.add_op(fresh_name(g, "loss"), OpKind::softmax_cross_entropy, {logits, g.ops[in].outputs[0]}, {}, loc);
    infer_op_shapes(g, loss);
    return loss;
  }
  int in = g.add_op(labels, OpKind::input, {}, {}, loc);
  g.tensors[g.ops[in].outputs[0]].type = type;
  int loss = g.add_op(fresh_name(g, "loss"), OpKind::mse_loss, {out, g.ops[in].outputs[0]}, {}, loc);
  infer_op_shapes(g, loss);
  return loss;
}

}  // namespace ffc
