// How each op kind runs on libffrt's kernels.
#include "exec/op_kernels.h"

#include <memory>
#include <numeric>

#include "exec/host_tensor.h"
#include "ffrt/philox.h"
#include "ir/ops/helpers.h"

namespace ffc {

namespace {

using ffrt::View;
using Shapes = std::vector<std::vector<int64_t>>;

ffrt::Act act_of(const Op& op) {
  const std::string& a = op.attr_str("activation");
  if (a == "relu") return ffrt::Act::relu;
  if (a == "sigmoid") return ffrt::Act::sigmoid;
  if (a == "tanh") return ffrt::Act::tanh;
  if (a == "gelu") return ffrt::Act::gelu;
  return ffrt::Act::none;
}

bool has_act(const Op& op) { return act_of(op) != ffrt::Act::none; }

/// A temporary dense tensor covering the same box as `like`: zero-filled, or uninitialized when
/// the kernel that fills it overwrites every element (`zeroed` false).
struct Temp {
  std::unique_ptr<std::byte[]> buf;
  View v;
  explicit Temp(const View& like, bool zeroed = true) {
    const size_t n = static_cast<size_t>(like.volume()) * ffrt::dtype_size(like.dtype);
    buf = zeroed ? std::make_unique<std::byte[]>(n) : std::make_unique_for_overwrite<std::byte[]>(n);
    v = ffrt::make_view(buf.get(), like.dtype, like.rank, like.full, like.lo, like.size);
  }
};

const View* opt(const std::vector<View>& v, size_t i) { return i < v.size() ? &v[i] : nullptr; }
const View* opt(const std::vector<std::optional<View>>& v, size_t i) {
  return i < v.size() && v[i] ? &*v[i] : nullptr;
}

/// A view's dim `d` shifted by `by` inside a tensor whose extent along d is `full`.
View shifted(const View& v, int d, int64_t by, int64_t full) {
  View s = v;
  s.lo[d] += by;
  s.full[d] = full;
  return s;
}

int64_t full_volume(const View& v) {
  int64_t n = 1;
  for (int d = 0; d < v.rank; ++d) n *= v.full[d];
  return n;
}

/// Whether the op saves its pre-activation for the backward (the op table's rule, OpInfo::saved):
/// otherwise the forward fuses the activation into its kernel.
using ops::saves_pre_activation;

/// Runs compute(y, act) into the op's output with the activation fused, or, when the backward needs
/// the pre-activation, compute(saved pre-activation, none) and then the activation.
template <typename F>
void with_activation(ffrt::Context& ctx, const Op& op, OpViews& v, F&& compute) {
  if (!saves_pre_activation(op)) {
    compute(v.out[0], act_of(op));
    return;
  }
  compute(v.saved[0], ffrt::Act::none);
  ffrt::activation_forward(ctx, act_of(op), v.saved[0], v.out[0]);
}

/// The gradient before the fused activation: dy itself, or dy through the activation's backward
/// (from the saved pre-activation `pre`, or from the output y when the op saves none).
struct PreActGrad {
  std::optional<Temp> tmp;
  View view;
};
PreActGrad grad_before_activation(ffrt::Context& ctx, const Op& op, OpViews& v, const View& pre) {
  PreActGrad g;
  if (!has_act(op)) {
    g.view = v.dout[0];
    return g;
  }
  g.tmp.emplace(v.dout[0], false);  // overwritten by the activation's backward
  ffrt::activation_backward(ctx, act_of(op), saves_pre_activation(op) ? pre : View{}, v.out[0], v.dout[0], g.tmp->v,
                            false);
  g.view = g.tmp->v;
  return g;
}

/// The saved pre-activation of a conv2d, pool2d or linear op (an empty view when it saves none).
View saved_pre_activation(const Op& op, OpViews& v) { return saves_pre_activation(op) ? v.saved[0] : View{}; }

// ---- conv2d, pool2d, linear, matmul, embedding ----------------------------------------------------

ffrt::Conv2dAttrs conv_attrs(const Op& op) {
  ffrt::Conv2dAttrs a{};
  for (int i = 0; i < 2; ++i) {
    a.kernel[i] = op.attr_ints("kernel")[i];
    a.stride[i] = op.attr_ints("stride")[i];
    a.padding[i] = op.attr_ints("padding")[i];
    a.dilation[i] = op.attr_ints("dilation")[i];
  }
  a.groups = op.attr_int("groups");
  return a;
}

void conv_forward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  with_activation(ctx, op, v, [&](const View& y, ffrt::Act act) {
    ffrt::conv2d_forward(ctx, conv_attrs(op), act, v.in[0], v.params[0], opt(v.params, 1), y);
  });
}

void conv_backward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  PreActGrad dz = grad_before_activation(ctx, op, v, saved_pre_activation(op, v));
  if (v.din[0]) ffrt::conv2d_backward_data(ctx, conv_attrs(op), dz.view, v.params[0], *v.din[0], true);
  if (v.dparams[0]) ffrt::conv2d_backward_weight(ctx, conv_attrs(op), v.in[0], dz.view, *v.dparams[0], opt(v.dparams, 1), true);
}

