// cuda backend: normalizations — batch norm (as partial statistics that parts reduce), layer norm
// over the last dim, softmax and log-softmax along an axis. Semantics and precision are the cpu
// backend's (runtime/cpu/norm.cc, clip_log_softmax.cc): the same sums in double, the same
// per-channel and per-row quantities rounded to float at the same points.
//
// Batch norm's per-channel sums use no atomics: an [N, C, H, W] box is walked by blocks that each
// own one channel, or a contiguous chunk of one channel's N*H*W elements when there are too few
// channels to fill the device; a block's sums are combined across its threads in a fixed order,
// and the blocks' partial sums of a channel are added in chunk order by a second, tiny kernel. So
// a result depends only on the shape and the device, never on scheduling. [N, C] boxes (and layer
// norm's parameter gradients) are column sums the same way. The element-wise passes (normalize,
// dx) walk a channel's elements like the sums do, 4 at a time (float4) when the layout allows,
// each block computing its channel's coefficients from the statistics in double as the cpu does
// ([N, C] boxes: a one-thread-per-channel kernel does, before an element-wise kernel).
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <memory>

#include "rows.cuh"

namespace ffrt {

namespace {

using namespace cuda;  // the shared checks, rows and reductions (rows.cuh)

/// V consecutive floats (V = 4: one aligned float4 access).
template <int V>
__device__ inline void load(const float* p, float (&v)[V]) {
  if constexpr (V == 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
  } else {
    v[0] = *p;
  }
}
template <int V>
__device__ inline void store(float* p, const float (&v)[V]) {
  if constexpr (V == 4)
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  else
    *p = v[0];
}

// ---- per-channel views ----------------------------------------------------------------------------

/// A [C] f32 view's box as a kernel argument; p is null for an absent view.
struct Chan {
  float* p = nullptr;
  int64_t lo = 0, hi = 0, stride = 0;
  __device__ bool has(int64_t c) const { return p && c >= lo && c < hi; }
  __device__ float& at(int64_t c) const { return p[(c - lo) * stride]; }
};
Chan chan_of(const View* v) { return v ? Chan{v->f32(), v->lo[0], v->hi(0), v->stride[0]} : Chan{}; }

/// An f64 [2, C] statistics view's box as a kernel argument.
struct Stats {
  double* p;
  int64_t row_lo, row_hi, c_lo, s_row, s_c;
  __device__ double& at(int64_t row, int64_t c) const { return p[(row - row_lo) * s_row + (c - c_lo) * s_c]; }
};
Stats stats_of(const View& s) { return {s.f64(), s.lo[0], s.hi(0), s.lo[1], s.stride[0], s.stride[1]}; }

/// mean = sum / count and the biased variance from whole-batch statistics.
__device__ inline void moments(const Stats& s, double count, int64_t c, double& mean, double& var) {
  mean = s.at(0, c) / count;
  var = fmax(0.0, s.at(1, c) / count - mean * mean);
}

/// The hull of channel ranges: [lo, hi) covering every non-empty one added.
struct Hull {
  int64_t lo = 0, hi = 0;
  void add(int64_t a, int64_t b) {
    if (a >= b) return;
    if (lo >= hi) lo = a, hi = b;
    lo = std::min(lo, a), hi = std::max(hi, b);
  }
  void add(const View* v) {
    if (v) add(v->lo[0], v->hi(0));
  }
};

/// Whether a [C]-shaped per-channel view (global extent C) holds channels [c0, c0 + n).
bool holds_channels(const View& v, int64_t channels, int64_t c0, int64_t n) {
  return v.rank == 1 && v.dtype == DType::f32 && v.full[0] == channels &&
         (n == 0 || (v.lo[0] <= c0 && c0 + n <= v.hi(0)));
}

/// Checks an f64 [2, C] statistics view holding channels [c0, c0 + n) (both rows when `both_rows`).
bool holds_stats(const View& s, int64_t channels, int64_t c0, int64_t n, bool both_rows) {
  if (s.rank != 2 || s.dtype != DType::f64 || s.full[0] != 2 || s.full[1] != channels) return false;
  if (both_rows && (s.lo[0] != 0 || s.size[0] != 2)) return false;
  return n == 0 || (s.lo[1] <= c0 && c0 + n <= s.hi(1));
}

/// Checks a batch-norm activation ([N, C] or [N, C, H, W], f32).
void require_bn_input(const View& x, const char* what) {
  require(x.dtype == DType::f32 && (x.rank == 2 || x.rank == 4), what);
}

// ---- walking the channels of [N, C, H, W] boxes ------------------------------------------------------

/// A view of an [N, C, H, W] box as a kernel argument: its buffer at the box's first element and
/// its strides (sh is 0 when the walk takes a dense (h, w) plane as one line).
struct Plane {
  float* p;
  int64_t sc, sn, sh, sw;
};

/// Position of element j of a channel: sample n, line h of the sample, element w of the line.
struct Pos {
  uint32_t n, h, w;
};

/// How blocks walk the channels of an [N, C, H, W] box. A channel's elements, row-major over
/// (n, h, w), are lines of `line_len` elements (W, or H * W when every view's (h, w) planes are
/// dense), `lines` per sample; they go in groups of V, and each block takes `chunk` consecutive
/// groups of one channel: block b does channel b / splits, chunk b % splits. A thread visits every
/// kThreads-th group of its block's chunk, stepping its position digit by digit: no division per
/// element.
struct Walk {
  uint32_t groups = 0, chunk = 0, splits = 1;
  uint32_t line_len = 1, lines = 1;
  FastDiv line, per_n;
  Pos step;  ///< kThreads groups, as (n, h, w) digits
  __device__ Pos pos(uint32_t j) const {
    const uint32_t o = line.div(j), n = per_n.div(o);
    return {n, o - n * lines, j - o * line_len};
  }
  __device__ void advance(Pos& q) const {
    q.w += step.w;
    if (q.w >= line_len) q.w -= line_len, ++q.h;
    q.h += step.h;
    if (q.h >= lines) q.h -= lines, ++q.n;
    q.n += step.n;
  }
};

__device__ inline int64_t offset(const Plane& v, Pos q) {
  return static_cast<int64_t>(q.n) * v.sn + static_cast<int64_t>(q.h) * v.sh + static_cast<int64_t>(q.w) * v.sw;
}

/// The walk over the channels of `box` (rank 4) in the views `vs`, whose first channel is the
/// box's. vec is set to 4 when every view allows aligned float4 accesses along lines, else 1.
Walk make_walk(Context& ctx, const View& box, std::initializer_list<const View*> vs, int& vec) {
  const int64_t n = box.size[0], h = box.size[2], w = box.size[3], count = n * h * w;
  require_index_space(count, "batch norm: a channel holds too many elements for the cuda kernels");
  bool dense = true;
  for (const View* v : vs) dense = dense && (h == 1 || v->stride[2] == w * v->stride[3]);
  Walk wk;
  wk.line_len = static_cast<uint32_t>(std::max<int64_t>(1, dense ? h * w : w));
  wk.lines = static_cast<uint32_t>(std::max<int64_t>(1, dense ? 1 : h));
  wk.line = FastDiv(wk.line_len);
  wk.per_n = FastDiv(wk.lines);
  vec = wk.line_len % 4 == 0 ? 4 : 1;
  for (const View* v : vs) {
    const auto addr = reinterpret_cast<uintptr_t>(origin_f32(*v, box));
    if (v->stride[3] != 1 || v->stride[0] % 4 || v->stride[1] % 4 || (!dense && v->stride[2] % 4) || addr % 16) vec = 1;
  }
  wk.groups = static_cast<uint32_t>(count / vec);
  const uint32_t step = kThreads * vec, lines_step = step / wk.line_len;
  wk.step = {lines_step / wk.lines, lines_step % wk.lines, step % wk.line_len};
  // Blocks for about 4 per multiprocessor, but no block with fewer than 16 groups per thread: a
  // channel is split only where there are few channels (its partial sums cost a second pass).
  const int64_t channels = box.size[1], target = int64_t{sm_count(ctx)} * 4;
  int64_t splits = std::max<int64_t>(1, std::min(ceil_div(target, channels), ceil_div(wk.groups, kThreads * 16)));
  const int64_t chunk = std::max<int64_t>(1, ceil_div(wk.groups, splits));
  wk.chunk = static_cast<uint32_t>(chunk);
  wk.splits = static_cast<uint32_t>(std::max<int64_t>(1, ceil_div(wk.groups, chunk)));
  return wk;
}

/// v as a Plane of the walk w over `box`.
Plane plane_of(const View& v, const View& box, const Walk& w) {
  return {origin_f32(v, box), v.stride[1], v.stride[0], w.lines == 1 ? 0 : v.stride[2], v.stride[3]};
}

/// The block's channel and its range of groups [begin, end).
struct Chunk {
  uint32_t c, begin, end;
};
__device__ inline Chunk chunk_of(const Walk& w) {
  const uint32_t c = blockIdx.x / w.splits, s = blockIdx.x % w.splits;
  const uint32_t begin = s * w.chunk;
  return {c, begin, min(w.groups, begin + w.chunk)};
}

/// Groups a thread loads together before using them. More (measured on an H200) only costs
/// registers, hence occupancy, on the many short blocks of small planes.
constexpr int kUnroll = 4;

/// Walks this thread's groups of the block's chunk, kUnroll at a time: load(u, q) for each (u-th
/// of the batch, at position q), then use(u, q) for each. Positions are stepped again for use
/// rather than kept, to save registers.
template <typename Load, typename Use>
__device__ void for_groups(const Walk& w, const Chunk& k, int vec, Load load, Use use) {
  constexpr int U = kUnroll;
  uint32_t g0 = k.begin + threadIdx.x;
  Pos q = w.pos(g0 * vec);
  for (; g0 < k.end; g0 += U * kThreads) {
    Pos p = q;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (g0 + u * kThreads < k.end) load(u, q);
      w.advance(q);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (g0 + u * kThreads < k.end) use(u, p);
      w.advance(p);
    }
  }
}

// ---- per-channel sums ---------------------------------------------------------------------------------

/// Where per-channel sums go: the rows of `stats`' box (row 0 gets s0, row 1 s1) for channels
/// c0 + i; s1 is first multiplied by invstd when it is set (the backward's sum of dy * xhat).
struct SumsOut {
  Stats stats;
  int64_t c0;
  Chan invstd;
  __device__ void finish(uint32_t i, double s0, double s1) const {
    const int64_t c = c0 + i;
    if (invstd.p) s1 *= invstd.at(c);
    for (int64_t row = stats.row_lo; row < stats.row_hi; ++row) stats.at(row, c) = row == 0 ? s0 : s1;
  }
};

/// Sums a and b over the block (kThreads threads) in a fixed order; thread 0 gets the result.
__device__ inline void block_sum2(double& a, double& b) {
  __shared__ double sm[2][kThreads / 32];
  a = group_reduce<32>(a, static_cast<double*>(nullptr), Add{});
  b = group_reduce<32>(b, static_cast<double*>(nullptr), Add{});
  if (threadIdx.x % 32 == 0) sm[0][threadIdx.x / 32] = a, sm[1][threadIdx.x / 32] = b;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) a += sm[0][w], b += sm[1][w];
  }
}

