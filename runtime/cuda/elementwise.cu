// cuda backend: element-wise kernels — activations, clip, binary arithmetic with NumPy
// broadcasting, and dropout with a Philox mask keyed by the global element index. The semantics are
// the cpu backend's (runtime/cpu/elementwise.cc, clip_log_softmax.cc).
//
// Every kernel walks the box of the view it writes (pointwise.cuh) and reads its operands through
// strides mapped onto that box (stride 0 along a broadcast dim). Products and sums that the cpu
// computes as separate float operations use __fmul_rn / __fadd_rn, so the compiler does not fuse
// them into one rounding (an FMA) and the results are the cpu's bit for bit (but for the
// transcendental functions, whose device versions differ by an ulp or two).
//
// The gradient of a broadcast operand sums dy over the dims it was broadcast along, deterministically:
// each output's sum is split over a fixed set of threads (and, when there are few outputs, over
// chunks of the summed range whose partial sums a second pass adds the same way), reduced in a
// fixed tree, in double as on the cpu.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "ffrt/philox.h"
#include "pointwise.cuh"

namespace ffrt {

namespace {

using namespace cuda;  // the shared checks and loops (pointwise.cuh)

/// An operand read over the box of a result: its buffer at the box's first element and its strides
/// along the result's dims (0 along a dim it is broadcast along or lacks).
struct Operand {
  float* p = nullptr;
  int64_t st[kMaxRank] = {};
};

/// `v` mapped onto the result box `box` (which must not be empty). With `broadcast`, v's dims align
/// with the last v.rank dims of the result and a dim of global extent 1 stretches; without, v has
/// the result's rank and extents. Throws `what` unless v's box holds everything the result's box reads.
Operand map_operand(const View& v, const View& box, bool broadcast, const char* what) {
  require(v.dtype == DType::f32, "element-wise kernels take f32 views");
  require(broadcast ? v.rank <= box.rank : v.rank == box.rank, what);
  Operand o;
  const int off = box.rank - v.rank;
  int64_t pos = 0;
  for (int i = 0; i < v.rank; ++i) {
    const int d = i + off;
    if (broadcast && v.full[i] == 1) {
      require(v.lo[i] <= 0 && v.hi(i) >= 1, what);
      pos -= v.lo[i] * v.stride[i];
    } else {
      require(v.full[i] == box.full[d] && box.lo[d] >= v.lo[i] && box.hi(d) <= v.hi(i), what);
      pos += (box.lo[d] - v.lo[i]) * v.stride[i];
      o.st[d] = v.stride[i];
    }
  }
  o.p = v.f32() + pos;
  return o;
}

/// The written view itself as an operand.
Operand self(const View& v) {
  require(v.dtype == DType::f32, "element-wise kernels take f32 views");
  Operand o;
  o.p = v.f32();
  for (int d = 0; d < v.rank; ++d) o.st[d] = v.stride[d];
  return o;
}

/// The walk over `box` of the operands, in order.
template <int N>
Walk<N> walk_over(const View& box, const Operand* const (&ops)[N]) {
  const int64_t* strides[N];
  for (int k = 0; k < N; ++k) strides[k] = ops[k]->st;
  return make_walk(box.rank, box.size, strides);
}

/// An operand the kernel does not read (the unused one of x and y): it steps like `like`, so the
/// walk's dims merge as the others allow, and its pointer is never dereferenced.
Operand unread(const Operand& like) {
  Operand o = like;
  o.p = nullptr;
  return o;
}

__device__ __forceinline__ float stored(float old, float v, bool accumulate) { return accumulate ? __fadd_rn(old, v) : v; }

// ---- activations --------------------------------------------------------------------------------

/// act(z), as the cpu's act_value (runtime/cpu/loops.h).
template <Act A>
__device__ __forceinline__ float act_value(float z) {
  if constexpr (A == Act::relu) return z > 0.f ? z : 0.f;
  if constexpr (A == Act::sigmoid) return 1.f / (1.f + expf(-z));
  if constexpr (A == Act::tanh) return tanhf(z);
  if constexpr (A == Act::gelu) return __fmul_rn(__fmul_rn(0.5f, z), 1.f + erff(__fmul_rn(z, 0.70710678118654752f)));
  return z;
}

/// d act(z) / dz from the activation's input x (gelu) or output y (the others), as the cpu's
/// act_derivative.
template <Act A>
__device__ __forceinline__ float act_derivative(float x, float y) {
  if constexpr (A == Act::relu) return y > 0.f ? 1.f : 0.f;
  if constexpr (A == Act::sigmoid) return __fmul_rn(y, 1.f - y);
  if constexpr (A == Act::tanh) return __fsub_rn(1.f, __fmul_rn(y, y));
  if constexpr (A == Act::gelu) {
    // Exact GELU, x * Phi(x): d/dx = Phi(x) + x * phi(x).
    const float cdf = __fmul_rn(0.5f, 1.f + erff(__fmul_rn(x, 0.70710678118654752f)));
    const float pdf = __fmul_rn(expf(__fmul_rn(__fmul_rn(-0.5f, x), x)), 0.39894228040143268f);
    return __fadd_rn(cdf, __fmul_rn(x, pdf));
  }
  return 1.f;
}

constexpr bool reads_x(Act a) { return a == Act::gelu; }
constexpr bool reads_y(Act a) { return a == Act::relu || a == Act::sigmoid || a == Act::tanh; }

template <Act A>
struct ActForward {
  const float* x;
  float* y;
  using Vals = float;
  __device__ float load(const int64_t* o) const { return x[o[0]]; }
  __device__ void store(const int64_t* o, float v) const { y[o[1]] = act_value<A>(v); }
};

template <Act A>
struct ActBackward {
  const float *x, *y, *dy;
  float* dx;
  bool accumulate;
  struct Vals {
    float x, y, dy, dx;
  };
  __device__ Vals load(const int64_t* o) const {
    Vals v{0.f, 0.f, dy[o[2]], accumulate ? dx[o[3]] : 0.f};
    if constexpr (reads_x(A)) v.x = x[o[0]];
    if constexpr (reads_y(A)) v.y = y[o[1]];
    return v;
  }
  __device__ void store(const int64_t* o, const Vals& v) const {
    dx[o[3]] = stored(v.dx, __fmul_rn(v.dy, act_derivative<A>(v.x, v.y)), accumulate);
  }
};

// ---- clip ----------------------------------------------------------------------------------------

/// x's buffer at the first element of `box` (which x's box holds), with x's strides.
Operand at_box(const View& x, const View& box) {
  Operand o;
  o.p = x.f32() + x.offset_of(box.lo);
  for (int d = 0; d < x.rank; ++d) o.st[d] = x.stride[d];
  return o;
}

struct ClipForward {
  const float* x;
  float* y;
  float lo, hi;
  using Vals = float;
  __device__ float load(const int64_t* o) const { return x[o[0]]; }
  // std::min(std::max(x, lo), hi), NaN passing through as on the cpu.
  __device__ void store(const int64_t* o, float v) const {
    const float t = v < lo ? lo : v;
    y[o[1]] = hi < t ? hi : t;
  }
};

struct ClipBackward {
  const float *x, *dy;
  float* dx;
  float lo, hi;
  bool accumulate;
  struct Vals {
    float x, dy, dx;
  };
  __device__ Vals load(const int64_t* o) const { return {x[o[0]], dy[o[1]], accumulate ? dx[o[2]] : 0.f}; }
  __device__ void store(const int64_t* o, const Vals& v) const {
    dx[o[2]] = stored(v.dx, (v.x > lo && v.x < hi) ? v.dy : 0.f, accumulate);
  }
};

// ---- binary ----------------------------------------------------------------------------------------

template <Binary Op>
struct BinaryForward {
  const float *a, *b;
  float* y;
  struct Vals {
    float a, b;
  };
  __device__ Vals load(const int64_t* o) const { return {a[o[0]], b[o[1]]}; }
  __device__ void store(const int64_t* o, const Vals& v) const {
    if constexpr (Op == Binary::add) y[o[2]] = __fadd_rn(v.a, v.b);
    if constexpr (Op == Binary::sub) y[o[2]] = __fsub_rn(v.a, v.b);
    if constexpr (Op == Binary::mul) y[o[2]] = __fmul_rn(v.a, v.b);
  }
};

/// grad (+)= sign * dy (* other): an operand's gradient where nothing is summed.
template <bool Mul>
struct ScaledCopy {
  float* grad;
  const float *dy, *other;
  float sign;
  bool accumulate;
  struct Vals {
    float dy, other, grad;
  };
  __device__ Vals load(const int64_t* o) const {
    return {dy[o[1]], Mul ? other[o[2]] : 1.f, accumulate ? grad[o[0]] : 0.f};
  }
  __device__ void store(const int64_t* o, const Vals& v) const {
    grad[o[0]] = stored(v.grad, sign * (Mul ? __fmul_rn(v.dy, v.other) : v.dy), accumulate);
  }
};

/// da (+)= dy, db (+)= sign * dy in one pass over dy: an add's or sub's two gradients where
/// neither is broadcast (a residual connection's), reading dy once instead of once per gradient.
struct PairCopy {
  float *da, *db;
  const float* dy;
  float sign;
  bool accumulate;
  struct Vals {
    float dy, da, db;
  };
  __device__ Vals load(const int64_t* o) const {
    return {dy[o[2]], accumulate ? da[o[0]] : 0.f, accumulate ? db[o[1]] : 0.f};
  }
  __device__ void store(const int64_t* o, const Vals& v) const {
    da[o[0]] = stored(v.da, v.dy, accumulate);
    db[o[1]] = stored(v.db, sign * v.dy, accumulate);
  }
};

/// The sums of a broadcast operand's gradient: M outputs, each summing R elements of dy (times
/// other). The outputs' offsets (grad, dy, other) walk the kept dims, the summed elements' offsets
/// (dy, other) the summed dims. A block of kThreads threads serves `per_block` outputs with `lanes`
/// threads each; grid.y splits the summed range into chunks of `chunk`.
struct GradSum {
  Walk<3> kept;
  Walk<2> summed;
  int64_t M = 0, R = 0, chunk = 0;
  int lanes = 0, per_block = 0;
  /// The lanes of an output are per_block apart in the block (consecutive threads take
  /// consecutive outputs, for dy laid out with the outputs innermost); else adjacent.
  bool outputs_inner = false;
};

/// One block sums per_block outputs over one chunk: each thread a strided share of the chunk, then
/// a fixed tree over the output's lanes. With `partial`, chunk p's sums go to partial[p * M + m];
/// else (one chunk) into grad. In: float (dy), or double (the partial sums of a first pass).
template <typename In, typename Index, bool Mul>
__global__ void grad_sum_kernel(GradSum s, const In* dy, const float* other, double* partial, float* grad, float sign,
                                bool accumulate) {
  __shared__ double sh[kThreads];
  const int t = threadIdx.x;
  const int lane = s.outputs_inner ? t / s.per_block : t % s.lanes;
  const int m_local = s.outputs_inner ? t % s.per_block : t / s.lanes;
  const int gap = s.outputs_inner ? s.per_block : 1;  // between an output's lanes in sh
  const int64_t m = static_cast<int64_t>(blockIdx.x) * s.per_block + m_local;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * s.chunk, r1 = min(s.R, r0 + s.chunk);
  double acc = 0.0;
  int64_t out[3] = {};
  if (m < s.M) {
    walk_offsets(s.kept, static_cast<uint64_t>(m), out);
    const auto term = [&](int64_t r) {
      int64_t in[2];
      walk_offsets(s.summed, static_cast<Index>(r), in);
      const double v = dy[out[1] + in[0]];
      return Mul ? v * other[out[2] + in[1]] : v;
    };
    // kUnroll terms loaded at a time, added in order.
    int64_t r = r0 + lane;
    for (; r + (kUnroll - 1) * s.lanes < r1; r += kUnroll * s.lanes) {
      double v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) v[u] = term(r + u * s.lanes);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) acc += v[u];
    }
    for (; r < r1; r += s.lanes) acc += term(r);
  }
  sh[t] = acc;
  __syncthreads();
  for (int half = s.lanes / 2; half > 0; half /= 2) {
    if (lane < half) sh[t] += sh[t + half * gap];
    __syncthreads();
  }
  if (lane != 0 || m >= s.M) return;
  if (partial)
    partial[static_cast<int64_t>(blockIdx.y) * s.M + m] = sh[t];
  else
    grad[out[0]] = stored(grad[out[0]], sign * static_cast<float>(sh[t]), accumulate);
}