ffrt::Pool2dAttrs pool_attrs(const Op& op) {
  ffrt::Pool2dAttrs a{};
  for (int i = 0; i < 2; ++i) {
    a.kernel[i] = op.attr_ints("kernel")[i];
    a.stride[i] = op.attr_ints("stride")[i];
    a.padding[i] = op.attr_ints("padding")[i];
  }
  a.max = op.attr_str("type") == "max";
  a.count_include_pad = op.attr_bool("count_include_pad");
  return a;
}

void pool_forward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  with_activation(ctx, op, v,
                  [&](const View& y, ffrt::Act act) { ffrt::pool2d_forward(ctx, pool_attrs(op), act, v.in[0], y); });
}

void pool_backward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  if (!v.din[0]) return;
  // Max pooling finds the maximum in x; y (the output, act(max) when fused) is not read.
  PreActGrad dz = grad_before_activation(ctx, op, v, saved_pre_activation(op, v));
  ffrt::pool2d_backward(ctx, pool_attrs(op), v.in[0], v.out[0], dz.view, *v.din[0], true);
}

void linear_forward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  with_activation(ctx, op, v, [&](const View& y, ffrt::Act act) {
    ffrt::linear_forward(ctx, act, v.in[0], v.params[0], opt(v.params, 1), y);
  });
}

void linear_backward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  PreActGrad dz = grad_before_activation(ctx, op, v, saved_pre_activation(op, v));
  if (v.din[0]) ffrt::linear_backward_data(ctx, dz.view, v.params[0], *v.din[0], true);
  if (v.dparams[0]) ffrt::linear_backward_weight(ctx, v.in[0], dz.view, *v.dparams[0], opt(v.dparams, 1), true);
}

ffrt::MatmulAttrs matmul_attrs(const Op& op) {
  return ffrt::MatmulAttrs{op.attr_bool("transpose_a"), op.attr_bool("transpose_b")};
}

void matmul_forward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  ffrt::matmul_forward(ctx, matmul_attrs(op), v.in[0], v.in[1], v.out[0]);
}

void matmul_backward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  if (!v.din[0] && !v.din[1]) return;
  ffrt::matmul_backward(ctx, matmul_attrs(op), v.in[0], v.in[1], v.dout[0], opt(v.din, 0), opt(v.din, 1), true);
}

void embedding_forward(ffrt::Context& ctx, const Op&, const StepInfo&, OpViews& v) {
  ffrt::embedding_forward(ctx, v.in[0], v.params[0], v.out[0]);
}

void embedding_backward(ffrt::Context& ctx, const Op&, const StepInfo&, OpViews& v) {
  if (v.dparams[0]) ffrt::embedding_backward_weight(ctx, v.in[0], v.dout[0], *v.dparams[0], true);
}

// ---- element-wise ----------------------------------------------------------------------------------

template <ffrt::Act A>
void unary_forward(ffrt::Context& ctx, const Op&, const StepInfo&, OpViews& v) {
  ffrt::activation_forward(ctx, A, v.in[0], v.out[0]);
}

template <ffrt::Act A>
void unary_backward(ffrt::Context& ctx, const Op&, const StepInfo&, OpViews& v) {
  if (v.din[0]) ffrt::activation_backward(ctx, A, v.in[0], v.out[0], v.dout[0], *v.din[0], true);
}