/// Per-channel sums over an [N, C, H, W] box: x and x^2, or (kBackward) dy and dy * (x - mean).
/// A block's sums go to `out` when a channel is one block, else to partials ([2][splits][C]).
template <int V, bool kBackward>
__global__ void __launch_bounds__(kThreads)
    channel_sums4(Walk w, Plane x, Plane dy, Chan mean, SumsOut out, double* partials) {
  const Chunk k = chunk_of(w);
  const float* xp = x.p + k.c * x.sc;
  const float* dp = dy.p + k.c * dy.sc;
  const float m = kBackward ? mean.at(out.c0 + k.c) : 0.f;
  double s0 = 0, s1 = 0;
  float xv[kUnroll][V], dv[kUnroll][V];
  for_groups(
      w, k, V,
      [&](int u, Pos q) {
        load<V>(xp + offset(x, q), xv[u]);
        if constexpr (kBackward) load<V>(dp + offset(dy, q), dv[u]);
      },
      [&](int u, Pos) {
#pragma unroll
        for (int e = 0; e < V; ++e) {
          if constexpr (kBackward) {
            const double d = dv[u][e];
            s0 += d, s1 += d * (xv[u][e] - m);
          } else {
            const double v = xv[u][e];
            s0 += v, s1 += v * v;
          }
        }
      });
  block_sum2(s0, s1);
  if (threadIdx.x != 0) return;
  if (w.splits == 1) {
    out.finish(k.c, s0, s1);
  } else {
    const uint32_t channels = gridDim.x / w.splits, s = blockIdx.x % w.splits;
    partials[size_t{s} * channels + k.c] = s0;
    partials[size_t{w.splits + s} * channels + k.c] = s1;
  }
}

/// Adds the blocks' partial sums ([2][splits][n]) of each of n columns in split order, and hands
/// them to out.finish.
template <class Out>
__global__ void finish_sums(Out out, uint32_t n, uint32_t splits, const double* partials) {
  FFRT_GRID_LOOP(i, n) {
    double s0 = 0, s1 = 0;
    for (size_t s = 0; s < splits; ++s) s0 += partials[s * n + i], s1 += partials[(splits + s) * n + i];
    out.finish(static_cast<uint32_t>(i), s0, s1);
  }
}

/// Column sums of a rows x cols matrix, s0 and s1 as op.add(r, c, s0, s1) adds them: 32 columns
/// per block, 8 threads down each, the rows split into chunks of `chunk` rows along the grid's y;
/// op.finish gets the sums when there is one chunk, else partials ([2][chunks][cols]) do.
template <class Op>
__global__ void __launch_bounds__(256)
    column_sums(Op op, uint32_t rows, uint32_t cols, uint32_t chunk, double* partials) {
  __shared__ double sm[2][8][32];
  const uint32_t c = blockIdx.x * 32 + threadIdx.x, s = blockIdx.y;
  const uint32_t begin = s * chunk, end = min(rows, begin + chunk);
  double s0 = 0, s1 = 0;
  if (c < cols) {
#pragma unroll 4
    for (uint32_t r = begin + threadIdx.y; r < end; r += 8) op.add(r, c, s0, s1);
  }
  sm[0][threadIdx.y][threadIdx.x] = s0, sm[1][threadIdx.y][threadIdx.x] = s1;
  __syncthreads();
  if (threadIdx.y != 0 || c >= cols) return;
  for (int t = 1; t < 8; ++t) s0 += sm[0][t][threadIdx.x], s1 += sm[1][t][threadIdx.x];
  if (gridDim.y == 1) {
    op.finish(c, s0, s1);
  } else {
    partials[size_t{s} * cols + c] = s0;
    partials[size_t{gridDim.y + s} * cols + c] = s1;
  }
}