/// The smallest power of two >= n (n >= 1), at most `cap`.
int pow2_at_least(int64_t n, int cap) {
  int p = 1;
  while (p < cap && p < n) p *= 2;
  return p;
}

/// Sets the lanes and layout of s (M, R, kept and summed set) and returns the number of chunks
/// (1 unless `split`).
int64_t plan(GradSum& s, bool split) {
  // Lay the lanes along dy's innermost dim: the summed one, or the outputs' when that steps finer.
  const int64_t out_step = s.M > 1 ? std::abs(s.kept.st[1][s.kept.rank - 1]) : INT64_MAX;
  const int64_t sum_step = std::abs(s.summed.st[0][s.summed.rank - 1]);
  s.outputs_inner = out_step < sum_step;
  // Few outputs: a whole block per output; many: a warp (or fewer lanes for short sums).
  s.lanes = pow2_at_least(s.R, s.outputs_inner ? 8 : (s.M >= 4096 ? 32 : kThreads));
  s.per_block = kThreads / s.lanes;
  const int64_t blocks = (s.M + s.per_block - 1) / s.per_block;
  require(blocks <= INT32_MAX, "binary_backward: too many outputs");
  // Split the sums into chunks while there are fewer than ~1024 blocks and each thread still adds
  // at least 16 elements.
  int64_t chunks = 1;
  if (split && blocks < 1024)
    chunks = std::clamp<int64_t>(std::min((1024 + blocks - 1) / blocks, s.R / (s.lanes * 16)), 1, 65535);
  s.chunk = (s.R + chunks - 1) / chunks;
  return (s.R + s.chunk - 1) / s.chunk;
}

