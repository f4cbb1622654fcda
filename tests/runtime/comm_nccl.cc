// libffrt's NCCL communication (include/ffrt/comm.h on the cuda backend), run under mpirun with one
// rank per GPU: transfers of strided and dense boxes, collectives over the whole job and over
// sub-groups, uneven and equal pieces, in-place layouts, several groups in one phase, operations
// that come in different orders on different ranks, and every element type, all on device memory.
// Values are functions of global element indices, so each rank knows what every box must hold, and
// elements outside the boxes written must keep their sentinel values. Exits 0 when every rank saw
// the right values.
#include <cuda_runtime.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ffrt/comm.h"
#include "ffrt/npy.h"

namespace {

using ffrt::DType;
using ffrt::View;
using Fn = std::function<double(int64_t)>;

int failures = 0;

void expect(bool ok, int rank, const std::string& what) {
  if (ok) return;
  ++failures;
  if (failures <= 20) std::fprintf(stderr, "rank %d: %s\n", rank, what.c_str());
}

/// Global coordinates of the i-th element (row-major) of v's box.
void coords(const View& v, int64_t i, int64_t* g) {
  for (int d = v.rank - 1; d >= 0; --d) {
    g[d] = v.lo[d] + i % v.size[d];
    i /= v.size[d];
  }
}

bool inside(const View& box, const int64_t* g) {
  for (int d = 0; d < box.rank; ++d)
    if (g[d] < box.lo[d] || g[d] >= box.hi(d)) return false;
  return true;
}

/// A device buffer holding the box [lo, lo + size) of a tensor of extents `full` densely, and its
/// host copy.
struct Buf {
  ffrt::Context& ctx;
  ffrt::HostArray host;
  std::shared_ptr<std::byte> mem;
  View v, hv;  ///< the device view and the host view of the same box

  Buf(ffrt::Context& c, DType t, std::vector<int64_t> full, std::vector<int64_t> lo, std::vector<int64_t> size)
      : ctx(c), host(t, size) {
    mem = ffrt::allocate(ctx, host.bytes.size());
    const int rank = static_cast<int>(full.size());
    v = ffrt::make_view(mem.get(), t, rank, full.data(), lo.data(), size.data());
    hv = ffrt::make_view(host.bytes.data(), t, rank, full.data(), lo.data(), size.data());
  }
  /// The global row-major index of coordinates g.
  int64_t flat(const int64_t* g) const {
    int64_t f = 0;
    for (int d = 0; d < v.rank; ++d) f = f * v.full[d] + g[d];
    return f;
  }
  double get(int64_t i) const {
    switch (host.dtype) {
      case DType::f32: return host.f32()[i];
      case DType::i64: return static_cast<double>(host.i64()[i]);
      case DType::f64: return host.f64()[i];
    }
    return 0;
  }
  void set(int64_t i, double x) {
    switch (host.dtype) {
      case DType::f32: host.f32()[i] = static_cast<float>(x); break;
      case DType::i64: host.i64()[i] = static_cast<int64_t>(x); break;
      case DType::f64: host.f64()[i] = x; break;
    }
  }
  /// Every element gets f(its global index); uploaded.
  void fill(const Fn& f) {
    int64_t g[ffrt::kMaxRank];
    for (int64_t i = 0; i < v.volume(); ++i) {
      coords(v, i, g);
      set(i, f(flat(g)));
    }
    ffrt::upload(ctx, hv, v);
  }
  /// Downloads, then checks every element: `in` (of its global index) inside `box`, `out` elsewhere
  /// (unless `out` is null).
  void check(const View& box, const Fn& in, const Fn& out, int rank, const std::string& what) {
    ffrt::download(ctx, v, hv);
    int64_t g[ffrt::kMaxRank];
    for (int64_t i = 0; i < v.volume(); ++i) {
      coords(v, i, g);
      const bool in_box = inside(box, g);
      if (!in_box && !out) continue;
      const double want = in_box ? in(flat(g)) : out(flat(g));
      expect(get(i) == want, rank,
             what + ": element " + std::to_string(flat(g)) + (in_box ? "" : " (outside the box)") + " is " +
                 std::to_string(get(i)) + ", not " + std::to_string(want));
    }
  }
  View sub(std::vector<int64_t> lo, std::vector<int64_t> size) const {
    return ffrt::sub_view(v, lo.data(), size.data());
  }
};

int64_t part_lo(int64_t extent, int parts, int i) { return i * extent / parts; }

double sentinel(int64_t g) { return -1.0 - static_cast<double>(g); }

}  // namespace