template <class Op>
void launch_column_sums(Context& ctx, const Op& op, int64_t rows, int64_t cols) {
  if (cols == 0) return;
  const int64_t bx = ceil_div(cols, 32), target = int64_t{sm_count(ctx)} * 8;
  int64_t splits = std::max<int64_t>(1, std::min(ceil_div(target, bx), ceil_div(rows, 256)));
  const int64_t chunk = std::max<int64_t>({1, ceil_div(rows, splits), ceil_div(rows, 65535)});
  splits = std::max<int64_t>(1, ceil_div(rows, chunk));
  std::shared_ptr<std::byte> partials;
  if (splits > 1) partials = allocate(ctx, sizeof(double) * 2 * splits * cols);
  auto* p = reinterpret_cast<double*>(partials.get());
  column_sums<<<dim3(static_cast<unsigned>(bx), static_cast<unsigned>(splits)), dim3(32, 8), 0, ctx.stream>>>(
      op, static_cast<uint32_t>(rows), static_cast<uint32_t>(cols), static_cast<uint32_t>(chunk), p);
  FFRT_LAUNCHED(&ctx);
  if (splits == 1) return;
  finish_sums<<<blocks_for(cols), kThreads, 0, ctx.stream>>>(op, static_cast<uint32_t>(cols),
                                                             static_cast<uint32_t>(splits), p);
  FFRT_LAUNCHED(&ctx);
}

/// Column sums of an [N, C] box (channel c0 + c is column c): x and x^2, or (kBackward) dy and
/// dy * (x - mean).
template <bool kBackward>
struct ColumnStats {
  const float* x;
  const float* dy;
  int64_t sx0, sx1, sd0, sd1;
  Chan mean;
  SumsOut out;
  __device__ void add(uint32_t r, uint32_t c, double& s0, double& s1) const {
    const float xv = x[r * sx0 + c * sx1];
    if constexpr (kBackward) {
      const double d = dy[r * sd0 + c * sd1];
      s0 += d, s1 += d * (xv - mean.at(out.c0 + c));
    } else {
      const double v = xv;
      s0 += v, s1 += v * v;
    }
  }
  __device__ void finish(uint32_t c, double s0, double s1) const { out.finish(c, s0, s1); }
};

/// Per-channel sums over `box` (an [N, C] or [N, C, H, W] box whose channels are those of `out`)
/// of x (dy null) or of the backward's dy.
template <bool kBackward>
void channel_sums(Context& ctx, const View& box, const View& x, const View* dy, const Chan& mean, const SumsOut& out) {
  const int64_t channels = box.size[1];
  if (box.rank == 2) {
    require_index_space(box.size[0], "batch norm: too many rows for the cuda kernels");
    ColumnStats<kBackward> op{};
    op.x = origin_f32(x, box), op.sx0 = x.stride[0], op.sx1 = x.stride[1];
    if (dy) op.dy = origin_f32(*dy, box), op.sd0 = dy->stride[0], op.sd1 = dy->stride[1];
    op.mean = mean, op.out = out;
    launch_column_sums(ctx, op, box.size[0], channels);
    return;
  }
  int vec = 1;
  const Walk w = kBackward ? make_walk(ctx, box, {&x, dy}, vec) : make_walk(ctx, box, {&x}, vec);
  const Plane xp = plane_of(x, box, w), dp = dy ? plane_of(*dy, box, w) : Plane{};
  std::shared_ptr<std::byte> partials;
  if (w.splits > 1) partials = allocate(ctx, sizeof(double) * 2 * w.splits * channels);
  auto* p = reinterpret_cast<double*>(partials.get());
  const auto blocks = static_cast<unsigned>(channels * w.splits);
  if (vec == 4)
    channel_sums4<4, kBackward><<<blocks, kThreads, 0, ctx.stream>>>(w, xp, dp, mean, out, p);
  else
    channel_sums4<1, kBackward><<<blocks, kThreads, 0, ctx.stream>>>(w, xp, dp, mean, out, p);
  FFRT_LAUNCHED(&ctx);
  if (w.splits == 1) return;
  finish_sums<<<blocks_for(channels), kThreads, 0, ctx.stream>>>(out, static_cast<uint32_t>(channels), w.splits, p);
  FFRT_LAUNCHED(&ctx);
}

// ---- per-channel coefficients and state ---------------------------------------------------------

/// batch_norm_forward's per-channel quantities, from whole-batch statistics, as the cpu computes
/// them (in double, rounded once): mean and invstd, and the coefficients of y = (x - mean) * alpha
/// + beta, alpha = weight / sqrt(var + eps), beta = bias.
struct ForwardCoefs {
  Stats st;
  double count, eps;
  Chan weight, bias, mean, invstd;
  /// The mean and sqrt(var + eps) of channel c; stores mean and invstd over their boxes if `write`.
  __device__ double moments_of(int64_t c, double& m, bool write) const {
    double var;
    moments(st, count, c, m, var);
    const double sd = sqrt(var + eps);
    if (write && mean.has(c)) mean.at(c) = static_cast<float>(m);
    if (write && invstd.has(c)) invstd.at(c) = static_cast<float>(1.0 / sd);
    return sd;
  }
  /// The coefficients of channel c of y (weight and bias hold it).
  __device__ void coefs(int64_t c, bool write, float& mu, float& alpha, float& beta) const {
    double m;
    const double sd = moments_of(c, m, write);
    mu = static_cast<float>(m);
    alpha = static_cast<float>((weight.p ? weight.at(c) : 1.0) / sd);
    beta = bias.p ? bias.at(c) : 0.f;
  }
};

/// One thread per channel of [lo, lo + n): mean and invstd over their boxes, and the coefficients
/// ([3][nc], when coef is set) of y's channels [c0, c0 + nc).
__global__ void forward_coefs(ForwardCoefs f, int64_t c0, int64_t nc, float* coef, int64_t lo, int64_t n) {
  FFRT_GRID_LOOP(i, n) {
    const int64_t c = lo + i, k = c - c0;
    if (coef && k >= 0 && k < nc) {
      f.coefs(c, true, coef[k], coef[nc + k], coef[2 * nc + k]);
    } else if (f.mean.has(c) || f.invstd.has(c)) {
      double m;
      f.moments_of(c, m, true);
    }
  }
}

/// batch_norm_backward_data's per-channel coefficients of dx = (dy - k1 - (x - mean) * k2) * k3:
/// k1 = sum_dy / count, k2 = sum_dy_xhat / count * invstd, k3 = invstd * weight.
struct DxCoefs {
  Stats st;
  double count;
  Chan mean, invstd, weight;
  __device__ void coefs(int64_t c, float& mu, float& k1, float& k2, float& k3) const {
    const double is = invstd.at(c);
    mu = mean.at(c);
    k1 = static_cast<float>(st.at(0, c) / count);
    k2 = static_cast<float>(st.at(1, c) / count * is);
    k3 = static_cast<float>(is * (weight.p ? weight.at(c) : 1.0));
  }
};

/// The coefficients ([4][nc]) of channels [c0, c0 + nc), one thread per channel.
__global__ void dx_coefs(DxCoefs f, int64_t c0, int64_t nc, float* coef) {
  FFRT_GRID_LOOP(k, nc) f.coefs(c0 + k, coef[k], coef[nc + k], coef[2 * nc + k], coef[3 * nc + k]);
}

