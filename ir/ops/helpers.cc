// Helpers shared by the op table's family files.
#include "ir/ops/helpers.h"

namespace ffc::ops {

void expect_rank(const Op& op, std::span<const TensorType> in, int i, int lo, int hi) {
  int r = in[i].rank();
  if (r < lo || r > hi) {
    if (lo == hi) fail(op, "input {} must have rank {}, got {}", i, lo, in[i].str());
    fail(op, "input {} must have rank {} to {}, got {}", i, lo, hi, in[i].str());
  }
}

void expect_dtype(const Op& op, std::span<const TensorType> in, int i, DType t) {
  if (in[i].dtype != t) fail(op, "input {} must be {}, got {}", i, dtype_name(t), in[i].str());
}

void expect_float(const Op& op, std::span<const TensorType> in, int i) {
  if (in[i].dtype == DType::i64) fail(op, "input {} must be a floating-point tensor, got {}", i, in[i].str());
}

int normalize_axis(const Op& op, int64_t axis, int rank, std::string_view attr) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(op, "{}={} is out of range for rank {}", attr, axis, rank);
  return static_cast<int>(a);
}

int64_t fixed_dim(const Op& op, std::span<const TensorType> in, int i, int d, std::string_view what) {
  const Dim& dim = in[i].shape[d];
  if (dim.batch) fail(op, "{} (dim {} of input {}) cannot be the batch N", what, d, i);
  return dim.value;
}

int64_t checked_mul(const Op& op, int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) fail(op, "sizes overflow 64-bit integers ({} * {})", a, b);
  return r;
}

int64_t checked_add(const Op& op, int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) fail(op, "sizes overflow 64-bit integers ({} + {})", a, b);
  return r;
}

Box same_box(const BoundOp&, int, const Box& part) { return part; }

std::vector<bool> all_but_last(const Op&, std::span<const TensorType>, std::span<const TensorType> out) {
  std::vector<bool> s(out[0].shape.size(), true);
  if (!s.empty()) s.back() = false;
  return s;
}

const std::vector<std::string_view>& activation_names() {
  static const std::vector<std::string_view> names{"none", "relu", "sigmoid", "tanh", "gelu"};
  return names;
}

bool saves_pre_activation(const Op& op) { return op.attr_str("activation") == "gelu"; }

std::vector<Box> pre_activation_saved(const BoundOp& op, const Box& part) {
  if (!saves_pre_activation(op.op)) return {};
  return {part};
}

}  // namespace ffc::ops
