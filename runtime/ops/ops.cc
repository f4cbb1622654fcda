// Ops on libffrt's kernels (include/ffrt/ops.h): each op kind's forward and backward.
#include "ffrt/ops.h"

#include <memory>
#include <numeric>
#include <optional>
#include <string>

#include "ffrt/npy.h"
#include "ffrt/philox.h"

namespace ffrt {

namespace {

using Shapes = std::vector<std::vector<int64_t>>;

Act act_of(const OpDesc& op) { return op.act; }

bool has_act(const OpDesc& op) { return act_of(op) != Act::none; }

/// A temporary dense tensor in backend memory covering the same box as `like`: zero-filled, or not
/// when the kernel that fills it overwrites every element (`zeroed` false).
struct Temp {
  std::shared_ptr<std::byte> buf;
  View v;
  Temp(Context& ctx, const View& like, bool zeroed = true) {
    buf = allocate(ctx, static_cast<size_t>(like.volume()) * dtype_size(like.dtype), zeroed);
    v = make_view(buf.get(), like.dtype, like.rank, like.full, like.lo, like.size);
  }
};

const View* opt(const std::vector<View>& v, size_t i) { return i < v.size() ? &v[i] : nullptr; }
const View* opt(const std::vector<std::optional<View>>& v, size_t i) {
  return i < v.size() && v[i] ? &*v[i] : nullptr;
}

/// The gradient views of `bits` (positions in OpViews::overwrite) that one kernel call writes with a
/// single accumulate flag: whether it must add (some hold a sum already); those that hold nothing
/// yet are zeroed first when others must be added to.
bool adds(Context& ctx, const OpViews& v, std::initializer_list<int> bits) {
  auto view_of = [&](int bit) -> const View* {
    return bit < kOverwriteParams ? opt(v.din, static_cast<size_t>(bit)) : opt(v.dparams, static_cast<size_t>(bit - kOverwriteParams));
  };
  bool all = true, any = false;
  for (int b : bits)
    if (view_of(b)) {
      const bool fresh = (v.overwrite >> b) & 1u;
      all = all && fresh;
      any = any || fresh;
    }
  if (all && any) return false;
  for (int b : bits)
    if (view_of(b) && ((v.overwrite >> b) & 1u)) fill(ctx, *view_of(b), 0.f);
  return true;
}

/// Zeroes every gradient view that holds nothing yet: for kernels that only add.
void zero_fresh(Context& ctx, OpViews& v) {
  for (size_t i = 0; i < v.din.size(); ++i)
    if (v.din[i] && ((v.overwrite >> i) & 1u)) fill(ctx, *v.din[i], 0.f);
  for (size_t j = 0; j < v.dparams.size(); ++j)
    if (v.dparams[j] && ((v.overwrite >> (kOverwriteParams + j)) & 1u)) fill(ctx, *v.dparams[j], 0.f);
  v.overwrite = 0;
}

constexpr int kDin0 = 0, kDin1 = 1, kDw = kOverwriteParams, kDb = kOverwriteParams + 1;

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

/// Whether the op saves its pre-activation for the backward (ffc's op table decides: gelu's
/// derivative needs it); otherwise the forward fuses the activation into its kernel.
bool saves_pre_activation(const OpDesc& op) { return op.saves_pre_activation; }

/// Runs compute(y, act) into the op's output with the activation fused, or, when the backward needs
/// the pre-activation, compute(saved pre-activation, none) and then the activation.
template <typename F>
void with_activation(Context& ctx, const OpDesc& op, OpViews& v, F&& compute) {
  if (!saves_pre_activation(op)) {
    compute(v.out[0], act_of(op));
    return;
  }
  compute(v.saved[0], Act::none);
  activation_forward(ctx, act_of(op), v.saved[0], v.out[0]);
}

/// The gradient before the fused activation: dy itself, or dy through the activation's backward
/// (from the saved pre-activation `pre`, or from the output y when the op saves none).
struct PreActGrad {
  std::optional<Temp> tmp;
  View view;
};
PreActGrad grad_before_activation(Context& ctx, const OpDesc& op, OpViews& v, const View& pre) {
  PreActGrad g;
  if (!has_act(op)) {
    g.view = v.dout[0];
    return g;
  }
  g.tmp.emplace(ctx, v.dout[0], false);  // overwritten by the activation's backward
  activation_backward(ctx, act_of(op), saves_pre_activation(op) ? pre : View{}, v.out[0], v.dout[0], g.tmp->v,
                            false);
  g.view = g.tmp->v;
  return g;
}

/// The saved pre-activation of a conv2d, pool2d or linear op (an empty view when it saves none).
View saved_pre_activation(const OpDesc& op, OpViews& v) { return saves_pre_activation(op) ? v.saved[0] : View{}; }

// ---- conv2d, pool2d, linear, matmul, embedding ----------------------------------------------------

const Conv2dAttrs& conv_attrs(const OpDesc& op) { return op.conv; }

void conv_forward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  with_activation(ctx, op, v, [&](const View& y, Act act) {
    conv2d_forward(ctx, conv_attrs(op), act, v.in[0], v.params[0], opt(v.params, 1), y);
  });
}

void conv_backward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  PreActGrad dz = grad_before_activation(ctx, op, v, saved_pre_activation(op, v));
  if (v.din[0]) conv2d_backward_data(ctx, conv_attrs(op), dz.view, v.params[0], *v.din[0], adds(ctx, v, {kDin0}));
  if (v.dparams[0]) conv2d_backward_weight(ctx, conv_attrs(op), v.in[0], dz.view, *v.dparams[0], opt(v.dparams, 1),
                                             adds(ctx, v, {kDw, kDb}));
}

