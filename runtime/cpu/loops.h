// Helpers shared by the cpu backend's kernel files: argument checks, loops over the elements or
// the lines of a box (split over the context's threads when there is enough work), per-thread
// partial sums combined in a fixed order, and the activation functions.
//
// Every parallel loop here splits its iterations evenly and in row-major order over a thread count
// that depends only on the work and on ctx.threads, so a result never depends on scheduling, and
// is the same on every run for a given thread count.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../core/box_checks.h"
#include "context.h"

namespace ffrt::cpu {

/// Loops doing less work than this (elements touched, or multiply-adds) run on one thread: an
/// OpenMP region costs microseconds, and much more on a loaded machine.
constexpr int64_t kMinParallelWork = int64_t{1} << 15;

using checks::box_holds;  // the checks both backends make (core/box_checks.h)
using checks::box_inside;
using checks::holds;
using checks::require;

// ---- boxes ----------------------------------------------------------------------------------------

/// A half-open range of indices.
struct Span {
  int64_t lo = 0, hi = 0;
  int64_t size() const { return hi > lo ? hi - lo : 0; }
};

/// The extent of a box along its last dim (1 for rank 0): the length of its lines.
inline int64_t line_length(const View& box) { return box.rank > 0 ? box.size[box.rank - 1] : 1; }

/// *p = v, or *p += v with `accumulate`.
inline void store(float* p, float v, bool accumulate) { *p = accumulate ? *p + v : v; }

// ---- loops ----------------------------------------------------------------------------------------

/// The threads for a loop of `work` (elements or multiply-adds) over `items` independent items:
/// one below kMinParallelWork, else ctx.threads but no more than there are items.
inline int threads_for(const Context& ctx, int64_t work, int64_t items) {
  if (work < kMinParallelWork) return 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(ctx.threads, items)));
}

/// Calls f(coords) for every element of the box of `v`, row-major, coords global, on this thread.
template <typename F>
void for_each_index(const View& v, F&& f) {
  int64_t idx[kMaxRank];
  for (int d = 0; d < v.rank; ++d) {
    if (v.size[d] <= 0) return;
    idx[d] = v.lo[d];
  }
  while (true) {
    f(static_cast<const int64_t*>(idx));
    int d = v.rank - 1;
    for (; d >= 0; --d) {
      if (++idx[d] < v.hi(d)) break;
      idx[d] = v.lo[d];
    }
    if (d < 0) return;
  }
}

/// Calls f(t, g) (or f(g)) for every line of `box` along `axis` (once for rank 0): g holds the
/// global coordinates of the line's first element, t the calling thread in [0, threads). The lines
/// are split evenly over the threads in row-major order, so per-thread partial sums combined in
/// thread order give the same result on every run.
template <typename F>
void for_lines(const View& box, int axis, int threads, F&& f) {
  int64_t lines = 1;
  for (int d = 0; d < box.rank; ++d) lines *= d == axis ? (box.size[d] > 0 ? 1 : 0) : box.size[d];
  if (lines == 0) return;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t first = lines * t / nt, end = lines * (t + 1) / nt;
    int64_t g[kMaxRank] = {};
    int64_t rem = first;
    for (int d = box.rank - 1; d >= 0; --d) {
      g[d] = box.lo[d];
      if (d != axis) {
        g[d] += rem % box.size[d];
        rem /= box.size[d];
      }
    }
    for (int64_t l = first; l < end; ++l) {
      if constexpr (std::is_invocable_v<F&, int, const int64_t*>)
        f(t, static_cast<const int64_t*>(g));
      else
        f(static_cast<const int64_t*>(g));
      for (int d = box.rank - 1; d >= 0; --d) {
        if (d == axis) continue;
        if (++g[d] < box.hi(d)) break;
        g[d] = box.lo[d];
      }
    }
  }
}

/// for_lines along the last dim.
template <typename F>
void for_lines(const View& box, int threads, F&& f) {
  for_lines(box, box.rank - 1, threads, f);
}

/// for_lines along the last dim, on threads_for(the box's volume, its lines).
template <typename F>
void for_lines(const Context& ctx, const View& box, F&& f) {
  const int64_t n = box.volume();
  for_lines(box, box.rank - 1, threads_for(ctx, n, n / std::max<int64_t>(1, line_length(box))), f);
}

/// Calls f(g, len) for consecutive segments of the lines of `box` along its last dim, covering the
/// box in row-major order: g holds the global coordinates of a segment's first element, len its
/// length. The elements are split evenly over the threads that `work` (the loop's total work)
/// earns, so a long line is shared by several threads: for element-wise loops.
template <typename F>
void for_segments(const Context& ctx, const View& box, int64_t work, F&& f) {
  const int64_t total = box.volume();
  if (total == 0) return;
  if (box.rank == 0) {
    const int64_t none[1] = {};
    f(static_cast<const int64_t*>(none), int64_t{1});
    return;
  }
  const int last = box.rank - 1;
  const int threads = threads_for(ctx, work, total);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t first = total * t / nt, end = total * (t + 1) / nt;
    int64_t g[kMaxRank] = {};
    int64_t rem = first;
    for (int d = last; d >= 0; --d) {
      g[d] = box.lo[d] + rem % box.size[d];
      rem /= box.size[d];
    }
    for (int64_t e = first; e < end;) {
      const int64_t len = std::min(box.hi(last) - g[last], end - e);
      f(static_cast<const int64_t*>(g), len);
      e += len;
      g[last] += len;
      for (int d = last; d > 0 && g[d] == box.hi(d); --d) g[d] = box.lo[d], ++g[d - 1];
    }
  }
}

