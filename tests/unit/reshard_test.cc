// The reshard table: a worked example for each rule with its exact plan, the malformed requests that
// are internal errors, and a property test that runs random plans on real buffers through a small
// reference executor and checks every dest's values.
#include "passes/reshard.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <random>

#include "tests/unit/testing.h"

namespace ffc {
namespace {

using testing::box;
using testing::points;

Piece on(int device, const Box& b) { return Piece{device, b}; }

std::string list(char prefix, const std::vector<int>& idx) {
  std::string s = fmt::format("{}{{", prefix);
  for (size_t k = 0; k < idx.size(); ++k) s += fmt::format("{}{}", k ? "," : "", idx[k]);
  return s + "}";
}

std::string describe(const Move& m) {
  if (m.kind == MoveKind::transfer) return fmt::format("transfer s{}->d{} {}", m.src, m.dst, m.box.str());
  std::string s =
      fmt::format("{} {} {} -> {}", move_kind_name(m.kind), m.box.str(), list('s', m.srcs), list('d', m.dsts));
  for (size_t k = 0; k < m.transfers.size(); ++k)
    s +=
        fmt::format("{}s{}->d{} {}", k ? "; " : ": ", m.transfers[k].src, m.transfers[k].dst, m.transfers[k].box.str());
  return s;
}

/// A plan as text: one line per dest (`d0: view s1`, `d1: own`), then one line per move.
std::string describe(const ReshardPlan& p) {
  std::string s;
  for (size_t j = 0; j < p.dests.size(); ++j)
    s += p.dests[j].storage == DestStorage::view ? fmt::format("d{}: view s{}\n", j, p.dests[j].source)
                                                 : fmt::format("d{}: own\n", j);
  for (const Move& m : p.moves) s += describe(m) + "\n";
  return s;
}

std::string plan(ReshardMode mode, const std::vector<Piece>& sources, const std::vector<Piece>& dests) {
  return describe(plan_reshard(mode, sources, dests));
}

constexpr ReshardMode kCopy = ReshardMode::copy;
constexpr ReshardMode kSum = ReshardMode::sum;

TEST(Reshard, MoveKindNames) {
  EXPECT_STREQ(move_kind_name(MoveKind::transfer), "transfer");
  EXPECT_STREQ(move_kind_name(MoveKind::all_reduce), "all_reduce");
  EXPECT_STREQ(move_kind_name(MoveKind::all_gather), "all_gather");
  EXPECT_STREQ(move_kind_name(MoveKind::reduce_scatter), "reduce_scatter");
  EXPECT_STREQ(move_kind_name(MoveKind::all_to_all), "all_to_all");
}

TEST(Reshard, IdenticalLayoutIsAllViews) {
  std::vector<Piece> parts{on(0, box({{0, 4}, {0, 8}})), on(1, box({{4, 8}, {0, 8}}))};
  EXPECT_EQ(plan(kCopy, parts, parts), "d0: view s0\nd1: view s1\n");
}

TEST(Reshard, LocalSliceIsAView) {
  // Each dest lies inside the source on its device; the lowest-index containing source is viewed.
  std::vector<Piece> sources{on(0, box({{0, 8}})), on(1, box({{8, 16}})), on(1, box({{8, 16}}))};
  std::vector<Piece> dests{on(0, box({{2, 5}})), on(1, box({{10, 12}})), on(0, box({{0, 8}}))};
  EXPECT_EQ(plan(kCopy, sources, dests), "d0: view s0\nd1: view s1\nd2: view s0\n");
}

TEST(Reshard, HaloConvSplitCopiesLocallyAndSendsOneRowEach) {
  // Rows [0,8) on dev0 and [8,16) on dev1; a 3x3 conv split the same way needs one row of halo.
  std::vector<Piece> sources{on(0, box({{0, 8}, {0, 4}})), on(1, box({{8, 16}, {0, 4}}))};
  std::vector<Piece> dests{on(0, box({{0, 9}, {0, 4}})), on(1, box({{7, 16}, {0, 4}}))};
  EXPECT_EQ(plan(kCopy, sources, dests),
            "d0: own\nd1: own\n"
            "transfer s0->d0 [0:8, 0:4]\n"
            "transfer s1->d0 [8:9, 0:4]\n"
            "transfer s0->d1 [7:8, 0:4]\n"
            "transfer s1->d1 [8:16, 0:4]\n");
}

TEST(Reshard, AllGatherOfAFeatureSplit) {
  std::vector<Piece> sources{on(0, box({{0, 4}, {0, 3}})), on(1, box({{0, 4}, {3, 6}}))};
  std::vector<Piece> dests{on(0, box({{0, 4}, {0, 6}})), on(1, box({{0, 4}, {0, 6}}))};
  EXPECT_EQ(plan(kCopy, sources, dests), "d0: own\nd1: own\nall_gather [0:4, 0:6] s{0,1} -> d{0,1}\n");
}

TEST(Reshard, CollectivesListSourcesAndDestsInDeviceOrder) {
  std::vector<Piece> sources{on(2, box({{0, 2}})), on(0, box({{2, 5}})), on(1, box({{5, 6}}))};
  std::vector<Piece> dests{on(1, box({{0, 6}})), on(2, box({{0, 6}})), on(0, box({{0, 6}}))};
  EXPECT_EQ(plan(kCopy, sources, dests), "d0: own\nd1: own\nd2: own\nall_gather [0:6] s{1,2,0} -> d{2,0,1}\n");
}

TEST(Reshard, AllGatherNeedsOneDestPerSourceDevice) {
  // A third device also wants the whole box: not an all-gather's shape, so point-to-point.
  std::vector<Piece> sources{on(0, box({{0, 3}})), on(1, box({{3, 6}}))};
  std::vector<Piece> dests{on(0, box({{0, 6}})), on(1, box({{0, 6}})), on(2, box({{0, 6}}))};
  EXPECT_EQ(plan(kCopy, sources, dests),
            "d0: own\nd1: own\nd2: own\n"
            "transfer s0->d0 [0:3]\ntransfer s1->d0 [3:6]\n"
            "transfer s0->d1 [0:3]\ntransfer s1->d1 [3:6]\n"
            "transfer s0->d2 [0:3]\ntransfer s1->d2 [3:6]\n");
}

TEST(Reshard, AllReduceOfReplicatedWeightGradients) {
  Box w = box({{0, 16}, {0, 8}});
  std::vector<Piece> grads{on(0, w), on(1, w), on(2, w), on(3, w)};
  EXPECT_EQ(plan(kSum, grads, grads),
            "d0: view s0\nd1: view s1\nd2: view s2\nd3: view s3\nall_reduce [0:16, 0:8] s{0,1,2,3} -> d{0,1,2,3}\n");
}

TEST(Reshard, HybridParallelismAllReducesEachGroup) {
  // A weight split in two halves, each replicated on two devices: two independent all-reduces, in the
  // order of their lowest dest index (half B's group holds dest 0).
  Box a = box({{0, 8}, {0, 4}}), b = box({{0, 8}, {4, 8}});
  std::vector<Piece> sources{on(0, a), on(2, b), on(1, a), on(3, b)};
  std::vector<Piece> dests{on(3, b), on(1, a), on(2, b), on(0, a)};
  EXPECT_EQ(plan(kSum, sources, dests),
            "d0: view s3\nd1: view s2\nd2: view s1\nd3: view s0\n"
            "all_reduce [0:8, 4:8] s{1,3} -> d{2,0}\n"
            "all_reduce [0:8, 0:4] s{0,2} -> d{3,1}\n");
}

TEST(Reshard, ReduceScatter) {
  Box whole = box({{0, 8}, {0, 2}});
  std::vector<Piece> sources{on(0, whole), on(1, whole), on(2, whole)};
  std::vector<Piece> dests{on(0, box({{0, 2}, {0, 2}})), on(1, box({{2, 5}, {0, 2}})), on(2, box({{5, 8}, {0, 2}}))};
  EXPECT_EQ(plan(kSum, sources, dests), "d0: own\nd1: own\nd2: own\nreduce_scatter [0:8, 0:2] s{0,1,2} -> d{0,1,2}\n");
}

TEST(Reshard, AllToAllFromBatchSplitToChannelSplit) {
  std::vector<Piece> sources{on(0, box({{0, 2}, {0, 6}})), on(1, box({{2, 4}, {0, 6}}))};
  std::vector<Piece> dests{on(0, box({{0, 4}, {0, 3}})), on(1, box({{0, 4}, {3, 6}}))};
  EXPECT_EQ(plan(kCopy, sources, dests),
            "d0: own\nd1: own\n"
            "all_to_all [0:4, 0:6] s{0,1} -> d{0,1}: "
            "s0->d0 [0:2, 0:3]; s1->d0 [2:4, 0:3]; s0->d1 [0:2, 3:6]; s1->d1 [2:4, 3:6]\n");
}

TEST(Reshard, AllToAllNeedsEveryDeviceToSendToEveryOther) {
  // Three row blocks re-split unevenly: dev0's dest does not meet dev2's source, so point-to-point.
  std::vector<Piece> sources{on(0, box({{0, 2}})), on(1, box({{2, 4}})), on(2, box({{4, 6}}))};
  std::vector<Piece> dests{on(0, box({{0, 3}})), on(1, box({{3, 5}})), on(2, box({{5, 6}}))};
  EXPECT_EQ(plan(kCopy, sources, dests),
            "d0: own\nd1: own\nd2: view s2\n"
            "transfer s0->d0 [0:2]\ntransfer s1->d0 [2:3]\n"
            "transfer s1->d1 [3:4]\ntransfer s2->d1 [4:5]\n");
}

TEST(Reshard, SumWithHalosAccumulatesTheNeighbourInPlace) {
  // Conv input gradients with halos: each dest views its own contribution and adds the neighbour's
  // overlap into it.
  std::vector<Piece> sources{on(0, box({{0, 9}})), on(1, box({{7, 16}}))};
  std::vector<Piece> dests{on(0, box({{0, 8}})), on(1, box({{8, 16}}))};
  EXPECT_EQ(plan(kSum, sources, dests),
            "d0: view s0\nd1: view s1\n"
            "transfer s1->d0 [7:8]\n"
            "transfer s0->d1 [8:9]\n");
}

TEST(Reshard, SumWithSoleLocalContributionIsAPlainView) {
  std::vector<Piece> sources{on(0, box({{0, 4}})), on(1, box({{4, 8}}))};
  std::vector<Piece> dests{on(0, box({{1, 3}})), on(1, box({{4, 8}}))};
  EXPECT_EQ(plan(kSum, sources, dests), "d0: view s0\nd1: view s1\n");
}

TEST(Reshard, SumFanOutOnOneDevice) {
  // Two consumers on dev0 read different boxes, so dev0 holds two contributions.
  std::vector<Piece> sources{on(0, box({{0, 6}})), on(0, box({{2, 8}}))};
  // The whole tensor lies in neither contribution: an own buffer summing both.
  EXPECT_EQ(plan(kSum, sources, {on(0, box({{0, 8}}))}),
            "d0: own\n"
            "transfer s0->d0 [0:6]\n"
            "transfer s1->d0 [2:8]\n");
  // Halves: each lies in one contribution and accumulates the other in place.
  EXPECT_EQ(plan(kSum, sources, {on(0, box({{0, 4}})), on(0, box({{4, 8}}))}),
            "d0: view s0\nd1: view s1\n"
            "transfer s1->d0 [2:4]\n"
            "transfer s0->d1 [4:6]\n");
}

TEST(Reshard, SumInPlaceOnlyForDisjointDests) {
  std::vector<Piece> sources{on(0, box({{0, 8}})), on(1, box({{3, 5}}))};
  // Disjoint dests on dev0 may both accumulate into s0.
  EXPECT_EQ(plan(kSum, sources, {on(0, box({{0, 4}})), on(0, box({{4, 8}}))}),
            "d0: view s0\nd1: view s0\n"
            "transfer s1->d0 [3:4]\n"
            "transfer s1->d1 [4:5]\n");
  // Overlapping ones would each add s1's contribution to [3,5) twice: own buffers.
  EXPECT_EQ(plan(kSum, sources, {on(0, box({{0, 5}})), on(0, box({{3, 8}}))}),
            "d0: own\nd1: own\n"
            "transfer s0->d0 [0:5]\ntransfer s1->d0 [3:5]\n"
            "transfer s0->d1 [3:8]\ntransfer s1->d1 [3:5]\n");
  // A plain view overlapping an accumulating dest is fine: no contribution lands in its box.
  EXPECT_EQ(plan(kSum, sources, {on(0, box({{0, 5}})), on(0, box({{0, 2}}))}),
            "d0: view s0\nd1: view s0\n"
            "transfer s1->d0 [3:5]\n");
}

TEST(Reshard, SeveralPartsOnOneDevice) {
  std::vector<Piece> sources{on(0, box({{0, 2}})), on(0, box({{2, 4}})), on(1, box({{4, 6}})), on(1, box({{6, 8}}))};
  std::vector<Piece> dests{on(0, box({{0, 4}})), on(1, box({{4, 8}})), on(0, box({{2, 4}}))};
  EXPECT_EQ(plan(kCopy, sources, dests),
            "d0: own\nd1: own\nd2: view s1\n"
            "transfer s0->d0 [0:2]\ntransfer s1->d0 [2:4]\n"
            "transfer s2->d1 [4:6]\ntransfer s3->d1 [6:8]\n");
}

TEST(Reshard, CopyFromARemoteSourceOnly) {
  EXPECT_EQ(plan(kCopy, {on(0, box({{0, 8}, {0, 2}}))}, {on(1, box({{2, 6}, {0, 2}}))}),
            "d0: own\ntransfer s0->d0 [2:6, 0:2]\n");
}

TEST(Reshard, CopyPrefersALocalReplicaElseTheLowestIndex) {
  std::vector<Piece> sources{on(0, box({{0, 4}})), on(0, box({{4, 8}})), on(1, box({{0, 4}})), on(1, box({{4, 8}})),
                             on(2, box({{4, 8}}))};
  std::vector<Piece> dests{on(1, box({{2, 6}})), on(3, box({{2, 6}})), on(2, box({{2, 6}}))};
  EXPECT_EQ(plan(kCopy, sources, dests),
            "d0: own\nd1: own\nd2: own\n"
            "transfer s2->d0 [2:4]\ntransfer s3->d0 [4:6]\n"
            "transfer s0->d1 [2:4]\ntransfer s1->d1 [4:6]\n"
            "transfer s0->d2 [2:4]\ntransfer s4->d2 [4:6]\n");
}

TEST(Reshard, UnevenSplits) {
  // 10 rows over 4 devices (2,3,2,3) re-split over 3 (3,3,4).
  std::vector<Piece> sources, dests;
  for (int i = 0; i < 4; ++i) sources.push_back(on(i, Box{{part_range(10, 4, i)}}));
  for (int i = 0; i < 3; ++i) dests.push_back(on(i, Box{{part_range(10, 3, i)}}));
  EXPECT_EQ(plan(kCopy, sources, dests),
            "d0: own\nd1: own\nd2: own\n"
            "transfer s0->d0 [0:2]\ntransfer s1->d0 [2:3]\n"
            "transfer s1->d1 [3:5]\ntransfer s2->d1 [5:6]\n"
            "transfer s2->d2 [6:7]\ntransfer s3->d2 [7:10]\n");
  // An uneven all-gather.
  EXPECT_EQ(plan(kCopy, {on(0, box({{0, 3}})), on(1, box({{3, 7}}))}, {on(0, box({{0, 7}})), on(1, box({{0, 7}}))}),
            "d0: own\nd1: own\nall_gather [0:7] s{0,1} -> d{0,1}\n");
}

TEST(Reshard, EmptyBoxes) {
  // One row split over two devices: dev0's source part is empty and plays no part.
  std::vector<Piece> sources{on(0, box({{0, 0}, {0, 3}})), on(1, box({{0, 1}, {0, 3}}))};
  EXPECT_EQ(plan(kCopy, sources, {on(0, box({{0, 1}, {0, 3}})), on(1, box({{0, 1}, {0, 3}}))}),
            "d0: own\nd1: view s1\ntransfer s1->d0 [0:1, 0:3]\n");
  // An empty dest is own with nothing to do, even with no source at all.
  EXPECT_EQ(plan(kCopy, sources, {on(0, box({{0, 1}, {2, 2}}))}), "d0: own\n");
  EXPECT_EQ(plan(kCopy, {}, {on(0, box({{0, 0}}))}), "d0: own\n");
  // A reduce-scatter whose dev0 part is empty is no longer one dest per device: point-to-point.
  std::vector<Piece> grads{on(0, box({{0, 1}})), on(1, box({{0, 1}}))};
  EXPECT_EQ(plan(kSum, grads, {on(0, box({{0, 0}})), on(1, box({{0, 1}}))}),
            "d0: own\nd1: view s1\ntransfer s0->d1 [0:1]\n");
  // Nothing at all.
  EXPECT_EQ(plan(kSum, {}, {}), "");
}

TEST(Reshard, SumDestWithNoContributionIsZero) {
  EXPECT_EQ(plan(kSum, {on(0, box({{0, 4}}))}, {on(1, box({{4, 8}}))}), "d0: own\n");
}

TEST(Reshard, ViewsInAComponentLeaveTheRestPointToPoint) {
  // dev1's dest lies in its local replica s2; dev0's dest is filled by transfers, from the local
  // replica s0 of [0:3].
  std::vector<Piece> split{on(0, box({{0, 3}})), on(1, box({{3, 6}})), on(1, box({{0, 3}}))};
  EXPECT_EQ(plan(kCopy, split, {on(0, box({{0, 6}})), on(1, box({{0, 3}}))}),
            "d0: own\nd1: view s2\ntransfer s0->d0 [0:3]\ntransfer s1->d0 [3:6]\n");
}

TEST(Reshard, MalformedRequestsAreInternalErrors) {
  EXPECT_DEATH(plan(kCopy, {on(0, box({{0, 4}})), on(1, box({{2, 6}}))}, {on(0, box({{0, 6}}))}),
               "internal error.*overlap without being replicas");
  EXPECT_DEATH(plan(kCopy, {on(0, box({{0, 4}}))}, {on(0, box({{2, 6}}))}), "internal error.*cover 2 of its 4");
  EXPECT_DEATH(plan(kCopy, {on(0, box({{0, 4}}))}, {on(1, box({{0, 4}, {0, 1}}))}), "internal error.*rank");
  EXPECT_DEATH(plan(kSum, {on(0, box({{0, 4}})), on(1, box({{0, 4}, {0, 1}}))}, {}), "internal error.*rank");
}

// ---- The property test: random plans run on real buffers. ----

/// A buffer holding a box of the tensor, row-major.
struct Buffer {
  Box box;
  std::vector<float> v;
  Buffer() = default;
  Buffer(const Box& b, float fill) : box(b), v(static_cast<size_t>(b.volume()), fill) {}
  float& at(const std::vector<int64_t>& p) {
    int64_t off = 0;
    for (int d = 0; d < box.rank(); ++d) off = off * box.r[d].size() + (p[d] - box.r[d].lo);
    return v.at(static_cast<size_t>(off));
  }
};

/// The tensor's value at a point in copy mode (distinct for every point of extents up to 7).
float tensor_value(const std::vector<int64_t>& p) {
  float x = 1;
  for (int64_t c : p) x = x * 8 + static_cast<float>(c);
  return x;
}

bool holds(const Box& b, const std::vector<int64_t>& pt) {
  for (int d = 0; d < b.rank(); ++d)
    if (pt[d] < b.r[d].lo || pt[d] >= b.r[d].hi) return false;
  return true;
}

/// Checks the plan's structure against the documented shapes of each storage and move kind.
void check_structure(ReshardMode mode, const std::vector<Piece>& sources, const std::vector<Piece>& dests,
                     const ReshardPlan& p) {
  ASSERT_EQ(p.dests.size(), dests.size());
  auto valid_src = [&](int i) { return i >= 0 && i < static_cast<int>(sources.size()); };
  auto valid_dst = [&](int j) { return j >= 0 && j < static_cast<int>(dests.size()); };
  for (size_t j = 0; j < dests.size(); ++j) {
    if (dests[j].box.empty()) {
      EXPECT_EQ(p.dests[j].storage, DestStorage::own) << "empty d" << j;
    }
    if (p.dests[j].storage != DestStorage::view) continue;
    int s = p.dests[j].source;
    ASSERT_TRUE(valid_src(s)) << "d" << j;
    EXPECT_EQ(sources[s].device, dests[j].device) << "d" << j;
    EXPECT_TRUE(sources[s].box.contains(dests[j].box)) << "d" << j;
  }
  auto check_transfer = [&](const Move& t) {
    ASSERT_EQ(t.kind, MoveKind::transfer);
    ASSERT_TRUE(valid_src(t.src) && valid_dst(t.dst));
    EXPECT_EQ(t.box, intersect(sources[t.src].box, dests[t.dst].box));
    EXPECT_FALSE(t.box.empty());
    if (mode == ReshardMode::copy) {
      EXPECT_EQ(p.dests[t.dst].storage, DestStorage::own) << "copy into a view";
    }
  };
  for (const Move& m : p.moves) {
    if (m.kind == MoveKind::transfer) {
      check_transfer(m);
      continue;
    }
    bool sum_kind = m.kind == MoveKind::all_reduce || m.kind == MoveKind::reduce_scatter;
    EXPECT_EQ(sum_kind, mode == ReshardMode::sum) << move_kind_name(m.kind);
    ASSERT_GE(m.srcs.size(), 2u);
    ASSERT_EQ(m.srcs.size(), m.dsts.size());
    for (size_t k = 0; k < m.srcs.size(); ++k) {
      ASSERT_TRUE(valid_src(m.srcs[k]) && valid_dst(m.dsts[k]));
      EXPECT_EQ(sources[m.srcs[k]].device, dests[m.dsts[k]].device);
      if (k > 0) {
        EXPECT_LT(sources[m.srcs[k - 1]].device, sources[m.srcs[k]].device);
      }
      EXPECT_TRUE(m.box.contains(sources[m.srcs[k]].box));
      EXPECT_TRUE(m.box.contains(dests[m.dsts[k]].box));
      DestStorage want = m.kind == MoveKind::all_reduce ? DestStorage::view : DestStorage::own;
      EXPECT_EQ(p.dests[m.dsts[k]].storage, want);
      if (m.kind == MoveKind::all_reduce) {
        EXPECT_EQ(p.dests[m.dsts[k]].source, m.srcs[k]);
      }
    }
    if (m.kind == MoveKind::all_to_all)
      for (const Move& t : m.transfers) check_transfer(t);
    else
      EXPECT_TRUE(m.transfers.empty());
  }
}

/// Runs `p` on `src` (one buffer per source) the way the executor does: every transfer reads its
/// source first, then the collectives run, then the transfers write (copy) or add (sum) in move
/// order, into the dest's own buffer or in place into the source it views. Returns each dest's values.
std::vector<Buffer> execute(ReshardMode mode, const std::vector<Piece>& dests, std::vector<Buffer> src,
                            const ReshardPlan& p) {
  const bool copy = mode == ReshardMode::copy;
  std::vector<Buffer> own, writes;  // per dest: its own buffer; copy mode: how often each element is written
  for (const Piece& d : dests) {
    own.emplace_back(d.box, copy ? std::numeric_limits<float>::quiet_NaN() : 0.0f);
    writes.emplace_back(d.box, 0.0f);
  }
  struct Pending {
    int dst;
    Box box;
    std::vector<float> values;
  };
  std::vector<Pending> pending;
  auto read = [&](const Move& t) {
    Pending w{t.dst, t.box, {}};
    for (const auto& pt : points(t.box)) w.values.push_back(src[t.src].at(pt));
    pending.push_back(std::move(w));
  };
  for (const Move& m : p.moves) {
    if (m.kind == MoveKind::transfer) read(m);
    for (const Move& t : m.transfers) read(t);
  }
  auto put = [&](int j, const std::vector<int64_t>& pt, float x) {
    own[j].at(pt) = copy ? x : own[j].at(pt) + x;
    writes[j].at(pt) += 1;
  };
  for (const Move& m : p.moves) {
    if (m.kind == MoveKind::all_reduce) {
      for (const auto& pt : points(m.box)) {
        float total = 0;
        for (int i : m.srcs) total += src[i].at(pt);
        for (int i : m.srcs) src[i].at(pt) = total;
      }
    } else if (m.kind == MoveKind::reduce_scatter) {
      for (int j : m.dsts)
        for (const auto& pt : points(dests[j].box)) {
          float total = 0;
          for (int i : m.srcs) total += src[i].at(pt);
          put(j, pt, total);
        }
    } else if (m.kind == MoveKind::all_gather) {
      for (int j : m.dsts)
        for (int i : m.srcs)
          for (const auto& pt : points(src[i].box)) put(j, pt, src[i].at(pt));
    }
  }
  for (const Pending& w : pending) {
    const DestPlan& d = p.dests[w.dst];
    EXPECT_TRUE(dests[w.dst].box.contains(w.box));
    std::vector<std::vector<int64_t>> pts = points(w.box);
    for (size_t k = 0; k < pts.size(); ++k) {
      if (d.storage == DestStorage::own) {
        put(w.dst, pts[k], w.values[k]);
      } else {
        EXPECT_FALSE(copy) << "a copy-mode transfer into a view";
        src[d.source].at(pts[k]) += w.values[k];
      }
    }
  }
  std::vector<Buffer> out;
  for (size_t j = 0; j < dests.size(); ++j) {
    if (p.dests[j].storage == DestStorage::own) {
      if (copy) {
        for (const auto& pt : points(dests[j].box)) EXPECT_EQ(writes[j].at(pt), 1.0f) << "writes to d" << j;
      }
      out.push_back(own[j]);
    } else {
      Buffer b(dests[j].box, 0.0f);
      for (const auto& pt : points(dests[j].box)) b.at(pt) = src[p.dests[j].source].at(pt);
      out.push_back(b);
    }
  }
  return out;
}

std::string describe_pieces(const char* what, const std::vector<Piece>& pieces) {
  std::string s = what;
  for (size_t i = 0; i < pieces.size(); ++i)
    s += fmt::format(" {}{}{}@{}", what[0], i, pieces[i].box.str(), pieces[i].device);
  return s;
}

/// Random small reshard requests.
class Generator {
 public:
  explicit Generator(uint32_t seed) : rng_(seed) {}

  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  void new_tensor() {
    extents_.assign(uniform(1, 3), 0);
    for (int64_t& e : extents_) e = uniform(1, 7);
  }
  Box whole() const { return Box::whole(extents_); }

