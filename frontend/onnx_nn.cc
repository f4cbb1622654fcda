// The ONNX importer's ops with weights and windows: Conv, MaxPool, AveragePool, the global pools,
// Pad (folded into the conv or pool after it), Gemm and MatMul (linear, with a following bias Add
// folded in, or matmul), BatchNormalization, and Gather from an initializer (embedding).
#include <cmath>

#include "frontend/onnx_import.h"

namespace ffc::onnx_import {

namespace {

using Ints = std::vector<int64_t>;

/// The largest kernel, stride, padding or dilation the importer passes on.
constexpr int64_t kMaxWindow = int64_t{1} << 24;

struct Window {
  Ints kernel, stride{1, 1}, padding{0, 0}, dilation{1, 1};
};

/// The window attributes of a 2-D conv or pool with symmetric padding. `kernel` is the kernel when
/// the node may leave kernel_shape out (a conv: its weight's), empty when the node must give it.
Window window(Importer& im, int n, const Value& x, const Ints& kernel) {
  Window w;
  w.kernel = im.attr_ints(n, "kernel_shape", kernel);
  if (w.kernel.size() != 2) im.fail(n, "has a {}-D window; ffc imports 2-D convolutions and pools", w.kernel.size());
  if (!kernel.empty() && w.kernel != kernel)
    im.fail(n, "kernel_shape [{}] differs from its weight's [{}]", fmt::join(w.kernel, ","), fmt::join(kernel, ","));
  w.stride = im.attr_ints(n, "strides", {1, 1});
  w.dilation = im.attr_ints(n, "dilations", {1, 1});
  Ints pads = im.attr_ints(n, "pads", {0, 0, 0, 0});
  if (w.stride.size() != 2 || w.dilation.size() != 2 || pads.size() != 4)
    im.fail(n, "strides, dilations and pads must have 2, 2 and 4 entries");
  for (const Ints* v : {&w.kernel, &w.stride, &w.dilation, &pads})
    for (int64_t x : *v)
      if (x < 0 || x > kMaxWindow) im.fail(n, "has a window attribute of {}", x);
  std::string auto_pad = im.attr_string(n, "auto_pad", "NOTSET");
  const Shape& s = im.type(x).shape;
  for (int i = 2; i < 4; ++i)
    if (s[i].value > (int64_t{1} << 31)) im.fail(n, "has an input of extent {}", s[i].value);
  if (auto_pad == "VALID") {
    pads = {0, 0, 0, 0};
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (int i = 0; i < 2; ++i) {
      int64_t in = s[2 + i].value, st = std::max<int64_t>(w.stride[i], 1), out = (in + st - 1) / st;
      int64_t total = std::max<int64_t>((out - 1) * st + (w.kernel[i] - 1) * w.dilation[i] + 1 - in, 0);
      if (total % 2) im.fail(n, "auto_pad={} pads one side more than the other; ffc pads both sides alike", auto_pad);
      pads[i] = pads[i + 2] = total / 2;
    }
  } else if (auto_pad != "NOTSET") {
    im.fail(n, "has auto_pad={}", auto_pad);
  }
  if (pads[0] != pads[2] || pads[1] != pads[3])
    im.fail(n, "pads [{}] pad one side more than the other; ffc pads both sides alike", fmt::join(pads, ","));
  w.padding = {pads[0], pads[1]};
  if (x.pad) {
    w.padding[0] += x.pad->h;
    w.padding[1] += x.pad->w;
  }
  return w;
}

/// The data input of a conv or pool: an NCHW activation.
const Value& image(Importer& im, int n) {
  const Value& x = im.activation(n, 0);
  im.expect_plain(n, x, "its input");
  if (im.type(x).rank() != 4 || !im.type(x).shape[0].batch)
    im.fail(n, "takes {}; ffc imports 2-D convolutions and pools over [N,C,H,W]", im.type(x).str());
  return x;
}

// ---- Conv, pools, Pad ------------------------------------------------------------------------------

void conv_node(Importer& im, int n) {
  im.expect_attrs(n, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  const Value& x = image(im, n);
  const Constant& weight = im.initializer(n, 1, "the weight");
  if (weight.dims.size() != 4) im.fail(n, "has a weight of shape [{}]; a 2-D conv's is [OC,C/groups,KH,KW]", fmt::join(weight.dims, ","));
  Window w = window(im, n, x, {weight.dims[2], weight.dims[3]});
  std::vector<std::string> params{weight.initializer};
  bool bias = im.has_input(n, 2);
  if (bias) params.push_back(im.initializer(n, 2, "the bias").initializer);
  int64_t groups = im.attr_int(n, "group", 1);
  Value out = im.emit_value(n, OpKind::conv2d, {x.tensor},
                            {AttrValue{weight.dims[0]}, AttrValue{w.kernel}, AttrValue{w.stride}, AttrValue{w.padding},
                             AttrValue{w.dilation}, AttrValue{groups}, AttrValue{bias}},
                            params);
  im.define(n, 0, out);
}

void pool_node(Importer& im, int n) {
  bool max = im.node(n).op_type() == "MaxPool";
  if (max) im.expect_attrs(n, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"});
  else im.expect_attrs(n, {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"});
  const Value& x = image(im, n);
  if (!im.attr(n, "kernel_shape")) im.fail(n, "needs kernel_shape");
  Window w = window(im, n, x, {});
  if (w.dilation != Ints{1, 1}) im.fail(n, "has dilations [{}]; ffc pools without dilation", fmt::join(w.dilation, ","));
  if (im.attr_int(n, "storage_order", 0) != 0) im.fail(n, "has storage_order 1");
  if (max) im.expect_unused_outputs(n, 1, "does not import max pooling's indices");
  bool padded = w.padding != Ints{0, 0};
  bool include_pad = true;  // ffc's default; it matters only with padding
  if (!max && padded) {
    bool own = im.attr_ints(n, "pads", {0, 0, 0, 0}) != Ints{0, 0, 0, 0} || im.attr_string(n, "auto_pad", "NOTSET") != "NOTSET";
    if (own && x.pad) im.fail(n, "is padded twice, by a Pad node and by its own pads");
    include_pad = x.pad ? true : im.attr_int(n, "count_include_pad", 0) != 0;  // zeros a Pad added are counted
  }
  Value out = im.emit_value(n, OpKind::pool2d, {x.tensor},
                            {AttrValue{std::string(max ? "max" : "avg")}, AttrValue{w.kernel}, AttrValue{w.stride},
                             AttrValue{w.padding}, AttrValue{im.attr_int(n, "ceil_mode", 0) != 0}, AttrValue{include_pad}});
  out.nonnegative = x.nonnegative;
  im.define(n, 0, out);
}

void global_pool_node(Importer& im, int n) {
  im.expect_attrs(n, {});
  const Value& x = image(im, n);
  const Shape& s = im.type(x).shape;
  Ints k{s[2].value, s[3].value};
  bool max = im.node(n).op_type() == "GlobalMaxPool";
  Value out = im.emit_value(n, OpKind::pool2d, {x.tensor},
                            {AttrValue{std::string(max ? "max" : "avg")}, AttrValue{k}, AttrValue{k}});
  out.nonnegative = x.nonnegative;
  im.define(n, 0, out);
}

void pad_node(Importer& im, int n) {
  im.expect_attrs(n, {"mode"});
  const Value& x = im.activation(n, 0);
  im.expect_plain(n, x, "its input");
  std::string mode = im.attr_string(n, "mode", "constant");
  if (mode != "constant") im.fail(n, "pads in mode '{}'; ffc folds zero padding into the conv or pool that follows", mode);
  if (im.has_input(n, 3)) im.fail(n, "has an axes input");
  ConstPtr pads_c = im.constant(n, 1, "the pads");
  Ints pads;
  for (const Sym& s : pads_c->ints) {
    if (pads_c->is_float || !s.known || s.n) im.fail(n, "the pads must be fixed integers");
    pads.push_back(s.k);
  }
  double value = 0;
  if (im.has_input(n, 2)) {
    std::optional<double> v = im.constant(n, 2, "the padding value")->scalar();
    if (!v) im.fail(n, "the padding value must be one number");
    value = *v;
  }
  int r = im.type(x).rank();
  if (static_cast<int>(pads.size()) != 2 * r) im.fail(n, "has {} pads for rank {}", pads.size(), r);
  bool none = std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; });
  if (none) {
    im.define(n, 0, x);
    return;
  }
  if (r != 4 || pads[0] || pads[1] || pads[4] || pads[5])
    im.fail(n, "pads [{}]; ffc folds only padding of H and W in front of a conv or pool", fmt::join(pads, ","));
  if (pads[2] != pads[6] || pads[3] != pads[7] || pads[2] < 0 || pads[3] < 0 || pads[2] > kMaxWindow || pads[3] > kMaxWindow)
    im.fail(n, "pads [{}] pad one side more than the other (or crop); ffc pads both sides alike", fmt::join(pads, ","));
  if (im.node(n).output_size() < 1) im.fail(n, "has no output");
  const std::string& out = im.node(n).output(0);
  int c = im.sole_consumer(out);
  std::string_view ct = c >= 0 ? std::string_view(im.node(c).op_type()) : std::string_view();
  if (c < 0 || im.node(c).input(0) != out || (ct != "Conv" && ct != "MaxPool" && ct != "AveragePool"))
    im.fail(n, "is not followed by a conv or pool alone; ffc folds padding into the conv or pool that reads it");
  if (ct == "MaxPool") {
    // Zero padding equals max pooling's own (-inf) padding only for inputs that are never negative.
    if (!(std::isinf(value) && value < 0) && !(value == 0 && x.nonnegative))
      im.fail(n, "pads with {} in front of a max pool; ffc folds that only for -inf or a non-negative input", value);
  } else if (value != 0) {
    im.fail(n, "pads with {}; ffc folds only zero padding into a {}", value, ct);
  }
  Value v = x;
  v.pad = PendingPad{pads[2], pads[3]};
  im.define(n, 0, v);
}

// ---- Gemm, MatMul ------------------------------------------------------------------------------------

/// A linear layer's weight read from input `i`: the initializer, when it is stored the way ffc holds
/// linear weights ([out, in], as nn.Linear does), or a note when it is stored transposed.
struct LinearWeight {
  std::string param;  ///< the initializer's name; empty when it is stored transposed
  std::string note;   ///< a comment for the op when it is
  int64_t in = 0, out = 0;
};

/// `in_by_out`: the node reads the weight as [in, out] (MatMul, Gemm without transB).
LinearWeight linear_weight(Importer& im, int n, int i, bool in_by_out) {
  const Value& v = im.input(n, i);
  if (!v.is_constant() || v.constant->initializer.empty())
    im.fail(n, "the weight ('{}') must be an initializer (a stored weight)", im.node(n).input(i));
  const Constant& c = *v.constant;
  if (c.dims.size() != 2) im.fail(n, "has a weight of shape [{}]; a linear layer's is 2-D", fmt::join(c.dims, ","));
  LinearWeight w;
  w.in = c.dims[in_by_out ? 0 : 1];
  w.out = c.dims[in_by_out ? 1 : 0];
  // c.dims are the dims as the node sees them; `transposed` says the initializer is stored the other way.
  bool stored_out_by_in = in_by_out == c.transposed;
  if (stored_out_by_in) w.param = c.initializer;
  else w.note = fmt::format(" weight: the transpose of ONNX initializer '{}'", c.initializer);
  return w;
}

/// The bias an Add right after a MatMul adds, when it can be folded into a linear op: the Add's
/// other operand is a 1-D initializer of `out` elements. Returns the Add node, or -1.
int bias_add(Importer& im, int n, int64_t out, std::string* bias) {
  if (im.node(n).output_size() < 1) return -1;
  const std::string& y = im.node(n).output(0);
  int a = im.sole_consumer(y);
  if (a < 0 || im.node(a).op_type() != "Add" || im.node(a).input_size() != 2) return -1;
  const std::string& other = im.node(a).input(im.node(a).input(0) == y ? 1 : 0);
  ConstPtr c = im.try_constant(other);
  if (!c || c->initializer.empty() || c->transposed || c->dims != std::vector<int64_t>{out}) return -1;
  *bias = c->initializer;
  return a;
}

void emit_linear(Importer& im, int n, const Value& x, const LinearWeight& w, std::string bias, int define_node) {
  im.ffc_axis(n, x, -1, "the feature dim");
  if (!im.type(x).shape.empty() && im.type(x).shape.back().value != w.in)
    im.fail(n, "multiplies {} by a weight for {} input features", im.type(x).str(), w.in);
  std::vector<std::string> params{w.param};
  if (!bias.empty()) params.push_back(bias);
  int op = im.emit(n, OpKind::linear, {x.tensor}, {AttrValue{w.out}, AttrValue{!bias.empty()}}, params);
  im.graph().ops[op].trailing = w.note;
  Value out{.tensor = im.graph().ops[op].outputs[0], .groups = x.groups};
  im.define(define_node, 0, out);
}

void gemm_node(Importer& im, int n) {
  im.expect_attrs(n, {"alpha", "beta", "transA", "transB"});
  const Value& a = im.activation(n, 0, "A");
  if (im.onnx_rank(a) != 2) im.fail(n, "A must be 2-D, got {}", im.type(a).str());
  if (im.attr_int(n, "transA", 0) != 0) im.fail(n, "has transA=1; ffc imports Gemm as a linear layer over rows of A");
  if (im.attr_float(n, "alpha", 1.0) != 1.0) im.fail(n, "has alpha={}; ffc imports alpha=1 only", im.attr_float(n, "alpha", 1.0));
  LinearWeight w = linear_weight(im, n, 1, im.attr_int(n, "transB", 0) == 0);
  std::string bias;
  if (im.has_input(n, 2)) {
    if (im.attr_float(n, "beta", 1.0) != 1.0) im.fail(n, "has beta={}; ffc imports beta=1 only", im.attr_float(n, "beta", 1.0));
    const Constant& c = im.initializer(n, 2, "the bias C");
    if (c.numel() != w.out || c.dims.empty() || c.dims.back() != w.out)
      im.fail(n, "has a bias C of shape [{}]; a linear layer's has {} elements", fmt::join(c.dims, ","), w.out);
    bias = c.initializer;
  }
  emit_linear(im, n, a, w, bias, n);
}

void matmul_node(Importer& im, int n) {
  im.expect_attrs(n, {});
  const Value& a = im.activation(n, 0, "A");
  const Value& b = im.input(n, 1);
  if (b.is_constant()) {
    // x @ W: a linear layer without bias, or with the bias of an Add that follows.
    LinearWeight w = linear_weight(im, n, 1, true);
    std::string bias;
    int add = bias_add(im, n, w.out, &bias);
    emit_linear(im, n, a, w, bias, add >= 0 ? add : n);
    if (add >= 0) im.mark_done(add);
    return;
  }
  int ra = im.onnx_rank(a), rb = im.onnx_rank(b);
  if (ra < 2 || rb < 2) im.fail(n, "multiplies a vector; ffc's matmul takes operands of rank 2 or more");
  for (const Value* v : {&a, &b}) {
    im.ffc_axis(n, *v, -1, "a matrix dim");
    im.ffc_axis(n, *v, -2, "a matrix dim");
  }
  // Leading (batch) dims line up from the right; where both have them, they must be held alike.
  std::vector<int> ga = a.groups.empty() ? std::vector<int>(ra, 1) : a.groups;
  std::vector<int> gb = b.groups.empty() ? std::vector<int>(rb, 1) : b.groups;
  for (int i = 3; i <= std::min(ra, rb); ++i)
    if (ga[ra - i] != gb[rb - i]) im.fail(n, "its operands merge the batch with other dims differently");
  Value out = im.emit_value(n, OpKind::matmul, {a.tensor, b.tensor}, {});
  std::vector<int> g = ra >= rb ? ga : gb;
  out.groups = std::all_of(g.begin(), g.end(), [](int x) { return x == 1; }) ? std::vector<int>{} : g;
  im.define(n, 0, out);
}

// ---- BatchNormalization, Gather ------------------------------------------------------------------------

void batch_norm_node(Importer& im, int n) {
  im.expect_attrs(n, {"epsilon", "momentum", "training_mode"});
  const Value& x = im.activation(n, 0);
  im.expect_plain(n, x, "its input");
  std::vector<std::string> params;
  const char* what[] = {"the scale", "the bias", "the running mean", "the running variance"};
  for (int i = 1; i <= 4; ++i) params.push_back(im.initializer(n, i, what[i - 1]).initializer);
  // Training exports name the updated running statistics as outputs 1 and 2; ffc keeps them as
  // the op's state instead.
  im.expect_unused_outputs(n, 1, "keeps batch norm's running statistics inside the op");
  double eps = float32_value(im.attr_float(n, "epsilon", 1e-5));
  // ONNX's momentum weighs the old statistic, PyTorch's (and ffc's) the new one.
  double momentum = float32_value(1.0 - float32_value(im.attr_float(n, "momentum", 0.9)));
  Value out = im.emit_value(n, OpKind::batch_norm, {x.tensor}, {AttrValue{eps}, AttrValue{momentum}, AttrValue{true}}, params);
  im.define(n, 0, out);
}

void gather_node(Importer& im, int n) {
  im.expect_attrs(n, {"axis"});
  const Value& data = im.input(n, 0);
  if (!data.is_constant() || data.constant->initializer.empty() || data.constant->transposed)
    im.fail(n, "gathers from '{}'; ffc imports Gather from a weight (an embedding) or over constants only",
            im.node(n).input(0));
  const Value& idx = im.activation(n, 1, "the indices");
  if (im.attr_int(n, "axis", 0) != 0) im.fail(n, "gathers along axis {}; an embedding gathers rows (axis 0)", im.attr_int(n, "axis", 0));
  const Constant& table = *data.constant;
  if (table.dims.size() != 2) im.fail(n, "gathers from a table of shape [{}]; an embedding's is 2-D", fmt::join(table.dims, ","));
  Value out = im.emit_value(n, OpKind::embedding, {idx.tensor}, {AttrValue{table.dims[0]}, AttrValue{table.dims[1]}},
                            {table.initializer});
  if (!idx.groups.empty()) {
    out.groups = idx.groups;
    out.groups.push_back(1);
  }
  im.define(n, 0, out);
}

}  // namespace

std::span<const HandlerEntry> nn_handlers() {
  static const HandlerEntry handlers[] = {
      {"Conv", conv_node},
      {"MaxPool", pool_node},
      {"AveragePool", pool_node},
      {"GlobalAveragePool", global_pool_node},
      {"GlobalMaxPool", global_pool_node},
      {"Pad", pad_node},
      {"Gemm", gemm_node},
      {"MatMul", matmul_node},
      {"BatchNormalization", batch_norm_node},
      {"Gather", gather_node},
  };
  return handlers;
}

}  // namespace ffc::onnx_import
