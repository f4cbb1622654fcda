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
  /// Split-statistics ops (batch norm): the [2, C] statistics of the part's channels. The *_stats
  /// kernels write the part's partial sums; forward and backward read the sums over every part.
  ffrt::View stats;
  /// Whether this part updates the op's state (running statistics). Of several parts that share a
  /// block of state on one device, one does.
  bool update_state = true;
};

/// What a step of execution knows beyond the operands.
struct StepInfo {
  uint64_t seed = 0;
  int64_t step = 0;
  bool training = true;
};

/// The kernels of one op kind. The state the forward saves for the backward is the op table's
/// (OpInfo::saved).
struct OpKernels {
  void (*forward)(ffrt::Context& ctx, const Op& op, const StepInfo& info, OpViews& v) = nullptr;
  /// Adds the gradients of the inputs and params (accumulate semantics) from the outputs'.
  void (*backward)(ffrt::Context& ctx, const Op& op, const StepInfo& info, OpViews& v) = nullptr;
  /// Split-statistics ops (OpInfo::split_statistics): the part's partial statistics into v.stats,
  /// before the forward. Training only; evaluation normalizes with the running statistics.
  void (*forward_stats)(ffrt::Context& ctx, const Op& op, const StepInfo& info, OpViews& v) = nullptr;
  /// Split-statistics ops: the part's partial backward sums into v.stats, and (accumulated) into
  /// the parameter gradients they are, before the backward.
  void (*backward_stats)(ffrt::Context& ctx, const Op& op, const StepInfo& info, OpViews& v) = nullptr;
};

/// The kernels of an op kind.
const OpKernels& op_kernels(OpKind kind);

/// Runs an op's whole forward on one set of views (statistics included): the serial executor's call.
/// `stats` must be a [2, C] buffer over the op's channels for split-statistics ops.
void run_forward(ffrt::Context& ctx, const Op& op, const StepInfo& info, OpViews& v);
/// Runs an op's whole backward likewise.
void run_backward(ffrt::Context& ctx, const Op& op, const StepInfo& info, OpViews& v);

/// The dropout key of an op at a step: the same on every rank.
uint64_t dropout_key(const Op& op, const StepInfo& info);

}  // namespace ffc
