// Op table: the ops with weights and contractions — conv2d, pool2d, linear, matmul, embedding.
#include <algorithm>
#include <limits>

#include "ir/ops/families.h"
#include "ir/ops/helpers.h"

namespace ffc::ops {

namespace {

using Ints = std::vector<int64_t>;
// Window arithmetic runs in 128 bits: kernels, strides, paddings and dilations are whatever a model
// file writes, and their products overflow 64 bits long before a user error can say so.
using Wide = __int128;

/// The output extent of a windowed op along one spatial dim: PyTorch's pooling_output_shape, which
/// rounds down (up with ceil_mode) and, with ceil_mode, keeps a window only if it starts inside the
/// input or its left padding. The window may be wider than the padded input with ceil_mode: a
/// 2-wide input with kernel 3, stride 2 gives 1.
Wide window_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  Wide num = Wide{in} + Wide{2} * p - Wide{d} * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  Wide out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;  // floor division
  if (ceil_mode && (out - 1) * s >= Wide{in} + p) --out;
  return out;
}

/// The input range a window op reads for an output range [lo, hi), clamped to the input.
Range window_in(const Range& out, int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  if (out.empty()) return {0, 0};
  Wide lo = Wide{out.lo} * s - p;
  Wide hi = Wide{out.hi - 1} * s - p + Wide{d} * (k - 1) + 1;
  return {static_cast<int64_t>(std::clamp<Wide>(lo, 0, in)), static_cast<int64_t>(std::clamp<Wide>(hi, 0, in))};
}

void check_window(const Op& op, const Ints& k, const Ints& s, const Ints& p, const Ints& d) {
  for (int i = 0; i < 2; ++i) {
    if (k[i] < 1) fail(op, "kernel must be at least 1, got {}", k[i]);
    if (s[i] < 1) fail(op, "stride must be at least 1, got {}", s[i]);
    if (p[i] < 0) fail(op, "padding must not be negative, got {}", p[i]);
    if (d[i] < 1) fail(op, "dilation must be at least 1, got {}", d[i]);
  }
}

Shape spatial_out(const Op& op, const TensorType& in, int64_t channels, const Ints& k, const Ints& s,
                  const Ints& p, const Ints& d, bool ceil_mode) {
  Shape out{in.shape[0], Dim::fixed(channels)};
  for (int i = 0; i < 2; ++i) {
    const Dim& x = in.shape[2 + i];
    if (x.batch) fail(op, "spatial dim {} of the input cannot be the batch N", 2 + i);
    Wide o = window_out(x.value, k[i], s[i], p[i], d[i], ceil_mode);
    if (o < 1)
      fail(op, "the {} window (kernel {}, dilation {}) does not fit an input of extent {} with padding {}",
           i ? "width" : "height", k[i], d[i], x.value, p[i]);
    if (o > std::numeric_limits<int64_t>::max())
      fail(op, "the {} output extent overflows 64-bit integers (padding {})", i ? "width" : "height", p[i]);
    out.push_back(Dim::fixed(static_cast<int64_t>(o)));
  }
  return out;
}

// ---- conv2d ----------------------------------------------------------------------------------

std::vector<TensorType> conv_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  expect_rank(op, in, 0, 4, 4);
  expect_float(op, in, 0);
  int64_t c = fixed_dim(op, in, 0, 1, "the channel count");
  int64_t oc = op.attr_int("out_channels"), g = op.attr_int("groups");
  if (oc < 1) fail(op, "out_channels must be at least 1, got {}", oc);
  if (g < 1) fail(op, "groups must be at least 1, got {}", g);
  if (c % g) fail(op, "input channels ({}) are not divisible by groups ({})", c, g);
  if (oc % g) fail(op, "out_channels ({}) is not divisible by groups ({})", oc, g);
  const Ints &k = op.attr_ints("kernel"), &s = op.attr_ints("stride"), &p = op.attr_ints("padding"),
             &d = op.attr_ints("dilation");
  check_window(op, k, s, p, d);
  Shape out = spatial_out(op, in[0], oc, k, s, p, d, false);
  // The weight's fan-in, c/g·kh·kw, must be a number (conv_params computes it).
  checked_mul(op, checked_mul(op, c / g, k[0]), k[1]);
  return {TensorType{in[0].dtype, out}};
}