template <typename In, bool Mul>
void launch_sums(Context& ctx, const GradSum& s, int64_t chunks, const In* dy, const float* other, double* partial,
                 float* grad, float sign, bool accumulate) {
  const dim3 grid(static_cast<unsigned>((s.M + s.per_block - 1) / s.per_block), static_cast<unsigned>(chunks));
  if (s.R < (int64_t{1} << 31))
    grad_sum_kernel<In, uint32_t, Mul><<<grid, kThreads, 0, ctx.stream>>>(s, dy, other, partial, grad, sign, accumulate);
  else
    grad_sum_kernel<In, uint64_t, Mul><<<grid, kThreads, 0, ctx.stream>>>(s, dy, other, partial, grad, sign, accumulate);
  FFRT_LAUNCHED(&ctx);
}

/// Launches the sums of `s` (M, R, kept and summed set) into grad on ctx.stream: in one pass, or,
/// with few outputs, in chunks whose partial sums (an [chunks, M] array of doubles) a second pass
/// sums the same way.
template <bool Mul>
void launch_grad_sum(Context& ctx, GradSum s, const float* dy, const float* other, float* grad, float sign,
                     bool accumulate) {
  const int64_t chunks = plan(s, true);
  if (chunks == 1) return launch_sums<float, Mul>(ctx, s, 1, dy, other, nullptr, grad, sign, accumulate);
  const std::shared_ptr<std::byte> partial = allocate(ctx, static_cast<size_t>(chunks * s.M) * sizeof(double));
  auto* part = reinterpret_cast<double*>(partial.get());
  launch_sums<float, Mul>(ctx, s, chunks, dy, other, part, nullptr, sign, accumulate);
  GradSum t;
  t.M = s.M, t.R = chunks;
  t.kept = s.kept;  // the partial sums are read at m, row-major over the kept dims
  for (int64_t d = t.kept.rank - 1, pitch = 1; d >= 0; --d) {
    t.kept.st[1][d] = t.kept.st[2][d] = pitch;
    pitch *= t.kept.ext[d];
  }
  const int64_t* const strides[2] = {&s.M, &s.M};
  t.summed = make_walk(1, &chunks, strides);
  plan(t, false);
  launch_sums<double, false>(ctx, t, 1, part, nullptr, nullptr, grad, sign, accumulate);
}

