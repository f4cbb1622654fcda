// The ONNX importer's element-wise ops and normalizations: Relu, Sigmoid, Tanh, Gelu, Clip, Add,
// Sub, Mul, Div (by a constant: scale), Dropout, Softmax, LogSoftmax, LayerNormalization; and the
// patterns PyTorch decomposes GELU and LayerNorm into, fused back into one op each.
#include <cmath>

#include "frontend/onnx_import.h"

namespace ffc::onnx_import {

namespace {

bool near(std::optional<double> v, double want) { return v && std::fabs(*v - want) <= 1e-5 * std::fabs(want); }

/// The other input of a two-input node than `value`; empty when the node does not read it once.
std::string other_input(Importer& im, int n, const std::string& value) {
  const pb::NodeProto& nd = im.node(n);
  if (nd.input_size() != 2) return {};
  if (nd.input(0) == value && nd.input(1) != value) return nd.input(1);
  if (nd.input(1) == value && nd.input(0) != value) return nd.input(0);
  return {};
}

/// The scalar constant named `name`, if it is one.
std::optional<double> scalar(Importer& im, const std::string& name) {
  ConstPtr c = name.empty() ? nullptr : im.try_constant(name);
  return c ? c->scalar() : std::nullopt;
}

/// The sole consumer of `value` when it has type `type`, else -1.
int next(Importer& im, const std::string& value, std::string_view type) {
  int c = im.sole_consumer(value);
  return c >= 0 && im.node(c).op_type() == type ? c : -1;
}

/// Output 0 of a node; empty when it has none.
const std::string& out0(Importer& im, int n) {
  static const std::string none;
  return im.node(n).output_size() ? im.node(n).output(0) : none;
}

/// Input i of a node; empty when it has none.
const std::string& in(Importer& im, int n, int i) {
  static const std::string none;
  return i < im.node(n).input_size() ? im.node(n).input(i) : none;
}

/// The 1-D initializer named `name`, or nullptr.
ConstPtr vector_initializer(Importer& im, const std::string& name) {
  ConstPtr c = name.empty() ? nullptr : im.try_constant(name);
  if (!c || c->initializer.empty() || c->transposed || c->dims.size() != 1) return nullptr;
  return c;
}

// GELU as PyTorch writes it: y = (x * (erf(x / sqrt(2)) + 1)) * 0.5.
std::optional<Fusion> match_gelu(Importer& im, int d) {
  const pb::NodeProto& nd = im.node(d);
  if (nd.input_size() != 2 || nd.output_size() < 1) return std::nullopt;
  bool div = nd.op_type() == "Div" && near(scalar(im, nd.input(1)), std::sqrt(2.0));
  bool mul = nd.op_type() == "Mul" && near(scalar(im, nd.input(1)), std::sqrt(0.5));
  if (!div && !mul) return std::nullopt;
  std::string x = nd.input(0);
  int e = next(im, out0(im, d), "Erf");
  if (e < 0) return std::nullopt;
  int f = next(im, out0(im, e), "Add");
  if (f < 0 || !near(scalar(im, other_input(im, f, out0(im, e))), 1.0)) return std::nullopt;
  int g = next(im, out0(im, f), "Mul");
  if (g < 0 || other_input(im, g, out0(im, f)) != x) return std::nullopt;
  int h = next(im, out0(im, g), "Mul");
  if (h < 0 || !near(scalar(im, other_input(im, h, out0(im, g))), 0.5)) return std::nullopt;
  Fusion fu;
  fu.kind = Fusion::gelu;
  fu.anchor = d;
  fu.nodes = {d, e, f, g, h};
  fu.x = x;
  fu.y = out0(im, h);
  return fu;
}

// LayerNorm as PyTorch writes it before opset 17:
//   m = ReduceMean(x); d = x - m; v = ReduceMean(d^2); y = d / sqrt(v + eps); [y * weight + bias]
std::optional<Fusion> match_layer_norm(Importer& im, int m1) {
  const pb::NodeProto& nd = im.node(m1);
  if (nd.op_type() != "ReduceMean" || nd.input_size() != 1 || nd.output_size() < 1) return std::nullopt;
  std::vector<int64_t> axes = im.attr_ints(m1, "axes", {});
  if (axes.size() != 1 || im.attr_int(m1, "keepdims", 1) != 1) return std::nullopt;
  std::string x = nd.input(0);
  int sub = next(im, out0(im, m1), "Sub");
  if (sub < 0 || in(im, sub, 0) != x || in(im, sub, 1) != out0(im, m1)) return std::nullopt;
  const std::string& dev = out0(im, sub);
  const std::vector<int>& uses = im.consumers(dev);
  if (uses.size() != 2 || im.is_graph_output(dev)) return std::nullopt;
  int pow = im.node(uses[0]).op_type() == "Pow" ? uses[0] : uses[1];
  int div = pow == uses[0] ? uses[1] : uses[0];
  if (im.node(pow).op_type() != "Pow" || in(im, pow, 0) != dev || !near(scalar(im, in(im, pow, 1)), 2.0))
    return std::nullopt;
  int m2 = next(im, out0(im, pow), "ReduceMean");
  if (m2 < 0 || im.attr_ints(m2, "axes", {}) != axes || im.attr_int(m2, "keepdims", 1) != 1) return std::nullopt;
  int add = next(im, out0(im, m2), "Add");
  std::optional<double> eps = add < 0 ? std::nullopt : scalar(im, other_input(im, add, out0(im, m2)));
  if (!eps || !(*eps > 0)) return std::nullopt;
  int sqrt = next(im, out0(im, add), "Sqrt");
  if (sqrt < 0 || next(im, out0(im, sqrt), "Div") != div) return std::nullopt;
  if (in(im, div, 0) != dev || in(im, div, 1) != out0(im, sqrt)) return std::nullopt;
  Fusion f;
  f.kind = Fusion::layer_norm;
  f.anchor = m1;
  f.nodes = {m1, sub, pow, m2, add, sqrt, div};
  f.x = x;
  f.y = out0(im, div);
  f.eps = *eps;
  f.axis_node = m1;
  // The affine part: * weight + bias, both 1-D initializers.
  int mul = next(im, f.y, "Mul");
  if (mul >= 0) {
    ConstPtr w = vector_initializer(im, other_input(im, mul, f.y));
    int add2 = w ? next(im, out0(im, mul), "Add") : -1;
    ConstPtr b = add2 >= 0 ? vector_initializer(im, other_input(im, add2, out0(im, mul))) : nullptr;
    if (b) {
      f.nodes.push_back(mul);
      f.nodes.push_back(add2);
      f.weight = w->initializer;
      f.bias = b->initializer;
      f.y = out0(im, add2);
    }
  }
  return f;
}

/// An element-wise op on `x`.
Value unary_on(Importer& im, int n, const Value& x, OpKind kind, std::vector<AttrValue> attrs = {}) {
  Value out = im.emit_value(n, kind, {x.tensor}, std::move(attrs));
  out.groups = x.groups;
  return out;
}

/// An element-wise op on the node's input 0.
Value unary(Importer& im, int n, OpKind kind, std::vector<AttrValue> attrs = {}) {
  return unary_on(im, n, im.activation(n, 0), kind, std::move(attrs));
}

void relu_node(Importer& im, int n) {
  im.expect_attrs(n, {});
  Value v = unary(im, n, OpKind::relu);
  v.nonnegative = true;
  im.define(n, 0, v);
}

void sigmoid_node(Importer& im, int n) {
  im.expect_attrs(n, {});
  Value v = unary(im, n, OpKind::sigmoid);
  v.nonnegative = true;
  im.define(n, 0, v);
}

void tanh_node(Importer& im, int n) {
  im.expect_attrs(n, {});
  im.define(n, 0, unary(im, n, OpKind::tanh));
}

void gelu_node(Importer& im, int n) {
  im.expect_attrs(n, {"approximate"});
  std::string approx = im.attr_string(n, "approximate", "none");
  if (approx != "none") im.fail(n, "approximates GELU with '{}'; ffc's gelu is the exact (erf) one", approx);
  im.define(n, 0, unary(im, n, OpKind::gelu));
}

void clip_node(Importer& im, int n) {
  im.expect_attrs(n, {});
  std::optional<double> lo, hi;
  if (im.has_input(n, 1)) {
    lo = im.constant(n, 1, "the minimum")->scalar();
    if (!lo) im.fail(n, "the minimum must be one number");
  }
  if (im.has_input(n, 2)) {
    hi = im.constant(n, 2, "the maximum")->scalar();
    if (!hi) im.fail(n, "the maximum must be one number");
  }
  Value v;
  if (lo && !hi && *lo == 0) {
    v = unary(im, n, OpKind::relu);  // clamp(min=0)
  } else if (lo && hi && std::isfinite(*lo) && std::isfinite(*hi)) {
    v = unary(im, n, OpKind::clip, {AttrValue{float32_value(*lo)}, AttrValue{float32_value(*hi)}});
  } else {
    im.fail(n, "clips to [{}, {}]; ffc imports clips with both bounds finite, or a minimum of 0 alone",
            lo ? fmt::format("{}", *lo) : "-inf", hi ? fmt::format("{}", *hi) : "inf");
  }
  v.nonnegative = lo && *lo >= 0;
  im.define(n, 0, v);
}

// ---- Add, Sub, Mul, Div --------------------------------------------------------------------------------

void binary_node(Importer& im, int n) {
  im.expect_attrs(n, {});
  const std::string& type = im.node(n).op_type();
  const Value& a = im.input(n, 0);
  const Value& b = im.input(n, 1);
  if (a.is_constant() || b.is_constant()) {
    // One operand is a constant (both are folded before this): x * c and x / c scale x.
    const Value& x = a.is_constant() ? b : a;
    const Value& c = a.is_constant() ? a : b;
    const std::string& cname = im.node(n).input(a.is_constant() ? 0 : 1);
    std::optional<double> s = c.constant->scalar();
    if (s && type == "Mul" && std::isfinite(*s)) {
      Value out = *s == 1 ? x : unary_on(im, n, x, OpKind::scale, {AttrValue{float32_value(*s)}});
      out.groups = x.groups;
      im.define(n, 0, out);
      return;
    }
    if (s && type == "Div" && b.is_constant() && *s != 0 && std::isfinite(*s)) {
      Value out = *s == 1 ? x : unary_on(im, n, x, OpKind::scale, {AttrValue{float32_value(1.0 / *s)}});
      out.groups = x.groups;
      im.define(n, 0, out);
      return;
    }
    im.fail(n, "{} a tensor and the constant '{}' of shape [{}]; ffc imports constants in arithmetic only as scalar "
            "factors and divisors, as a bias after MatMul, and inside the GELU and LayerNorm patterns",
            type == "Div" ? "divides" : "combines", cname, fmt::join(c.constant->dims, ","));
  }
  if (type == "Div") im.fail(n, "divides two tensors; ffc imports division by a constant only");
  // Both activations: where both have a dim, they must hold it alike.
  int ra = im.onnx_rank(a), rb = im.onnx_rank(b);
  std::vector<int> ga = a.groups.empty() ? std::vector<int>(ra, 1) : a.groups;
  std::vector<int> gb = b.groups.empty() ? std::vector<int>(rb, 1) : b.groups;
  for (int i = 1; i <= std::min(ra, rb); ++i)
    if (ga[ra - i] != gb[rb - i]) im.fail(n, "its operands merge the batch with other dims differently");
  OpKind kind = type == "Add" ? OpKind::add : type == "Sub" ? OpKind::sub : OpKind::mul;
  Value out = im.emit_value(n, kind, {a.tensor, b.tensor}, {});
  out.groups = ra >= rb ? a.groups : b.groups;
  out.nonnegative = kind != OpKind::sub && a.nonnegative && b.nonnegative;
  im.define(n, 0, out);
}

// ---- Dropout, Softmax, LayerNormalization ---------------------------------------------------------------------

void dropout_node(Importer& im, int n) {
  im.expect_attrs(n, {"ratio", "seed"});
  im.expect_unused_outputs(n, 1, "does not import dropout masks");
  double rate = 0.5;
  bool training = true;
  if (im.opset() < 12) {
    rate = im.attr_float(n, "ratio", 0.5);
  } else {
    if (im.has_input(n, 1)) {
      std::optional<double> r = im.constant(n, 1, "the ratio")->scalar();
      if (!r) im.fail(n, "the ratio must be one number");
      rate = *r;
    }
    training = false;
    if (im.has_input(n, 2)) {
      std::optional<double> t = im.constant(n, 2, "training_mode")->scalar();
      if (!t) im.fail(n, "training_mode must be one boolean");
      training = *t != 0;
    }
  }
  const Value& x = im.activation(n, 0);
  // Without training mode, or at rate 0, dropout is the identity.
  if (!training || rate == 0) {
    im.define(n, 0, x);
    return;
  }
  Value out = unary_on(im, n, x, OpKind::dropout, {AttrValue{float32_value(rate)}});
  out.nonnegative = x.nonnegative;
  im.define(n, 0, out);
}

void softmax_node(Importer& im, int n) {
  im.expect_attrs(n, {"axis"});
  const Value& x = im.activation(n, 0);
  int r = im.onnx_rank(x);
  int64_t axis = im.attr_int(n, "axis", im.opset() < 13 ? 1 : -1);
  if (axis < -r || axis >= r) im.fail(n, "axis {} is out of range for rank {}", axis, r);
  if (axis < 0) axis += r;
  if (im.opset() < 13) {
    // Before opset 13, softmax runs over all dims from `axis` on, flattened.
    std::vector<Sym> s = im.onnx_shape(x);
    for (int d = static_cast<int>(axis) + 1; d < r; ++d)
      if (s[d] != Sym::fixed(1))
        im.fail(n, "takes softmax over dims {} to {} together (opset {} semantics); ffc takes it over one dim", axis, r - 1,
                im.opset());
  }
  int a = im.ffc_axis(n, x, axis, "the softmax dim");
  int64_t ffc_axis = a == im.type(x).rank() - 1 ? -1 : a;
  OpKind kind = im.node(n).op_type() == "Softmax" ? OpKind::softmax : OpKind::log_softmax;
  Value out = unary(im, n, kind, {AttrValue{ffc_axis}});
  out.nonnegative = kind == OpKind::softmax;
  im.define(n, 0, out);
}

/// The layer_norm op over the last dim of `x`; `axis` is the ONNX axis the model normalizes.
Value emit_layer_norm(Importer& im, int n, const Value& x, int64_t axis, double eps, const std::string& weight,
                      const std::string& bias, const std::string& name) {
  int r = im.onnx_rank(x);
  if (axis != -1 && axis != r - 1) im.fail(n, "normalizes from dim {} of a rank-{} tensor; ffc's layer_norm normalizes the last dim", axis, r);
  im.ffc_axis(n, x, -1, "the normalized dim");
  std::vector<std::string> params;
  if (!weight.empty()) params = {weight, bias};
  Value out = im.emit_value(n, OpKind::layer_norm, {x.tensor}, {AttrValue{float32_value(eps)}, AttrValue{!weight.empty()}},
                            params, name);
  out.groups = x.groups;
  return out;
}

void layer_norm_node(Importer& im, int n) {
  im.expect_attrs(n, {"axis", "epsilon", "stash_type"});
  im.expect_unused_outputs(n, 1, "does not import layer norm's saved statistics");
  const Value& x = im.activation(n, 0);
  std::string weight = im.initializer(n, 1, "the scale").initializer;
  if (!im.has_input(n, 2)) im.fail(n, "has no bias; ffc's layer_norm has both scale and bias or neither");
  std::string bias = im.initializer(n, 2, "the bias").initializer;
  im.define(n, 0, emit_layer_norm(im, n, x, im.attr_int(n, "axis", -1), im.attr_float(n, "epsilon", 1e-5), weight, bias, ""));
}

}  // namespace

std::vector<Fusion> find_fusions(Importer& im) {
  std::vector<Fusion> found;
  std::vector<bool> taken(im.num_nodes(), false);
  for (int i = 0; i < im.num_nodes(); ++i) {
    if (taken[i]) continue;
    std::optional<Fusion> f = match_gelu(im, i);
    if (!f) f = match_layer_norm(im, i);
    if (!f) continue;
    // The fused op stands where the first node stood; every other node must come after it.
    bool ok = true;
    for (int k : f->nodes) ok &= !taken[k] && k >= i;
    if (!ok) continue;
    for (int k : f->nodes) taken[k] = true;
    found.push_back(std::move(*f));
  }
  return found;
}

void emit_fusion(Importer& im, const Fusion& f) {
  const Value* x = im.find_value(f.x);
  if (!x) im.input(f.anchor, 0);  // fails with the reason
  if (x->is_constant()) im.fail(f.anchor, "its input '{}' is a constant", f.x);
  if (x->pad) im.fail(f.anchor, "reads a padded tensor; ffc folds Pad only into the conv or pool that follows it");
  Value v = *x;
  Value out;
  if (f.kind == Fusion::gelu) {
    out = im.emit_value(f.anchor, OpKind::gelu, {v.tensor}, {}, {}, im.fused_name(f.nodes, "Gelu"));
    out.groups = v.groups;
  } else {
    int64_t axis = im.attr_ints(f.axis_node, "axes", {}).at(0);
    int r = im.onnx_rank(v);
    if (axis < -r || axis >= r) im.fail(f.anchor, "axis {} is out of range for rank {}", axis, r);
    out = emit_layer_norm(im, f.anchor, v, axis < 0 ? axis + r : axis, f.eps, f.weight, f.bias,
                          im.fused_name(f.nodes, "LayerNormalization"));
  }
  im.define_name(f.y, out);
}

std::span<const HandlerEntry> elementwise_handlers() {
  static const HandlerEntry handlers[] = {
      {"Relu", relu_node},       {"Sigmoid", sigmoid_node},       {"Tanh", tanh_node},
      {"Gelu", gelu_node},       {"Clip", clip_node},             {"Add", binary_node},
      {"Sub", binary_node},      {"Mul", binary_node},            {"Div", binary_node},
      {"Dropout", dropout_node}, {"Softmax", softmax_node},       {"LogSoftmax", softmax_node},
      {"LayerNormalization", layer_norm_node},
  };
  return handlers;
}

}  // namespace ffc::onnx_import