/// Calls f(begin, end) on consecutive ranges covering [0, n), split evenly over the threads that
/// `work` (the loop's total work) earns: for loops over dense memory.
template <typename F>
void for_range(const Context& ctx, int64_t n, int64_t work, F&& f) {
  if (n <= 0) return;
  const int threads = threads_for(ctx, work, n);
  if (threads <= 1) return f(int64_t{0}, n);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    f(n * t / nt, n * (t + 1) / nt);
  }
}

/// Per-thread accumulators of `len` doubles, combined in thread order.
class Partials {
 public:
  Partials(int threads, int64_t len) : len_(len), sums_(static_cast<size_t>(threads * len), 0.0) {}
  double* of(int t) { return sums_.data() + t * len_; }
  std::vector<double> total() const {
    std::vector<double> out(static_cast<size_t>(len_), 0.0);
    for (size_t i = 0; i < sums_.size(); ++i) out[i % len_] += sums_[i];
    return out;
  }

 private:
  int64_t len_;
  std::vector<double> sums_;
};

/// `nsums` sums over the lines of `box` along its last dim, in double: f(g, s) adds the line
/// starting at global coordinates g into the calling thread's accumulators s; the threads' sums
/// are added in thread order.
template <typename F>
std::vector<double> line_sums(Context& ctx, const View& box, int64_t nsums, F&& f) {
  const int64_t lines = box.volume() / std::max<int64_t>(1, line_length(box));
  const int threads = threads_for(ctx, box.volume(), lines);
  Partials partials(threads, nsums);
  for_lines(box, threads, [&](int t, const int64_t* g) { f(g, partials.of(t)); });
  return partials.total();
}

// ---- activations ----------------------------------------------------------------------------------

/// act(z), with the activation known at compile time.
template <Act A>
inline float act_value(float z) {
  if constexpr (A == Act::relu) return z > 0.f ? z : 0.f;
  if constexpr (A == Act::sigmoid) return 1.f / (1.f + std::exp(-z));
  if constexpr (A == Act::tanh) return std::tanh(z);
  if constexpr (A == Act::gelu) return 0.5f * z * (1.f + std::erf(z * 0.70710678118654752f));
  return z;
}

/// d act(z) / dz from the activation's input x (gelu) or output y (the others).
template <Act A>
inline float act_derivative(float x, float y) {
  if constexpr (A == Act::relu) return y > 0.f ? 1.f : 0.f;
  if constexpr (A == Act::sigmoid) return y * (1.f - y);
  if constexpr (A == Act::tanh) return 1.f - y * y;
  if constexpr (A == Act::gelu) {
    // Exact GELU, x * Phi(x): d/dx = Phi(x) + x * phi(x).
    const float cdf = 0.5f * (1.f + std::erf(x * 0.70710678118654752f));
    const float pdf = std::exp(-0.5f * x * x) * 0.39894228040143268f;
    return cdf + x * pdf;
  }
  return 1.f;
}

/// Returns f(std::integral_constant<Act, act>{}): code instantiated once per activation.
template <typename F>
decltype(auto) with_act(Act act, F&& f) {
  switch (act) {
    case Act::none: return f(std::integral_constant<Act, Act::none>{});
    case Act::relu: return f(std::integral_constant<Act, Act::relu>{});
    case Act::sigmoid: return f(std::integral_constant<Act, Act::sigmoid>{});
    case Act::tanh: return f(std::integral_constant<Act, Act::tanh>{});
    case Act::gelu: return f(std::integral_constant<Act, Act::gelu>{});
  }
  throw Error("unknown activation");
}

/// Applies an activation to a value.
inline float apply_act(Act act, float z) {
  return with_act(act, [&](auto A) { return act_value<decltype(A)::value>(z); });
}

/// dst[k * dstep] = act(src[k] + bias) for k in [0, n): the epilogue of a forward GEMM or of a
/// reduction (one loop per activation, vectorized for unit steps).
inline void bias_act(Act act, float bias, const float* src, int64_t n, float* dst, int64_t dstep) {
  with_act(act, [&](auto A) {
    if (dstep == 1) {
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) dst[k] = act_value<decltype(A)::value>(src[k] + bias);
    } else {
      for (int64_t k = 0; k < n; ++k) dst[k * dstep] = act_value<decltype(A)::value>(src[k] + bias);
    }
  });
}

}  // namespace ffrt::cpu