  /// Half the time one dim split 2-4 ways (the shape collectives need), else any split up to 3 per dim.
  std::vector<int64_t> random_degrees() {
    if (uniform(0, 1)) return split_one_dim(uniform(2, 4));
    std::vector<int64_t> d(extents_.size());
    for (int64_t& x : d) x = uniform(1, 3);
    return d;
  }

  /// A random dim split `n` ways.
  std::vector<int64_t> split_one_dim(int64_t n) {
    std::vector<int64_t> d(extents_.size(), 1);
    d[uniform(0, static_cast<int>(d.size()) - 1)] = n;
    return d;
  }

  /// The parts of a partition, replicated `replicas` times, on devices: distinct where that fits
  /// (part k of replica r on device (r * parts + k) mod 4), else random.
  std::vector<Piece> partition(const std::vector<int64_t>& degrees, int replicas, bool distinct) {
    std::vector<Piece> out;
    int64_t n = num_parts(degrees);
    for (int r = 0; r < replicas; ++r)
      for (int64_t k = 0; k < n; ++k)
        out.push_back(on(distinct ? static_cast<int>((r * n + k) % 4) : uniform(0, 3), part_box(extents_, degrees, k)));
    return out;
  }

  /// A random box inside the tensor, sometimes empty.
  Box random_box() {
    Box b;
    for (int64_t e : extents_) {
      int64_t lo = uniform(0, static_cast<int>(e)), hi = uniform(static_cast<int>(lo), static_cast<int>(e));
      if (hi == lo && uniform(0, 2) > 0) hi = uniform(static_cast<int>(lo), static_cast<int>(e));  // rarely empty
      b.r.push_back({lo, hi});
    }
    return b;
  }

