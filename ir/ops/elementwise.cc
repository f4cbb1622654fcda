// Op table: element-wise ops — activations, clipping, binary arithmetic with broadcasting, scaling
// by a constant, dropout.
#include <algorithm>

#include "ir/ops/families.h"
#include "ir/ops/helpers.h"

namespace ffc::ops {

namespace {

std::vector<TensorType> unary_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  expect_float(op, in, 0);
  return {in[0]};
}

// Binary ops broadcast like NumPy: shapes align from the right and a dim of extent 1 stretches.
std::vector<TensorType> binary_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  expect_float(op, in, 0);
  expect_float(op, in, 1);
  if (in[0].dtype != in[1].dtype) fail(op, "operands differ in type: {} and {}", in[0].str(), in[1].str());
  const Shape &a = in[0].shape, &b = in[1].shape;
  int rank = std::max(in[0].rank(), in[1].rank());
  Shape out(rank);
  for (int i = 0; i < rank; ++i) {
    int ia = i - (rank - in[0].rank()), ib = i - (rank - in[1].rank());
    Dim da = ia >= 0 ? a[ia] : Dim::fixed(1), db = ib >= 0 ? b[ib] : Dim::fixed(1);
    if (da == db || db == Dim::fixed(1)) out[i] = da;
    else if (da == Dim::fixed(1)) out[i] = db;
    else fail(op, "shapes do not broadcast: {} and {} differ in dim {}", in[0].str(), in[1].str(), i);
  }
  return {TensorType{in[0].dtype, out}};
}

Box binary_input_box(const BoundOp& b, int i, const Box& part) {
  const auto& in = b.in[i];
  int off = part.rank() - static_cast<int>(in.size());
  Box box;
  for (size_t d = 0; d < in.size(); ++d) box.r.push_back(in[d] == 1 ? Range{0, 1} : part.r[d + off]);
  return box;
}

OpInfo unary(OpKind kind, std::string_view name) {
  return OpInfo{.kind = kind, .name = name, .attrs = {}, .infer = unary_infer, .input_box = same_box};
}

OpInfo binary(OpKind kind, std::string_view name) {
  return OpInfo{.kind = kind, .name = name, .min_inputs = 2, .max_inputs = 2, .attrs = {},
                .infer = binary_infer, .input_box = binary_input_box};
}

}  // namespace

const OpInfo& elementwise_relu() { static const OpInfo i = unary(OpKind::relu, "relu"); return i; }
const OpInfo& elementwise_sigmoid() { static const OpInfo i = unary(OpKind::sigmoid, "sigmoid"); return i; }
const OpInfo& elementwise_tanh() { static const OpInfo i = unary(OpKind::tanh, "tanh"); return i; }
const OpInfo& elementwise_gelu() { static const OpInfo i = unary(OpKind::gelu, "gelu"); return i; }
const OpInfo& elementwise_add() { static const OpInfo i = binary(OpKind::add, "add"); return i; }
const OpInfo& elementwise_sub() { static const OpInfo i = binary(OpKind::sub, "sub"); return i; }
const OpInfo& elementwise_mul() { static const OpInfo i = binary(OpKind::mul, "mul"); return i; }

// clip: min(max(x, min), max), e.g. ReLU6 as clip(x, min=0.0, max=6.0).
const OpInfo& elementwise_clip() {
  static const OpInfo info{
      .kind = OpKind::clip,
      .name = "clip",
      .attrs = {{"min", AttrKind::Float, {}}, {"max", AttrKind::Float, {}}},
      .infer = [](const Op& op, std::span<const TensorType> in, std::span<const TensorType> d) {
        double lo = op.attr_float("min"), hi = op.attr_float("max");
        if (!(lo <= hi)) fail(op, "min ({}) must not exceed max ({})", lo, hi);
        return unary_infer(op, in, d);
      },
      .input_box = same_box,
  };
  return info;
}

// scale: x * factor for a constant factor, e.g. attention scores divided by sqrt(d).
const OpInfo& elementwise_scale() {
  static const OpInfo info{
      .kind = OpKind::scale,
      .name = "scale",
      .attrs = {{"factor", AttrKind::Float, {}}},
      .infer = unary_infer,
      .input_box = same_box,
  };
  return info;
}

const OpInfo& elementwise_dropout() {
  static const OpInfo info{
      .kind = OpKind::dropout,
      .name = "dropout",
      .attrs = {{"rate", AttrKind::Float, AttrValue{0.5}}},
      .infer = [](const Op& op, std::span<const TensorType> in, std::span<const TensorType> d) {
        double r = op.attr_float("rate");
        if (!(r >= 0.0 && r < 1.0)) fail(op, "rate must be in [0, 1), got {}", r);
        return unary_infer(op, in, d);
      },
      .input_box = same_box,
      .random_per_step = true,
  };
  return info;
}

}  // namespace ffc::ops
