// The reshard table: how a tensor held as pieces on devices becomes the pieces its consumers need.
#include "passes/reshard.h"

#include <algorithm>
#include <numeric>

#include "ir/diag.h"

namespace ffc {

const char* move_kind_name(MoveKind k) {
  switch (k) {
    case MoveKind::transfer: return "transfer";
    case MoveKind::all_reduce: return "all_reduce";
    case MoveKind::all_gather: return "all_gather";
    case MoveKind::reduce_scatter: return "reduce_scatter";
    case MoveKind::all_to_all: return "all_to_all";
  }
  FFC_INTERNAL_ERROR("unknown move kind {}", static_cast<int>(k));
}

namespace {

/// Whether the intersection of a and b is not empty (without building it: the planner asks this of
/// every source and dest pair).
bool overlaps(const Box& a, const Box& b) {
  FFC_CHECK(a.rank() == b.rank());
  for (int d = 0; d < a.rank(); ++d)
    if (std::max(a.r[d].lo, b.r[d].lo) >= std::min(a.r[d].hi, b.r[d].hi)) return false;
  return true;
}

/// The smallest box holding every box of `idx` (all non-empty).
Box bounding_box(const std::vector<Piece>& pieces, const std::vector<int>& idx) {
  Box u = pieces[idx[0]].box;
  for (int i : idx)
    for (int d = 0; d < u.rank(); ++d) {
      u.r[d].lo = std::min(u.r[d].lo, pieces[i].box.r[d].lo);
      u.r[d].hi = std::max(u.r[d].hi, pieces[i].box.r[d].hi);
    }
  return u;
}

/// Whether the boxes of `idx` tile `u` exactly: each inside `u`, pairwise disjoint, volumes adding up.
bool tiles(const std::vector<Piece>& pieces, const std::vector<int>& idx, const Box& u) {
  int64_t volume = 0;
  for (size_t a = 0; a < idx.size(); ++a) {
    if (!u.contains(pieces[idx[a]].box)) return false;
    volume += pieces[idx[a]].box.volume();
    for (size_t b = a + 1; b < idx.size(); ++b)
      if (overlaps(pieces[idx[a]].box, pieces[idx[b]].box)) return false;
  }
  return volume == u.volume();
}

/// Whether every box of `idx` is `b`.
bool all_boxes_are(const std::vector<Piece>& pieces, const std::vector<int>& idx, const Box& b) {
  return std::all_of(idx.begin(), idx.end(), [&](int i) { return pieces[i].box == b; });
}

/// `idx` sorted by device (stable, so equal devices keep index order).
std::vector<int> by_device(const std::vector<Piece>& pieces, std::vector<int> idx) {
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return pieces[a].device < pieces[b].device; });
  return idx;
}

/// Whether the sources lie on pairwise distinct devices and the dests lie one on each of those devices
/// (the shape every collective has).
bool one_dest_per_source_device(const std::vector<Piece>& sources, const std::vector<int>& srcs,
                                const std::vector<Piece>& dests, const std::vector<int>& dsts) {
  if (srcs.size() != dsts.size()) return false;
  std::vector<int> s = by_device(sources, srcs), d = by_device(dests, dsts);
  for (size_t k = 0; k < s.size(); ++k) {
    if (k > 0 && sources[s[k]].device == sources[s[k - 1]].device) return false;
    if (dests[d[k]].device != sources[s[k]].device) return false;
  }
  return true;
}

/// Union-find over the sources (0..ns-1) and dests (ns..ns+nd-1).
struct Components {
  std::vector<int> parent;
  explicit Components(int n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
  int find(int x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  }
  void join(int a, int b) { parent[find(a)] = find(b); }
};

/// One connected component of "source box intersects dest box": indices ascending.
struct Component {
  std::vector<int> srcs;
  std::vector<int> dsts;
};

class Planner {
 public:
  Planner(ReshardMode mode, const std::vector<Piece>& sources, const std::vector<Piece>& dests)
      : mode_(mode), sources_(sources), dests_(dests) {}

  ReshardPlan run() {
    validate();
    plan_.dests.assign(dests_.size(), DestPlan{});
    intersecting_.resize(dests_.size());
    for (size_t j = 0; j < dests_.size(); ++j)
      for (size_t i = 0; i < sources_.size(); ++i)
        if (overlaps(sources_[i].box, dests_[j].box)) intersecting_[j].push_back(static_cast<int>(i));
    if (mode_ == ReshardMode::sum) find_in_place_candidates();
    for (const Component& c : components()) plan_component(c);
    return std::move(plan_);
  }