int main(int argc, char** argv) {
  auto comm = ffrt::Comm::init(&argc, &argv);
  int device = 0;
  cudaGetDevice(&device);  // the device Comm::init chose
  ffrt::ContextOptions options;
  options.device = device;
  options.rank = comm->rank();
  auto context = ffrt::make_context(options);
  ffrt::Context& ctx = *context;
  const int r = comm->rank(), n = comm->size();
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  std::vector<int> all(n), evens, odds;
  for (int i = 0; i < n; ++i) {
    all[i] = i;
    (i % 2 ? odds : evens).push_back(i);
  }
  // Group 3 has group 0's members: the two share a communicator.
  comm->create_groups({all, evens, odds, all});
  const double tri = n * (n + 1) / 2.0;  // sum over members m of (m + 1)

  for (DType t : {DType::f32, DType::i64, DType::f64}) {
    const std::string type = ffrt::dtype_name(t);

    // Transfers around a ring: a strided box of a [8, 4n] tensor, packed and unpacked, and a dense
    // one of a [2n, 3] tensor, used in place; in the same phase, all-reduces of a dense buffer (in
    // place) and of a strided box (packed).
    {
      Buf mine(ctx, t, {8, 4 * n}, {0, 4 * r}, {8, 4});
      Buf got(ctx, t, {8, 4 * n}, {1, 4 * prev}, {6, 4});
      Buf rows(ctx, t, {2 * n, 3}, {2 * r, 0}, {2, 3});
      Buf rows_got(ctx, t, {2 * n, 3}, {2 * prev, 0}, {2, 3});
      Buf sum(ctx, t, {8}, {0}, {8});
      Buf grid(ctx, t, {4, 6}, {0, 0}, {4, 6});
      mine.fill([](int64_t g) { return 3.0 * g + 1; });
      got.fill(sentinel);
      rows.fill([](int64_t g) { return 5.0 * g; });
      rows_got.fill(sentinel);
      sum.fill([&](int64_t g) { return g + r; });
      grid.fill([&](int64_t g) { return g + 10.0 * r; });
      const View strided_in = got.sub({2, 4 * prev + 1}, {4, 2}), grid_box = grid.sub({1, 2}, {2, 3});
      ffrt::Comm::Phase ph(*comm, ctx);
      ph.send(mine.sub({2, 4 * r + 1}, {4, 2}), next);
      ph.send(rows.v, next);
      ph.recv(strided_in, prev);
      ph.recv(rows_got.v, prev);
      ph.all_reduce(sum.v, 0);
      ph.all_reduce(grid_box, 0);
      ph.run();
      got.check(strided_in, [](int64_t g) { return 3.0 * g + 1; }, sentinel, r, type + " strided transfer");
      rows_got.check(rows_got.v, [](int64_t g) { return 5.0 * g; }, sentinel, r, type + " dense transfer");
      sum.check(sum.v, [&](int64_t g) { return n * g + n * (n - 1) / 2.0; }, sentinel, r, type + " all_reduce");
      grid.check(grid_box, [&](int64_t g) { return n * g + 10.0 * n * (n - 1) / 2.0; },
                 [&](int64_t g) { return g + 10.0 * r; }, r, type + " strided all_reduce");
    }

    // Several groups in one phase: evens and odds, and groups 0 and 3 (one communicator) issued in
    // opposite orders on even and odd ranks.
    {
      Buf s(ctx, t, {4}, {0}, {4}), a0(ctx, t, {5}, {0}, {5}), a3(ctx, t, {7}, {0}, {7});
      s.fill([&](int64_t) { return r + 1; });
      a0.fill([&](int64_t g) { return (r + 1) * g; });
      a3.fill([&](int64_t g) { return (r + 1) * (g + 100); });
      ffrt::Comm::Phase ph(*comm, ctx);
      if (r % 2 == 0) {
        ph.all_reduce(a0.v, 0);
        ph.all_reduce(s.v, 1);
        ph.all_reduce(a3.v, 3);
      } else {
        ph.all_reduce(a3.v, 3);
        ph.all_reduce(s.v, 2);
        ph.all_reduce(a0.v, 0);
      }
      ph.run();
      double want = 0;
      for (int m : r % 2 ? odds : evens) want += m + 1;
      s.check(s.v, [&](int64_t) { return want; }, sentinel, r, type + " group all_reduce");
      a0.check(a0.v, [&](int64_t g) { return tri * g; }, sentinel, r, type + " group 0 all_reduce");
      a3.check(a3.v, [&](int64_t g) { return tri * (g + 100); }, sentinel, r, type + " group 3 all_reduce");
    }

    // All-gathers: uneven pieces of an 11-element tensor (transfers); equal pieces in place (this
    // member's piece already in dst); column blocks of a [3, 2n] tensor (equal, but not runs of dst).
    {
      const int64_t E = 11, lo = part_lo(E, n, r), hi = part_lo(E, n, r + 1);
      std::vector<View> uneven, equal, columns;
      for (int i = 0; i < n; ++i) {
        uneven.push_back(
            ffrt::make_view(nullptr, t, {E}, {part_lo(E, n, i)}, {part_lo(E, n, i + 1) - part_lo(E, n, i)}));
        equal.push_back(ffrt::make_view(nullptr, t, {4 * n}, {4 * i}, {4}));
        columns.push_back(ffrt::make_view(nullptr, t, {3, 2 * n}, {0, 2 * i}, {3, 2}));
      }
      const Fn seven = [](int64_t g) { return 7.0 * g; };
      Buf own(ctx, t, {E}, {lo}, {hi - lo}), whole(ctx, t, {E}, {0}, {E});
      Buf in_place(ctx, t, {4 * n}, {0}, {4 * n});
      Buf col(ctx, t, {3, 2 * n}, {0, 2 * r}, {3, 2}), cols(ctx, t, {3, 2 * n}, {0, 0}, {3, 2 * n});
      own.fill(seven);
      whole.fill(sentinel);
      in_place.fill([&](int64_t g) { return g / 4 == r ? 7.0 * g : sentinel(g); });
      col.fill(seven);
      cols.fill(sentinel);
      ffrt::Comm::Phase ph(*comm, ctx);
      ph.all_gather(own.v, whole.v, uneven, 0);
      ph.all_gather(in_place.sub({4 * r}, {4}), in_place.v, equal, 0);
      ph.all_gather(col.v, cols.v, columns, 3);
      ph.run();
      whole.check(whole.v, seven, sentinel, r, type + " uneven all_gather");
      in_place.check(in_place.v, seven, sentinel, r, type + " in-place all_gather");
      cols.check(cols.v, seven, sentinel, r, type + " column all_gather");
    }

    // Reduce-scatters: equal runs (ncclReduceScatter), the same in place, uneven pieces and column
    // blocks (an all-reduce, then this member's box).
    {
      const int64_t E = 11, lo = part_lo(E, n, r), hi = part_lo(E, n, r + 1);
      const Fn contrib = [&](int64_t g) { return (r + 1) * g; }, summed = [&](int64_t g) { return tri * g; };
      Buf src(ctx, t, {4 * n}, {0}, {4 * n}), back(ctx, t, {4 * n}, {4 * r}, {4});
      Buf in_place(ctx, t, {4 * n}, {0}, {4 * n});
      Buf usrc(ctx, t, {E}, {0}, {E}), uback(ctx, t, {E}, {lo}, {hi - lo});
      Buf csrc(ctx, t, {3, 2 * n}, {0, 0}, {3, 2 * n}), cback(ctx, t, {3, 2 * n}, {0, 2 * r}, {3, 2});
      for (Buf* b : {&src, &in_place, &usrc, &csrc}) b->fill(contrib);
      for (Buf* b : {&back, &uback, &cback}) b->fill(sentinel);
      const View mine = in_place.sub({4 * r}, {4});
      ffrt::Comm::Phase ph(*comm, ctx);
      ph.reduce_scatter(src.v, back.v, 0);
      ph.reduce_scatter(in_place.v, mine, 3);
      ph.reduce_scatter(usrc.v, uback.v, 0);
      ph.reduce_scatter(csrc.v, cback.v, 0);
      ph.run();
      back.check(back.v, summed, sentinel, r, type + " reduce_scatter");
      in_place.check(mine, summed, nullptr, r, type + " in-place reduce_scatter");
      uback.check(uback.v, summed, sentinel, r, type + " uneven reduce_scatter");
      cback.check(cback.v, summed, sentinel, r, type + " column reduce_scatter");
      src.check(src.v, contrib, sentinel, r, type + " reduce_scatter's source");
    }

    // Transfers and an uneven all-gather over group 0 (whose communicator also carries the
    // transfers), in opposite orders on even and odd ranks.
    {
      const int64_t E = 11, lo = part_lo(E, n, r), hi = part_lo(E, n, r + 1);
      std::vector<View> pieces;
      for (int i = 0; i < n; ++i)
        pieces.push_back(
            ffrt::make_view(nullptr, t, {E}, {part_lo(E, n, i)}, {part_lo(E, n, i + 1) - part_lo(E, n, i)}));
      Buf out(ctx, t, {3 * n}, {3 * r}, {3}), in(ctx, t, {3 * n}, {3 * prev}, {3});
      Buf own(ctx, t, {E}, {lo}, {hi - lo}), whole(ctx, t, {E}, {0}, {E});
      out.fill([](int64_t g) { return 2.0 * g + 3; });
      in.fill(sentinel);
      own.fill([](int64_t g) { return 9.0 * g; });
      whole.fill(sentinel);
      ffrt::Comm::Phase ph(*comm, ctx);
      if (r % 2 == 0) {
        ph.send(out.v, next);
        ph.recv(in.v, prev);
        ph.all_gather(own.v, whole.v, pieces, 0);
      } else {
        ph.all_gather(own.v, whole.v, pieces, 0);
        ph.recv(in.v, prev);
        ph.send(out.v, next);
      }
      ph.run();
      in.check(in.v, [](int64_t g) { return 2.0 * g + 3; }, sentinel, r, type + " transfer beside an all_gather");
      whole.check(whole.v, [](int64_t g) { return 9.0 * g; }, sentinel, r, type + " all_gather beside transfers");
    }
  }

  // Every rank's verdict.
  Buf verdict(ctx, DType::i64, {1}, {0}, {1});
  verdict.fill([](int64_t) { return failures; });
  {
    ffrt::Comm::Phase ph(*comm, ctx);
    ph.all_reduce(verdict.v, 0);
    ph.run();
  }
  ffrt::download(ctx, verdict.v, verdict.hv);
  const int64_t total = verdict.host.i64()[0];
  if (r == 0) std::printf("%s: %d ranks, %lld failures\n", total ? "FAIL" : "PASS", n, static_cast<long long>(total));
  return total ? 1 : 0;
}