std::vector<ParamSpec> conv_params(const Op& op, std::span<const TensorType> in) {
  int64_t c = in[0].shape[1].value, oc = op.attr_int("out_channels"), g = op.attr_int("groups");
  const Ints& k = op.attr_ints("kernel");
  int64_t fan_in = c / g * k[0] * k[1];
  std::vector<ParamSpec> p{{"weight", {Dim::fixed(oc), Dim::fixed(c / g), Dim::fixed(k[0]), Dim::fixed(k[1])},
                            Init::uniform_fan_in, fan_in}};
  if (op.attr_bool("bias")) p.push_back({"bias", {Dim::fixed(oc)}, Init::uniform_fan_in, fan_in});
  return p;
}

Box conv_input_box(const BoundOp& b, int, const Box& part) {
  const Op& op = b.op;
  const auto& in = b.in[0];
  int64_t c = in[1], oc = op.attr_int("out_channels"), g = op.attr_int("groups");
  const Ints &k = op.attr_ints("kernel"), &s = op.attr_ints("stride"), &p = op.attr_ints("padding"),
             &d = op.attr_ints("dilation");
  Box box;
  box.r.push_back(part.r[0]);
  // Output channels [lo, hi) read the input channels of the groups they belong to.
  int64_t per_group = oc / g;
  if (part.r[1].empty()) {
    box.r.push_back({0, 0});
  } else {
    int64_t g_lo = part.r[1].lo / per_group, g_hi = (part.r[1].hi - 1) / per_group + 1;
    box.r.push_back({g_lo * (c / g), g_hi * (c / g)});
  }
  for (int i = 0; i < 2; ++i) box.r.push_back(window_in(part.r[2 + i], in[2 + i], k[i], s[i], p[i], d[i]));
  return box;
}

Box conv_param_box(const BoundOp& b, int p, const Box& part) {
  const auto& in = b.in[0];
  const Ints& k = b.op.attr_ints("kernel");
  if (p == 0) return Box{{part.r[1], {0, in[1] / b.op.attr_int("groups")}, {0, k[0]}, {0, k[1]}}};
  return Box{{part.r[1]}};
}

// ---- pool2d ----------------------------------------------------------------------------------

std::vector<TensorType> pool_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  expect_rank(op, in, 0, 4, 4);
  expect_float(op, in, 0);
  const Ints &k = op.attr_ints("kernel"), &s = op.attr_ints("stride"), &p = op.attr_ints("padding");
  Ints d{1, 1};
  check_window(op, k, s, p, d);
  for (int i = 0; i < 2; ++i)
    if (p[i] > k[i] / 2) fail(op, "padding ({}) must be at most half the kernel ({})", p[i], k[i]);
  Shape out = spatial_out(op, in[0], 0, k, s, p, d, op.attr_bool("ceil_mode"));
  out[1] = in[0].shape[1];
  return {TensorType{in[0].dtype, out}};
}

Box pool_input_box(const BoundOp& b, int, const Box& part) {
  const Op& op = b.op;
  const Ints &k = op.attr_ints("kernel"), &s = op.attr_ints("stride"), &p = op.attr_ints("padding");
  Box box{{part.r[0], part.r[1]}};
  for (int i = 0; i < 2; ++i) box.r.push_back(window_in(part.r[2 + i], b.in[0][2 + i], k[i], s[i], p[i], 1));
  return box;
}

// ---- linear ----------------------------------------------------------------------------------

std::vector<TensorType> linear_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  expect_rank(op, in, 0, 2, 4);
  expect_float(op, in, 0);
  fixed_dim(op, in, 0, in[0].rank() - 1, "the feature count");
  int64_t out = op.attr_int("out_features");
  if (out < 1) fail(op, "out_features must be at least 1, got {}", out);
  Shape s(in[0].shape.begin(), in[0].shape.end() - 1);
  s.push_back(Dim::fixed(out));
  return {TensorType{in[0].dtype, s}};
}

