// What the cuda backend's kernel files share: the view checks (both backends'), activations on the
// device, views passed by value to kernels, coordinates of the i-th element of a box, offsets,
// launch shapes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "../core/box_checks.h"
#include "context.h"
#include "ffrt/view.h"

namespace ffrt::cuda {

using checks::box_holds;  // the checks both backends make (core/box_checks.h)
using checks::box_inside;
using checks::holds;
using checks::require;

// ---- activations --------------------------------------------------------------------------------

/// act(z), as the cpu backend computes it (exact erf GELU).
template <Act A>
__device__ inline float act_value(float z) {
  if constexpr (A == Act::relu) return z > 0.f ? z : 0.f;
  if constexpr (A == Act::sigmoid) return 1.f / (1.f + expf(-z));
  if constexpr (A == Act::tanh) return tanhf(z);
  if constexpr (A == Act::gelu) return 0.5f * z * (1.f + erff(z * 0.70710678118654752f));
  return z;
}

/// Returns f(std::integral_constant<Act, act>{}): kernels instantiated once per activation.
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

/// A View as a kernel argument (trivially copyable, by value).
struct DView {
  void* data;
  int rank;
  int64_t lo[kMaxRank], size[kMaxRank], stride[kMaxRank], full[kMaxRank];
};

inline DView dview(const View& v) {
  DView d{};
  d.data = v.data;
  d.rank = v.rank;
  for (int i = 0; i < kMaxRank; ++i) {
    d.lo[i] = v.lo[i];
    d.size[i] = v.size[i];
    d.stride[i] = v.stride[i];
    d.full[i] = v.full[i];
  }
  return d;
}

/// Global coordinates `g` of the i-th element (row-major) of `box`'s box.
__host__ __device__ inline void coords_of(const DView& box, int64_t i, int64_t* g) {
  for (int d = box.rank - 1; d >= 0; --d) {
    const int64_t s = box.size[d];
    g[d] = box.lo[d] + (s > 0 ? i % s : 0);
    i = s > 0 ? i / s : 0;
  }
}

/// The element offset of global coordinates `g` in v (g must lie in v's box).
__host__ __device__ inline int64_t offset_of(const DView& v, const int64_t* g) {
  int64_t o = 0;
  for (int d = 0; d < v.rank; ++d) o += (g[d] - v.lo[d]) * v.stride[d];
  return o;
}

__host__ __device__ inline int64_t volume_of(const DView& v) {
  int64_t n = 1;
  for (int d = 0; d < v.rank; ++d) n *= v.size[d];
  return n;
}

constexpr int kThreads = 256;

/// Blocks for a grid-stride loop over n elements.
inline unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

/// for (i = thread; i < n; i += grid) inside a kernel.
#define FFRT_GRID_LOOP(i, n)                                                                   \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);       \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

}  // namespace ffrt::cuda