template <ffrt::Binary B>
void binary_forward(ffrt::Context& ctx, const Op&, const StepInfo&, OpViews& v) {
  ffrt::binary_forward(ctx, B, v.in[0], v.in[1], v.out[0]);
}

template <ffrt::Binary B>
void binary_backward(ffrt::Context& ctx, const Op&, const StepInfo&, OpViews& v) {
  if (!v.din[0] && !v.din[1]) return;
  ffrt::binary_backward(ctx, B, v.in[0], v.in[1], v.dout[0], opt(v.din, 0), opt(v.din, 1), true);
}

void clip_forward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  ffrt::clip_forward(ctx, static_cast<float>(op.attr_float("min")), static_cast<float>(op.attr_float("max")), v.in[0],
                     v.out[0]);
}

void clip_backward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  if (v.din[0])
    ffrt::clip_backward(ctx, static_cast<float>(op.attr_float("min")), static_cast<float>(op.attr_float("max")),
                        v.in[0], v.dout[0], *v.din[0], true);
}

void scale_forward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  ffrt::copy_box(ctx, v.in[0], v.out[0], false);
  ffrt::scale(ctx, v.out[0], static_cast<float>(op.attr_float("factor")));
}

void scale_backward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  if (!v.din[0]) return;
  Temp t(*v.din[0]);
  ffrt::copy_box(ctx, v.dout[0], t.v, false);
  ffrt::scale(ctx, t.v, static_cast<float>(op.attr_float("factor")));
  ffrt::copy_box(ctx, t.v, *v.din[0], true);
}

void dropout_forward(ffrt::Context& ctx, const Op& op, const StepInfo& info, OpViews& v) {
  float rate = static_cast<float>(op.attr_float("rate"));
  if (!info.training || rate == 0.f) ffrt::copy_box(ctx, v.in[0], v.out[0], false);
  else ffrt::dropout_forward(ctx, rate, dropout_key(op, info), v.in[0], v.out[0]);
}

void dropout_backward(ffrt::Context& ctx, const Op& op, const StepInfo& info, OpViews& v) {
  if (!v.din[0]) return;
  float rate = static_cast<float>(op.attr_float("rate"));
  if (!info.training || rate == 0.f) ffrt::copy_box(ctx, v.dout[0], *v.din[0], true);
  else ffrt::dropout_backward(ctx, rate, dropout_key(op, info), v.dout[0], *v.din[0], true);
}

// ---- normalization ---------------------------------------------------------------------------------

// batch_norm's saved state (the op table's): mean and invstd per channel, then the pre-activation
// if the activation's backward needs it.

int64_t channel_count(const View& x) {
  int64_t n = x.full[0];
  for (int d = 2; d < x.rank; ++d) n *= x.full[d];
  return n;
}

/// Adds row r of a [2, C] f64 statistics view into an f32 [C] view over the same channels (a
/// parameter gradient).
void add_stats_row(const View& stats, int r, const View& to) {
  for (int64_t c = to.lo[0]; c < to.hi(0); ++c)
    to.f32()[(c - to.lo[0]) * to.stride[0]] += static_cast<float>(
        stats.f64()[(r - stats.lo[0]) * stats.stride[0] + (c - stats.lo[1]) * stats.stride[1]]);
}

struct BatchNormViews {
  const View* weight;
  const View* bias;
  const View& running_mean;
  const View& running_var;
};
BatchNormViews bn_views(const Op& op, const OpViews& v) {
  bool affine = op.attr_bool("affine");
  return {affine ? &v.params[0] : nullptr, affine ? &v.params[1] : nullptr, v.params[affine ? 2 : 0],
          v.params[affine ? 3 : 1]};
}

void batch_norm_forward_stats(ffrt::Context& ctx, const Op&, const StepInfo& info, OpViews& v) {
  if (info.training) ffrt::batch_norm_stats(ctx, v.in[0], v.stats);
}

