// The execution simulator: ranks advance through their instructions; phases synchronize them.
#include "sim/simulate.h"

#include <fmt/format.h>

#include <algorithm>

#include "ir/diag.h"

namespace ffc {

CostedProgram cost_program(const Graph& g, const Program& p, const CostModel& cost) {
  const int n = static_cast<int>(p.ranks.size());
  CostedProgram c;
  c.ranks.resize(n);
  c.phase_cost.assign(p.phases.size(), 0.0);
  c.members.resize(p.phases.size());
  std::vector<std::vector<PhaseMember>> members(p.phases.size());
  // In a job of several ranks each launch pays Machine::job_launch more than measured alone.
  const double job_launch = n > 1 ? cost.job_launch() : 0.0;
  c.overlap_slowdown = cost.overlap_slowdown();
  for (int r = 0; r < n; ++r) {
    const RankProgram& rp = p.ranks[r];
    c.ranks[r].resize(rp.step.size());
    for (size_t i = 0; i < rp.step.size(); ++i) {
      const Instr& in = rp.step[i];
      if (in.kind == InstrKind::comm) {
        c.ranks[r][i].phase = in.phase;
        c.ranks[r][i].finish = in.finish < 0 ? -1 : in.finish;
        c.members.at(in.phase).push_back(r);
        members[in.phase].push_back({&rp, &in});
      } else {
        c.ranks[r][i].cost = cost.instr(g, rp, in) + (job_launch > 0 ? job_launch * cost.launches(g, rp, in) : 0.0);
      }
    }
  }
  for (size_t ph = 0; ph < members.size(); ++ph)
    if (!members[ph].empty()) c.phase_cost[ph] = cost.phase(p, members[ph]);
  return c;
}

Simulation simulate(const CostedProgram& c, const SimOptions& opts) {
  const int n = static_cast<int>(c.ranks.size());
  Simulation s;
  s.ranks.resize(n);
  std::vector<size_t> pos(n, 0);
  std::vector<double> clock(n, 0.0);     // the compute stream
  std::vector<double> comm_free(n, 0.0);  // the communication stream
  // Per rank, its phases' intervals on the communication stream, in order; those that ended
  // before the compute stream's clock are dropped as it passes them.
  std::vector<std::vector<std::pair<double, double>>> busy(n);
  std::vector<size_t> busy_from(n, 0);
  const double slow = std::max(1.0, c.overlap_slowdown);
  // When compute work of `cost` seconds that starts at `t` on rank r ends: stretched by `slow`
  // where a phase of r is in flight (NCCL's kernels share the SMs and the memory).
  auto compute_end = [&](int r, double t, double cost) {
    if (slow == 1.0) return t + cost;
    const std::vector<std::pair<double, double>>& b = busy[r];
    size_t& k = busy_from[r];
    while (k < b.size() && b[k].second <= t) ++k;
    double work = cost;
    for (size_t j = k; j < b.size() && work > 0; ++j) {
      const auto [s0, s1] = b[j];
      if (t < s0) {
        const double free = std::min(work, s0 - t);
        t += free;
        work -= free;
        if (work <= 0) break;
      }
      const double in_flight = (s1 - t) / slow;  // work done before the phase ends
      if (work <= in_flight) return t + work * slow;
      work -= in_flight;
      t = s1;
    }
    return t + work;
  };
  // Started phases that have not finished: (the instruction they finish before, their end).
  std::vector<std::vector<std::pair<size_t, double>>> pending(n);
  // The compute stream waits for the phases that finish before instruction i.
  auto finish = [&](int r, size_t i) {
    std::vector<std::pair<size_t, double>>& p = pending[r];
    for (size_t k = 0; k < p.size();) {
      if (p[k].first != i) {
        ++k;
        continue;
      }
      if (p[k].second > clock[r]) {
        s.ranks[r].exposed += p[k].second - clock[r];
        clock[r] = p[k].second;
      }
      p.erase(p.begin() + static_cast<std::ptrdiff_t>(k));
    }
  };
  // Runs rank r's compute instructions from its position up to the next comm instruction (or the
  // end, where every phase still running finishes); returns that instruction's index.
  auto advance = [&](int r) {
    const std::vector<CostedProgram::Step>& steps = c.ranks[r];
    size_t& i = pos[r];
    for (;; ++i) {
      finish(r, i);
      if (i == steps.size() || steps[i].phase >= 0) break;
      const double end = compute_end(r, clock[r], steps[i].cost);
      if (opts.trace) s.events.push_back({r, 0, clock[r], end - clock[r], {}});
      s.ranks[r].compute += end - clock[r];
      clock[r] = end;
    }
    return i;
  };
  for (size_t ph = 0; ph < c.members.size(); ++ph) {
    const std::vector<int>& members = c.members[ph];
    if (members.empty()) continue;
    // The communication stream takes the phase after the kernels before it and the phases before
    // it; it starts once every member is there.
    double start = 0;
    for (int r : members) {
      const size_t i = advance(r);
      FFC_CHECK(i < c.ranks[r].size() && c.ranks[r][i].phase == static_cast<int>(ph));
      start = std::max(start, std::max(clock[r], comm_free[r]));
    }
    const double t = c.phase_cost[ph];
    for (int r : members) {
      RankTimes& rt = s.ranks[r];
      const CostedProgram::Step& step = c.ranks[r][pos[r]];
      if (opts.trace) s.events.push_back({r, 1, start, t, {}, start - std::max(clock[r], comm_free[r])});
      rt.comm += t;
      comm_free[r] = start + t;
      if (t > 0) busy[r].push_back({start, start + t});
      if (step.finish < 0) {  // at once: the compute stream waits for it
        rt.exposed += start + t - clock[r];
        clock[r] = start + t;
      } else {
        pending[r].push_back({static_cast<size_t>(step.finish), start + t});
      }
      ++pos[r];
    }
  }
  for (int r = 0; r < n; ++r) {
    advance(r);
    FFC_CHECK(pos[r] == c.ranks[r].size() && pending[r].empty());
    s.ranks[r].end = clock[r];
    s.iteration = std::max(s.iteration, clock[r]);
    s.instructions += static_cast<int64_t>(c.ranks[r].size());
  }
  for (RankTimes& rt : s.ranks) rt.idle = std::max(0.0, s.iteration - rt.compute - rt.exposed);  // rounding: never -0
  return s;
}

Simulation simulate(const Graph& g, const Program& p, const Machine& m, const CostModel& cost,
                    const SimOptions& opts) {
  Simulation s = simulate(cost_program(g, p, cost), opts);
  for (size_t r = 0; r < p.ranks.size(); ++r) {
    RankTimes& rt = s.ranks[r];
    rt.persistent_bytes = p.ranks[r].persistent_bytes;
    rt.arena_bytes = p.ranks[r].arena_bytes;
    if (s.over_memory < 0 && static_cast<double>(rt.memory()) > m.gpu_memory) s.over_memory = static_cast<int>(r);
  }
  if (opts.trace) {
    // Events come in the sweep's order: each rank's instructions in order, so name them by
    // walking each rank's step alongside its events.
    std::vector<size_t> next(p.ranks.size(), 0);
    for (SimEvent& e : s.events) {
      const RankProgram& rp = p.ranks[e.rank];
      e.name = instr_title(g, p, rp, rp.step[next[e.rank]++]);
    }
  }
  return s;
}

namespace {

std::string json_string(std::string_view v) {
  std::string s = "\"";
  for (char c : v) {
    switch (c) {
      case '"': s += "\\\""; break;
      case '\\': s += "\\\\"; break;
      case '\n': s += "\\n"; break;
      case '\t': s += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) s += fmt::format("\\u{:04x}", static_cast<int>(c));
        else s += c;
    }
  }
  return s + "\"";
}

}  // namespace