/// The gradient of one operand of a binary op over the box of `grad`: sign * sum of dy (times
/// `other`, for mul) over the dims of dy's box the operand was broadcast along or lacks.
void operand_grad(Context& ctx, const View& grad, const View& dy, const View* other, float sign, bool accumulate,
                  const char* name) {
  require(grad.rank <= dy.rank, "binary_backward: a gradient has a higher rank than dy");
  if (grad.volume() == 0) return;
  const int r = dy.rank, off = r - grad.rank;
  // U: the region of dy read; V: the gradient's elements, in dy's coordinates (size 1 along the
  // summed dims).
  View U = dy, V = dy;
  bool summed[kMaxRank] = {};
  for (int d = 0; d < r; ++d) {
    const int i = d - off;
    if (i < 0 || grad.full[i] == 1) {
      summed[d] = true;
      V.size[d] = 1;
    } else {
      U.lo[d] = V.lo[d] = grad.lo[i];
      U.size[d] = V.size[d] = grad.size[i];
    }
  }
  if (U.volume() == 0) {  // nothing of dy to add: the gradient is zero
    if (!accumulate) fill(ctx, grad, 0.f);
    return;
  }
  const Operand g = map_operand(grad, V, true, name);
  const Operand y = map_operand(dy, U, false, "binary_backward: dy does not hold the gradient's box");
  const Operand o = other ? map_operand(*other, U, true, "binary_backward: an operand does not hold dy's box")
                          : unread(y);
  // The kept and the summed dims, each with their operands' strides.
  int64_t kext[kMaxRank] = {}, sext[kMaxRank] = {}, kst[3][kMaxRank] = {}, sst[2][kMaxRank] = {};
  int nk = 0, ns = 0;
  GradSum s;
  s.M = s.R = 1;
  for (int d = 0; d < r; ++d) {
    if (summed[d]) {
      sext[ns] = U.size[d], sst[0][ns] = y.st[d], sst[1][ns] = o.st[d];
      s.R *= U.size[d];
      ++ns;
    } else {
      kext[nk] = V.size[d], kst[0][nk] = g.st[d], kst[1][nk] = y.st[d], kst[2][nk] = o.st[d];
      s.M *= V.size[d];
      ++nk;
    }
  }
  const int64_t* const ks[3] = {kst[0], kst[1], kst[2]};
  const int64_t* const ss[2] = {sst[0], sst[1]};
  s.kept = make_walk(nk, kext, ks);
  s.summed = make_walk(ns, sext, ss);
  if (s.R == 1) {  // nothing summed: element-wise
    const Operand* const ops[3] = {&g, &y, &o};
    const Walk<3> w = walk_over(V, ops);
    if (other)
      launch_walk(ctx, w, ScaledCopy<true>{g.p, y.p, o.p, sign, accumulate});
    else
      launch_walk(ctx, w, ScaledCopy<false>{g.p, y.p, o.p, sign, accumulate});
    return;
  }
  if (other)
    launch_grad_sum<true>(ctx, s, y.p, o.p, g.p, sign, accumulate);
  else
    launch_grad_sum<false>(ctx, s, y.p, o.p, g.p, sign, accumulate);
}