// Normalizes with the whole batch's statistics (training: v.stats, summed over the parts; else the
// running statistics, posed as sums over `count` elements).
void batch_norm_forward(ffrt::Context& ctx, const Op& op, const StepInfo& info, OpViews& v) {
  BatchNormViews p = bn_views(op, v);
  const View& x = v.in[0];
  int64_t count = channel_count(x);
  std::optional<HostTensor> eval_stats;
  View stats = v.stats;
  if (!info.training) {
    eval_stats.emplace(ffrt::DType::f64, std::vector<int64_t>{2, x.size[1]});
    stats = box_view(*eval_stats, {0, x.lo[1]}, {2, x.full[1]});
    double* sum = reinterpret_cast<double*>(eval_stats->bytes.data());
    double* sumsq = sum + x.size[1];
    for (int64_t c = 0; c < x.size[1]; ++c) {
      int64_t g = x.lo[1] + c - p.running_mean.lo[0];
      double m = p.running_mean.f32()[g * p.running_mean.stride[0]], var = p.running_var.f32()[g * p.running_var.stride[0]];
      sum[c] = m * static_cast<double>(count);
      sumsq[c] = (var + m * m) * static_cast<double>(count);
    }
  }
  float eps = static_cast<float>(op.attr_float("eps"));
  const bool pre = saves_pre_activation(op);
  ffrt::batch_norm_forward(ctx, pre ? ffrt::Act::none : act_of(op), eps, count, x, stats, p.weight, p.bias,
                           pre ? v.saved[2] : v.out[0], v.saved[0], v.saved[1]);
  if (pre) ffrt::activation_forward(ctx, act_of(op), v.saved[2], v.out[0]);
  if (info.training && v.update_state)
    ffrt::batch_norm_update_running(ctx, static_cast<float>(op.attr_float("momentum")), count, stats, p.running_mean,
                                    p.running_var);
}

// The part's partial sums of dy and dy * xhat: its share of the bias and weight gradients.
void batch_norm_backward_stats(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  PreActGrad dz = grad_before_activation(ctx, op, v, saves_pre_activation(op) ? v.saved[2] : View{});
  ffrt::batch_norm_backward_stats(ctx, v.in[0], dz.view, v.saved[0], v.saved[1], v.stats);
  if (op.attr_bool("affine") && v.dparams[0]) add_stats_row(v.stats, 1, *v.dparams[0]);
  if (op.attr_bool("affine") && v.dparams[1]) add_stats_row(v.stats, 0, *v.dparams[1]);
}

// dx from the sums over every part.
void batch_norm_backward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  if (!v.din[0]) return;
  PreActGrad dz = grad_before_activation(ctx, op, v, saves_pre_activation(op) ? v.saved[2] : View{});
  const View& x = v.in[0];
  ffrt::batch_norm_backward_data(ctx, channel_count(x), x, dz.view, v.saved[0], v.saved[1], bn_views(op, v).weight,
                                 v.stats, *v.din[0], true);
}

void layer_norm_forward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  bool affine = op.attr_bool("affine");
  ffrt::layer_norm_forward(ctx, static_cast<float>(op.attr_float("eps")), v.in[0], affine ? &v.params[0] : nullptr,
                           affine ? &v.params[1] : nullptr, v.out[0], v.saved[0], v.saved[1]);
}

void layer_norm_backward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  bool affine = op.attr_bool("affine");
  std::optional<Temp> scratch;
  if (!v.din[0]) scratch.emplace(v.in[0]);
  const View& dx = v.din[0] ? *v.din[0] : scratch->v;
  ffrt::layer_norm_backward(ctx, v.in[0], v.dout[0], v.saved[0], v.saved[1], affine ? &v.params[0] : nullptr, dx,
                            affine ? opt(v.dparams, 0) : nullptr, affine ? opt(v.dparams, 1) : nullptr, true);
}

int softmax_axis(const Op& op, const View& x) {
  int64_t a = op.attr_int("axis");
  return static_cast<int>(a < 0 ? a + x.rank : a);
}

void softmax_forward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  ffrt::softmax_forward(ctx, softmax_axis(op, v.in[0]), v.in[0], v.out[0]);
}

void softmax_backward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  if (v.din[0]) ffrt::softmax_backward(ctx, softmax_axis(op, v.in[0]), v.out[0], v.dout[0], *v.din[0], true);
}

void log_softmax_forward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  ffrt::log_softmax_forward(ctx, softmax_axis(op, v.in[0]), v.in[0], v.out[0]);
}

void log_softmax_backward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  if (v.din[0]) ffrt::log_softmax_backward(ctx, softmax_axis(op, v.in[0]), v.out[0], v.dout[0], *v.din[0], true);
}

// ---- layout ----------------------------------------------------------------------------------------