  /// Sources: copy mode, a partition, maybe replicated.
  std::vector<Piece> copy_sources(std::vector<int64_t>& degrees, bool& distinct) {
    degrees = random_degrees();
    distinct = uniform(0, 1) == 1;
    return partition(degrees, uniform(0, 3) == 0 ? 2 : 1, distinct);
  }

  /// Sources: sum mode, contributions (at most one per device and box).
  std::vector<Piece> sum_sources(std::vector<int64_t>& degrees, bool& distinct) {
    degrees = random_degrees();
    distinct = uniform(0, 1) == 1;
    std::vector<Piece> raw;
    switch (uniform(0, 3)) {
      case 0:  // unrelated contributions
        for (int k = uniform(1, 5); k > 0; --k) raw.push_back(on(uniform(0, 3), random_box()));
        break;
      case 1: {  // replicated gradients: the whole tensor on several devices (the dests split as many ways)
        int k = uniform(1, 4);
        for (int i = 0; i < k; ++i) raw.push_back(on(i, whole()));
        degrees = split_one_dim(k);
        distinct = true;
        break;
      }
      case 2:  // hybrid: a split gradient, each part replicated
        raw = partition(degrees, uniform(1, 2), distinct);
        break;
      default:  // halos: parts grown by up to one on each side
        raw = partition(degrees, 1, distinct);
        for (Piece& p : raw)
          for (size_t d = 0; d < extents_.size(); ++d) {
            if (p.box.r[d].empty()) continue;
            p.box.r[d].lo = std::max<int64_t>(0, p.box.r[d].lo - uniform(0, 1));
            p.box.r[d].hi = std::min<int64_t>(extents_[d], p.box.r[d].hi + uniform(0, 1));
          }
    }
    std::vector<Piece> out;
    for (const Piece& p : raw)
      if (std::none_of(out.begin(), out.end(), [&](const Piece& q) { return q.device == p.device && q.box == p.box; }))
        out.push_back(p);
    return out;
  }