 private:
  void validate() const {
    const Box* first = !sources_.empty() ? &sources_[0].box : !dests_.empty() ? &dests_[0].box : nullptr;
    if (!first) return;
    auto check_rank = [&](const Piece& p, const char* what, size_t i) {
      if (p.box.rank() != first->rank())
        FFC_INTERNAL_ERROR("reshard: {} {} has box {} of rank {}, but {} has rank {}", what, i, p.box.str(),
                           p.box.rank(), first->str(), first->rank());
    };
    for (size_t i = 0; i < sources_.size(); ++i) check_rank(sources_[i], "source", i);
    for (size_t j = 0; j < dests_.size(); ++j) check_rank(dests_[j], "dest", j);
    if (mode_ != ReshardMode::copy) return;
    // In copy mode an element has one value, so sources that share an element must be replicas.
    for (size_t a = 0; a < sources_.size(); ++a)
      for (size_t b = a + 1; b < sources_.size(); ++b)
        if (overlaps(sources_[a].box, sources_[b].box) && sources_[a].box != sources_[b].box)
          FFC_INTERNAL_ERROR("reshard (copy): sources {} {} and {} {} overlap without being replicas", a,
                             sources_[a].box.str(), b, sources_[b].box.str());
  }

  /// The components that hold a dest, ordered by their lowest dest index (so the moves come out in
  /// dest order). Empty boxes intersect nothing and join no component.
  std::vector<Component> components() const {
    int ns = static_cast<int>(sources_.size());
    Components uf(ns + static_cast<int>(dests_.size()));
    for (size_t j = 0; j < dests_.size(); ++j)
      for (int i : intersecting_[j]) uf.join(i, ns + static_cast<int>(j));
    std::vector<Component> out;
    std::vector<int> slot(ns + dests_.size(), -1);  // root -> index in `out`
    for (size_t j = 0; j < dests_.size(); ++j) {
      if (dests_[j].box.empty()) continue;  // own, nothing to do
      int root = uf.find(ns + static_cast<int>(j));
      if (slot[root] < 0) {
        slot[root] = static_cast<int>(out.size());
        out.emplace_back();
      }
      out[slot[root]].dsts.push_back(static_cast<int>(j));
    }
    for (int i = 0; i < ns; ++i)
      if (int s = slot[uf.find(i)]; s >= 0 && !sources_[i].box.empty()) out[s].srcs.push_back(i);
    return out;
  }

  void plan_component(const Component& c) {
    if (mode_ == ReshardMode::copy) {
      bool any_view = false;
      for (int j : c.dsts) any_view |= try_copy_view(j);
      if (!any_view && (try_all_gather(c) || try_all_to_all(c))) return;
      for (int j : c.dsts)
        if (plan_.dests[j].storage != DestStorage::view) copy_point_to_point(j);
    } else {
      if (try_all_reduce(c) || try_reduce_scatter(c)) return;
      for (int j : c.dsts) sum_point_to_point(j);
    }
  }

  /// The lowest-index source on dest `j`'s device that contains its box, or -1.
  int containing_source_on_device(int j) const {
    for (int i : intersecting_[j])
      if (sources_[i].device == dests_[j].device && sources_[i].box.contains(dests_[j].box)) return i;
    return -1;
  }

  bool try_copy_view(int j) {
    int i = containing_source_on_device(j);
    if (i < 0) return false;
    plan_.dests[j] = {DestStorage::view, i};
    return true;
  }

  bool try_all_gather(const Component& c) {
    if (c.srcs.size() < 2 || !one_dest_per_source_device(sources_, c.srcs, dests_, c.dsts)) return false;
    Box u = bounding_box(sources_, c.srcs);
    if (!tiles(sources_, c.srcs, u) || !all_boxes_are(dests_, c.dsts, u)) return false;
    add_collective(MoveKind::all_gather, u, c);
    return true;
  }

  bool try_all_to_all(const Component& c) {
    if (c.srcs.size() < 2 || !one_dest_per_source_device(sources_, c.srcs, dests_, c.dsts)) return false;
    Box u = bounding_box(sources_, c.srcs);
    if (!tiles(sources_, c.srcs, u) || !tiles(dests_, c.dsts, u)) return false;
    std::vector<int> s = by_device(sources_, c.srcs), d = by_device(dests_, c.dsts);
    bool all_same = true;
    for (size_t k = 0; k < s.size(); ++k) all_same &= sources_[s[k]].box == dests_[d[k]].box;
    if (all_same) return false;
    // "Every device sends to every other": otherwise it is a sparser pattern, left to point-to-point.
    for (int i : c.srcs)
      for (int j : c.dsts)
        if (sources_[i].device != dests_[j].device && !overlaps(sources_[i].box, dests_[j].box)) return false;
    Move m = collective(MoveKind::all_to_all, u, c);
    for (int j : c.dsts)
      for (int i : intersecting_[j]) m.transfers.push_back(transfer(i, j));
    plan_.moves.push_back(std::move(m));
    return true;
  }

