// cuda backend: parameter initialization, synthetic data and optimizer steps, with the cpu
// backend's semantics and numbers (runtime/cpu/init.cc, optim.cc).
//
// Random values come from Philox keyed by (key, global row-major element index), with the cpu's
// conversions to float, so a box gets the cpu's values whatever the partition. Optimizer steps
// follow torch.optim operation by operation; __fmul_rn / __fadd_rn keep the compiler from fusing a
// product and a sum into one rounding, so each step is the cpu's bit for bit.
#include <charconv>
#include <cmath>
#include <cstdint>

#include "ffrt/dataset.h"
#include "ffrt/philox.h"
#include "pointwise.cuh"

namespace ffrt {

namespace {

using namespace cuda;  // the shared checks and loops (pointwise.cuh)

/// Checks that the box lies in its global tensor and that there is a buffer to write.
void check_box(const View& v, const char* who) {
  require(v.rank >= 0 && v.rank <= kMaxRank, who);
  for (int d = 0; d < v.rank; ++d) require(v.size[d] >= 0 && v.lo[d] >= 0 && v.hi(d) <= v.full[d], who);
  require(v.volume() == 0 || v.data != nullptr, who);
}

/// The walk over v's box with the global row-major element index as a second operand (offsets from
/// the index of the box's first element).
Walk<2> indexed_walk(const View& v) {
  int64_t pitch[kMaxRank];
  global_pitches(v, pitch);
  const int64_t* const strides[2] = {v.stride, pitch};
  return make_walk(v.rank, v.size, strides);
}

/// N(0, 1) by Box-Muller from two words, as the cpu's normal01: u1 in (0, 1] (so the log is
/// finite), u2 in [0, 1); double math, one rounding to float.
__device__ __forceinline__ float normal01(uint32_t w0, uint32_t w1) {
  const double u1 = (static_cast<double>(w0 >> 8) + 1.0) * (1.0 / 16777216.0);
  const double u2 = static_cast<double>(w1 >> 8) * (1.0 / 16777216.0);
  return static_cast<float>(__dmul_rn(sqrt(__dmul_rn(-2.0, log(u1))), cos(__dmul_rn(6.283185307179586, u2))));
}

// Writers of values computed from the element's global index alone: they read nothing.

template <typename T>
struct SetValue {
  T* p;
  T value;
  using Vals = NoVals;
  __device__ Vals load(const int64_t*) const { return {}; }
  __device__ void store(const int64_t* o, Vals) const { p[o[0]] = value; }
};

struct UniformFanIn {
  float* p;
  uint64_t first, key;
  float bound;
  using Vals = NoVals;
  __device__ Vals load(const int64_t*) const { return {}; }
  __device__ void store(const int64_t* o, Vals) const {
    const float u = uniform01(philox4x32(first + static_cast<uint64_t>(o[1]), key).v[0]);
    p[o[0]] = __fmul_rn(__fsub_rn(__fmul_rn(2.f, u), 1.f), bound);
  }
};

struct Normal {
  float* p;
  uint64_t first, key;
  using Vals = NoVals;
  __device__ Vals load(const int64_t*) const { return {}; }
  __device__ void store(const int64_t* o, Vals) const {
    const Philox4 r = philox4x32(first + static_cast<uint64_t>(o[1]), key);
    p[o[0]] = normal01(r.v[0], r.v[1]);
  }
};

struct SyntheticLabels {
  int64_t* p;
  uint64_t first, key;
  int64_t classes;
  using Vals = NoVals;
  __device__ Vals load(const int64_t*) const { return {}; }
  __device__ void store(const int64_t* o, Vals) const {
    p[o[0]] = synthetic_label(key, first + static_cast<uint64_t>(o[1]), classes);
  }
};

struct SyntheticFloats {
  float* p;
  uint64_t first, key;
  using Vals = NoVals;
  __device__ Vals load(const int64_t*) const { return {}; }
  __device__ void store(const int64_t* o, Vals) const { p[o[0]] = synthetic_f32(key, first + static_cast<uint64_t>(o[1])); }
};

/// The double a user meant by a float hyper-parameter (as the cpu's widen in runtime/cpu/optim.cc):
/// the shortest decimal that rounds to `x`, read as a double, as PyTorch computes its scalars in
/// double from the Python float the user wrote.
double widen(float x) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
  if (ec != std::errc()) return x;
  double d = x;
  std::from_chars(buf, end, d);
  return d;
}

/// Checks that a state view covers w's box.
void check_operand(const View& w, const View& x, const char* what) {
  require(x.dtype == DType::f32 && x.rank == w.rank && box_inside(w, x) && (w.volume() == 0 || x.data), what);
}

/// x's buffer at the first element of w's box.
float* at_lo(const View& x, const View& w) { return x.f32() + x.offset_of(w.lo); }

struct SgdPlain {
  float* w;
  const float* g;
  float wd, neg_lr;
  struct Vals {
    float w, g;
  };
  __device__ Vals load(const int64_t* o) const { return {w[o[0]], g[o[1]]}; }
  __device__ void store(const int64_t* o, const Vals& v) const {
    float d = v.g;
    if (wd != 0.f) d = __fadd_rn(d, __fmul_rn(wd, v.w));
    w[o[0]] = __fadd_rn(v.w, __fmul_rn(neg_lr, d));
  }
};

struct SgdMomentum {
  float* w;
  const float* g;
  float* buf;
  float wd, neg_lr, momentum, damp;
  bool first, nesterov;
  struct Vals {
    float w, g, b;
  };
  __device__ Vals load(const int64_t* o) const { return {w[o[0]], g[o[1]], first ? 0.f : buf[o[2]]}; }
  __device__ void store(const int64_t* o, const Vals& v) const {
    float d = v.g;
    if (wd != 0.f) d = __fadd_rn(d, __fmul_rn(wd, v.w));
    const float b = first ? d : __fadd_rn(__fmul_rn(v.b, momentum), __fmul_rn(damp, d));
    buf[o[2]] = b;
    d = nesterov ? __fadd_rn(d, __fmul_rn(momentum, b)) : b;
    w[o[0]] = __fadd_rn(v.w, __fmul_rn(neg_lr, d));
  }
};

struct Adam {
  float* w;
  const float* g;
  float *m, *v;
  float beta1, beta2, eps, wd, one_minus_beta1, one_minus_beta2, neg_step_size, bc2_sqrt, decay;
  bool l2, shrink;
  struct Vals {
    float w, g, m, v;
  };
  __device__ Vals load(const int64_t* o) const { return {w[o[0]], g[o[1]], m[o[2]], v[o[3]]}; }
  __device__ void store(const int64_t* o, const Vals& x) const {
    float p = x.w;
    float d = x.g;
    if (l2) d = __fadd_rn(d, __fmul_rn(wd, p));
    if (shrink) p = __fmul_rn(p, decay);
    const float mt = __fadd_rn(__fmul_rn(x.m, beta1), __fmul_rn(one_minus_beta1, d));
    const float vt = __fadd_rn(__fmul_rn(x.v, beta2), __fmul_rn(__fmul_rn(one_minus_beta2, d), d));
    m[o[2]] = mt;
    v[o[3]] = vt;
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vt), bc2_sqrt), eps);
    w[o[0]] = __fadd_rn(p, __fdiv_rn(__fmul_rn(neg_step_size, mt), denom));
  }
};

}  // namespace

