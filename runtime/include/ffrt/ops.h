// Ops on libffrt's kernels: how each op kind of ffc's op table runs, forward and backward.
//
// An op is described by an OpDesc (its kind and the attribute values its kernels read), and runs on
// OpViews (its operands: boxes of global tensors, so the same call serves a whole tensor or a part).
// ffc's serial executor and emulator build descriptors from the Graph IR; generated programs hold
// them as constants. One implementation, so the programs ffc emits compute what ffc verified.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ffrt/kernels.h"
#include "ffrt/op_list.h"
#include "ffrt/view.h"

namespace ffrt {

enum class OpKind : int {
#define FFRT_OP_ENUM(id, family) id,
  FFRT_OPS(FFRT_OP_ENUM)
#undef FFRT_OP_ENUM
};

/// What an op's kernels need to know of it. Fields an op kind does not use keep their defaults.
struct OpDesc {
  OpKind kind = OpKind::input;
  std::string name;                   ///< the op's name: dropout masks are keyed by it
  Act act = Act::none;                ///< fused activation (conv2d, pool2d, linear, batch_norm)
  bool saves_pre_activation = false;  ///< the forward keeps the pre-activation for the backward (gelu)
  Conv2dAttrs conv{};
  Pool2dAttrs pool{};
  MatmulAttrs matmul{};
  float eps = 0, momentum = 0;        ///< batch_norm, layer_norm
  bool affine = false;                ///< batch_norm, layer_norm: weight and bias parameters
  float rate = 0;                     ///< dropout
  float lo = 0, hi = 0;               ///< clip
  float factor = 1;                   ///< scale
  int64_t axis = 0;                   ///< softmax, log_softmax, concat, split (negative: from the end)
  std::vector<int> perm;              ///< transpose
};

/// The operands of one op's execution.
struct OpViews {
  std::vector<View> in;      ///< one per input
  std::vector<View> out;     ///< one per output
  std::vector<View> params;  ///< one per parameter, in the op table's order
  std::vector<View> saved;   ///< the op's saved state (the op table's `saved` rule)
  // Backward only:
  std::vector<View> dout;                    ///< gradients of the outputs
  std::vector<std::optional<View>> din;      ///< gradients of the inputs; nullopt: not needed
  std::vector<std::optional<View>> dparams;  ///< gradients of the params; nullopt: not trainable
  /// Split-statistics ops (batch norm): the f64 [2, C] statistics of the part's channels. The
  /// *_stats kernels write the part's partial sums; forward and backward read the sums over every
  /// part.
  View stats;
  /// Whether this part updates the op's state (running statistics). Of several parts that share a
  /// block of state on one device, one does.
  bool update_state = true;
  /// Backward: gradients that hold nothing yet (their zero-fill was elided), which the op writes
  /// instead of adding to: bit i for din[i], bit kOverwriteParams + j for dparams[j].
  uint32_t overwrite = 0;
};
constexpr int kOverwriteParams = 16;

/// What a step of execution knows beyond the operands.
struct StepInfo {
  uint64_t seed = 0;
  int64_t step = 0;
  bool training = true;
};

/// Whether an op kind runs its statistics in a phase of their own (batch norm): forward_stats, then
/// the sums over the parts, then forward (and backward_stats, sums, backward).
bool op_has_statistics(OpKind kind);

void op_forward(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v);
/// Adds the gradients of the inputs and params (accumulate semantics) from the outputs'.
void op_backward(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v);
/// The part's partial statistics into v.stats (training only).
void op_forward_stats(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v);
/// The part's partial backward sums into v.stats, and (accumulated) into the parameter gradients
/// they are.
void op_backward_stats(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v);

/// The whole forward on one set of views, statistics included (a serial executor's call).
void op_run_forward(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v);
/// The whole backward likewise.
void op_run_backward(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v);

/// The dropout key of an op at a step: the same on every rank.
uint64_t dropout_key(const OpDesc& op, const StepInfo& info);

}  // namespace ffrt
