// cuda backend: layout kernels — copy or accumulate between boxes of one tensor (pack, unpack,
// local slices, permuted views), copy between tensors by global row-major element index (reshape,
// flat), fill and scale. The semantics are the cpu backend's (runtime/cpu/layout.cc).
//
// Copies whose operands are one dense run each go to cudaMemcpyAsync (and zero fills to
// cudaMemsetAsync), transposes through tiles in shared memory; everything else is a walk over the
// destination box (pointwise.cuh).
#include <algorithm>
#include <cmath>
#include <string>

#include "ffrt/npy.h"
#include "pointwise.cuh"

namespace ffrt {

namespace {

using namespace cuda;  // the shared checks and loops (pointwise.cuh)

template <typename T, bool Accumulate>
struct Move {
  const T* src;
  T* dst;
  struct Vals {
    T s, d;
  };
  __device__ Vals load(const int64_t* o) const { return {src[o[0]], Accumulate ? dst[o[1]] : T{}}; }
  __device__ void store(const int64_t* o, const Vals& v) const { dst[o[1]] = Accumulate ? v.d + v.s : v.s; }
};

constexpr int kTile = 32;

/// The copy of a walk (operand 0 src, 1 dst) where src steps by one along dim `a` and dst along dim
/// `b`, a != b (a transpose): kTile x kTile tiles of the (a, b) plane, for every index of the
/// other dims, pass through shared memory so that both the reads and the writes are coalesced.
/// Blocks are kTile x 8 threads.
template <typename T, bool Accumulate>
__global__ void transpose_kernel(Walk<2> w, int a, int b, const T* src, T* dst, int64_t tiles_a, int64_t tiles_b,
                                 int64_t tiles) {
  __shared__ T tile[kTile][kTile + 1];  // +1: the column reads hit distinct banks
  const int64_t ea = w.ext[a], eb = w.ext[b];
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t a0 = t % tiles_a * kTile, b0 = t / tiles_a % tiles_b * kTile;
    int64_t rest = t / tiles_a / tiles_b, os = 0, od = 0;  // the other dims' offsets
    for (int d = w.rank - 1; d >= 0; --d) {
      if (d == a || d == b) continue;
      const int64_t c = rest % w.ext[d];
      rest /= w.ext[d];
      os += c * w.st[0][d], od += c * w.st[1][d];
    }
    for (int k = threadIdx.y; k < kTile; k += blockDim.y) {
      const int64_t ia = a0 + threadIdx.x, ib = b0 + k;
      if (ia < ea && ib < eb) tile[k][threadIdx.x] = src[os + ia + ib * w.st[0][b]];
    }
    __syncthreads();
    for (int k = threadIdx.y; k < kTile; k += blockDim.y) {
      const int64_t ia = a0 + k, ib = b0 + threadIdx.x;
      if (ia < ea && ib < eb) {
        T* p = dst + od + ia * w.st[1][a] + ib;
        *p = Accumulate ? *p + tile[threadIdx.x][k] : tile[threadIdx.x][k];
      }
    }
    __syncthreads();  // before the next tile overwrites this one
  }
}

/// The dims along which src (operand 0) and dst (operand 1) step by one, when they differ and
/// both are long enough for tiles to pay: a transpose.
bool transposed(const Walk<2>& w, int& a, int& b) {
  a = b = -1;
  for (int d = 0; d < w.rank; ++d) {
    if (w.st[0][d] == 1) a = d;
    if (w.st[1][d] == 1) b = d;
  }
  return a >= 0 && b >= 0 && a != b && w.ext[a] >= 8 && w.ext[b] >= 8;
}

/// dst (+)= src over a walk whose operand 0 is src and 1 is dst (pointers at the box's first element).
template <typename T>
void move(Context& ctx, const Walk<2>& w, const T* src, T* dst, bool accumulate) {
  if (w.n == 0) return;
  int a = 0, b = 0;
  if (!accumulate && w.dense()) {
    FFRT_CUDA(&ctx, cudaMemcpyAsync(dst, src, static_cast<size_t>(w.n) * sizeof(T), cudaMemcpyDeviceToDevice,
                                    ctx.stream));
  } else if (transposed(w, a, b)) {
    const int64_t tiles_a = (w.ext[a] + kTile - 1) / kTile, tiles_b = (w.ext[b] + kTile - 1) / kTile;
    const int64_t tiles = tiles_a * tiles_b * (w.n / w.ext[a] / w.ext[b]);
    const auto blocks = static_cast<unsigned>(std::min<int64_t>(tiles, int64_t{1} << 20));
    const dim3 threads(kTile, 8);
    if (accumulate)
      transpose_kernel<T, true><<<blocks, threads, 0, ctx.stream>>>(w, a, b, src, dst, tiles_a, tiles_b, tiles);
    else
      transpose_kernel<T, false><<<blocks, threads, 0, ctx.stream>>>(w, a, b, src, dst, tiles_a, tiles_b, tiles);
    FFRT_LAUNCHED(&ctx);
  } else if (accumulate) {
    launch_walk(ctx, w, Move<T, true>{src, dst});
  } else {
    launch_walk(ctx, w, Move<T, false>{src, dst});
  }
}

/// Element i of dst's tensor gets element i of src's tensor, for every element of dst's box that
/// src's box holds. Walks dst's box with the global index as operand 1 (offsets from `first`, the
/// index of the box's first element) and finds the element's coordinates in src's tensor by
/// dividing the index by src's extents.
template <typename T>
struct Reshape {
  const T* src;  ///< at src's box's first element
  T* dst;
  uint64_t first;
  int rank;
  int64_t full[kMaxRank], lo[kMaxRank], size[kMaxRank], stride[kMaxRank];  ///< src's
  uint32_t magic[kMaxRank], shift[kMaxRank];  ///< reciprocals of full[d], when `fast`
  bool fast;  ///< src's tensor has fewer than 2^31 elements
  bool accumulate;
  struct Vals {
    T v, d;
    bool held;
  };
  __device__ Vals load(const int64_t* o) const {
    uint64_t flat = first + static_cast<uint64_t>(o[1]);
    int64_t off = 0;
    bool held = true;
    for (int d = rank - 1; d >= 0; --d) {
      const uint64_t q = fast ? fast_div(static_cast<uint32_t>(flat), magic[d], shift[d])
                              : flat / static_cast<uint64_t>(full[d]);
      const auto c = static_cast<int64_t>(flat - q * static_cast<uint64_t>(full[d]));
      flat = q;
      held = held && c >= lo[d] && c < lo[d] + size[d];
      off += (c - lo[d]) * stride[d];
    }
    return {held ? src[off] : T{}, accumulate && held ? dst[o[0]] : T{}, held};
  }
  __device__ void store(const int64_t* o, const Vals& v) const {
    if (v.held) dst[o[0]] = accumulate ? v.d + v.v : v.v;
  }
};

/// Whether v's box is a dense run of its tensor's row-major elements: dims of extent 1, then one
/// dim of any range, then whole dims, laid out densely. `begin` gets the run's first global index.
bool flat_run(const View& v, int64_t& begin) {
  if (!v.contiguous()) return false;
  int k = 0;
  while (k < v.rank && v.size[k] == 1) ++k;
  for (int d = k + 1; d < v.rank; ++d)
    if (v.lo[d] != 0 || v.size[d] != v.full[d]) return false;
  begin = global_index_of_lo(v);
  return true;
}

template <typename T>
void reshape_copy_as(Context& ctx, const View& src, const View& dst, bool accumulate) {
  int64_t sb = 0, db = 0;
  if (flat_run(src, sb) && flat_run(dst, db)) {  // the overlap of two runs is one run
    const int64_t lo = std::max(sb, db), hi = std::min(sb + src.volume(), db + dst.volume());
    if (hi <= lo) return;
    const int64_t one = 1;
    const int64_t* const strides[2] = {&one, &one};
    const int64_t n = hi - lo;
    move<T>(ctx, make_walk(1, &n, strides), static_cast<const T*>(src.data) + (lo - sb),
            static_cast<T*>(dst.data) + (lo - db), accumulate);
    return;
  }
  int64_t pitch[kMaxRank], count = 1;
  global_pitches(dst, pitch);
  const int64_t* const strides[2] = {dst.stride, pitch};
  const Walk<2> w = make_walk(dst.rank, dst.size, strides);
  Reshape<T> f{};
  f.src = static_cast<const T*>(src.data);
  f.dst = static_cast<T*>(dst.data);
  f.first = static_cast<uint64_t>(global_index_of_lo(dst));
  f.rank = src.rank;
  for (int d = 0; d < src.rank; ++d) {
    f.full[d] = src.full[d], f.lo[d] = src.lo[d], f.size[d] = src.size[d], f.stride[d] = src.stride[d];
    set_divisor(src.full[d], f.magic[d], f.shift[d]);
    count *= src.full[d];
  }
  f.fast = count < (int64_t{1} << 31);
  f.accumulate = accumulate;
  launch_walk(ctx, w, f);
}

template <typename T>
struct Set {
  T* p;
  T value;
  using Vals = NoVals;
  __device__ Vals load(const int64_t*) const { return {}; }
  __device__ void store(const int64_t* o, Vals) const { p[o[0]] = value; }
};

struct Scale {
  float* p;
  float factor;
  using Vals = float;
  __device__ float load(const int64_t* o) const { return p[o[0]]; }
  __device__ void store(const int64_t* o, float v) const { p[o[0]] = __fmul_rn(v, factor); }
};

/// The walk over v's box alone.
Walk<1> walk_of(const View& v) {
  const int64_t* const strides[1] = {v.stride};
  return make_walk(v.rank, v.size, strides);
}

/// Calls f(T{}) with T the element type of `dtype` (float, int64_t or double).
template <typename F>
void dispatch(DType dtype, const char* what, F&& f) {
  switch (dtype) {
    case DType::f32: return f(float{});
    case DType::i64: return f(int64_t{});
    case DType::f64: return f(double{});
  }
  throw Error(std::string(what) + ": unknown dtype");
}

}  // namespace