  bool try_all_reduce(const Component& c) {
    if (c.srcs.size() < 2 || !one_dest_per_source_device(sources_, c.srcs, dests_, c.dsts)) return false;
    const Box& b = sources_[c.srcs[0]].box;
    if (!all_boxes_are(sources_, c.srcs, b) || !all_boxes_are(dests_, c.dsts, b)) return false;
    Move m = collective(MoveKind::all_reduce, b, c);
    for (size_t k = 0; k < m.srcs.size(); ++k) plan_.dests[m.dsts[k]] = {DestStorage::view, m.srcs[k]};
    plan_.moves.push_back(std::move(m));
    return true;
  }

  bool try_reduce_scatter(const Component& c) {
    if (c.srcs.size() < 2 || !one_dest_per_source_device(sources_, c.srcs, dests_, c.dsts)) return false;
    const Box& b = sources_[c.srcs[0]].box;
    if (!all_boxes_are(sources_, c.srcs, b) || !tiles(dests_, c.dsts, b) || all_boxes_are(dests_, c.dsts, b))
      return false;
    add_collective(MoveKind::reduce_scatter, b, c);
    return true;
  }

  Move collective(MoveKind kind, const Box& box, const Component& c) const {
    Move m;
    m.kind = kind;
    m.box = box;
    m.srcs = by_device(sources_, c.srcs);
    m.dsts = by_device(dests_, c.dsts);
    return m;
  }

  void add_collective(MoveKind kind, const Box& box, const Component& c) {
    plan_.moves.push_back(collective(kind, box, c));
  }

  Move transfer(int i, int j) const {
    Move m;
    m.kind = MoveKind::transfer;
    m.src = i;
    m.dst = j;
    m.box = intersect(sources_[i].box, dests_[j].box);
    return m;
  }

  /// Copy mode, general case: an own buffer written from one replica of each distinct source box.
  void copy_point_to_point(int j) {
    const Piece& dest = dests_[j];
    std::vector<int> chosen;
    for (int i : intersecting_[j]) {
      auto same = std::find_if(chosen.begin(), chosen.end(), [&](int k) { return sources_[k].box == sources_[i].box; });
      if (same == chosen.end())
        chosen.push_back(i);
      else if (sources_[*same].device != dest.device && sources_[i].device == dest.device)
        *same = i;  // a local replica saves a send
    }
    std::sort(chosen.begin(), chosen.end());
    // Distinct boxes are disjoint (validated), so the pieces cover the dest iff their volumes add up.
    int64_t covered = 0;
    for (int i : chosen) covered += intersect(sources_[i].box, dest.box).volume();
    if (covered != dest.box.volume())
      FFC_INTERNAL_ERROR("reshard (copy): dest {} {} on device {}: the sources cover {} of its {} elements", j,
                         dest.box.str(), dest.device, covered, dest.box.volume());
    plan_.dests[j] = {DestStorage::own, -1};
    for (int i : chosen) plan_.moves.push_back(transfer(i, j));
  }

  /// Sum mode: per dest, the source it could accumulate into in place, and whether it needs nothing
  /// but that source (a plain view).
  void find_in_place_candidates() {
    candidate_.assign(dests_.size(), -1);
    plain_view_.assign(dests_.size(), false);
    for (size_t j = 0; j < dests_.size(); ++j) {
      if (dests_[j].box.empty()) continue;
      candidate_[j] = containing_source_on_device(static_cast<int>(j));
      plain_view_[j] = candidate_[j] >= 0 && intersecting_[j].size() == 1;
    }
  }

  /// Sum mode, general case.
  void sum_point_to_point(int j) {
    int s = candidate_[j];
    if (plain_view_[j]) {
      plan_.dests[j] = {DestStorage::view, s};
      return;
    }
    // Accumulating into source `s` in place changes s's buffer over this dest's box. Another dest
    // doing the same on `s` must not overlap it, or each would add the other's contributions too.
    // (A plain view of `s` is safe: it meets no other source, so no accumulation lands in its box;
    // and transfers read their sources before any accumulation.)
    if (s >= 0) {
      for (size_t k = 0; k < dests_.size(); ++k)
        if (static_cast<int>(k) != j && candidate_[k] == s && !plain_view_[k] && overlaps(dests_[k].box, dests_[j].box))
          s = -1;
    }
    plan_.dests[j] = s >= 0 ? DestPlan{DestStorage::view, s} : DestPlan{DestStorage::own, -1};
    for (int i : intersecting_[j])
      if (i != s) plan_.moves.push_back(transfer(i, j));
  }

  ReshardMode mode_;
  const std::vector<Piece>& sources_;
  const std::vector<Piece>& dests_;
  ReshardPlan plan_;
  std::vector<std::vector<int>> intersecting_;  ///< per dest: the sources meeting its box, ascending
  std::vector<int> candidate_;                  ///< sum mode, per dest: containing_source_on_device
  std::vector<bool> plain_view_;                ///< sum mode, per dest: the candidate is its only source
};

}  // namespace

ReshardPlan plan_reshard(ReshardMode mode, const std::vector<Piece>& sources, const std::vector<Piece>& dests) {
  return Planner(mode, sources, dests).run();
}

}  // namespace ffc