const Pool2dAttrs& pool_attrs(const OpDesc& op) { return op.pool; }

void pool_forward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  with_activation(ctx, op, v,
                  [&](const View& y, Act act) { pool2d_forward(ctx, pool_attrs(op), act, v.in[0], y); });
}

void pool_backward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  if (!v.din[0]) return;
  // Max pooling finds the maximum in x; y (the output, act(max) when fused) is not read.
  PreActGrad dz = grad_before_activation(ctx, op, v, saved_pre_activation(op, v));
  pool2d_backward(ctx, pool_attrs(op), v.in[0], v.out[0], dz.view, *v.din[0], adds(ctx, v, {kDin0}));
}

void linear_forward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  with_activation(ctx, op, v, [&](const View& y, Act act) {
    linear_forward(ctx, act, v.in[0], v.params[0], opt(v.params, 1), y);
  });
}

void linear_backward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  PreActGrad dz = grad_before_activation(ctx, op, v, saved_pre_activation(op, v));
  if (v.din[0]) linear_backward_data(ctx, dz.view, v.params[0], *v.din[0], adds(ctx, v, {kDin0}));
  if (v.dparams[0]) linear_backward_weight(ctx, v.in[0], dz.view, *v.dparams[0], opt(v.dparams, 1), adds(ctx, v, {kDw, kDb}));
}

const MatmulAttrs& matmul_attrs(const OpDesc& op) { return op.matmul; }

void matmul_forward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  matmul_forward(ctx, matmul_attrs(op), v.in[0], v.in[1], v.out[0]);
}

void matmul_backward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  if (!v.din[0] && !v.din[1]) return;
  matmul_backward(ctx, matmul_attrs(op), v.in[0], v.in[1], v.dout[0], opt(v.din, 0), opt(v.din, 1),
                  adds(ctx, v, {kDin0, kDin1}));
}

void embedding_forward(Context& ctx, const OpDesc&, const StepInfo&, OpViews& v) {
  embedding_forward(ctx, v.in[0], v.params[0], v.out[0]);
}

void embedding_backward(Context& ctx, const OpDesc&, const StepInfo&, OpViews& v) {
  if (v.dparams[0]) embedding_backward_weight(ctx, v.in[0], v.dout[0], *v.dparams[0], true);
}

// ---- element-wise ----------------------------------------------------------------------------------

template <Act A>
void unary_forward(Context& ctx, const OpDesc&, const StepInfo&, OpViews& v) {
  activation_forward(ctx, A, v.in[0], v.out[0]);
}

template <Act A>
void unary_backward(Context& ctx, const OpDesc&, const StepInfo&, OpViews& v) {
  if (v.din[0]) activation_backward(ctx, A, v.in[0], v.out[0], v.dout[0], *v.din[0], adds(ctx, v, {kDin0}));
}

