// Schedule.
#include "passes/schedule.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <set>

#include "ir/graph.h"

namespace ffc {

Program schedule(const Graph& g, Lowered lowered, int64_t batch) {
  Program p;
  p.model = g.name;
  p.num_ranks = static_cast<int>(lowered.ranks.size());
  p.batch = batch;
  p.params = std::move(lowered.params);
  p.ranks = std::move(lowered.ranks);
  std::map<std::vector<int>, int> group_index;
  auto group_of = [&](std::vector<int> ranks) {
    std::sort(ranks.begin(), ranks.end());
    auto [it, fresh] = group_index.try_emplace(ranks, static_cast<int>(p.groups.size()));
    if (fresh) p.groups.push_back(ranks);
    return it->second;
  };
  // Each rank's instructions, counted first: the step lists are long, and growing them would move
  // every instruction several times.
  std::vector<size_t> count(p.ranks.size(), 0);
  for (const GlobalStep& step : lowered.steps) {
    if (!step.is_comm) {
      ++count[step.rank];
      continue;
    }
    std::vector<bool> member(p.ranks.size(), false);
    for (const GlobalComm& c : step.comms) {
      if (c.kind == GlobalComm::transfer) member[c.src_rank] = member[c.dst_rank] = true;
      for (int r : c.ranks) member[r] = true;
    }
    for (size_t r = 0; r < member.size(); ++r) count[r] += member[r];
  }
  for (size_t r = 0; r < p.ranks.size(); ++r) p.ranks[r].step.reserve(count[r]);
  for (size_t i = 0; i < lowered.steps.size(); ++i) {
    GlobalStep& step = lowered.steps[i];
    if (i == lowered.forward_steps)
      for (RankProgram& r : p.ranks) r.forward_end = r.step.size();
    if (!step.is_comm) {
      p.ranks[step.rank].step.push_back(std::move(step.instr));
      continue;
    }
    const int phase = static_cast<int>(p.phases.size());
    std::vector<Instr> per_rank(p.ranks.size());  // a member's has kind comm
    auto at = [&](int rank) -> Instr& {
      Instr& in = per_rank[rank];
      if (in.kind != InstrKind::comm) {
        in.kind = InstrKind::comm;
        in.phase = phase;
        in.note = step.note;
      }
      return in;
    };
    for (const GlobalComm& c : step.comms) {
      if (c.kind == GlobalComm::transfer) {
        CommOp send;
        send.kind = CommKind::send;
        send.peer = c.dst_rank;
        send.src = c.src;
        at(c.src_rank).comm.push_back(std::move(send));
        CommOp recv;
        recv.kind = CommKind::recv;
        recv.peer = c.src_rank;
        recv.dst = c.dst;
        at(c.dst_rank).comm.push_back(std::move(recv));
        continue;
      }
      const int group = group_of(c.ranks);
      // Members in group order (the collective's pieces are listed in that order).
      std::vector<size_t> order(c.ranks.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return c.ranks[a] < c.ranks[b]; });
      std::vector<Box> pieces;
      for (size_t i : order) pieces.push_back(c.pieces[i]);
      for (size_t i : order) {
        CommOp op;
        op.kind = c.kind == GlobalComm::all_reduce   ? CommKind::all_reduce
                  : c.kind == GlobalComm::all_gather ? CommKind::all_gather
                                                     : CommKind::reduce_scatter;
        op.group = group;
        op.src = c.srcs[i];
        op.dst = c.dsts[i];
        op.pieces = pieces;
        at(c.ranks[i]).comm.push_back(std::move(op));
      }
    }
    Phase ph;
    ph.note = step.note;
    ph.pattern = step.pattern;
    for (size_t rank = 0; rank < per_rank.size(); ++rank) {
      if (per_rank[rank].kind != InstrKind::comm) continue;
      ph.ranks.push_back(static_cast<int>(rank));
      p.ranks[rank].step.push_back(std::move(per_rank[rank]));
    }
    p.phases.push_back(std::move(ph));
  }
  if (lowered.forward_steps >= lowered.steps.size())
    for (RankProgram& r : p.ranks) r.forward_end = r.step.size();
  return p;
}

std::string print_schedule(const Program& p) {
  std::string s = fmt::format("schedule of {}: {} phases, {} communicators\n", p.model, p.phases.size(), p.groups.size());
  for (size_t i = 0; i < p.groups.size(); ++i) s += fmt::format("  group {} = [{}]\n", i, fmt::join(p.groups[i], " "));
  for (size_t i = 0; i < p.phases.size(); ++i)
    s += fmt::format("  phase {}: {} [{}] ranks {}\n", i, p.phases[i].note, p.phases[i].pattern,
                     fmt::join(p.phases[i].ranks, " "));
  for (const RankProgram& r : p.ranks) {
    size_t comms = 0, kernels = 0;
    for (const Instr& in : r.step) (in.kind == InstrKind::comm ? comms : kernels)++;
    s += fmt::format("  rank {}: {} instructions, {} phases\n", r.rank, kernels + comms, comms);
  }
  return s;
}

}  // namespace ffc