std::vector<ParamSpec> linear_params(const Op& op, std::span<const TensorType> in) {
  int64_t k = in[0].shape.back().value, out = op.attr_int("out_features");
  std::vector<ParamSpec> p{{"weight", {Dim::fixed(out), Dim::fixed(k)}, Init::uniform_fan_in, k}};
  if (op.attr_bool("bias")) p.push_back({"bias", {Dim::fixed(out)}, Init::uniform_fan_in, k});
  return p;
}

Box linear_input_box(const BoundOp& b, int, const Box& part) {
  Box box = part;
  box.r.back() = {0, b.in[0].back()};  // every part reads whole rows
  return box;
}

Box linear_param_box(const BoundOp& b, int p, const Box& part) {
  if (p == 0) return Box{{part.r.back(), {0, b.in[0].back()}}};
  return Box{{part.r.back()}};
}

// ---- matmul ----------------------------------------------------------------------------------

std::vector<TensorType> matmul_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  expect_rank(op, in, 0, 2, 6);
  expect_rank(op, in, 1, 2, 6);
  expect_float(op, in, 0);
  expect_float(op, in, 1);
  if (in[0].dtype != in[1].dtype) fail(op, "operands differ in type: {} and {}", in[0].str(), in[1].str());
  const Shape &a = in[0].shape, &b = in[1].shape;
  int ra = in[0].rank(), rb = in[1].rank();
  bool ta = op.attr_bool("transpose_a"), tb = op.attr_bool("transpose_b");
  Dim m = a[ra - (ta ? 1 : 2)], ka = a[ra - (ta ? 2 : 1)];
  Dim kb = b[rb - (tb ? 1 : 2)], n = b[rb - (tb ? 2 : 1)];
  if (ka != kb) fail(op, "contraction extents differ: {} of {} and {} of {}", ka.str(), in[0].str(), kb.str(), in[1].str());
  if (ka.batch || n.batch) fail(op, "the batch N cannot be a contraction or column dim of a matmul");
  // Leading dims broadcast like NumPy: aligned from the right, a 1 stretches.
  int rank = std::max(ra, rb);
  Shape out(rank - 2);
  for (int i = 0; i < rank - 2; ++i) {
    int ia = i - (rank - ra), ib = i - (rank - rb);
    Dim da = ia >= 0 ? a[ia] : Dim::fixed(1), db = ib >= 0 ? b[ib] : Dim::fixed(1);
    if (da == db || db == Dim::fixed(1)) out[i] = da;
    else if (da == Dim::fixed(1)) out[i] = db;
    else fail(op, "batch dims do not broadcast: {} and {}", in[0].str(), in[1].str());
  }
  out.push_back(m);
  out.push_back(n);
  return {TensorType{in[0].dtype, out}};
}

Box matmul_input_box(const BoundOp& b, int i, const Box& part) {
  const auto& in = b.in[i];
  int r = static_cast<int>(in.size()), rank = part.rank();
  bool t = b.op.attr_bool(i == 0 ? "transpose_a" : "transpose_b");
  Box box;
  for (int d = 0; d < r - 2; ++d) {
    const Range& pr = part.r[d + (rank - r)];
    box.r.push_back(in[d] == 1 ? Range{0, 1} : pr);
  }
  // a: rows are M (part dim rank-2), cols K. b: rows K, cols N (part dim rank-1).
  Range keep = i == 0 ? part.r[rank - 2] : part.r[rank - 1];
  Range whole_k{0, i == 0 ? in[r - (t ? 2 : 1)] : in[r - (t ? 1 : 2)]};
  bool keep_first = (i == 0) != t;  // which of the last two dims of this operand is kept
  box.r.push_back(keep_first ? keep : whole_k);
  box.r.push_back(keep_first ? whole_k : keep);
  return box;
}

// ---- embedding -------------------------------------------------------------------------------