void init_param(Context& ctx, Init init, int64_t fan_in, uint64_t key, const View& v) {
  check_box(v, "init_param: the view's box must lie inside its tensor and have a buffer");
  const Walk<2> w = indexed_walk(v);
  const auto first = static_cast<uint64_t>(global_index_of_lo(v));
  if (v.dtype == DType::i64) {
    require(init == Init::zeros || init == Init::ones, "init_param: only zeros and ones apply to an i64 tensor");
    launch_walk(ctx, w, SetValue<int64_t>{v.i64(), init == Init::ones ? 1 : 0});
    return;
  }
  require(v.dtype == DType::f32, "init_param: unknown dtype");
  switch (init) {
    case Init::zeros:
      launch_walk(ctx, w, SetValue<float>{v.f32(), 0.f});
      return;
    case Init::ones:
      launch_walk(ctx, w, SetValue<float>{v.f32(), 1.f});
      return;
    case Init::uniform_fan_in: {
      require(fan_in > 0, "init_param: uniform_fan_in needs fan_in > 0");
      const float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(fan_in)));
      launch_walk(ctx, w, UniformFanIn{v.f32(), first, key, bound});
      return;
    }
    case Init::normal:
      launch_walk(ctx, w, Normal{v.f32(), first, key});
      return;
  }
  throw Error("init_param: unknown init");
}