std::string trace_json(const Simulation& s, const std::string& title) {
  std::string out = "{\"displayTimeUnit\": \"ms\",\n \"otherData\": {\"title\": " + json_string(title) +
                    fmt::format(", \"predicted_iteration_us\": {:.3f}}},\n \"traceEvents\": [\n", s.iteration * 1e6);
  bool first = true;
  auto line = [&](const std::string& e) {
    out += first ? "  " : ",\n  ";
    out += e;
    first = false;
  };
  for (size_t r = 0; r < s.ranks.size(); ++r) {
    line(fmt::format(R"({{"name": "process_name", "ph": "M", "pid": {}, "args": {{"name": "rank {}"}}}})", r, r));
    line(fmt::format(R"({{"name": "process_sort_index", "ph": "M", "pid": {}, "args": {{"sort_index": {}}}}})", r, r));
    line(fmt::format(R"({{"name": "thread_name", "ph": "M", "pid": {}, "tid": 0, "args": {{"name": "compute"}}}})", r));
    line(fmt::format(R"({{"name": "thread_name", "ph": "M", "pid": {}, "tid": 1, "args": {{"name": "communication"}}}})", r));
  }
  for (const SimEvent& e : s.events) {
    std::string args = e.stream == 1 ? fmt::format(R"(, "args": {{"wait_us": {:.3f}}})", e.wait * 1e6) : "";
    line(fmt::format(R"({{"name": {}, "cat": "{}", "ph": "X", "pid": {}, "tid": {}, "ts": {:.3f}, "dur": {:.3f}{}}})",
                     json_string(e.name), e.stream ? "comm" : "compute", e.rank, e.stream, e.start * 1e6,
                     e.duration * 1e6, args));
  }
  out += "\n]}\n";
  return out;
}

}  // namespace ffc