template <Binary B>
void binary_forward(Context& ctx, const OpDesc&, const StepInfo&, OpViews& v) {
  binary_forward(ctx, B, v.in[0], v.in[1], v.out[0]);
}

template <Binary B>
void binary_backward(Context& ctx, const OpDesc&, const StepInfo&, OpViews& v) {
  if (!v.din[0] && !v.din[1]) return;
  binary_backward(ctx, B, v.in[0], v.in[1], v.dout[0], opt(v.din, 0), opt(v.din, 1), adds(ctx, v, {kDin0, kDin1}));
}

void clip_forward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  clip_forward(ctx, op.lo, op.hi, v.in[0],
                     v.out[0]);
}

void clip_backward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  if (v.din[0])
    clip_backward(ctx, op.lo, op.hi,
                        v.in[0], v.dout[0], *v.din[0], adds(ctx, v, {kDin0}));
}

void scale_forward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  copy_box(ctx, v.in[0], v.out[0], false);
  scale(ctx, v.out[0], op.factor);
}

void scale_backward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  if (!v.din[0]) return;
  Temp t(ctx, *v.din[0]);
  copy_box(ctx, v.dout[0], t.v, false);
  scale(ctx, t.v, op.factor);
  copy_box(ctx, t.v, *v.din[0], true);
}

void dropout_forward(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v) {
  const float rate = op.rate;
  if (!info.training || rate == 0.f) copy_box(ctx, v.in[0], v.out[0], false);
  else dropout_forward(ctx, rate, dropout_key(op, info), v.in[0], v.out[0]);
}

void dropout_backward(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v) {
  if (!v.din[0]) return;
  const float rate = op.rate;
  const bool add = adds(ctx, v, {kDin0});
  if (!info.training || rate == 0.f) copy_box(ctx, v.dout[0], *v.din[0], add);
  else dropout_backward(ctx, rate, dropout_key(op, info), v.dout[0], *v.din[0], add);
}

// ---- normalization ---------------------------------------------------------------------------------

// batch_norm's saved state (the op table's): mean and invstd per channel, then the pre-activation
// if the activation's backward needs it.

int64_t channel_count(const View& x) {
  int64_t n = x.full[0];
  for (int d = 2; d < x.rank; ++d) n *= x.full[d];
  return n;
}

struct BatchNormViews {
  const View* weight;
  const View* bias;
  const View& running_mean;
  const View& running_var;
};
BatchNormViews bn_views(const OpDesc& op, const OpViews& v) {
  bool affine = op.affine;
  return {affine ? &v.params[0] : nullptr, affine ? &v.params[1] : nullptr, v.params[affine ? 2 : 0],
          v.params[affine ? 3 : 1]};
}

void batch_norm_forward_stats(Context& ctx, const OpDesc&, const StepInfo& info, OpViews& v) {
  if (info.training) batch_norm_stats(ctx, v.in[0], v.stats);
}

// Normalizes with the whole batch's statistics (training: v.stats, summed over the parts; else the
// running statistics, posed as sums over `count` elements).
void batch_norm_forward(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v) {
  BatchNormViews p = bn_views(op, v);
  const View& x = v.in[0];
  int64_t count = channel_count(x);
  std::optional<Temp> eval_stats;
  View stats = v.stats;
  if (!info.training) {
    eval_stats.emplace(ctx, make_view(nullptr, DType::f64, {2, x.full[1]}, {0, x.lo[1]}, {2, x.size[1]}));
    stats = eval_stats->v;
    batch_norm_running_stats(ctx, count, p.running_mean, p.running_var, stats);
  }
  float eps = op.eps;
  const bool pre = saves_pre_activation(op);
  batch_norm_forward(ctx, pre ? Act::none : act_of(op), eps, count, x, stats, p.weight, p.bias,
                           pre ? v.saved[2] : v.out[0], v.saved[0], v.saved[1]);
  if (pre) activation_forward(ctx, act_of(op), v.saved[2], v.out[0]);
  if (info.training && v.update_state)
    batch_norm_update_running(ctx, op.momentum, count, stats, p.running_mean,
                                    p.running_var);
}

