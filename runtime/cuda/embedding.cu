// cuda backend: embedding — forward (a row gather) and the weight gradient (a row scatter-add), on
// parts, with the cpu backend's semantics (runtime/cpu/embedding.cc).
//
// An id out of range cannot throw from the device without a synchronization in the training loop.
// Instead the forward writes NaN into its row of y (so the loss is NaN, and the driver stops on a
// non-finite loss and says so), and the backward skips it; no row out of range is ever read or
// written.
//
// The backward is deterministic, with no atomics: the positions of dy's rows are sorted by id with
// a stable radix sort (rows with equal ids keep their row-major order), then one thread per
// column of each id adds the id's rows of dy into dw in that order, as the cpu does.
#include <algorithm>
#include <cmath>
#include <cub/device/device_radix_sort.cuh>
#include <memory>

#include "rows.cuh"

namespace ffrt {

namespace {

using namespace cuda;  // the shared checks and rows (rows.cuh)

/// Checks the views: ids [...] i64, w-like [num_embeddings, D] f32, y-like [..., D] f32.
void check_embedding(const char* who, const View& ids, const View& w, const View& y) {
  require(ids.dtype == DType::i64 && w.dtype == DType::f32 && y.dtype == DType::f32 && w.rank == 2 &&
              y.rank == ids.rank + 1 && ids.rank >= 1,
          who);
  for (int d = 0; d < ids.rank; ++d) require(ids.full[d] == y.full[d], "embedding: ids and output extents differ");
  require(w.full[1] == y.full[y.rank - 1], "embedding: the weight's width is not the output's last extent");
}

/// Whether ids holds the leading box of y.
bool holds_ids(const View& ids, const View& y) {
  for (int d = 0; d < ids.rank; ++d)
    if (y.size[d] <= 0) return true;
  for (int d = 0; d < ids.rank; ++d)
    if (y.lo[d] < ids.lo[d] || y.hi(d) > ids.hi(d)) return false;
  return true;
}

/// The rows of y's (or dy's) leading box: offsets of row q in ids and in y.
struct Rows {
  RowIndex<2> at;
  uint32_t n;
  const int64_t* ids;
};

Rows rows_of(const View& ids, const View& y) {
  const int r = ids.rank;
  int64_t strides[2][kMaxRank] = {}, rows = 1;
  for (int d = 0; d < r; ++d) strides[0][d] = ids.stride[d], strides[1][d] = y.stride[d], rows *= y.size[d];
  require_index_space(rows, "embedding: too many rows for the cuda kernels");
  return {make_row_index<2>(r, y.size, strides), static_cast<uint32_t>(rows), ids.i64() + origin_offset(ids, y)};
}

/// y[q, k] = w[ids[q], k] for the n rows q and k in [0, width); NaN for an id out of [0, count).
__global__ void gather_rows(Rows rows, FastDiv width, const float* w, int64_t ws0, int64_t ws1, int64_t count, float* y,
                            int64_t ys) {
  const uint32_t nd = width.d;
  FFRT_GRID_LOOP(e, int64_t{rows.n} * nd) {
    const uint32_t q = width.div(static_cast<uint32_t>(e)), k = static_cast<uint32_t>(e) - q * nd;
    int64_t off[2];
    rows.at.offsets(q, off);
    const int64_t id = rows.ids[off[0]];
    y[off[1] + k * ys] = id >= 0 && id < count ? w[id * ws0 + k * ws1] : NAN;
  }
}

/// keys[q] = ids[q] - r0 for the ids of dw's rows [r0, r0 + nr), else nr (after every row once
/// sorted); order[q] = q.
__global__ void sort_keys(Rows rows, int64_t r0, uint32_t nr, uint32_t* keys, uint32_t* order) {
  FFRT_GRID_LOOP(q, rows.n) {
    int64_t off[2];
    rows.at.offsets(static_cast<uint32_t>(q), off);
    const int64_t id = rows.ids[off[0]];
    keys[q] = id >= r0 && id < r0 + nr ? static_cast<uint32_t>(id - r0) : nr;
    order[q] = static_cast<uint32_t>(q);
  }
}

/// dw[key, k] += the rows of dy with that key, in sorted (row-major) order: the thread of column k
/// at the first position of each key's run adds the run. Blocks of 32 columns x 8 positions.
__global__ void add_runs(Rows rows, const uint32_t* keys, const uint32_t* order, uint32_t nr, const float* dy,
                         int64_t ys, float* dw, int64_t dws0, int64_t dws1, uint32_t nd) {
  const uint32_t k = blockIdx.x * 32 + threadIdx.x;
  if (k >= nd) return;
  for (uint32_t i = blockIdx.y * 8 + threadIdx.y; i < rows.n; i += gridDim.y * 8) {
    const uint32_t key = keys[i];
    if (key == nr) return;  // the ids outside dw's rows come last
    if (i > 0 && keys[i - 1] == key) continue;
    float* dst = dw + key * dws0 + k * dws1;
    float acc = *dst;
    for (uint32_t j = i; j < rows.n && keys[j] == key; ++j) {
      int64_t off[2];
      rows.at.offsets(order[j], off);
      acc += dy[off[1] + k * ys];
    }
    *dst = acc;
  }
}

}  // namespace

void embedding_forward(Context& ctx, const View& ids, const View& w, const View& y) {
  check_embedding("embedding_forward: ids (i64), w ([rows, dim] f32) and y (f32, one more dim) views", ids, w, y);
  const int r = ids.rank;
  const int64_t count = w.full[0], d0 = y.lo[r], nd = y.size[r];
  require(holds_ids(ids, y), "embedding_forward: ids do not hold y's leading box");
  require(nd == 0 || (w.lo[0] == 0 && w.size[0] == count && w.lo[1] <= d0 && w.hi(1) >= d0 + nd),
          "embedding_forward: w does not hold all rows and y's range of the embedding dim");
  if (y.volume() == 0) return;
  require_index_space(y.volume(), "embedding_forward: too many elements for the cuda kernels");
  const Rows rows = rows_of(ids, y);
  gather_rows<<<blocks_for(y.volume()), kThreads, 0, ctx.stream>>>(rows, FastDiv(static_cast<uint32_t>(nd)),
                                                                   w.f32() + (d0 - w.lo[1]) * w.stride[1], w.stride[0],
                                                                   w.stride[1], count, y.f32(), y.stride[r]);
  FFRT_LAUNCHED(&ctx);
}

void embedding_backward_weight(Context& ctx, const View& ids, const View& dy, const View& dw, bool accumulate) {
  check_embedding("embedding_backward_weight: ids (i64), dw ([rows, dim] f32) and dy (f32, one more dim) views", ids,
                  dw, dy);
  const int r = ids.rank;
  const int64_t r0 = dw.lo[0], nr = dw.size[0], d0 = dw.lo[1], nd = dw.size[1];
  require(holds_ids(ids, dy), "embedding_backward_weight: ids do not hold dy's leading box");
  require(nd == 0 || nr == 0 || (dy.lo[r] <= d0 && dy.hi(r) >= d0 + nd),
          "embedding_backward_weight: dy does not hold dw's range of the embedding dim");
  if (!accumulate) fill(ctx, dw, 0.f);
  if (dw.volume() == 0) return;
  require_index_space(nr, "embedding_backward_weight: too many rows for the cuda kernels");
  const Rows rows = rows_of(ids, dy);
  if (rows.n == 0) return;

  // Sort the rows' positions by key (dw's row, or nr for none); the sort is stable.
  const size_t n = rows.n, array = (sizeof(uint32_t) * n + 255) / 256 * 256;
  std::shared_ptr<std::byte> arrays = allocate(ctx, 4 * array);
  auto* keys_in = reinterpret_cast<uint32_t*>(arrays.get());
  auto* order_in = reinterpret_cast<uint32_t*>(arrays.get() + array);
  auto* keys = reinterpret_cast<uint32_t*>(arrays.get() + 2 * array);
  auto* order = reinterpret_cast<uint32_t*>(arrays.get() + 3 * array);
  const auto nkeys = static_cast<uint32_t>(nr);
  sort_keys<<<blocks_for(rows.n), kThreads, 0, ctx.stream>>>(rows, r0, nkeys, keys_in, order_in);
  FFRT_LAUNCHED(&ctx);
  int bits = 1;
  while ((uint64_t{1} << bits) <= nkeys) ++bits;  // keys in [0, nr]
  size_t temp_bytes = 0;
  FFRT_CUDA(&ctx, cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys, order_in, order, rows.n, 0, bits,
                                                  ctx.stream));
  std::shared_ptr<std::byte> temp = allocate(ctx, std::max<size_t>(temp_bytes, 1));
  FFRT_CUDA(&ctx, cub::DeviceRadixSort::SortPairs(temp.get(), temp_bytes, keys_in, keys, order_in, order, rows.n, 0,
                                                  bits, ctx.stream));

  const int64_t ys = dy.stride[r];
  const float* dyp = dy.f32() + (d0 - dy.lo[r]) * ys;  // the rows' offsets are from dy's origin
  const dim3 grid(static_cast<unsigned>(ceil_div(nd, 32)),
                  static_cast<unsigned>(std::min<int64_t>(ceil_div(n, 8), 65535)));
  add_runs<<<grid, dim3(32, 8), 0, ctx.stream>>>(rows, keys, order, nkeys, dyp, ys, dw.f32(), dw.stride[0],
                                                 dw.stride[1], static_cast<uint32_t>(nd));
  FFRT_LAUNCHED(&ctx);
}

}  // namespace ffrt