__global__ void update_running(Stats st, double count, double momentum, Chan rmean, Chan rvar, int64_t lo, int64_t n) {
  FFRT_GRID_LOOP(i, n) {
    const int64_t c = lo + i;
    if (!rmean.has(c) && !rvar.has(c)) continue;
    double m, var;
    moments(st, count, c, m, var);
    if (rmean.has(c)) {
      float& r = rmean.at(c);
      r = static_cast<float>((1.0 - momentum) * r + momentum * m);
    }
    if (rvar.has(c)) {
      float& r = rvar.at(c);
      r = static_cast<float>((1.0 - momentum) * r + momentum * (var * count / (count - 1)));
    }
  }
}

__global__ void add_param_grads(Stats st, Chan dweight, Chan dbias, int64_t lo, int64_t n) {
  FFRT_GRID_LOOP(i, n) {
    const int64_t c = lo + i;
    if (dweight.has(c)) dweight.at(c) += static_cast<float>(st.at(1, c));
    if (dbias.has(c)) dbias.at(c) += static_cast<float>(st.at(0, c));
  }
}

__global__ void running_as_sums(double count, Chan rmean, Chan rvar, Stats st, int64_t c0, int64_t n) {
  FFRT_GRID_LOOP(i, n) {
    const int64_t c = c0 + i;
    const double m = rmean.at(c), var = rvar.at(c);
    st.at(0, c) = m * count;
    st.at(1, c) = (var + m * m) * count;
  }
}

// ---- element-wise passes ------------------------------------------------------------------------------

/// y = act((x - mean) * alpha + beta) over an [N, C, H, W] box whose first channel is c0. Each
/// block computes its channel's coefficients; the first of a channel's blocks stores its mean and
/// invstd.
template <int V, Act A>
__global__ void __launch_bounds__(kThreads) normalize4(Walk w, Plane x, Plane y, ForwardCoefs f, int64_t c0) {
  const Chunk k = chunk_of(w);
  float mu, alpha, beta;
  f.coefs(c0 + k.c, threadIdx.x == 0 && k.begin == 0, mu, alpha, beta);
  const float* xp = x.p + k.c * x.sc;
  float* yp = y.p + k.c * y.sc;
  float v[kUnroll][V];
  for_groups(
      w, k, V, [&](int u, Pos q) { load<V>(xp + offset(x, q), v[u]); },
      [&](int u, Pos q) {
#pragma unroll
        for (int e = 0; e < V; ++e) v[u][e] = act_value<A>((v[u][e] - mu) * alpha + beta);
        store<V>(yp + offset(y, q), v[u]);
      });
}

/// The same over an [N, C] box.
template <Act A>
__global__ void normalize2(uint32_t total, FastDiv cols, const float* x, int64_t sx0, int64_t sx1, float* y,
                           int64_t sy0, int64_t sy1, const float* coef) {
  const uint32_t nc = cols.d;
  FFRT_GRID_LOOP(j, total) {
    const uint32_t r = cols.div(static_cast<uint32_t>(j)), c = static_cast<uint32_t>(j) - r * nc;
    const float v = (x[r * sx0 + c * sx1] - coef[c]) * coef[nc + c] + coef[2 * nc + c];
    y[r * sy0 + c * sy1] = act_value<A>(v);
  }
}

/// dx = (dy - k1 - (x - mean) * k2) * k3 over an [N, C, H, W] box whose first channel is c0, each
/// block computing its channel's coefficients.
template <int V>
__global__ void __launch_bounds__(kThreads)
    backward_data4(Walk w, Plane x, Plane dy, Plane dx, DxCoefs f, int64_t c0, bool accumulate) {
  const Chunk k = chunk_of(w);
  float mu, k1, k2, k3;
  f.coefs(c0 + k.c, mu, k1, k2, k3);
  const float* xp = x.p + k.c * x.sc;
  const float* dp = dy.p + k.c * dy.sc;
  float* op = dx.p + k.c * dx.sc;
  float xv[kUnroll][V], dv[kUnroll][V], ov[kUnroll][V];
  for_groups(
      w, k, V,
      [&](int u, Pos q) {
        load<V>(xp + offset(x, q), xv[u]);
        load<V>(dp + offset(dy, q), dv[u]);
        if (accumulate) load<V>(op + offset(dx, q), ov[u]);
      },
      [&](int u, Pos q) {
#pragma unroll
        for (int e = 0; e < V; ++e) {
          const float v = (dv[u][e] - k1 - (xv[u][e] - mu) * k2) * k3;
          ov[u][e] = accumulate ? ov[u][e] + v : v;
        }
        store<V>(op + offset(dx, q), ov[u]);
      });
}

/// The same over an [N, C] box.
__global__ void backward_data2(uint32_t total, FastDiv cols, const float* x, int64_t sx0, int64_t sx1, const float* dy,
                               int64_t sd0, int64_t sd1, float* dx, int64_t so0, int64_t so1, const float* coef,
                               bool accumulate) {
  const uint32_t nc = cols.d;
  FFRT_GRID_LOOP(j, total) {
    const uint32_t r = cols.div(static_cast<uint32_t>(j)), c = static_cast<uint32_t>(j) - r * nc;
    const float v =
        (dy[r * sd0 + c * sd1] - coef[nc + c] - (x[r * sx0 + c * sx1] - coef[c]) * coef[2 * nc + c]) * coef[3 * nc + c];
    put(dx + r * so0 + c * so1, v, accumulate);
  }
}

/// Per-channel coefficients ([k][nc] floats) in memory from the caching allocator.
std::shared_ptr<std::byte> coefficients(Context& ctx, int k, int64_t nc) {
  return allocate(ctx, sizeof(float) * k * static_cast<size_t>(nc));
}
float* floats(const std::shared_ptr<std::byte>& p) { return reinterpret_cast<float*>(p.get()); }

// ---- rows (layer norm, softmax) -------------------------------------------------------------------

/// The group size for lines of n elements: a warp or a block per line, or (`each`: many lines,
/// side by side in memory or short) one thread per line.
int group_for(int64_t n, int64_t lines, bool each) {
  if (each && lines >= 2048) return 1;
  return n > 1024 ? kThreads : 32;
}

struct LayerNormRows {
  RowIndex<4> rows;  // x, y, mean, invstd
  uint32_t nrows, d;
  const float* x;
  float* y;
  float* mean;
  float* invstd;
  int64_t sx, sy;
  const float* w;
  const float* b;
  int64_t sw, sb;
  double eps;
};

template <int G>
__global__ void __launch_bounds__(kThreads) layer_norm_rows(LayerNormRows a) {
  __shared__ double sm[G > 32 ? G / 32 : 1];
  const uint32_t lane = threadIdx.x % G, groups = gridDim.x * (kThreads / G);
  for (uint32_t row = blockIdx.x * (kThreads / G) + threadIdx.x / G; row < a.nrows; row += groups) {
    int64_t off[4];
    a.rows.offsets(row, off);
    const float* xp = a.x + off[0];
    double sum = 0;
    for (uint32_t i = lane; i < a.d; i += G) sum += xp[i * a.sx];
    const double m = group_reduce<G>(sum, sm, Add{}) / a.d;
    double sq = 0;
    for (uint32_t i = lane; i < a.d; i += G) {
      const double e = xp[i * a.sx] - m;
      sq += e * e;
    }
    const double is = 1.0 / sqrt(group_reduce<G>(sq, sm, Add{}) / a.d + a.eps);
    if (lane == 0) a.mean[off[2]] = static_cast<float>(m), a.invstd[off[3]] = static_cast<float>(is);
    const float mf = static_cast<float>(m), isf = static_cast<float>(is);
    float* yp = a.y + off[1];
    for (uint32_t i = lane; i < a.d; i += G) {
      float v = (xp[i * a.sx] - mf) * isf;
      if (a.w) v *= a.w[i * a.sw];
      if (a.b) v += a.b[i * a.sb];
      yp[i * a.sy] = v;
    }
  }
}

