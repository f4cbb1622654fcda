// libffrt's MPI communication (include/ffrt/comm.h), run under mpirun with 4 ranks: transfers of
// boxes, collectives over the whole job and over sub-groups, uneven pieces, a phase that mixes
// them, and every element type. Values are functions of global element indices, so each rank
// knows what every box must hold. Exits 0 when every rank saw the right values.
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

int failures = 0;

void expect(bool ok, int rank, const std::string& what) {
  if (ok) return;
  ++failures;
  std::fprintf(stderr, "rank %d: %s\n", rank, what.c_str());
}

/// A buffer holding the box [lo, lo + size) of a 1-D tensor of `full` elements.
struct Buf {
  ffrt::HostArray a;
  View v;
  Buf(DType t, int64_t full, int64_t lo, int64_t size) : a(t, {size}) {
    v = ffrt::make_view(a.bytes.data(), t, {full}, {lo}, {size});
  }
  double at(int64_t g) const {
    const int64_t i = g - v.lo[0];
    return a.dtype == DType::f32 ? a.f32()[i] : a.dtype == DType::i64 ? static_cast<double>(a.i64()[i])
                                                                      : reinterpret_cast<const double*>(a.bytes.data())[i];
  }
  void set(int64_t g, double x) {
    const int64_t i = g - v.lo[0];
    if (a.dtype == DType::f32) a.f32()[i] = static_cast<float>(x);
    else if (a.dtype == DType::i64) a.i64()[i] = static_cast<int64_t>(x);
    else reinterpret_cast<double*>(a.bytes.data())[i] = x;
  }
  void fill(const std::function<double(int64_t)>& f) {
    for (int64_t g = v.lo[0]; g < v.lo[0] + v.size[0]; ++g) set(g, f(g));
  }
};

int64_t part_lo(int64_t extent, int parts, int i) { return i * extent / parts; }

}  // namespace

int main(int argc, char** argv) {
  auto comm = ffrt::Comm::init(&argc, &argv);
  auto ctx = ffrt::make_context({1, 0});
  const int r = comm->rank(), n = comm->size();
  std::vector<int> all(n), evens, odds;
  for (int i = 0; i < n; ++i) {
    all[i] = i;
    (i % 2 ? odds : evens).push_back(i);
  }
  comm->create_groups({all, evens, odds});

  for (DType t : {DType::f32, DType::i64, DType::f64}) {
    const std::string type = t == DType::f32 ? "f32" : t == DType::i64 ? "i64" : "f64";
    // A ring: rank r sends elements [4r+1, 4r+3) of a 64-element tensor to r+1, which receives
    // them into a buffer of that box; one phase also all-reduces over the whole job.
    Buf mine(t, 64, 4 * r, 4), got(t, 64, 4 * ((r + n - 1) % n) + 1, 2), sum(t, 64, 0, 8);
    mine.fill([](int64_t g) { return 3.0 * g + 1; });
    sum.fill([&](int64_t g) { return g + r; });
    {
      ffrt::Comm::Phase ph(*comm, *ctx);
      View part = mine.v;
      part.lo[0] += 1, part.size[0] = 2;
      part.data = mine.a.bytes.data() + ffrt::dtype_size(t);
      ph.send(part, (r + 1) % n);
      ph.recv(got.v, (r + n - 1) % n);
      ph.all_reduce(sum.v, 0);
      ph.run();
    }
    for (int64_t g = got.v.lo[0]; g < got.v.lo[0] + 2; ++g)
      expect(got.at(g) == 3.0 * g + 1, r, type + " ring: element " + std::to_string(g));
    for (int64_t g = 0; g < 8; ++g)
      expect(sum.at(g) == n * g + n * (n - 1) / 2.0, r, type + " all_reduce: element " + std::to_string(g));

    // Sub-groups: evens and odds all-reduce separately, in one phase.
    const std::vector<int>& mine_group = r % 2 ? odds : evens;
    Buf s(t, 4, 0, 4);
    s.fill([&](int64_t) { return r + 1; });
    {
      ffrt::Comm::Phase ph(*comm, *ctx);
      ph.all_reduce(s.v, r % 2 ? 2 : 1);
      ph.run();
    }
    double want = 0;
    for (int m : mine_group) want += m + 1;
    expect(s.at(0) == want && s.at(3) == want, r, type + " group all_reduce");

    // All-gather of uneven pieces of an 11-element tensor, and reduce-scatter back.
    const int64_t E = 11;
    std::vector<View> pieces;
    std::vector<std::unique_ptr<Buf>> piece_bufs;
    for (int i = 0; i < n; ++i) {
      piece_bufs.push_back(std::make_unique<Buf>(t, E, part_lo(E, n, i), part_lo(E, n, i + 1) - part_lo(E, n, i)));
      pieces.push_back(piece_bufs.back()->v);
    }
    Buf own(t, E, part_lo(E, n, r), part_lo(E, n, r + 1) - part_lo(E, n, r)), whole(t, E, 0, E);
    own.fill([](int64_t g) { return 7.0 * g; });
    Buf contrib(t, E, 0, E), back(t, E, part_lo(E, n, r), part_lo(E, n, r + 1) - part_lo(E, n, r));
    contrib.fill([&](int64_t g) { return (r + 1) * g; });
    {
      ffrt::Comm::Phase ph(*comm, *ctx);
      ph.all_gather(own.v, whole.v, pieces, 0);
      ph.reduce_scatter(contrib.v, back.v, 0);
      ph.run();
    }
    for (int64_t g = 0; g < E; ++g) expect(whole.at(g) == 7.0 * g, r, type + " all_gather: element " + std::to_string(g));
    for (int64_t g = back.v.lo[0]; g < back.v.lo[0] + back.v.size[0]; ++g)
      expect(back.at(g) == n * (n + 1) / 2.0 * g, r, type + " reduce_scatter: element " + std::to_string(g));
  }

  // Every rank's verdict.
  int total = 0;
  {
    Buf f(DType::i64, 1, 0, 1);
    f.set(0, failures);
    ffrt::Comm::Phase ph(*comm, *ctx);
    ph.all_reduce(f.v, 0);
    ph.run();
    total = static_cast<int>(f.at(0));
  }
  if (r == 0) std::printf("%s: %d ranks, %d failures\n", total ? "FAIL" : "PASS", n, total);
  return total ? 1 : 0;
}
