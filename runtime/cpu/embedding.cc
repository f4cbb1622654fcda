// embedding on the cpu: forward (a row gather) and the weight gradient (a row scatter-add), on
// parts.
//
// ids are an i64 view of the leading dims of y; every id is checked against [0, num_embeddings)
// and a bad one throws ffrt::Error naming it. The backward buckets the ids' positions by row
// first, so each row of dw is summed by one thread, in the ids' row-major order: the result does
// not depend on the thread count.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "gemm.h"

namespace ffrt {

namespace {

using cpu::require;

/// Checks the views: ids [...] i64, w-like [num_embeddings, D] f32, y-like [..., D] f32.
void check_embedding(const char* who, const View& ids, const View& w, const View& y) {
  require(ids.dtype == DType::i64 && w.dtype == DType::f32 && y.dtype == DType::f32 && w.rank == 2 &&
              y.rank == ids.rank + 1 && ids.rank >= 1,
          who);
  for (int d = 0; d < ids.rank; ++d) require(ids.full[d] == y.full[d], "embedding: ids and output extents differ");
  require(w.full[1] == y.full[y.rank - 1], "embedding: the weight's width is not the output's last extent");
}

/// Calls f(id, y offset) for every leading position of y's box, row-major: the id there and the
/// offset of y's row (its first element in y's box).
template <typename F>
void for_each_row(const View& ids, const View& y, F&& f) {
  const int r = ids.rank;
  int64_t count = 1;
  for (int d = 0; d < r; ++d) count *= y.size[d];
  for (int64_t q = 0; q < count; ++q) {
    int64_t rem = q, io = 0, yo = 0;
    for (int d = r - 1; d >= 0; --d) {
      const int64_t g = y.lo[d] + rem % y.size[d];
      rem /= y.size[d];
      io += (g - ids.lo[d]) * ids.stride[d];
      yo += (g - y.lo[d]) * y.stride[d];
    }
    f(ids.i64()[io], yo);
  }
}

/// Whether ids holds the leading box of y.
bool holds_ids(const View& ids, const View& y) {
  for (int d = 0; d < ids.rank; ++d)
    if (y.size[d] <= 0) return true;
  for (int d = 0; d < ids.rank; ++d)
    if (y.lo[d] < ids.lo[d] || y.hi(d) > ids.hi(d)) return false;
  return true;
}

[[noreturn]] void bad_id(int64_t id, int64_t rows) {
  throw Error("embedding: id " + std::to_string(id) + " is out of range [0, " + std::to_string(rows) + ")");
}

}  // namespace

void embedding_forward(Context& ctx, const View& ids, const View& w, const View& y) {
  check_embedding("embedding_forward: ids (i64), w ([rows, dim] f32) and y (f32, one more dim) views", ids, w, y);
  const int r = ids.rank;
  const int64_t rows = w.full[0], d0 = y.lo[r], nd = y.size[r];
  require(holds_ids(ids, y), "embedding_forward: ids do not hold y's leading box");
  require(nd == 0 || (w.lo[0] == 0 && w.size[0] == rows && w.lo[1] <= d0 && w.hi(1) >= d0 + nd),
          "embedding_forward: w does not hold all rows and y's range of the embedding dim");
  if (y.volume() == 0) return;
  // Gather the ids first (and check them), then copy the rows in parallel.
  std::vector<int64_t> id, yoff;
  for_each_row(ids, y, [&](int64_t v, int64_t yo) {
    if (v < 0 || v >= rows) bad_id(v, rows);
    id.push_back(v);
    yoff.push_back(yo);
  });
  const int64_t n = static_cast<int64_t>(id.size()), ws = w.stride[1], ys = y.stride[r];
#pragma omp parallel for num_threads(ctx.threads) schedule(static) if (n * nd >= cpu::kMinParallelWork)
  for (int64_t q = 0; q < n; ++q) {
    const float* src = w.f32() + id[static_cast<size_t>(q)] * w.stride[0] + (d0 - w.lo[1]) * ws;
    float* dst = y.f32() + yoff[static_cast<size_t>(q)];
    if (ws == 1 && ys == 1)
      std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(nd));
    else
      for (int64_t k = 0; k < nd; ++k) dst[k * ys] = src[k * ws];
  }
}

void embedding_backward_weight(Context& ctx, const View& ids, const View& dy, const View& dw, bool accumulate) {
  check_embedding("embedding_backward_weight: ids (i64), dw ([rows, dim] f32) and dy (f32, one more dim) views", ids,
                  dw, dy);
  const int r = ids.rank;
  const int64_t rows = dw.full[0], r0 = dw.lo[0], nr = dw.size[0], d0 = dw.lo[1], nd = dw.size[1];
  require(holds_ids(ids, dy), "embedding_backward_weight: ids do not hold dy's leading box");
  require(nd == 0 || nr == 0 || (dy.lo[r] <= d0 && dy.hi(r) >= d0 + nd),
          "embedding_backward_weight: dy does not hold dw's range of the embedding dim");
  if (!accumulate) cpu::zero_box(ctx, dw);
  // Bucket dy's rows by id (a counting sort, stable): start[i - r0] .. start[i - r0 + 1] index
  // `order`, the dy offsets of the rows with id i, in row-major order.
  std::vector<int64_t> id, yoff;
  for_each_row(ids, dy, [&](int64_t v, int64_t yo) {
    if (v < 0 || v >= rows) bad_id(v, rows);
    id.push_back(v);
    yoff.push_back(yo);
  });
  if (dw.volume() == 0 || id.empty()) return;
  std::vector<int64_t> start(static_cast<size_t>(nr + 1), 0), order;
  for (int64_t v : id)
    if (v >= r0 && v < r0 + nr) ++start[static_cast<size_t>(v - r0 + 1)];
  for (int64_t i = 0; i < nr; ++i) start[static_cast<size_t>(i + 1)] += start[static_cast<size_t>(i)];
  order.resize(static_cast<size_t>(start.back()));
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (size_t q = 0; q < id.size(); ++q)
      if (id[q] >= r0 && id[q] < r0 + nr) order[static_cast<size_t>(fill[static_cast<size_t>(id[q] - r0)]++)] = yoff[q];
  }
  const int64_t ys = dy.stride[r], ws = dw.stride[1], yd = (d0 - dy.lo[r]) * ys;
  const int64_t work = static_cast<int64_t>(order.size()) * nd;
#pragma omp parallel for num_threads(ctx.threads) schedule(dynamic, 16) if (work >= cpu::kMinParallelWork)
  for (int64_t i = 0; i < nr; ++i) {
    float* dst = dw.f32() + i * dw.stride[0];
    for (int64_t p = start[static_cast<size_t>(i)]; p < start[static_cast<size_t>(i + 1)]; ++p) {
      const float* src = dy.f32() + order[static_cast<size_t>(p)] + yd;
      for (int64_t k = 0; k < nd; ++k) dst[k * ws] += src[k * ys];
    }
  }
}

}  // namespace ffrt
