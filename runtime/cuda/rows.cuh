// What norm.cu, loss.cu and embedding.cu share: host checks of views (the cpu backend's), the rows
// of a box (every dim but one, or all dims) as 32-bit indices whose offsets in several views come
// from fast division, and sums and maxima across a group of threads (one thread, a warp or a block)
// that give every thread of the group the same value, in an order fixed by the launch shape.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "common.cuh"

namespace ffrt::cuda {

// ---- host checks ----------------------------------------------------------------------------------

/// The kernels here index elements, rows and channels with 32-bit integers.
inline void require_index_space(int64_t n, const char* what) { require(n < (int64_t{1} << 31), what); }

/// The offset in v of the first element of `box` (whose first v.rank dims are v's).
inline int64_t origin_offset(const View& v, const View& box) {
  int64_t o = 0;
  for (int d = 0; d < v.rank; ++d) o += (box.lo[d] - v.lo[d]) * v.stride[d];
  return o;
}

/// v's buffer at the first element of `box`, as floats.
inline float* origin_f32(const View& v, const View& box) { return v.f32() + origin_offset(v, box); }

/// The device's multiprocessors (a cached runtime query, no synchronization).
inline int sm_count(Context& ctx) {
  int n = 0;
  FFRT_CUDA(&ctx, cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, ctx.device));
  return n;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- fast division ---------------------------------------------------------------------------------

/// n / d for a divisor fixed at launch, by a multiply and a shift (Granlund and Montgomery's
/// round-up method, exact for every 32-bit n; the 33-bit sum is done in 64 bits).
struct FastDiv {
  uint32_t d = 1, magic = 1, shift = 0;
  FastDiv() = default;
  explicit FastDiv(uint32_t divisor) : d(divisor > 0 ? divisor : 1) {
    while ((uint64_t{1} << shift) < d) ++shift;
    magic = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }
  __device__ uint32_t div(uint32_t n) const {
    return static_cast<uint32_t>((static_cast<uint64_t>(__umulhi(n, magic)) + n) >> shift);
  }
};

// ---- rows ------------------------------------------------------------------------------------------

/// The rows of a box in K views: row r (row-major over the box's row dims) lies at offsets(r) from
/// each view's element at the box's origin. Dims of extent 1 are dropped and adjacent dims merged
/// where every view's layout allows, so dense views take no division.
template <int K>
struct RowIndex {
  int nd = 0;
  uint32_t size[kMaxRank] = {};
  FastDiv div[kMaxRank];
  int64_t stride[K][kMaxRank] = {};

  __device__ void offsets(uint32_t r, int64_t (&off)[K]) const {
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = nd - 1; d > 0; --d) {
      const uint32_t q = div[d].div(r), i = r - q * size[d];
#pragma unroll
      for (int k = 0; k < K; ++k) off[k] += static_cast<int64_t>(i) * stride[k][d];
      r = q;
    }
    if (nd > 0) {
#pragma unroll
      for (int k = 0; k < K; ++k) off[k] += static_cast<int64_t>(r) * stride[k][0];
    }
  }
};

/// The RowIndex of `n` dims (outer to inner) of extents `size`; strides[k][i] is view k's stride
/// along dim i. The caller checks that the rows (the product of the extents) fit in 31 bits.
template <int K>
RowIndex<K> make_row_index(int n, const int64_t* size, const int64_t (&strides)[K][kMaxRank]) {
  RowIndex<K> ri;
  int64_t merged[kMaxRank] = {};
  for (int i = 0; i < n; ++i) {
    if (size[i] == 1) continue;
    bool merge = ri.nd > 0;
    for (int k = 0; k < K && merge; ++k) merge = ri.stride[k][ri.nd - 1] == strides[k][i] * size[i];
    if (!merge) merged[ri.nd++] = 1;
    merged[ri.nd - 1] *= size[i];
    for (int k = 0; k < K; ++k) ri.stride[k][ri.nd - 1] = strides[k][i];
  }
  for (int d = 0; d < ri.nd; ++d) {
    ri.size[d] = static_cast<uint32_t>(merged[d]);
    ri.div[d] = FastDiv(ri.size[d]);
  }
  return ri;
}

// ---- group reductions --------------------------------------------------------------------------------

/// Combines v over a group of G consecutive threads (1, a warp, or a whole block of G threads) with
/// the associative `f`; every thread of the group gets the same result. Groups larger than a warp
/// use `smem` (G / 32 values) and synchronize the block, so every thread of the block must call it.
template <int G, typename T, typename F>
__device__ T group_reduce(T v, T* smem, F f) {
  static_assert(G == 1 || G == 32 || (G % 32 == 0 && G <= 1024), "a group is a thread, a warp or a block");
  if constexpr (G == 1) {
    return v;
  } else {
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) v = f(v, __shfl_xor_sync(0xffffffffu, v, m));  // xor: equal in every lane
    if constexpr (G == 32) {
      return v;
    } else {
      if (threadIdx.x % 32 == 0) smem[threadIdx.x / 32] = v;
      __syncthreads();
      T r = smem[0];
      for (int w = 1; w < G / 32; ++w) r = f(r, smem[w]);
      __syncthreads();  // smem is free again
      return r;
    }
  }
}

/// *p = v, or *p += v with `accumulate`.
__device__ inline void put(float* p, float v, bool accumulate) { *p = accumulate ? *p + v : v; }

struct Add {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

/// Calls f(std::integral_constant<int, G>{}) for G = g: 1, 32 or kThreads threads per group.
template <typename F>
void with_group(int g, F&& f) {
  if (g == 1)
    f(std::integral_constant<int, 1>{});
  else if (g == 32)
    f(std::integral_constant<int, 32>{});
  else
    f(std::integral_constant<int, kThreads>{});
}

/// Blocks of kThreads threads for `items` groups of g threads each, at most a few waves (the
/// kernels loop over the rest).
inline unsigned blocks_for_groups(Context& ctx, int64_t items, int g) {
  const int64_t blocks = ceil_div(items, kThreads / g), cap = int64_t{sm_count(ctx)} * 32;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > cap ? cap : blocks));
}

}  // namespace ffrt::cuda
