// Helpers shared by the op table's family files: checks that report a user error naming the op,
// and common box rules.
#pragma once

#include <span>

#include "ir/diag.h"
#include "ir/op_table.h"

namespace ffc::ops {

/// Throws a UserError at the op's location, prefixed with the op's name and kind.
template <typename... Args>
[[noreturn]] void fail(const Op& op, fmt::format_string<Args...> f, Args&&... args) {
  throw UserError(op.loc, op.describe() + ": " + fmt::format(f, std::forward<Args>(args)...));
}

/// Checks the rank of input `i` is within [lo, hi].
void expect_rank(const Op& op, std::span<const TensorType> in, int i, int lo, int hi);
/// Checks the dtype of input `i`.
void expect_dtype(const Op& op, std::span<const TensorType> in, int i, DType t);
/// Checks input `i` is a floating-point tensor.
void expect_float(const Op& op, std::span<const TensorType> in, int i);
/// Resolves a possibly negative axis against a rank, or fails.
int normalize_axis(const Op& op, int64_t axis, int rank, std::string_view attr = "axis");
/// A fixed (non-batch) extent of dim `d` of input `i`, or fails naming what needs it.
int64_t fixed_dim(const Op& op, std::span<const TensorType> in, int i, int d, std::string_view what);

/// a * b, or fails: extents written in a model may be large enough to overflow 64 bits.
int64_t checked_mul(const Op& op, int64_t a, int64_t b);
/// a + b, or fails.
int64_t checked_add(const Op& op, int64_t a, int64_t b);

/// Input-box rule: the input needs the part's own box (element-wise ops).
Box same_box(const BoundOp& op, int i, const Box& part);
/// Splittable rule: every dim but the last.
std::vector<bool> all_but_last(const Op& op, std::span<const TensorType> in,
                               std::span<const TensorType> out);

/// Whether an op's fused activation needs its input (the pre-activation) in the backward: gelu's
/// derivative does; relu's, sigmoid's and tanh's come from the output.
bool saves_pre_activation(const Op& op);
/// Saved-state rule of ops with a fused activation: the part's pre-activation when it is needed.
std::vector<Box> pre_activation_saved(const BoundOp& op, const Box& part);

/// The activation names accepted by fused activations.
const std::vector<std::string_view>& activation_names();

}  // namespace ffc::ops
