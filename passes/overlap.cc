// The bucket and overlap passes (overlap.h).
#include "passes/overlap.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <numeric>

#include "ir/diag.h"
#include "passes/memory_plan.h"

namespace ffc {

namespace {

/// Whether rank program r's phase instruction only all-reduces parameter gradients.
bool gradient_all_reduce(const RankProgram& r, const Instr& in) {
  if (in.comm.empty()) return false;
  for (const CommOp& c : in.comm)
    if (c.kind != CommKind::all_reduce || r.buffers.at(c.dst.buffer).role != BufferRole::param_grad) return false;
  return true;
}

/// The bytes a phase instruction all-reduces.
int64_t all_reduce_bytes(const RankProgram& r, const Instr& in) {
  int64_t n = 0;
  for (const CommOp& c : in.comm) n += c.dst.box.volume() * dtype_bytes(r.buffers.at(c.dst.buffer).dtype);
  return n;
}

/// Whether an instruction reads or writes one of `buffers`.
bool touches(const Instr& in, const std::vector<bool>& buffers) {
  bool hit = false;
  for_each_operand(in, [&](const Operand& o) { hit = hit || (o.present() && buffers[o.buffer]); });
  return hit;
}

}  // namespace

void bucket_gradients(Program& p, int64_t bytes) {
  if (bytes <= 0 || p.phases.empty()) return;
  const int phases = static_cast<int>(p.phases.size());
  // Where each phase is on each rank: at[phase] = (rank, step index) of its members.
  std::vector<std::vector<std::pair<int, int>>> at(phases);
  for (RankProgram& r : p.ranks)
    for (size_t i = 0; i < r.step.size(); ++i)
      if (r.step[i].kind == InstrKind::comm) at[r.step[i].phase].push_back({r.rank, static_cast<int>(i)});
  auto bucketable = [&](int ph) {
    if (at[ph].empty()) return false;
    for (const auto& [rank, i] : at[ph])
      if (!gradient_all_reduce(p.ranks[rank], p.ranks[rank].step[i])) return false;
    return true;
  };
  auto size_of = [&](int ph) {
    int64_t most = 0;
    for (const auto& [rank, i] : at[ph]) most = std::max(most, all_reduce_bytes(p.ranks[rank], p.ranks[rank].step[i]));
    return most;
  };

  // Buckets: gradient phases over the same ranks, in order, merged into the last one's position.
  // Other phases between them stay where they are (they are issued before the bucket on every
  // member, which keeps one global order); the bucket's operations may move past an instruction only
  // if it does not use their buffers.
  std::vector<int> bucket_of(phases);  // the bucket's last phase, for every phase
  std::iota(bucket_of.begin(), bucket_of.end(), 0);
  std::vector<int> open;  // the phases of the open bucket
  int64_t total = 0;
  // Per member rank of the open bucket: the buffers its operations use, and the position of its
  // last phase there (instructions up to it are checked already).
  std::vector<std::vector<bool>> used(p.ranks.size());
  std::vector<int> last_at(p.ranks.size(), -1);
  auto close = [&] {
    for (int ph : open) bucket_of[ph] = open.back();
    open.clear();
    total = 0;
  };
  auto add = [&](int ph) {
    if (open.empty())
      for (const auto& [rank, i] : at[ph]) used[rank].assign(p.ranks[rank].buffers.size(), false);
    open.push_back(ph);
    total += size_of(ph);
    for (const auto& [rank, i] : at[ph]) {
      for (const CommOp& c : p.ranks[rank].step[i].comm) used[rank][c.dst.buffer] = true;
      last_at[rank] = i;
    }
  };
  auto can_join = [&](int next) {
    if (open.empty()) return false;
    if (p.phases[next].ranks != p.phases[open.front()].ranks || total + size_of(next) > bytes) return false;
    // The open bucket's operations move down to `next`'s place: no instruction in between may use
    // their buffers (the bucket's own phases' instructions are behind last_at).
    for (const auto& [rank, i] : at[next]) {
      const RankProgram& r = p.ranks[rank];
      for (int j = last_at[rank] + 1; j < i; ++j)
        if (touches(r.step[j], used[rank])) return false;
    }
    return true;
  };
  for (int ph = 0; ph < phases; ++ph) {
    if (!bucketable(ph)) continue;
    if (!can_join(ph)) close();
    add(ph);
  }
  close();

  // Renumber: one phase per bucket, at its last phase's place in the order.
  std::vector<int> renumber(phases, -1);
  std::vector<Phase> merged;
  std::vector<std::vector<int>> members(phases);
  for (int ph = 0; ph < phases; ++ph) members[bucket_of[ph]].push_back(ph);
  for (int ph = 0; ph < phases; ++ph) {
    if (bucket_of[ph] != ph) continue;
    const std::vector<int>& in = members[ph];
    Phase m = p.phases[ph];
    if (in.size() > 1) {
      auto what = [&](int k) {
        const std::string& note = p.phases[k].note;
        return note.rfind("grad ", 0) == 0 ? note.substr(5) : note;
      };
      m.note = fmt::format("grad bucket of {}: {} .. {}", in.size(), what(in.front()), what(in.back()));
      m.pattern = "all_reduce";
    }
    for (int k : in) renumber[k] = static_cast<int>(merged.size());
    merged.push_back(std::move(m));
  }
  for (RankProgram& r : p.ranks) {
    // Compacted in place: the instructions kept move down over the phases merged into later ones.
    size_t kept = 0;
    std::map<int, std::vector<CommOp>> pending;  // a bucket's operations until its last phase
    for (size_t i = 0; i < r.step.size(); ++i) {
      Instr& in = r.step[i];
      if (in.kind == InstrKind::comm) {
        const int last = bucket_of[in.phase];
        std::vector<CommOp>& ops = pending[last];
        ops.insert(ops.end(), std::make_move_iterator(in.comm.begin()), std::make_move_iterator(in.comm.end()));
        if (in.phase != last) continue;
        in.comm = std::move(ops);
        pending.erase(last);
        in.phase = renumber[last];
        in.note = merged[in.phase].note;
      }
      if (kept != i) r.step[kept] = std::move(in);
      ++kept;
    }
    FFC_CHECK(pending.empty());
    r.step.erase(r.step.begin() + static_cast<std::ptrdiff_t>(kept), r.step.end());
    for (Instr& in : r.setup)
      if (in.kind == InstrKind::comm) in.phase = renumber[in.phase];
  }
  p.phases = std::move(merged);
}

void plan_overlap(Program& p) {
  for (RankProgram& r : p.ranks) {
    // Each buffer's planned bytes: [begin, end) in its region (0 persistent, 1 arena).
    struct Range {
      int region;
      int64_t begin, end;
    };
    std::vector<Range> range(r.buffers.size());
    for (size_t b = 0; b < r.buffers.size(); ++b) {
      const Buffer& buf = r.buffers[b];
      FFC_CHECK(buf.offset >= 0);
      range[b] = {is_persistent(buf.role) ? 0 : 1, buf.offset, buf.offset + std::max<int64_t>(buf.bytes(), 1)};
    }
    // Every instruction's operand ranges, listed once (step j's are flat[first[j], first[j + 1])):
    // a phase that overlaps the rest of the backward scans hundreds of instructions.
    const int n = static_cast<int>(r.step.size());
    std::vector<Range> flat;
    std::vector<size_t> first(n + 1, 0);
    for (int j = 0; j < n; ++j) {
      first[j] = flat.size();
      for_each_operand(r.step[j], [&](const Operand& o) {
        if (o.present()) flat.push_back(range[o.buffer]);
      });
    }
    first[n] = flat.size();
    const int forward_end = static_cast<int>(r.forward_end);
    for (int i = 0; i < n; ++i) {
      Instr& in = r.step[i];
      if (in.kind != InstrKind::comm) continue;
      // The phase's bytes per region as disjoint intervals sorted by begin (a bucket lists dozens
      // of buffers): a range meets one of its operands iff it meets the last interval that begins
      // before it ends.
      std::vector<std::pair<int64_t, int64_t>> mine[2];
      for (size_t k = first[i]; k < first[i + 1]; ++k) mine[flat[k].region].push_back({flat[k].begin, flat[k].end});
      for (auto& v : mine) {
        std::sort(v.begin(), v.end());
        size_t m = 0;
        for (size_t k = 0; k < v.size(); ++k) {
          if (m > 0 && v[k].first <= v[m - 1].second) v[m - 1].second = std::max(v[m - 1].second, v[k].second);
          else v[m++] = v[k];
        }
        v.resize(m);
      }
      auto meets = [&](const Range& x) {
        const std::vector<std::pair<int64_t, int64_t>>& v = mine[x.region];
        auto after = std::partition_point(v.begin(), v.end(), [&](const auto& u) { return u.first < x.end; });
        return after != v.begin() && std::prev(after)->second > x.begin;
      };
      const int end = i < forward_end ? forward_end : n;
      int finish = end;
      for (int j = i + 1; j < end && finish == end; ++j) {
        if (r.step[j].kind == InstrKind::load_input) finish = j;  // where a recorded step (CUDA graph) is cut
        if (r.step[j].kind == InstrKind::comm) continue;  // in order on the communication stream
        for (size_t k = first[j]; k < first[j + 1]; ++k)
          if (meets(flat[k])) finish = j;
      }
      in.finish = finish == i + 1 ? -1 : finish;
    }
  }
}

std::string print_overlap(const Program& p) {
  std::string s;
  for (const RankProgram& r : p.ranks) {
    int phases = 0, overlapping = 0;
    int64_t spans = 0;
    for (size_t i = 0; i < r.step.size(); ++i) {
      const Instr& in = r.step[i];
      if (in.kind != InstrKind::comm) continue;
      ++phases;
      if (in.finish < 0) continue;
      ++overlapping;
      spans += in.finish - static_cast<int64_t>(i) - 1;
      s += fmt::format("rank {}: phase {} ({}) finishes before step instruction {} ({} later)\n", r.rank, in.phase,
                       p.phases.at(in.phase).note, in.finish, in.finish - static_cast<int64_t>(i) - 1);
    }
    s += fmt::format("rank {}: {} phases in the step, {} overlap {} instructions in all\n", r.rank, phases, overlapping,
                     spans);
  }
  return s;
}

}  // namespace ffc
