// Element-wise loops over boxes, shared by the cuda backend's layout, element-wise, init and
// optimizer kernels: argument checks, and a launcher that walks several strided operands through
// one box together.
//
// A Walk holds the box's extents with adjacent dims merged wherever every operand steps through
// them as through one dim (extents of 1 dropped), so dense operands become one line and the kernel
// indexes them directly; otherwise each thread finds its element's offsets by dividing its index
// by the merged extents: by multiplying with a precomputed reciprocal when the box has fewer than
// 2^31 elements, else by 64-bit division.
#pragma once

#include <cstdint>

#include "common.cuh"

namespace ffrt::cuda {

/// A rank-0 view as a rank-1 view of one element (so that every box has a last dim).
inline View with_last_dim(const View& v) {
  if (v.rank > 0) return v;
  View r = v;
  r.rank = 1;
  r.lo[0] = 0, r.size[0] = 1, r.stride[0] = 1, r.full[0] = 1;
  return r;
}

/// The row-major pitches of a tensor's global extents: the stride of its global element index.
inline void global_pitches(const View& v, int64_t* pitch) {
  for (int64_t d = v.rank - 1, p = 1; d >= 0; --d) pitch[d] = p, p *= v.full[d];
}

/// The global row-major index of the first element of v's box.
inline int64_t global_index_of_lo(const View& v) {
  int64_t flat = 0;
  for (int d = 0; d < v.rank; ++d) flat = flat * v.full[d] + v.lo[d];
  return flat;
}

/// The reciprocal of a divisor 1 <= e < 2^31 for indices i < 2^31: i / e = (umulhi(i, magic) + i)
/// >> shift (the round-up reciprocal; Granlund and Montgomery). Leaves other divisors alone.
inline void set_divisor(int64_t e, uint32_t& magic, uint32_t& shift) {
  if (e <= 0 || e >= (int64_t{1} << 31)) return;
  const auto u = static_cast<uint64_t>(e);
  uint32_t sh = 0;
  while ((uint64_t{1} << sh) < u) ++sh;
  shift = sh;
  magic = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << sh) - u)) / u + 1);
}

/// i / e for i < 2^31 with e's reciprocal from set_divisor.
__device__ __forceinline__ uint32_t fast_div(uint32_t i, uint32_t magic, uint32_t shift) {
  return (__umulhi(i, magic) + i) >> shift;
}

/// N operands walked together over a box: merged extents and each operand's element strides.
template <int N>
struct Walk {
  int rank = 0;
  int64_t n = 0;  ///< elements
  int64_t ext[kMaxRank] = {};
  int64_t st[N][kMaxRank] = {};
  /// Reciprocals of ext[d] (set_divisor), set by make_walk when n < 2^31.
  uint32_t magic[kMaxRank] = {}, shift[kMaxRank] = {};

  /// One line along which every operand steps by one element.
  bool dense() const {
    if (rank != 1) return false;
    for (int k = 0; k < N; ++k)
      if (st[k][0] != 1) return false;
    return true;
  }
};

/// The walk over a box of extents size[0..rank) where operand k steps by strides[k][d] along dim d.
template <int N>
Walk<N> make_walk(int rank, const int64_t* size, const int64_t* const (&strides)[N]) {
  Walk<N> w;
  w.n = 1;
  for (int d = 0; d < rank; ++d) {
    const int64_t e = size[d];
    w.n *= e;
    if (e == 1) continue;
    const int k = w.rank - 1;
    bool merge = k >= 0;
    for (int o = 0; o < N; ++o) merge = merge && w.st[o][k] == strides[o][d] * e;
    if (merge) {
      w.ext[k] *= e;
      for (int o = 0; o < N; ++o) w.st[o][k] = strides[o][d];
    } else {
      w.ext[w.rank] = e;
      for (int o = 0; o < N; ++o) w.st[o][w.rank] = strides[o][d];
      ++w.rank;
    }
  }
  if (w.rank == 0) {  // one element (or none): a dense line of it
    w.rank = 1;
    w.ext[0] = w.n;
    for (int o = 0; o < N; ++o) w.st[o][0] = 1;
  }
  if (w.n < (int64_t{1} << 31))
    for (int d = 0; d < w.rank; ++d) set_divisor(w.ext[d], w.magic[d], w.shift[d]);
  return w;
}

/// The offsets in each operand of element i (row-major) of the walk's box.
template <typename Index, int N>
__device__ __forceinline__ void walk_offsets(const Walk<N>& w, Index i, int64_t* off) {
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] = 0;
  for (int d = w.rank - 1; d > 0; --d) {
    const Index e = static_cast<Index>(w.ext[d]);
    Index q;
    if constexpr (sizeof(Index) == 4)
      q = fast_div(i, w.magic[d], w.shift[d]);
    else
      q = i / e;
    const Index c = i - q * e;
    i = q;
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] += static_cast<int64_t>(c) * w.st[k][d];
  }
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] += static_cast<int64_t>(i) * w.st[k][0];
}

/// Elements per thread and pass: a thread loads the operands of kUnroll elements before storing
/// any, so that several loads are in flight (the functor's pointers may alias, which would keep the
/// compiler from reordering them itself).
constexpr int kUnroll = 4;

template <int N, typename F>
__global__ void dense_kernel(int64_t n, F f) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + (kUnroll - 1) * step < n; i += kUnroll * step) {
    typename F::Vals v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      int64_t off[N];
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] = i + u * step;
      v[u] = f.load(off);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      int64_t off[N];
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] = i + u * step;
      f.store(off, v[u]);
    }
  }
  for (; i < n; i += step) {
    int64_t off[N];
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = i;
    f.store(off, f.load(off));
  }
}

/// Index: uint32_t when the walk has fewer than 2^31 elements (cheaper division), else uint64_t.
template <int N, typename Index, typename F>
__global__ void strided_kernel(Walk<N> w, F f) {
  const Index n = static_cast<Index>(w.n), step = static_cast<Index>(gridDim.x) * blockDim.x;
  Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + (kUnroll - 1) * step < n; i += kUnroll * step) {
    int64_t off[kUnroll][N];
    typename F::Vals v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) walk_offsets(w, static_cast<Index>(i + u * step), off[u]);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = f.load(off[u]);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) f.store(off[u], v[u]);
  }
  for (; i < n; i += step) {
    int64_t off[N];
    walk_offsets(w, i, off);
    f.store(off, f.load(off));
  }
}

/// Runs f on the device for every element of the walk, on ctx.stream: v = f.load(off), then
/// f.store(off, v), off[k] the element's offset in operand k (relative to the operand's pointer at
/// the box's first element). F::Vals holds what load reads.
template <int N, typename F>
void launch_walk(Context& ctx, const Walk<N>& w, const F& f) {
  if (w.n == 0) return;
  const unsigned blocks = blocks_for((w.n + kUnroll - 1) / kUnroll);
  if (w.dense()) {
    dense_kernel<N><<<blocks, kThreads, 0, ctx.stream>>>(w.n, f);
  } else if (w.n < (int64_t{1} << 31)) {
    strided_kernel<N, uint32_t><<<blocks, kThreads, 0, ctx.stream>>>(w, f);
  } else {
    strided_kernel<N, uint64_t><<<blocks, kThreads, 0, ctx.stream>>>(w, f);
  }
  FFRT_LAUNCHED(&ctx);
}

/// Vals of a functor that reads nothing.
struct NoVals {};

}  // namespace ffrt::cuda