// ---- dropout -------------------------------------------------------------------------------------

/// dst (+)= src * (keep ? 1/(1-rate) : 0), keep iff uniform01(philox(global index, key)[0]) >= rate.
struct Dropout {
  const float* src;
  float* dst;
  uint64_t first;  ///< the global index of the box's first element
  uint64_t key;
  float rate, keep_scale;
  bool accumulate;
  struct Vals {
    float s, d;
  };
  __device__ Vals load(const int64_t* o) const { return {src[o[0]], accumulate ? dst[o[1]] : 0.f}; }
  __device__ void store(const int64_t* o, const Vals& v) const {
    const bool keep = uniform01(philox4x32(first + static_cast<uint64_t>(o[2]), key).v[0]) >= rate;
    dst[o[1]] = stored(v.d, __fmul_rn(v.s, keep ? keep_scale : 0.f), accumulate);
  }
};

void apply_dropout(Context& ctx, float rate, uint64_t key, const View& src, const View& dst, bool accumulate,
                   const char* what) {
  require(rate >= 0.f && rate < 1.f, "dropout: rate must be in [0, 1)");
  if (dst.volume() == 0) return;
  const Operand s = map_operand(src, dst, false, what), t = self(dst);
  Operand index;  // the global row-major index, as a third operand
  global_pitches(dst, index.st);
  const Operand* const ops[3] = {&s, &t, &index};
  launch_walk(ctx, walk_over(dst, ops),
              Dropout{s.p, t.p, static_cast<uint64_t>(global_index_of_lo(dst)), key, rate, 1.f / (1.f - rate),
                      accumulate});
}

}  // namespace