struct LayerNormDx {
  RowIndex<5> rows;  // x, dy, dx, mean, invstd
  uint32_t nrows, d;
  const float* x;
  const float* dy;
  float* dx;
  const float* mean;
  const float* invstd;
  int64_t sx, sd, so;
  const float* w;
  int64_t sw;
  bool accumulate;
};

/// dx = invstd * (g - mean(g) - xhat * mean(g * xhat)) per row, g = dy * weight.
template <int G>
__global__ void __launch_bounds__(kThreads) layer_norm_dx_rows(LayerNormDx a) {
  __shared__ double sm[G > 32 ? G / 32 : 1];
  const uint32_t lane = threadIdx.x % G, groups = gridDim.x * (kThreads / G);
  for (uint32_t row = blockIdx.x * (kThreads / G) + threadIdx.x / G; row < a.nrows; row += groups) {
    int64_t off[5];
    a.rows.offsets(row, off);
    const float* xp = a.x + off[0];
    const float* dp = a.dy + off[1];
    float* op = a.dx + off[2];
    const float m = a.mean[off[3]], is = a.invstd[off[4]];
    double sum_g = 0, sum_gx = 0;
    for (uint32_t i = lane; i < a.d; i += G) {
      const double gi = static_cast<double>(dp[i * a.sd]) * (a.w ? a.w[i * a.sw] : 1.f);
      sum_g += gi, sum_gx += gi * (xp[i * a.sx] - m) * is;
    }
    const float ka = static_cast<float>(group_reduce<G>(sum_g, sm, Add{}) / a.d);
    const float kb = static_cast<float>(group_reduce<G>(sum_gx, sm, Add{}) / a.d);
    for (uint32_t i = lane; i < a.d; i += G) {
      const float xhat = (xp[i * a.sx] - m) * is;
      put(op + i * a.so, is * (dp[i * a.sd] * (a.w ? a.w[i * a.sw] : 1.f) - ka - xhat * kb), a.accumulate);
    }
  }
}

/// Layer norm's parameter gradients as column sums over dy's rows: dw = sum dy * xhat, db = sum dy.
struct LayerNormParamSums {
  RowIndex<4> rows;  // x, dy, mean, invstd
  const float* x;
  const float* dy;
  const float* mean;
  const float* invstd;
  int64_t sx, sd;
  Chan dw, db;
  bool accumulate;
  __device__ void add(uint32_t r, uint32_t i, double& s0, double& s1) const {
    int64_t off[4];
    rows.offsets(r, off);
    const float m = mean[off[2]], is = invstd[off[3]];
    const double dv = dy[off[1] + i * sd];
    s0 += dv * ((x[off[0] + i * sx] - m) * is);
    s1 += dv;
  }
  __device__ void finish(uint32_t i, double s0, double s1) const {
    if (dw.has(i)) put(&dw.at(i), static_cast<float>(s0), accumulate);
    if (db.has(i)) put(&db.at(i), static_cast<float>(s1), accumulate);
  }
};

/// The dims of `box` but `skip` (-1: none) as row dims: their extents, and the strides of `vs`
/// along them (a view of lower rank has the box's leading dims).
template <int K>
RowIndex<K> rows_of(const View& box, int skip, std::initializer_list<const View*> vs) {
  int64_t size[kMaxRank] = {}, strides[K][kMaxRank] = {};
  int n = 0;
  for (int d = 0; d < box.rank; ++d) {
    if (d == skip) continue;
    size[n] = box.size[d];
    int k = 0;
    for (const View* v : vs) {
      strides[k][n] = v && d < v->rank ? v->stride[d] : 0;
      ++k;
    }
    ++n;
  }
  return make_row_index<K>(n, size, strides);
}

/// Checks a per-row view (mean, invstd) holding the rows of `box` (its dims but the last).
bool holds_rows(const View& v, const View& box) {
  View rows = box;
  rows.rank = box.rank - 1;
  return v.dtype == DType::f32 && holds(v, rows, rows);
}

/// Checks a [D] parameter view (layer norm's weight and bias) holding all of [0, d).
bool holds_param(const View* v, int64_t d) {
  return !v || (v->rank == 1 && v->dtype == DType::f32 && v->full[0] == d && v->lo[0] == 0 && v->size[0] == d);
}

// ---- softmax and log-softmax ------------------------------------------------------------------------

enum class Soft : int { forward, backward, log_forward, log_backward };

/// Lines along the axis: forward reads a (x) and writes out (y); backward reads a (y) and b (dy)
/// and writes (or adds to) out (dx).
struct SoftmaxLines {
  RowIndex<3> lines;  // a, b, out
  uint32_t nlines, n;
  const float* a;
  const float* b;
  float* out;
  int64_t sa, sb, so;
  bool accumulate;
};

template <int G, Soft K>
__global__ void __launch_bounds__(kThreads) softmax_lines(SoftmaxLines s) {
  __shared__ double smd[G > 32 ? G / 32 : 1];
  __shared__ float smf[G > 32 ? G / 32 : 1];
  const uint32_t lane = threadIdx.x % G, groups = gridDim.x * (kThreads / G);
  for (uint32_t line = blockIdx.x * (kThreads / G) + threadIdx.x / G; line < s.nlines; line += groups) {
    int64_t off[3];
    s.lines.offsets(line, off);
    const float* a = s.a + off[0];
    const float* b = s.b + off[1];
    float* out = s.out + off[2];
    if constexpr (K == Soft::forward || K == Soft::log_forward) {
      float mx = -INFINITY;
      for (uint32_t i = lane; i < s.n; i += G) mx = fmaxf(mx, a[i * s.sa]);
      mx = group_reduce<G>(mx, smf, Max{});
      double sum = 0;
      if constexpr (K == Soft::forward) {
        for (uint32_t i = lane; i < s.n; i += G) sum += expf(a[i * s.sa] - mx);
        const float inv = static_cast<float>(1.0 / group_reduce<G>(sum, smd, Add{}));
        for (uint32_t i = lane; i < s.n; i += G) out[i * s.so] = expf(a[i * s.sa] - mx) * inv;
      } else {
        const double m = mx;
        for (uint32_t i = lane; i < s.n; i += G) sum += exp(static_cast<double>(a[i * s.sa]) - m);
        const double lse = m + log(group_reduce<G>(sum, smd, Add{}));
        for (uint32_t i = lane; i < s.n; i += G) out[i * s.so] = static_cast<float>(a[i * s.sa] - lse);
      }
    } else if constexpr (K == Soft::backward) {  // dx = y * (dy - sum(dy * y))
      double dot = 0;
      for (uint32_t i = lane; i < s.n; i += G) dot += static_cast<double>(a[i * s.sa]) * b[i * s.sb];
      const float dotf = static_cast<float>(group_reduce<G>(dot, smd, Add{}));
      for (uint32_t i = lane; i < s.n; i += G) put(out + i * s.so, a[i * s.sa] * (b[i * s.sb] - dotf), s.accumulate);
    } else {  // dx = dy - exp(y) * sum(dy)
      double sum = 0;
      for (uint32_t i = lane; i < s.n; i += G) sum += b[i * s.sb];
      sum = group_reduce<G>(sum, smd, Add{});
      for (uint32_t i = lane; i < s.n; i += G)
        put(out + i * s.so, static_cast<float>(b[i * s.sb] - exp(static_cast<double>(a[i * s.sa])) * sum),
            s.accumulate);
    }
  }
}