std::vector<TensorType> embedding_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  expect_rank(op, in, 0, 1, 4);
  expect_dtype(op, in, 0, DType::i64);
  int64_t n = op.attr_int("num_embeddings"), d = op.attr_int("embedding_dim");
  if (n < 1) fail(op, "num_embeddings must be at least 1, got {}", n);
  if (d < 1) fail(op, "embedding_dim must be at least 1, got {}", d);
  Shape s = in[0].shape;
  s.push_back(Dim::fixed(d));
  return {TensorType{DType::f32, s}};
}

std::vector<ParamSpec> embedding_params(const Op& op, std::span<const TensorType>) {
  return {{"weight", {Dim::fixed(op.attr_int("num_embeddings")), Dim::fixed(op.attr_int("embedding_dim"))},
           Init::normal, 1}};
}

Box embedding_input_box(const BoundOp&, int, const Box& part) {
  Box box = part;
  box.r.pop_back();
  return box;
}

Box embedding_param_box(const BoundOp& b, int, const Box& part) {
  return Box{{{0, b.op.attr_int("num_embeddings")}, part.r.back()}};
}

const AttrSpec kActivation{"activation", AttrKind::Enum, AttrValue{std::string("none")}, activation_names()};

}  // namespace

const OpInfo& nn_conv2d() {
  static const OpInfo info{
      .kind = OpKind::conv2d,
      .name = "conv2d",
      .attrs = {{"out_channels", AttrKind::Int, {}},
                {"kernel", AttrKind::Ints, {}, {}, 2},
                {"stride", AttrKind::Ints, AttrValue{Ints{1, 1}}, {}, 2},
                {"padding", AttrKind::Ints, AttrValue{Ints{0, 0}}, {}, 2},
                {"dilation", AttrKind::Ints, AttrValue{Ints{1, 1}}, {}, 2},
                {"groups", AttrKind::Int, AttrValue{int64_t{1}}},
                {"bias", AttrKind::Bool, AttrValue{true}},
                kActivation},
      .infer = conv_infer,
      .params = conv_params,
      .input_box = conv_input_box,
      .param_box = conv_param_box,
      .saved = pre_activation_saved,
  };
  return info;
}

const OpInfo& nn_pool2d() {
  static const OpInfo info{
      .kind = OpKind::pool2d,
      .name = "pool2d",
      .attrs = {{"type", AttrKind::Enum, {}, {"max", "avg"}},
                {"kernel", AttrKind::Ints, {}, {}, 2},
                {"stride", AttrKind::Ints, {}, {}, 2},
                {"padding", AttrKind::Ints, AttrValue{Ints{0, 0}}, {}, 2},
                {"ceil_mode", AttrKind::Bool, AttrValue{false}},
                {"count_include_pad", AttrKind::Bool, AttrValue{true}},
                kActivation},
      .infer = pool_infer,
      .input_box = pool_input_box,
      .saved = pre_activation_saved,
  };
  return info;
}

const OpInfo& nn_linear() {
  static const OpInfo info{
      .kind = OpKind::linear,
      .name = "linear",
      .attrs = {{"out_features", AttrKind::Int, {}}, {"bias", AttrKind::Bool, AttrValue{true}}, kActivation},
      .infer = linear_infer,
      .params = linear_params,
      .input_box = linear_input_box,
      .param_box = linear_param_box,
      .saved = pre_activation_saved,
  };
  return info;
}

const OpInfo& nn_matmul() {
  static const OpInfo info{
      .kind = OpKind::matmul,
      .name = "matmul",
      .min_inputs = 2,
      .max_inputs = 2,
      .attrs = {{"transpose_a", AttrKind::Bool, AttrValue{false}}, {"transpose_b", AttrKind::Bool, AttrValue{false}}},
      .infer = matmul_infer,
      .input_box = matmul_input_box,
  };
  return info;
}

const OpInfo& nn_embedding() {
  static const OpInfo info{
      .kind = OpKind::embedding,
      .name = "embedding",
      .attrs = {{"num_embeddings", AttrKind::Int, {}}, {"embedding_dim", AttrKind::Int, {}}},
      .infer = embedding_infer,
      .params = embedding_params,
      .input_box = embedding_input_box,
      .param_box = embedding_param_box,
  };
  return info;
}

}  // namespace ffc::ops