void activation_forward(Context& ctx, Act act, const View& x, const View& y) {
  if (y.volume() == 0) return;
  const Operand xs = map_operand(x, y, false, "activation_forward: x does not hold y's box"), ys = self(y);
  const Operand* const ops[2] = {&xs, &ys};
  const Walk<2> w = walk_over(y, ops);
  with_act(act, [&](auto A) { launch_walk(ctx, w, ActForward<decltype(A)::value>{xs.p, ys.p}); });
}

void activation_backward(Context& ctx, Act act, const View& x, const View& y, const View& dy, const View& dx,
                         bool accumulate) {
  if (dx.volume() == 0) return;
  const Operand dys = map_operand(dy, dx, false, "activation_backward: dy does not hold dx's box"), dxs = self(dx);
  const Operand xs =
      reads_x(act) ? map_operand(x, dx, false, "activation_backward: x does not hold dx's box") : unread(dxs);
  const Operand ys =
      reads_y(act) ? map_operand(y, dx, false, "activation_backward: y does not hold dx's box") : unread(dxs);
  const Operand* const ops[4] = {&xs, &ys, &dys, &dxs};
  const Walk<4> w = walk_over(dx, ops);
  with_act(act, [&](auto A) {
    launch_walk(ctx, w, ActBackward<decltype(A)::value>{xs.p, ys.p, dys.p, dxs.p, accumulate});
  });
}