// The part's partial sums of dy and dy * xhat: its share of the bias and weight gradients.
void batch_norm_backward_stats(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  PreActGrad dz = grad_before_activation(ctx, op, v, saves_pre_activation(op) ? v.saved[2] : View{});
  batch_norm_backward_stats(ctx, v.in[0], dz.view, v.saved[0], v.saved[1], v.stats);
  if (op.affine) batch_norm_param_grads(ctx, v.stats, opt(v.dparams, 0), opt(v.dparams, 1));
}

// dx from the sums over every part.
void batch_norm_backward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  if (!v.din[0]) return;
  PreActGrad dz = grad_before_activation(ctx, op, v, saves_pre_activation(op) ? v.saved[2] : View{});
  const View& x = v.in[0];
  batch_norm_backward_data(ctx, channel_count(x), x, dz.view, v.saved[0], v.saved[1], bn_views(op, v).weight,
                                 v.stats, *v.din[0], adds(ctx, v, {kDin0}));
}

void layer_norm_forward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  bool affine = op.affine;
  layer_norm_forward(ctx, op.eps, v.in[0], affine ? &v.params[0] : nullptr,
                           affine ? &v.params[1] : nullptr, v.out[0], v.saved[0], v.saved[1]);
}

void layer_norm_backward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  bool affine = op.affine;
  std::optional<Temp> scratch;
  if (!v.din[0]) scratch.emplace(ctx, v.in[0]);
  const View& dx = v.din[0] ? *v.din[0] : scratch->v;
  layer_norm_backward(ctx, v.in[0], v.dout[0], v.saved[0], v.saved[1], affine ? &v.params[0] : nullptr, dx,
                            affine ? opt(v.dparams, 0) : nullptr, affine ? opt(v.dparams, 1) : nullptr, true);
}

int softmax_axis(const OpDesc& op, const View& x) {
  int64_t a = op.axis;
  return static_cast<int>(a < 0 ? a + x.rank : a);
}

void softmax_forward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  softmax_forward(ctx, softmax_axis(op, v.in[0]), v.in[0], v.out[0]);
}

void softmax_backward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  if (v.din[0]) softmax_backward(ctx, softmax_axis(op, v.in[0]), v.out[0], v.dout[0], *v.din[0], adds(ctx, v, {kDin0}));
}

void log_softmax_forward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  log_softmax_forward(ctx, softmax_axis(op, v.in[0]), v.in[0], v.out[0]);
}

void log_softmax_backward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  if (v.din[0])
    log_softmax_backward(ctx, softmax_axis(op, v.in[0]), v.out[0], v.dout[0], *v.din[0], adds(ctx, v, {kDin0}));
}

// ---- layout ----------------------------------------------------------------------------------------

void reshape_forward(Context& ctx, const OpDesc&, const StepInfo&, OpViews& v) {
  reshape_copy(ctx, v.in[0], v.out[0], false);
}

void reshape_backward(Context& ctx, const OpDesc&, const StepInfo&, OpViews& v) {
  if (v.din[0]) reshape_copy(ctx, v.dout[0], *v.din[0], true);
}

const std::vector<int>& perm_of(const OpDesc& op) { return op.perm; }

void transpose_forward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  copy_box(ctx, permute(v.in[0], perm_of(op).data()), v.out[0], false);
}

void transpose_backward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  if (v.din[0]) copy_box(ctx, v.dout[0], permute(*v.din[0], perm_of(op).data()), true);
}

int concat_axis(const OpDesc& op, const View& y) {
  int64_t a = op.axis;
  return static_cast<int>(a < 0 ? a + y.rank : a);
}

void concat_forward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  int axis = concat_axis(op, v.out[0]);
  int64_t offset = 0;
  for (const View& x : v.in) {
    copy_box(ctx, shifted(x, axis, offset, v.out[0].full[axis]), v.out[0], false);
    offset += x.full[axis];
  }
}

void concat_backward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  int axis = concat_axis(op, v.out[0]);
  int64_t offset = 0;
  for (size_t i = 0; i < v.in.size(); ++i) {
    if (v.din[i]) copy_box(ctx, v.dout[0], shifted(*v.din[i], axis, offset, v.out[0].full[axis]), true);
    offset += v.in[i].full[axis];
  }
}

// split: output i is the slice of x at offset sum(sizes[0..i)) along the axis.
int split_axis(const OpDesc& op, const View& x) {
  int64_t a = op.axis;
  return static_cast<int>(a < 0 ? a + x.rank : a);
}