void reshape_forward(ffrt::Context& ctx, const Op&, const StepInfo&, OpViews& v) {
  ffrt::reshape_copy(ctx, v.in[0], v.out[0], false);
}

void reshape_backward(ffrt::Context& ctx, const Op&, const StepInfo&, OpViews& v) {
  if (v.din[0]) ffrt::reshape_copy(ctx, v.dout[0], *v.din[0], true);
}

std::vector<int> perm_of(const Op& op) {
  std::vector<int> p;
  for (int64_t x : op.attr_ints("perm")) p.push_back(static_cast<int>(x));
  return p;
}

void transpose_forward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  ffrt::copy_box(ctx, ffrt::permute(v.in[0], perm_of(op).data()), v.out[0], false);
}

void transpose_backward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  if (v.din[0]) ffrt::copy_box(ctx, v.dout[0], ffrt::permute(*v.din[0], perm_of(op).data()), true);
}

int concat_axis(const Op& op, const View& y) {
  int64_t a = op.attr_int("axis");
  return static_cast<int>(a < 0 ? a + y.rank : a);
}

void concat_forward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  int axis = concat_axis(op, v.out[0]);
  int64_t offset = 0;
  for (const View& x : v.in) {
    ffrt::copy_box(ctx, shifted(x, axis, offset, v.out[0].full[axis]), v.out[0], false);
    offset += x.full[axis];
  }
}

void concat_backward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  int axis = concat_axis(op, v.out[0]);
  int64_t offset = 0;
  for (size_t i = 0; i < v.in.size(); ++i) {
    if (v.din[i]) ffrt::copy_box(ctx, v.dout[0], shifted(*v.din[i], axis, offset, v.out[0].full[axis]), true);
    offset += v.in[i].full[axis];
  }
}

// split: output i is the slice of x at offset sum(sizes[0..i)) along the axis.
int split_axis(const Op& op, const View& x) {
  int64_t a = op.attr_int("axis");
  return static_cast<int>(a < 0 ? a + x.rank : a);
}

void split_forward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  int axis = split_axis(op, v.in[0]);
  int64_t offset = 0;
  for (const View& y : v.out) {
    ffrt::copy_box(ctx, v.in[0], shifted(y, axis, offset, v.in[0].full[axis]), false);
    offset += y.full[axis];
  }
}

void split_backward(ffrt::Context& ctx, const Op& op, const StepInfo&, OpViews& v) {
  if (!v.din[0]) return;
  int axis = split_axis(op, v.in[0]);
  int64_t offset = 0;
  for (size_t i = 0; i < v.out.size(); ++i) {
    if (i < v.dout.size() && v.dout[i].data)
      ffrt::copy_box(ctx, shifted(v.dout[i], axis, offset, v.in[0].full[axis]), *v.din[0], true);
    offset += v.out[i].full[axis];
  }
}

// ---- losses ----------------------------------------------------------------------------------------

void sce_forward(ffrt::Context& ctx, const Op&, const StepInfo&, OpViews& v) {
  float scale = 1.f / static_cast<float>(full_volume(v.in[1]));
  ffrt::softmax_cross_entropy_forward(ctx, scale, v.in[0], v.in[1], v.out[0]);
}

void sce_backward(ffrt::Context& ctx, const Op&, const StepInfo&, OpViews& v) {
  if (!v.din[0]) return;
  float scale = v.dout[0].f32()[0] / static_cast<float>(full_volume(v.in[1]));
  ffrt::softmax_cross_entropy_backward(ctx, scale, v.in[0], v.in[1], *v.din[0], true);
}

void mse_forward(ffrt::Context& ctx, const Op&, const StepInfo&, OpViews& v) {
  float scale = 1.f / static_cast<float>(full_volume(v.in[0]));
  ffrt::mse_forward(ctx, scale, v.in[0], v.in[1], v.out[0]);
}

void mse_backward(ffrt::Context& ctx, const Op&, const StepInfo&, OpViews& v) {
  float scale = v.dout[0].f32()[0] / static_cast<float>(full_volume(v.in[0]));
  if (v.din[0]) ffrt::mse_backward(ctx, scale, v.in[0], v.in[1], *v.din[0], true);
  if (v.din[1]) {  // d/dtarget = -d/dpred
    Temp t(v.in[0]);
    ffrt::mse_backward(ctx, scale, v.in[0], v.in[1], t.v, false);
    ffrt::scale(ctx, t.v, -1.f);
    ffrt::copy_box(ctx, t.v, *v.din[1], true);
  }
}