/// Runs a softmax kernel over the lines of `box` (out's box) along `axis`: a reads (x or y), b the
/// backward's dy.
template <Soft K>
void softmax_family(Context& ctx, int axis, const View& box, const View& a, const View* b, const View& out,
                    bool accumulate) {
  require_index_space(box.volume(), "softmax: too many elements for the cuda kernels");
  SoftmaxLines s;
  s.lines = rows_of<3>(box, axis, {&a, b, &out});
  s.n = static_cast<uint32_t>(box.size[axis]);
  s.nlines = static_cast<uint32_t>(box.volume() / box.size[axis]);
  s.a = origin_f32(a, box);
  s.b = b ? origin_f32(*b, box) : nullptr;
  s.out = origin_f32(out, box);
  s.sa = a.stride[axis], s.sb = b ? b->stride[axis] : 0, s.so = out.stride[axis];
  s.accumulate = accumulate;
  // Lines along the last dim are read by a warp or a block each (coalesced); lines along another
  // dim lie side by side along the last one, so one thread per line reads coalesced.
  const int g = group_for(s.n, s.nlines, axis != box.rank - 1 || s.n < 32);
  with_group(g, [&](auto G) {
    softmax_lines<decltype(G)::value, K>
        <<<blocks_for_groups(ctx, s.nlines, decltype(G)::value), kThreads, 0, ctx.stream>>>(s);
  });
  FFRT_LAUNCHED(&ctx);
}

int normalize_axis(int axis, int rank) {
  const int a = axis < 0 ? axis + rank : axis;
  require(a >= 0 && a < rank, "softmax: axis out of range");
  return a;
}

void check_whole_axis(const View& v, int axis) {
  require(axis >= 0 && axis < v.rank, "log_softmax: axis out of range");
  require(v.lo[axis] == 0 && v.size[axis] == v.full[axis], "log_softmax: the axis must be whole in every part");
}

}  // namespace

// ---- batch norm ---------------------------------------------------------------------------------------

void batch_norm_stats(Context& ctx, const View& x, const View& stats) {
  require_bn_input(x, "batch_norm_stats: x must be an f32 [N, C] or [N, C, H, W] view");
  const int64_t c0 = stats.lo[1], n = stats.size[1];
  require(holds_stats(stats, x.full[1], c0, n, false), "batch_norm_stats: stats must be an f64 [2, C] view");
  if (stats.volume() == 0) return;
  require(c0 >= x.lo[1] && c0 + n <= x.hi(1), "batch_norm_stats: x does not hold the channels of stats");
  View box = x;  // x's box over the channels of stats
  box.lo[1] = c0, box.size[1] = n;
  channel_sums<false>(ctx, box, x, nullptr, Chan{}, SumsOut{stats_of(stats), c0, Chan{}});
}

void batch_norm_forward(Context& ctx, Act act, float eps, int64_t count, const View& x, const View& stats,
                        const View* weight, const View* bias, const View& y, const View& mean, const View& invstd) {
  require_bn_input(y, "batch_norm_forward: y must be an f32 [N, C] or [N, C, H, W] view");
  require(count > 0, "batch_norm_forward: count must be positive");
  const int64_t channels = y.full[1];
  for (const View* v : {&mean, &invstd})
    require(
        holds_channels(*v, channels, v->lo[0], v->size[0]) && holds_stats(stats, channels, v->lo[0], v->size[0], true),
        "batch_norm_forward: stats (an f64 [2, C] view) does not hold the channels of mean and invstd");
  const bool any = y.volume() > 0;
  const int64_t c0 = y.lo[1], nc = any ? y.size[1] : 0;
  if (any) {
    require(x.dtype == DType::f32 && holds(x, y, y), "batch_norm_forward: x does not hold y's box");
    require(holds_stats(stats, channels, c0, nc, true),
            "batch_norm_forward: stats (an f64 [2, C] view) does not hold y's channels");
    require(!weight || holds_channels(*weight, channels, c0, nc),
            "batch_norm_forward: weight does not hold y's channels");
    require(!bias || holds_channels(*bias, channels, c0, nc), "batch_norm_forward: bias does not hold y's channels");
  }
  const ForwardCoefs f{stats_of(stats), static_cast<double>(count), eps, chan_of(weight), chan_of(bias), chan_of(&mean),
                       chan_of(&invstd)};
  // One thread per channel computes the coefficients of an [N, C] box, and mean and invstd where
  // the blocks of an [N, C, H, W] box do not (channels outside y's).
  const bool rows = any && y.rank == 2;
  std::shared_ptr<std::byte> coef;
  Hull hull;
  if (rows) coef = coefficients(ctx, 3, nc), hull.add(c0, c0 + nc);
  for (const View* v : {&mean, &invstd})
    if (!any || v->lo[0] < c0 || v->hi(0) > c0 + nc) hull.add(v);
  if (hull.lo < hull.hi) {
    forward_coefs<<<blocks_for(hull.hi - hull.lo), kThreads, 0, ctx.stream>>>(f, c0, rows ? nc : 0, floats(coef),
                                                                              hull.lo, hull.hi - hull.lo);
    FFRT_LAUNCHED(&ctx);
  }
  if (!any) return;
  if (rows) {
    require_index_space(y.volume(), "batch_norm_forward: too many elements for the cuda kernels");
    const auto total = static_cast<uint32_t>(y.volume());
    with_act(act, [&](auto A) {
      normalize2<decltype(A)::value><<<blocks_for(total), kThreads, 0, ctx.stream>>>(
          total, FastDiv(static_cast<uint32_t>(nc)), origin_f32(x, y), x.stride[0], x.stride[1], y.f32(), y.stride[0],
          y.stride[1], floats(coef));
    });
    FFRT_LAUNCHED(&ctx);
    return;
  }
  int vec = 1;
  const Walk w = make_walk(ctx, y, {&x, &y}, vec);
  const Plane xp = plane_of(x, y, w), yp = plane_of(y, y, w);
  const auto blocks = static_cast<unsigned>(nc * w.splits);
  with_act(act, [&](auto A) {
    if (vec == 4)
      normalize4<4, decltype(A)::value><<<blocks, kThreads, 0, ctx.stream>>>(w, xp, yp, f, c0);
    else
      normalize4<1, decltype(A)::value><<<blocks, kThreads, 0, ctx.stream>>>(w, xp, yp, f, c0);
  });
  FFRT_LAUNCHED(&ctx);
}