void copy_box(Context& ctx, const View& src_in, const View& dst_in, bool accumulate) {
  require(src_in.dtype == dst_in.dtype, "copy_box: src and dst differ in type");
  require(src_in.rank == dst_in.rank, "copy_box: src and dst differ in rank");
  for (int d = 0; d < src_in.rank; ++d)
    require(src_in.full[d] == dst_in.full[d], "copy_box: src and dst differ in shape");
  const View src = with_last_dim(src_in), dst = with_last_dim(dst_in);
  View box = dst;  // the intersection of the two boxes
  for (int d = 0; d < box.rank; ++d) {
    box.lo[d] = std::max(src.lo[d], dst.lo[d]);
    box.size[d] = std::max<int64_t>(0, std::min(src.hi(d), dst.hi(d)) - box.lo[d]);
  }
  if (box.volume() == 0) return;
  const int64_t* const strides[2] = {src.stride, dst.stride};
  const Walk<2> w = make_walk(box.rank, box.size, strides);
  dispatch(dst.dtype, "copy_box", [&](auto t) {
    using T = decltype(t);
    move<T>(ctx, w, static_cast<const T*>(src.data) + src.offset_of(box.lo),
            static_cast<T*>(dst.data) + dst.offset_of(box.lo), accumulate);
  });
}

