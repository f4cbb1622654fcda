// Autodiff: which tensors need gradients, and the order of the backward pass.
//
// The backward of an op is its table entry's adjoint (ffrt/ops.h's op_backward, or the
// backward_stats + backward pair of a split-statistics op): it reads the op's inputs, outputs and
// saved state and the gradients of its outputs, and adds into the gradients of its inputs and
// parameters. So the backward of a part runs where the part ran and is partitioned like it, as in
// FlexFlow, and the backward graph needs no ops of its own: it is this pass's result — the tensors
// that carry gradients, the ops whose backward runs, in order, and the loss that seeds it.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace ffc {

struct Backward {
  int loss_op = -1;
  /// Per tensor: whether its gradient is computed (it depends on a trainable parameter, or on an
  /// input whose gradient is wanted, and the loss depends on it).
  std::vector<bool> needs_grad;
  /// Per op, per parameter (op_params order): whether it is trained.
  std::vector<std::vector<bool>> trainable;
  /// The ops whose backward runs, in the order it runs (reverse graph order).
  std::vector<int> order;
};

/// The backward of a graph with a loss op (passes/add_loss.h). `input_grads`: also the gradients
/// of f32 inputs.
Backward autodiff(const Graph& g, bool input_grads = false);

/// Text form: the seed, then one line per backward step with the gradients it reads and writes.
std::string print_backward(const Graph& g, const Backward& b);

}  // namespace ffc
