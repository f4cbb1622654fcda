// How each op of the op table runs on libffrt's kernels, forward and backward.
//
// The op table (ir/) says what an op computes and how it splits; this table says which kernels
// compute it. It is kept apart from ir/ so that the compiler's IR does not depend on the runtime.
// Operands are views (boxes of global tensors), so the same rules serve whole tensors (the serial
// executor) and parts.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ffrt/kernels.h"
#include "ir/graph.h"
#include "ir/op_table.h"

namespace ffc {

/// The operands of one op's execution.
struct OpViews {
  std::vector<ffrt::View> in;      ///< one per input
  std::vector<ffrt::View> out;     ///< one per output
  std::vector<ffrt::View> params;  ///< one per op_params entry
  std::vector<ffrt::View> saved;   ///< the op's saved state, shaped by saved_shapes
  // Backward only:
  std::vector<ffrt::View> dout;                    ///< gradients of the outputs
  std::vector<std::optional<ffrt::View>> din;      ///< gradients of the inputs; nullopt: not needed
  std::vector<std::optional<ffrt::View>> dparams;  ///< gradients of the params; nullopt: not trainable
};

/// What a step of execution knows beyond the operands.
struct StepInfo {
  uint64_t seed = 0;
  int64_t step = 0;
  bool training = true;
};

/// The kernels of one op kind.
struct OpKernels {
  /// Shapes of the state the forward saves for the backward (pre-activations, statistics), for an
  /// op whose output has the given extents.
  std::vector<std::vector<int64_t>> (*saved_shapes)(const BoundOp& op) = nullptr;
  void (*forward)(ffrt::Context& ctx, const Op& op, const StepInfo& info, OpViews& v) = nullptr;
  /// Adds the gradients of the inputs and params (accumulate semantics) from the outputs'.
  void (*backward)(ffrt::Context& ctx, const Op& op, const StepInfo& info, OpViews& v) = nullptr;
};

/// The kernels of an op kind.
const OpKernels& op_kernels(OpKind kind);

/// Saved-state shapes of an op (none when its kernels save nothing).
std::vector<std::vector<int64_t>> saved_shapes(const BoundOp& op);

/// The dropout key of an op at a step: the same on every rank.
uint64_t dropout_key(const Op& op, const StepInfo& info);

}  // namespace ffc
