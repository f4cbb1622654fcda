// The analytical cost model: roofline kernels, latency-bandwidth transfers, ring collectives.
#include "sim/cost.h"

#include <algorithm>

#include "ir/diag.h"
#include "sim/flops.h"

namespace ffc {

std::string_view math_name(Math m) { return m == Math::tf32 ? "tf32" : "fp32"; }

std::optional<Math> parse_math(std::string_view s) {
  if (s == "fp32") return Math::fp32;
  if (s == "tf32") return Math::tf32;
  return std::nullopt;
}

double CostModel::instr(const Graph& g, const RankProgram& r, const Instr& in) const {
  switch (in.kind) {
    case InstrKind::forward:
    case InstrKind::forward_stats:
    case InstrKind::backward_stats:
    case InstrKind::backward: return kernel(g, r, in);
    case InstrKind::init_param:
    case InstrKind::fill:
    case InstrKind::load_input:
    case InstrKind::copy: return move(r, in);
    case InstrKind::update: return update(r, in);
    case InstrKind::comm: break;
  }
  FFC_INTERNAL_ERROR("CostModel::instr: a comm instruction is a phase (CostModel::phase)");
}

double CostModel::launches(const Graph&, const RankProgram&, const Instr& in) const {
  FFC_CHECK(in.kind != InstrKind::comm, "CostModel::launches: a comm instruction is a phase");
  return 1;
}

bool scatters_directly(const CommOp& c) {
  const int64_t n = static_cast<int64_t>(c.pieces.size()), volume = c.src.box.volume();
  if (n == 0 || volume % n != 0) return false;
  for (int64_t i = 0; i < n; ++i)
    if (c.pieces[i].volume() != volume / n || run_offset(c.src.box, c.pieces[i]) != i * (volume / n)) return false;
  return true;
}

double ring_all_reduce_time(double bytes, int n, double bandwidth, double latency) {
  if (n <= 1) return 0;
  return 2.0 * (n - 1) / n * bytes / bandwidth + 2.0 * (n - 1) * latency;
}

double ring_gather_time(double bytes, int n, double bandwidth, double latency) {
  if (n <= 1) return 0;
  return static_cast<double>(n - 1) / n * bytes / bandwidth + (n - 1) * latency;
}

double AnalyticalCostModel::launches(const Graph& g, const RankProgram& r, const Instr& in) const {
  return is_kernel(in.kind) ? kernel_work(g, r, in).launches : CostModel::launches(g, r, in);
}

double AnalyticalCostModel::kernel(const Graph& g, const RankProgram& r, const Instr& in) const {
  const KernelWork w = kernel_work(g, r, in);
  const double peak = w.contraction && math_ == Math::tf32 ? m_.tf32_flops : m_.fp32_flops;
  return std::max(w.flops / peak, w.bytes / m_.memory_bandwidth) + w.launches * m_.launch;
}

double AnalyticalCostModel::move(const RankProgram& r, const Instr& in) const {
  double bytes = 0;
  switch (in.kind) {
    case InstrKind::copy: {
      // dst (+)= src over the intersection of their boxes: read it (twice when adding), write it.
      const Box both = intersect(in.src.box, in.dst.box);
      bytes = static_cast<double>(both.volume()) * dtype_bytes(r.buffers[in.dst.buffer].dtype) *
              (in.accumulate ? 3 : 2);
      break;
    }
    default:  // fill, load_input (synthetic samples drawn on the device), init_param: a write
      bytes = operand_bytes(r, in.dst);
      break;
  }
  return bytes / m_.memory_bandwidth + m_.launch;
}

double AnalyticalCostModel::update(const RankProgram& r, const Instr& in) const {
  // Reads the block, its gradient and its state; writes the block and its state.
  const double state = operand_bytes(r, in.state1) + operand_bytes(r, in.state2);
  const double bytes = 2 * operand_bytes(r, in.w) + operand_bytes(r, in.grad) + 2 * state;
  return bytes / m_.memory_bandwidth + m_.launch;
}

std::pair<double, double> AnalyticalCostModel::link(std::span<const int> ranks) const {
  for (int x : ranks)
    if (m_.node_of(x) != m_.node_of(ranks.front())) return {m_.inter_node_bandwidth, m_.inter_node_latency};
  return {m_.intra_node_bandwidth, m_.intra_node_latency};
}

double AnalyticalCostModel::transfer(double bytes, int from, int to) const {
  const int pair[] = {from, to};
  auto [bw, lat] = link(pair);
  return lat + bytes / bw;
}

double AnalyticalCostModel::member_time(const Program& p, const PhaseMember& m) const {
  const RankProgram& r = *m.rank;
  double pack = 0, collectives = 0;
  double sent[2] = {0, 0}, received[2] = {0, 0};  // [0] inside the node, [1] between nodes
  bool used[2] = {false, false};
  // A box that is not one contiguous run is packed into a dense temporary first (or unpacked
  // after): a read and a write of its bytes.
  auto packs = [&](const Operand& o) {
    if (!is_contiguous(r, o)) pack += 2 * operand_bytes(r, o) / m_.memory_bandwidth + m_.launch;
  };
  // A collective after the first over the same group of the phase: with a measured grouped
  // cost, that instead of the ring's latency (the phase is one NCCL group).
  std::vector<int> groups_seen;
  auto latency_of = [&](int group, double ring_latency, int steps) {
    const bool again = std::find(groups_seen.begin(), groups_seen.end(), group) != groups_seen.end();
    if (!again) groups_seen.push_back(group);
    if (!again || m_.grouped_collective < 0 || steps <= 0) return ring_latency;
    return m_.grouped_collective / steps;  // the ring functions count the latency once per step
  };
  for (const CommOp& c : m.instr->comm) {
    switch (c.kind) {
      case CommKind::send:
      case CommKind::recv: {
        const Operand& o = c.kind == CommKind::send ? c.src : c.dst;
        packs(o);
        const int cls = m_.node_of(r.rank) != m_.node_of(c.peer);
        used[cls] = true;
        (c.kind == CommKind::send ? sent : received)[cls] += operand_bytes(r, o);
        break;
      }
      case CommKind::all_reduce: {
        const std::vector<int>& group = p.groups.at(c.group);
        auto [bw, lat] = link(group);
        const int n = static_cast<int>(group.size());
        packs(c.dst);
        collectives += ring_all_reduce_time(operand_bytes(r, c.dst), n, bw, latency_of(c.group, lat, 2 * (n - 1)));
        break;
      }
      case CommKind::all_gather: {
        const std::vector<int>& group = p.groups.at(c.group);
        auto [bw, lat] = link(group);
        const int n = static_cast<int>(group.size());
        packs(c.src);
        for (const Box& piece : c.pieces) packs(Operand{c.dst.buffer, piece});
        collectives += ring_gather_time(operand_bytes(r, c.dst), n, bw, latency_of(c.group, lat, n - 1));
        break;
      }
      case CommKind::reduce_scatter: {
        const std::vector<int>& group = p.groups.at(c.group);
        auto [bw, lat] = link(group);
        const int n = static_cast<int>(group.size());
        const double bytes = operand_bytes(r, c.src);
        if (bytes == 0) break;  // the runtime issues nothing
        if (!scatters_directly(c)) {
          // The runtime all-reduces the whole source, packed, then copies out this member's piece
          // (runtime/comm/nccl.cc).
          pack += 2 * (bytes + operand_bytes(r, c.dst)) / m_.memory_bandwidth + 2 * m_.launch;
          collectives += ring_all_reduce_time(bytes, n, bw, latency_of(c.group, lat, 2 * (n - 1)));
          break;
        }
        packs(c.src);
        packs(c.dst);
        collectives += ring_gather_time(bytes, n, bw, latency_of(c.group, lat, n - 1));
        break;
      }
    }
  }
  // A rank's messages share its links: each direction of each kind of link carries its bytes once,
  // the kinds of link in parallel.
  double p2p = 0;
  const double bw[2] = {m_.intra_node_bandwidth, m_.inter_node_bandwidth};
  const double lat[2] = {m_.intra_node_latency, m_.inter_node_latency};
  for (int cls = 0; cls < 2; ++cls)
    if (used[cls]) p2p = std::max(p2p, lat[cls] + std::max(sent[cls], received[cls]) / bw[cls]);
  const bool communicates = used[0] || used[1] || !groups_seen.empty();
  return pack + p2p + collectives + (communicates && m_.phase_latency > 0 ? m_.phase_latency : 0);
}

double AnalyticalCostModel::phase(const Program& p, std::span<const PhaseMember> members) const {
  double t = 0;
  for (const PhaseMember& m : members) t = std::max(t, member_time(p, m));
  return t;
}

}  // namespace ffc