void binary_forward(Context& ctx, Binary op, const View& a, const View& b, const View& y) {
  if (y.volume() == 0) return;
  const Operand as = map_operand(a, y, true, "binary_forward: a does not hold what y's box needs");
  const Operand bs = map_operand(b, y, true, "binary_forward: b does not hold what y's box needs");
  const Operand ys = self(y);
  const Operand* const ops[3] = {&as, &bs, &ys};
  const Walk<3> w = walk_over(y, ops);
  switch (op) {
    case Binary::add: return launch_walk(ctx, w, BinaryForward<Binary::add>{as.p, bs.p, ys.p});
    case Binary::sub: return launch_walk(ctx, w, BinaryForward<Binary::sub>{as.p, bs.p, ys.p});
    case Binary::mul: return launch_walk(ctx, w, BinaryForward<Binary::mul>{as.p, bs.p, ys.p});
  }
  throw Error("binary_forward: unknown op");
}

void binary_backward(Context& ctx, Binary op, const View& a, const View& b, const View& dy, const View* da,
                     const View* db, bool accumulate) {
  const bool mul = op == Binary::mul;
  // Both gradients over dy's whole box (nothing broadcast), in two buffers: one pass.
  const auto whole_of_dy = [&](const View& g) {
    if (g.rank != dy.rank) return false;
    for (int d = 0; d < g.rank; ++d)
      if (g.full[d] != dy.full[d] || g.lo[d] != dy.lo[d] || g.size[d] != dy.size[d]) return false;
    return true;
  };
  if (!mul && da && db && da->data != db->data && whole_of_dy(*da) && whole_of_dy(*db)) {
    if (dy.volume() == 0) return;
    const Operand das = self(*da), dbs = self(*db), dys = self(dy);
    const Operand* const ops[3] = {&das, &dbs, &dys};
    launch_walk(ctx, walk_over(dy, ops),
                PairCopy{das.p, dbs.p, dys.p, op == Binary::sub ? -1.f : 1.f, accumulate});
    return;
  }
  if (da) operand_grad(ctx, *da, dy, mul ? &b : nullptr, 1.f, accumulate, "binary_backward: da does not fit dy");
  if (db) {
    operand_grad(ctx, *db, dy, mul ? &a : nullptr, op == Binary::sub ? -1.f : 1.f, accumulate,
                 "binary_backward: db does not fit dy");
  }
}

void clip_forward(Context& ctx, float lo, float hi, const View& x, const View& y) {
  require(box_inside(y, x), "clip: x does not hold y's box");
  require(x.dtype == DType::f32 && y.dtype == DType::f32, "clip: x and y must be f32 views");
  if (y.volume() == 0) return;
  const Operand xs = at_box(x, y), ys = self(y);
  const Operand* const ops[2] = {&xs, &ys};
  launch_walk(ctx, walk_over(y, ops), ClipForward{xs.p, ys.p, lo, hi});
}

void clip_backward(Context& ctx, float lo, float hi, const View& x, const View& dy, const View& dx, bool accumulate) {
  require(box_inside(dx, x) && box_inside(dx, dy), "clip_backward: views do not hold dx's box");
  require(x.dtype == DType::f32 && dy.dtype == DType::f32 && dx.dtype == DType::f32,
          "clip_backward: x, dy and dx must be f32 views");
  if (dx.volume() == 0) return;
  const Operand xs = at_box(x, dx), dys = at_box(dy, dx), dxs = self(dx);
  const Operand* const ops[3] = {&xs, &dys, &dxs};
  launch_walk(ctx, walk_over(dx, ops), ClipBackward{xs.p, dys.p, dxs.p, lo, hi, accumulate});
}

void dropout_forward(Context& ctx, float rate, uint64_t key, const View& x, const View& y) {
  apply_dropout(ctx, rate, key, x, y, false, "dropout_forward: x does not hold y's box");
}

void dropout_backward(Context& ctx, float rate, uint64_t key, const View& dy, const View& dx, bool accumulate) {
  apply_dropout(ctx, rate, key, dy, dx, accumulate, "dropout_backward: dy does not hold dx's box");
}

}  // namespace ffrt