void fill_synthetic(Context& ctx, uint64_t key, int64_t classes, const View& v) {
  check_box(v, "fill_synthetic: the view's box must lie inside its tensor and have a buffer");
  const Walk<2> w = indexed_walk(v);
  const auto first = static_cast<uint64_t>(global_index_of_lo(v));
  if (v.dtype == DType::i64) {
    require(classes > 0, "fill_synthetic: labels need classes > 0");
    launch_walk(ctx, w, SyntheticLabels{v.i64(), first, key, classes});
    return;
  }
  require(v.dtype == DType::f32, "fill_synthetic: unknown dtype");
  launch_walk(ctx, w, SyntheticFloats{v.f32(), first, key});
}

void sgd_step(Context& ctx, const SgdAttrs& a, const View& w, const View& g, const View* buf, bool first) {
  require(w.dtype == DType::f32 && (w.volume() == 0 || w.data), "sgd_step: w must be an f32 view");
  check_operand(w, g, "sgd_step: g must be an f32 view covering w's box");
  require(!a.nesterov || (a.momentum > 0.f && a.dampening == 0.f),
          "sgd_step: Nesterov momentum needs a momentum and zero dampening (as torch.optim.SGD)");
  // PyTorch's alphas: Python doubles cast to the tensor's float.
  const auto neg_lr = static_cast<float>(-widen(a.lr));
  const auto damp = static_cast<float>(1.0 - widen(a.dampening));
  if (a.momentum == 0.f) {
    if (w.volume() == 0) return;
    const int64_t* const strides[2] = {w.stride, g.stride};
    launch_walk(ctx, make_walk(w.rank, w.size, strides), SgdPlain{w.f32(), at_lo(g, w), a.weight_decay, neg_lr});
    return;
  }
  require(buf != nullptr, "sgd_step: momentum needs a buffer");
  check_operand(w, *buf, "sgd_step: buf must be an f32 view covering w's box");
  if (w.volume() == 0) return;
  const int64_t* const strides[3] = {w.stride, g.stride, buf->stride};
  launch_walk(ctx, make_walk(w.rank, w.size, strides),
              SgdMomentum{w.f32(), at_lo(g, w), at_lo(*buf, w), a.weight_decay, neg_lr, a.momentum, damp, first,
                          a.nesterov});
}

void adam_step(Context& ctx, const AdamAttrs& a, const View& w, const View& g, const View& m, const View& v) {
  require(w.dtype == DType::f32 && (w.volume() == 0 || w.data), "adam_step: w must be an f32 view");
  check_operand(w, g, "adam_step: g must be an f32 view covering w's box");
  check_operand(w, m, "adam_step: m must be an f32 view covering w's box");
  check_operand(w, v, "adam_step: v must be an f32 view covering w's box");
  require(a.step >= 1, "adam_step: step counts from 1");
  if (w.volume() == 0) return;
  const double lr = widen(a.lr), beta1 = widen(a.beta1), beta2 = widen(a.beta2), wd = widen(a.weight_decay);
  const auto step = static_cast<double>(a.step);
  const double bias_correction1 = 1.0 - std::pow(beta1, step);
  const double bias_correction2 = 1.0 - std::pow(beta2, step);
  // The scalars as PyTorch hands them to its float kernels.
  Adam k{};
  k.w = w.f32();
  k.g = at_lo(g, w);
  k.m = at_lo(m, w);
  k.v = at_lo(v, w);
  k.beta1 = a.beta1, k.beta2 = a.beta2, k.eps = a.eps, k.wd = a.weight_decay;
  k.one_minus_beta1 = static_cast<float>(1.0 - beta1);
  k.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  k.neg_step_size = static_cast<float>(-(lr / bias_correction1));
  k.bc2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  k.decay = static_cast<float>(1.0 - lr * wd);
  k.l2 = a.weight_decay != 0.f && !a.decoupled;
  k.shrink = a.weight_decay != 0.f && a.decoupled;
  const int64_t* const strides[4] = {w.stride, g.stride, m.stride, v.stride};
  launch_walk(ctx, make_walk(w.rank, w.size, strides), k);
}

}  // namespace ffrt