  /// Dests: another partition (often of the same part count split along another dim, for all-to-all
  /// and reduce-scatter), the whole tensor on several devices, the sources' own layout, or random boxes.
  std::vector<Piece> dests(const std::vector<Piece>& sources, const std::vector<int64_t>& src_degrees, bool distinct) {
    std::vector<Piece> out;
    int64_t n = std::min<int64_t>(num_parts(src_degrees), 4);
    switch (uniform(0, 4)) {
      case 0: return partition(uniform(0, 1) ? split_one_dim(n) : random_degrees(), 1, distinct);
      case 4: {  // re-split: as many parts on the same devices, along a dim the sources do not split
        std::vector<int64_t> degrees(extents_.size(), 1);
        std::vector<int> free;
        for (size_t d = 0; d < src_degrees.size(); ++d)
          if (src_degrees[d] == 1) free.push_back(static_cast<int>(d));
        degrees[free.empty() ? 0 : free[uniform(0, static_cast<int>(free.size()) - 1)]] = n;
        return partition(degrees, 1, true);
      }
      case 1: {
        int k = distinct && uniform(0, 2) ? static_cast<int>(n) : uniform(1, 4);
        for (int i = 0; i < k; ++i) out.push_back(on(distinct ? static_cast<int>(i % n) : uniform(0, 3), whole()));
        return out;
      }
      case 2:
        out = sources;
        if (!distinct)
          for (Piece& p : out) p.device = uniform(0, 3);
        return out;
      default:
        for (int k = uniform(1, 4); k > 0; --k) out.push_back(on(uniform(0, 3), random_box()));
        return out;
    }
  }