void batch_norm_update_running(Context& ctx, float momentum, int64_t count, const View& stats, const View& running_mean,
                               const View& running_var) {
  require(count > 1, "batch_norm_update_running: the unbiased variance needs more than one value per channel");
  const int64_t channels = stats.full[1];
  for (const View* v : {&running_mean, &running_var})
    require(
        holds_channels(*v, channels, v->lo[0], v->size[0]) && holds_stats(stats, channels, v->lo[0], v->size[0], true),
        "batch_norm_update_running: stats (an f64 [2, C] view) does not hold the channels of the running statistics");
  Hull hull;
  hull.add(&running_mean), hull.add(&running_var);
  if (hull.hi <= hull.lo) return;
  update_running<<<blocks_for(hull.hi - hull.lo), kThreads, 0, ctx.stream>>>(
      stats_of(stats), static_cast<double>(count), momentum, chan_of(&running_mean), chan_of(&running_var), hull.lo,
      hull.hi - hull.lo);
  FFRT_LAUNCHED(&ctx);
}

void batch_norm_param_grads(Context& ctx, const View& stats, const View* dweight, const View* dbias) {
  const int64_t channels = stats.full[1];
  for (const View* v : {dweight, dbias})
    if (v)
      require(holds_channels(*v, channels, v->lo[0], v->size[0]) &&
                  holds_stats(stats, channels, v->lo[0], v->size[0], true),
              "batch_norm_param_grads: stats (an f64 [2, C] view) does not hold the channels of the gradients");
  Hull hull;
  hull.add(dweight), hull.add(dbias);
  if (hull.hi <= hull.lo) return;
  add_param_grads<<<blocks_for(hull.hi - hull.lo), kThreads, 0, ctx.stream>>>(
      stats_of(stats), chan_of(dweight), chan_of(dbias), hull.lo, hull.hi - hull.lo);
  FFRT_LAUNCHED(&ctx);
}

void batch_norm_running_stats(Context& ctx, int64_t count, const View& running_mean, const View& running_var,
                              const View& stats) {
  const int64_t channels = stats.full[1], c0 = stats.lo[1], n = stats.size[1];
  require(stats.dtype == DType::f64 && stats.rank == 2 && stats.lo[0] == 0 && stats.size[0] == 2 &&
              holds_channels(running_mean, channels, c0, n) && holds_channels(running_var, channels, c0, n),
          "batch_norm_running_stats: the running statistics do not hold the channels of stats (an f64 [2, C] view)");
  if (n == 0) return;
  running_as_sums<<<blocks_for(n), kThreads, 0, ctx.stream>>>(static_cast<double>(count), chan_of(&running_mean),
                                                              chan_of(&running_var), stats_of(stats), c0, n);
  FFRT_LAUNCHED(&ctx);
}

void batch_norm_backward_stats(Context& ctx, const View& x, const View& dy, const View& mean, const View& invstd,
                               const View& stats) {
  require_bn_input(dy, "batch_norm_backward_stats: dy must be an f32 [N, C] or [N, C, H, W] view");
  const int64_t c0 = stats.lo[1], n = stats.size[1], channels = dy.full[1];
  require(holds_stats(stats, channels, c0, n, false), "batch_norm_backward_stats: stats must be an f64 [2, C] view");
  if (stats.volume() == 0) return;
  require(c0 >= dy.lo[1] && c0 + n <= dy.hi(1), "batch_norm_backward_stats: dy does not hold the channels of stats");
  require(holds_channels(mean, channels, c0, n) && holds_channels(invstd, channels, c0, n),
          "batch_norm_backward_stats: mean and invstd do not hold the channels of stats");
  View box = dy;  // dy's box over the channels of stats
  box.lo[1] = c0, box.size[1] = n;
  require(x.dtype == DType::f32 && holds(x, dy, box), "batch_norm_backward_stats: x does not hold dy's box");
  // Row 0: sum dy; row 1: sum dy * (x - mean), times invstd at the end.
  channel_sums<true>(ctx, box, x, &dy, chan_of(&mean), SumsOut{stats_of(stats), c0, chan_of(&invstd)});
}

void batch_norm_backward_data(Context& ctx, int64_t count, const View& x, const View& dy, const View& mean,
                              const View& invstd, const View* weight, const View& stats, const View& dx,
                              bool accumulate) {
  require_bn_input(dx, "batch_norm_backward_data: dx must be an f32 [N, C] or [N, C, H, W] view");
  require(count > 0, "batch_norm_backward_data: count must be positive");
  if (dx.volume() == 0) return;
  const int64_t c0 = dx.lo[1], nc = dx.size[1], channels = dx.full[1];
  require(x.dtype == DType::f32 && holds(x, dx, dx), "batch_norm_backward_data: x does not hold dx's box");
  require(dy.dtype == DType::f32 && holds(dy, dx, dx), "batch_norm_backward_data: dy does not hold dx's box");
  require(holds_channels(mean, channels, c0, nc) && holds_channels(invstd, channels, c0, nc) &&
              (!weight || holds_channels(*weight, channels, c0, nc)) && holds_stats(stats, channels, c0, nc, true),
          "batch_norm_backward_data: mean, invstd, weight or stats (an f64 [2, C] view) do not hold dx's channels");
  // dx = (dy - sum_dy / count - (x - mean) * invstd * sum_dy_xhat / count) * invstd * weight.
  const DxCoefs f{stats_of(stats), static_cast<double>(count), chan_of(&mean), chan_of(&invstd), chan_of(weight)};
  if (dx.rank == 2) {
    std::shared_ptr<std::byte> coef = coefficients(ctx, 4, nc);
    dx_coefs<<<blocks_for(nc), kThreads, 0, ctx.stream>>>(f, c0, nc, floats(coef));
    FFRT_LAUNCHED(&ctx);
    require_index_space(dx.volume(), "batch_norm_backward_data: too many elements for the cuda kernels");
    const auto total = static_cast<uint32_t>(dx.volume());
    backward_data2<<<blocks_for(total), kThreads, 0, ctx.stream>>>(
        total, FastDiv(static_cast<uint32_t>(nc)), origin_f32(x, dx), x.stride[0], x.stride[1], origin_f32(dy, dx),
        dy.stride[0], dy.stride[1], dx.f32(), dx.stride[0], dx.stride[1], floats(coef), accumulate);
    FFRT_LAUNCHED(&ctx);
    return;
  }
  int vec = 1;
  const Walk w = make_walk(ctx, dx, {&x, &dy, &dx}, vec);
  const Plane xp = plane_of(x, dx, w), dp = plane_of(dy, dx, w), op = plane_of(dx, dx, w);
  const auto blocks = static_cast<unsigned>(nc * w.splits);
  if (vec == 4)
    backward_data4<4><<<blocks, kThreads, 0, ctx.stream>>>(w, xp, dp, op, f, c0, accumulate);
  else
    backward_data4<1><<<blocks, kThreads, 0, ctx.stream>>>(w, xp, dp, op, f, c0, accumulate);
  FFRT_LAUNCHED(&ctx);
}

// ---- layer norm -------------------------------------------------------------------------------------