void split_forward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  int axis = split_axis(op, v.in[0]);
  int64_t offset = 0;
  for (const View& y : v.out) {
    copy_box(ctx, v.in[0], shifted(y, axis, offset, v.in[0].full[axis]), false);
    offset += y.full[axis];
  }
}

void split_backward(Context& ctx, const OpDesc& op, const StepInfo&, OpViews& v) {
  if (!v.din[0]) return;
  int axis = split_axis(op, v.in[0]);
  int64_t offset = 0;
  for (size_t i = 0; i < v.out.size(); ++i) {
    if (i < v.dout.size() && v.dout[i].data)
      copy_box(ctx, shifted(v.dout[i], axis, offset, v.in[0].full[axis]), *v.din[0], true);
    offset += v.out[i].full[axis];
  }
}

// ---- losses ----------------------------------------------------------------------------------------

void sce_forward(Context& ctx, const OpDesc&, const StepInfo&, OpViews& v) {
  const float k = 1.f / static_cast<float>(full_volume(v.in[1]));
  softmax_cross_entropy_forward(ctx, k, v.in[0], v.in[1], v.out[0]);
}

void sce_backward(Context& ctx, const OpDesc&, const StepInfo&, OpViews& v) {
  if (!v.din[0]) return;
  const float k = 1.f / static_cast<float>(full_volume(v.in[1]));
  softmax_cross_entropy_backward(ctx, k, v.in[0], v.in[1], *v.din[0], true, &v.dout[0]);
}

void mse_forward(Context& ctx, const OpDesc&, const StepInfo&, OpViews& v) {
  const float k = 1.f / static_cast<float>(full_volume(v.in[0]));
  mse_forward(ctx, k, v.in[0], v.in[1], v.out[0]);
}

void mse_backward(Context& ctx, const OpDesc&, const StepInfo&, OpViews& v) {
  const float k = 1.f / static_cast<float>(full_volume(v.in[0]));
  if (v.din[0]) mse_backward(ctx, k, v.in[0], v.in[1], *v.din[0], true, &v.dout[0]);
  if (v.din[1]) {  // d/dtarget = -d/dpred
    Temp t(ctx, v.in[0]);
    mse_backward(ctx, k, v.in[0], v.in[1], t.v, false, &v.dout[0]);
    scale(ctx, t.v, -1.f);
    copy_box(ctx, t.v, *v.din[1], true);
  }
}

void nothing(Context&, const OpDesc&, const StepInfo&, OpViews&) {}

/// The kernels of one op kind.
struct Kernels {
  void (*forward)(Context&, const OpDesc&, const StepInfo&, OpViews&) = nullptr;
  void (*backward)(Context&, const OpDesc&, const StepInfo&, OpViews&) = nullptr;
  void (*forward_stats)(Context&, const OpDesc&, const StepInfo&, OpViews&) = nullptr;
  void (*backward_stats)(Context&, const OpDesc&, const StepInfo&, OpViews&) = nullptr;
};