 private:
  std::mt19937 rng_;
  std::vector<int64_t> extents_;
};

TEST(Reshard, SumInPlaceReadsComeBeforeAccumulations) {
  // Each dest views one contribution and adds the other's overlap in place, and each reads [4,5) of the
  // buffer the other accumulates into: right only because every transfer reads before any writes.
  std::vector<Piece> sources{on(0, box({{0, 6}})), on(0, box({{4, 8}}))};
  std::vector<Piece> dests{on(0, box({{0, 5}})), on(0, box({{4, 8}}))};
  ReshardPlan p = plan_reshard(kSum, sources, dests);
  EXPECT_EQ(describe(p), "d0: view s0\nd1: view s1\ntransfer s1->d0 [4:5]\ntransfer s0->d1 [4:6]\n");
  std::vector<Buffer> got = execute(kSum, dests, {Buffer(sources[0].box, 1.0f), Buffer(sources[1].box, 10.0f)}, p);
  EXPECT_EQ(got[0].v, (std::vector<float>{1, 1, 1, 1, 11}));
  EXPECT_EQ(got[1].v, (std::vector<float>{11, 11, 10, 10}));
}

TEST(Reshard, RandomPlansDeliverTheRightValues) {
  Generator gen(12345);
  std::map<std::string, int> seen;  // move kinds and dest storages, to show every rule was exercised
  for (ReshardMode mode : {kCopy, kSum}) {
    const bool copy = mode == kCopy;
    for (int c = 0; c < 300; ++c) {
      gen.new_tensor();
      std::vector<int64_t> degrees;
      bool distinct = false;
      std::vector<Piece> sources = copy ? gen.copy_sources(degrees, distinct) : gen.sum_sources(degrees, distinct);
      std::vector<Piece> dests = gen.dests(sources, degrees, distinct);
      ReshardPlan p = plan_reshard(mode, sources, dests);
      std::string text = describe(p);
      SCOPED_TRACE(fmt::format("{} case {}\n{}\n{}\nplan:\n{}", copy ? "copy" : "sum", c,
                               describe_pieces("sources", sources), describe_pieces("dests", dests), text));
      EXPECT_EQ(describe(plan_reshard(mode, sources, dests)), text) << "not deterministic";
      check_structure(mode, sources, dests, p);
      if (::testing::Test::HasFatalFailure()) return;

      std::vector<Buffer> bufs;
      for (const Piece& s : sources) {
        Buffer b(s.box, 0.0f);
        for (const auto& pt : points(s.box))
          b.at(pt) = copy ? tensor_value(pt) : static_cast<float>(gen.uniform(-3, 3));
        bufs.push_back(std::move(b));
      }
      std::vector<Buffer> got = execute(mode, dests, bufs, p);
      for (size_t j = 0; j < dests.size(); ++j)
        for (const auto& pt : points(dests[j].box)) {
          float want = 0;
          if (copy) {
            want = tensor_value(pt);
          } else {
            for (size_t i = 0; i < sources.size(); ++i)
              if (holds(sources[i].box, pt)) want += bufs[i].at(pt);
          }
          ASSERT_EQ(got[j].at(pt), want) << "d" << j << " at " << fmt::format("{}", fmt::join(pt, ","));
        }
      for (const Move& m : p.moves) ++seen[move_kind_name(m.kind)];
      for (const DestPlan& d : p.dests) ++seen[d.storage == DestStorage::view ? "view" : "own"];
    }
  }
  std::string summary;
  for (const auto& [k, n] : seen) summary += fmt::format(" {}={}", k, n);
  SCOPED_TRACE("seen:" + summary);
  for (const char* k : {"transfer", "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "view", "own"})
    EXPECT_GT(seen[k], 0) << k;
  std::printf("reshard property test:%s\n", summary.c_str());
}

}  // namespace
}  // namespace ffc