void nothing(ffrt::Context&, const Op&, const StepInfo&, OpViews&) {}

const std::vector<OpKernels>& table() {
  static const std::vector<OpKernels> t = [] {
    std::vector<OpKernels> v(all_op_kinds().size());
    auto set = [&](OpKind k, OpKernels e) { v[static_cast<size_t>(k)] = e; };
    set(OpKind::input, {nothing, nothing});
    set(OpKind::conv2d, {conv_forward, conv_backward});
    set(OpKind::pool2d, {pool_forward, pool_backward});
    set(OpKind::linear, {linear_forward, linear_backward});
    set(OpKind::matmul, {matmul_forward, matmul_backward});
    set(OpKind::embedding, {embedding_forward, embedding_backward});
    set(OpKind::relu, {unary_forward<ffrt::Act::relu>, unary_backward<ffrt::Act::relu>});
    set(OpKind::sigmoid, {unary_forward<ffrt::Act::sigmoid>, unary_backward<ffrt::Act::sigmoid>});
    set(OpKind::tanh, {unary_forward<ffrt::Act::tanh>, unary_backward<ffrt::Act::tanh>});
    set(OpKind::gelu, {unary_forward<ffrt::Act::gelu>, unary_backward<ffrt::Act::gelu>});
    set(OpKind::clip, {clip_forward, clip_backward});
    set(OpKind::scale, {scale_forward, scale_backward});
    set(OpKind::log_softmax, {log_softmax_forward, log_softmax_backward});
    set(OpKind::split, {split_forward, split_backward});
    set(OpKind::add, {binary_forward<ffrt::Binary::add>, binary_backward<ffrt::Binary::add>});
    set(OpKind::sub, {binary_forward<ffrt::Binary::sub>, binary_backward<ffrt::Binary::sub>});
    set(OpKind::mul, {binary_forward<ffrt::Binary::mul>, binary_backward<ffrt::Binary::mul>});
    set(OpKind::dropout, {dropout_forward, dropout_backward});
    set(OpKind::batch_norm, {batch_norm_forward, batch_norm_backward, batch_norm_forward_stats, batch_norm_backward_stats});
    set(OpKind::layer_norm, {layer_norm_forward, layer_norm_backward});
    set(OpKind::softmax, {softmax_forward, softmax_backward});
    set(OpKind::flat, {reshape_forward, reshape_backward});
    set(OpKind::reshape, {reshape_forward, reshape_backward});
    set(OpKind::transpose, {transpose_forward, transpose_backward});
    set(OpKind::concat, {concat_forward, concat_backward});
    set(OpKind::softmax_cross_entropy, {sce_forward, sce_backward});
    set(OpKind::mse_loss, {mse_forward, mse_backward});
    for (size_t i = 0; i < v.size(); ++i) FFC_CHECK(v[i].forward && v[i].backward);
    for (OpKind k : all_op_kinds())
      FFC_CHECK(op_info(k).split_statistics == (v[static_cast<size_t>(k)].forward_stats != nullptr));
    return v;
  }();
  return t;
}

}  // namespace

const OpKernels& op_kernels(OpKind kind) { return table().at(static_cast<size_t>(kind)); }

void run_forward(ffrt::Context& ctx, const Op& op, const StepInfo& info, OpViews& v) {
  const OpKernels& k = op_kernels(op.kind);
  if (k.forward_stats) k.forward_stats(ctx, op, info, v);
  k.forward(ctx, op, info, v);
}

void run_backward(ffrt::Context& ctx, const Op& op, const StepInfo& info, OpViews& v) {
  const OpKernels& k = op_kernels(op.kind);
  if (k.backward_stats) k.backward_stats(ctx, op, info, v);
  k.backward(ctx, op, info, v);
}

uint64_t dropout_key(const Op& op, const StepInfo& info) {
  return ffrt::key_of(op.name.c_str(), info.seed) ^ (static_cast<uint64_t>(info.step + 1) * 0xD1B54A32D192ED03ull);
}

}  // namespace ffc