const Kernels& kernels_of(OpKind kind) {
  static const std::vector<Kernels> table = [] {
    std::vector<Kernels> v;
#define FFRT_OP_COUNT(id, family) v.emplace_back();
    FFRT_OPS(FFRT_OP_COUNT)
#undef FFRT_OP_COUNT
    auto set = [&](OpKind k, Kernels e) { v[static_cast<size_t>(k)] = e; };
    set(OpKind::input, {nothing, nothing});
    set(OpKind::conv2d, {conv_forward, conv_backward});
    set(OpKind::pool2d, {pool_forward, pool_backward});
    set(OpKind::linear, {linear_forward, linear_backward});
    set(OpKind::matmul, {matmul_forward, matmul_backward});
    set(OpKind::embedding, {embedding_forward, embedding_backward});
    set(OpKind::relu, {unary_forward<Act::relu>, unary_backward<Act::relu>});
    set(OpKind::sigmoid, {unary_forward<Act::sigmoid>, unary_backward<Act::sigmoid>});
    set(OpKind::tanh, {unary_forward<Act::tanh>, unary_backward<Act::tanh>});
    set(OpKind::gelu, {unary_forward<Act::gelu>, unary_backward<Act::gelu>});
    set(OpKind::clip, {clip_forward, clip_backward});
    set(OpKind::scale, {scale_forward, scale_backward});
    set(OpKind::log_softmax, {log_softmax_forward, log_softmax_backward});
    set(OpKind::split, {split_forward, split_backward});
    set(OpKind::add, {binary_forward<Binary::add>, binary_backward<Binary::add>});
    set(OpKind::sub, {binary_forward<Binary::sub>, binary_backward<Binary::sub>});
    set(OpKind::mul, {binary_forward<Binary::mul>, binary_backward<Binary::mul>});
    set(OpKind::dropout, {dropout_forward, dropout_backward});
    set(OpKind::batch_norm,
        {batch_norm_forward, batch_norm_backward, batch_norm_forward_stats, batch_norm_backward_stats});
    set(OpKind::layer_norm, {layer_norm_forward, layer_norm_backward});
    set(OpKind::softmax, {softmax_forward, softmax_backward});
    set(OpKind::flat, {reshape_forward, reshape_backward});
    set(OpKind::reshape, {reshape_forward, reshape_backward});
    set(OpKind::transpose, {transpose_forward, transpose_backward});
    set(OpKind::concat, {concat_forward, concat_backward});
    set(OpKind::softmax_cross_entropy, {sce_forward, sce_backward});
    set(OpKind::mse_loss, {mse_forward, mse_backward});
    for (const Kernels& k : v)
      if (!k.forward || !k.backward) throw Error("ops: an op kind without kernels");
    return v;
  }();
  const auto i = static_cast<size_t>(kind);
  if (i >= table.size()) throw Error("ops: unknown op kind");
  return table[i];
}

const Kernels& statistics_of(const OpDesc& op) {
  const Kernels& k = kernels_of(op.kind);
  if (!k.forward_stats) throw Error(std::string("ops: op '") + op.name + "' has no statistics phase");
  return k;
}

}  // namespace

bool op_has_statistics(OpKind kind) { return kernels_of(kind).forward_stats != nullptr; }

void op_forward(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v) {
  set_op(ctx, op.name.c_str());
  kernels_of(op.kind).forward(ctx, op, info, v);
}

/// Whether an op kind's backward honors OpViews::overwrite (its kernels write each gradient whole);
/// the others add, so their fresh gradients are zeroed first.
bool writes_fresh_gradients(OpKind kind) {
  switch (kind) {
    case OpKind::conv2d:
    case OpKind::pool2d:
    case OpKind::linear:
    case OpKind::matmul:
    case OpKind::relu:
    case OpKind::sigmoid:
    case OpKind::tanh:
    case OpKind::gelu:
    case OpKind::clip:
    case OpKind::add:
    case OpKind::sub:
    case OpKind::mul:
    case OpKind::dropout:
    case OpKind::batch_norm:
    case OpKind::softmax:
    case OpKind::log_softmax: return true;
    default: return false;
  }
}

void op_backward(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v) {
  set_op(ctx, op.name.c_str());
  if (v.overwrite && !writes_fresh_gradients(op.kind)) zero_fresh(ctx, v);
  kernels_of(op.kind).backward(ctx, op, info, v);
}

void op_forward_stats(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v) {
  set_op(ctx, op.name.c_str());
  statistics_of(op).forward_stats(ctx, op, info, v);
}

void op_backward_stats(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v) {
  set_op(ctx, op.name.c_str());
  if (v.overwrite) zero_fresh(ctx, v);  // the parameter gradients are added to
  statistics_of(op).backward_stats(ctx, op, info, v);
}

void op_run_forward(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v) {
  const Kernels& k = kernels_of(op.kind);
  if (k.forward_stats) k.forward_stats(ctx, op, info, v);
  k.forward(ctx, op, info, v);
}

void op_run_backward(Context& ctx, const OpDesc& op, const StepInfo& info, OpViews& v) {
  const Kernels& k = kernels_of(op.kind);
  if (k.backward_stats) k.backward_stats(ctx, op, info, v);
  k.backward(ctx, op, info, v);
}

uint64_t dropout_key(const OpDesc& op, const StepInfo& info) {
  return key_of(op.name.c_str(), info.seed) ^ (static_cast<uint64_t>(info.step + 1) * 0xD1B54A32D192ED03ull);
}

}  // namespace ffrt
