// Autodiff.
#include "passes/autodiff.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ir/op_table.h"
#include "passes/add_loss.h"

namespace ffc {

Backward autodiff(const Graph& g, bool input_grads) {
  Backward b;
  b.loss_op = find_loss(g);
  FFC_CHECK(b.loss_op >= 0);
  const size_t n = g.tensors.size();
  b.trainable.resize(g.ops.size());
  // Forward: a tensor depends on something trained (or on an input whose gradient is wanted).
  std::vector<bool> depends(n, false);
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const Op& op = g.ops[i];
    bool d = op.kind == OpKind::input && input_grads;
    for (const ParamSpec& p : op_params(g, op)) {
      b.trainable[i].push_back(p.trainable);
      d = d || p.trainable;
    }
    for (TensorId t : op.inputs) d = d || depends[t];
    for (TensorId t : op.outputs) depends[t] = d && g.type(t).dtype != DType::i64;
  }
  // Backward: the loss depends on it.
  std::vector<bool> reaches(n, false);
  reaches[g.ops[b.loss_op].outputs[0]] = true;
  for (int i = static_cast<int>(g.ops.size()) - 1; i >= 0; --i) {
    const Op& op = g.ops[i];
    bool r = false;
    for (TensorId t : op.outputs) r = r || reaches[t];
    if (r)
      for (TensorId t : op.inputs) reaches[t] = true;
  }
  b.needs_grad.assign(n, false);
  for (size_t t = 0; t < n; ++t) b.needs_grad[t] = depends[t] && reaches[t];
  for (int i = b.loss_op; i >= 0; --i) {
    const Op& op = g.ops[i];
    if (op.kind == OpKind::input) continue;
    bool wanted = false;
    for (TensorId t : op.outputs) wanted = wanted || b.needs_grad[t];
    if (wanted) b.order.push_back(i);
  }
  return b;
}

std::string print_backward(const Graph& g, const Backward& b) {
  std::string s = fmt::format("backward of {}: seed d{} = 1\n", g.name, g.tensors[g.ops[b.loss_op].outputs[0]].name);
  for (int i : b.order) {
    const Op& op = g.ops[i];
    std::vector<std::string> reads, writes;
    for (TensorId t : op.outputs)
      if (b.needs_grad[t]) reads.push_back("d" + g.tensors[t].name);
    for (TensorId t : op.inputs)
      if (b.needs_grad[t]) writes.push_back("d" + g.tensors[t].name);
    std::vector<ParamSpec> specs = op_params(g, op);
    for (size_t p = 0; p < specs.size(); ++p)
      if (b.trainable[i][p]) writes.push_back(fmt::format("d{}.{}", op.name, specs[p].name));
    s += fmt::format("  {} ({}): {} -> {}\n", op.name, op.info().name, fmt::join(reads, ", "),
                     writes.empty() ? std::string("nothing") : fmt::format("{}", fmt::join(writes, ", ")));
  }
  return s;
}

}  // namespace ffc