void layer_norm_forward(Context& ctx, float eps, const View& x, const View* weight, const View* bias, const View& y,
                        const View& mean, const View& invstd) {
  require(y.dtype == DType::f32 && y.rank >= 1, "layer_norm_forward: y must be an f32 view of rank >= 1");
  if (y.volume() == 0) return;
  const int last = y.rank - 1;
  const int64_t d = y.full[last];
  require(y.lo[last] == 0 && y.size[last] == d, "layer_norm_forward: y's box must hold whole rows");
  require(x.dtype == DType::f32 && holds(x, y, y), "layer_norm_forward: x does not hold y's box");
  require(holds_rows(mean, y) && holds_rows(invstd, y), "layer_norm_forward: mean and invstd do not hold y's rows");
  require(holds_param(weight, d) && holds_param(bias, d),
          "layer_norm_forward: weight and bias must be whole [D] views");
  require_index_space(y.volume(), "layer_norm_forward: too many elements for the cuda kernels");
  LayerNormRows a;
  a.rows = rows_of<4>(y, last, {&x, &y, &mean, &invstd});
  a.nrows = static_cast<uint32_t>(y.volume() / d), a.d = static_cast<uint32_t>(d);
  a.x = origin_f32(x, y), a.y = y.f32(), a.mean = origin_f32(mean, y), a.invstd = origin_f32(invstd, y);
  a.sx = x.stride[last], a.sy = y.stride[last];
  a.w = weight ? weight->f32() : nullptr, a.b = bias ? bias->f32() : nullptr;
  a.sw = weight ? weight->stride[0] : 0, a.sb = bias ? bias->stride[0] : 0;
  a.eps = eps;
  with_group(group_for(d, a.nrows, false), [&](auto G) {
    layer_norm_rows<decltype(G)::value>
        <<<blocks_for_groups(ctx, a.nrows, decltype(G)::value), kThreads, 0, ctx.stream>>>(a);
  });
  FFRT_LAUNCHED(&ctx);
}

void layer_norm_backward(Context& ctx, const View& x, const View& dy, const View& mean, const View& invstd,
                         const View* weight, const View& dx, const View* dw, const View* db, bool accumulate) {
  require(dy.dtype == DType::f32 && dy.rank >= 1, "layer_norm_backward: dy must be an f32 view of rank >= 1");
  const int last = dy.rank - 1;
  const int64_t d = dy.full[last];
  require(holds_param(weight, d), "layer_norm_backward: weight must be a whole [D] view");

  if (dx.volume() > 0) {
    require(dx.dtype == DType::f32 && dx.rank == dy.rank && dx.lo[last] == 0 && dx.size[last] == d,
            "layer_norm_backward: dx's box must hold whole rows");
    require(x.dtype == DType::f32 && holds(x, dx, dx) && holds(dy, dx, dx),
            "layer_norm_backward: x and dy do not hold dx's box");
    require(holds_rows(mean, dx) && holds_rows(invstd, dx),
            "layer_norm_backward: mean and invstd do not hold dx's rows");
    require_index_space(dx.volume(), "layer_norm_backward: too many elements for the cuda kernels");
    LayerNormDx a;
    a.rows = rows_of<5>(dx, last, {&x, &dy, &dx, &mean, &invstd});
    a.nrows = static_cast<uint32_t>(dx.volume() / d), a.d = static_cast<uint32_t>(d);
    a.x = origin_f32(x, dx), a.dy = origin_f32(dy, dx), a.dx = dx.f32();
    a.mean = origin_f32(mean, dx), a.invstd = origin_f32(invstd, dx);
    a.sx = x.stride[last], a.sd = dy.stride[last], a.so = dx.stride[last];
    a.w = weight ? weight->f32() : nullptr, a.sw = weight ? weight->stride[0] : 0;
    a.accumulate = accumulate;
    with_group(group_for(d, a.nrows, false), [&](auto G) {
      layer_norm_dx_rows<decltype(G)::value>
          <<<blocks_for_groups(ctx, a.nrows, decltype(G)::value), kThreads, 0, ctx.stream>>>(a);
    });
    FFRT_LAUNCHED(&ctx);
  }

  // dw = sum over dy's rows of dy * xhat, db = sum of dy, over their boxes of [0, D).
  if ((dw && dw->volume() > 0) || (db && db->volume() > 0)) {
    for (const View* v : {dw, db})
      require(!v || (v->rank == 1 && v->dtype == DType::f32 && v->full[0] == d),
              "layer_norm_backward: dw and db must be [D] views");
    const bool rows = dy.volume() > 0;
    if (rows) {
      require(x.dtype == DType::f32 && holds(x, dy, dy), "layer_norm_backward: x does not hold dy's box");
      require(dy.lo[last] == 0 && dy.size[last] == d, "layer_norm_backward: dy's box must hold whole rows");
      require(holds_rows(mean, dy) && holds_rows(invstd, dy),
              "layer_norm_backward: mean and invstd do not hold dy's rows");
      require_index_space(dy.volume(), "layer_norm_backward: too many elements for the cuda kernels");
    }
    require_index_space(d, "layer_norm_backward: too many columns for the cuda kernels");
    LayerNormParamSums op{};
    if (rows) {
      op.rows = rows_of<4>(dy, last, {&x, &dy, &mean, &invstd});
      op.x = origin_f32(x, dy), op.dy = dy.f32(), op.mean = origin_f32(mean, dy), op.invstd = origin_f32(invstd, dy);
      op.sx = x.stride[last], op.sd = dy.stride[last];
    }
    op.dw = chan_of(dw), op.db = chan_of(db), op.accumulate = accumulate;
    launch_column_sums(ctx, op, rows ? dy.volume() / d : 0, d);
  }
}

// ---- softmax ------------------------------------------------------------------------------------------

void softmax_forward(Context& ctx, int axis, const View& x, const View& y) {
  require(y.dtype == DType::f32 && y.rank >= 1, "softmax_forward: y must be an f32 view of rank >= 1");
  const int a = normalize_axis(axis, y.rank);
  if (y.volume() == 0) return;
  const int64_t n = y.full[a];
  require(y.lo[a] == 0 && y.size[a] == n, "softmax_forward: y's box must hold the whole axis");
  require(x.dtype == DType::f32 && holds(x, y, y), "softmax_forward: x does not hold y's box");
  softmax_family<Soft::forward>(ctx, a, y, x, nullptr, y, false);
}

void softmax_backward(Context& ctx, int axis, const View& y, const View& dy, const View& dx, bool accumulate) {
  require(dx.dtype == DType::f32 && dx.rank >= 1, "softmax_backward: dx must be an f32 view of rank >= 1");
  const int a = normalize_axis(axis, dx.rank);
  if (dx.volume() == 0) return;
  const int64_t n = dx.full[a];
  require(dx.lo[a] == 0 && dx.size[a] == n, "softmax_backward: dx's box must hold the whole axis");
  require(y.dtype == DType::f32 && holds(y, dx, dx) && dy.dtype == DType::f32 && holds(dy, dx, dx),
          "softmax_backward: y and dy do not hold dx's box");
  softmax_family<Soft::backward>(ctx, a, dx, y, &dy, dx, accumulate);
}

void log_softmax_forward(Context& ctx, int axis, const View& x, const View& y) {
  check_whole_axis(y, axis);
  require(box_inside(y, x), "log_softmax: x does not hold y's box");
  if (y.volume() == 0) return;
  softmax_family<Soft::log_forward>(ctx, axis, y, x, nullptr, y, false);
}

void log_softmax_backward(Context& ctx, int axis, const View& y, const View& dy, const View& dx, bool accumulate) {
  check_whole_axis(dx, axis);
  require(box_inside(dx, y) && box_inside(dx, dy), "log_softmax_backward: views do not hold dx's box");
  if (dx.volume() == 0) return;
  softmax_family<Soft::log_backward>(ctx, axis, dx, y, &dy, dx, accumulate);
}

}  // namespace ffrt