void reshape_copy(Context& ctx, const View& src_in, const View& dst_in, bool accumulate) {
  require(src_in.dtype == dst_in.dtype, "reshape_copy: src and dst differ in type");
  const View src = with_last_dim(src_in), dst = with_last_dim(dst_in);
  int64_t ns = 1, nd = 1;
  for (int d = 0; d < src.rank; ++d) ns *= src.full[d];
  for (int d = 0; d < dst.rank; ++d) nd *= dst.full[d];
  require(ns == nd, "reshape_copy: src and dst tensors differ in element count");
  if (dst.volume() == 0 || src.volume() == 0) return;
  dispatch(dst.dtype, "reshape_copy", [&](auto t) { reshape_copy_as<decltype(t)>(ctx, src, dst, accumulate); });
}

void fill(Context& ctx, const View& v, float value) {
  const View w = with_last_dim(v);
  if (w.volume() == 0) return;
  const Walk<1> walk = walk_of(w);
  dispatch(w.dtype, "fill", [&](auto t) {
    using T = decltype(t);
    const T x = static_cast<T>(value);
    if (walk.dense() && value == 0.f && !std::signbit(value)) {  // all-zero bits in every dtype
      FFRT_CUDA(&ctx, cudaMemsetAsync(w.data, 0, static_cast<size_t>(walk.n) * sizeof(T), ctx.stream));
      return;
    }
    launch_walk(ctx, walk, Set<T>{static_cast<T*>(w.data), x});
  });
}

void scale(Context& ctx, const View& v, float factor) {
  require(v.dtype == DType::f32, "scale: v must be an f32 view");
  const View w = with_last_dim(v);
  if (w.volume() == 0) return;
  launch_walk(ctx, walk_of(w), Scale{w.f32(), factor});
}

}  // namespace ffrt
