// Strategy search: the evaluator (middle end + simulator), MCMC, and the additive model that node
// and edge elimination runs on.
#include "sim/search.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "ir/diag.h"
#include "passes/add_loss.h"

namespace ffc {

uint64_t uniform_index(std::mt19937_64& rng, uint64_t n) {
  FFC_CHECK(n >= 1);
  // The largest multiple of n the generator reaches; draws at or above it would favour small values.
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  uint64_t x = rng();
  while (x >= limit) x = rng();
  return x % n;
}

double uniform_unit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

Evaluator::Evaluator(const Graph& model, const SearchTarget& target)
    : graph_(model), model_ops_(static_cast<int>(model.ops.size())), target_(target) {
  FFC_CHECK(target_.cost != nullptr);
  // The loss, as compile_parallel appends it (it leaves a graph that has one as it is).
  add_loss(graph_, std::nullopt);
  backward_ = autodiff(graph_, false);
}

ResolvedStrategy Evaluator::resolve(const SearchSpace& s, const std::vector<int>& choice) const {
  ResolvedStrategy r;
  r.num_devices = target_.devices;
  r.configs.resize(graph_.ops.size());
  r.from_file.assign(graph_.ops.size(), false);
  for (size_t i = 0; i < graph_.ops.size(); ++i) {
    if (i < choice.size() && choice[i] >= 0) {
      r.configs[i] = s.configs.at(i).at(choice[i]);
      r.from_file[i] = true;
    } else {
      r.configs[i] = data_parallel_config(graph_, graph_.ops[i], target_.devices);
    }
  }
  return r;
}

Evaluator::Costed Evaluator::compile(const ResolvedStrategy& r) const {
  // The whole middle end, as `ffc simulate` runs it: a strategy's time must not depend on which
  // command predicted it.
  ParallelOptions po;
  po.devices = target_.devices;
  po.batch = target_.batch;
  po.optimizer_states = target_.optimizer_states;
  po.pipeline.verify_each = false;  // the strategies it visits are the verified passes' output; speed
  Costed c;
  c.compiled = compile_parallel(graph_, to_strategy(graph_, r), po);
  c.costs = cost_program(c.compiled.graph, c.compiled.program, *target_.cost);
  c.eval.time = simulate(c.costs).iteration;
  for (const RankProgram& rp : c.compiled.program.ranks)
    if (static_cast<double>(rp.persistent_bytes + rp.arena_bytes) > target_.machine.gpu_memory) c.eval.fits = false;
  if (!c.eval.fits) c.eval.time = kInf;
  return c;
}

Evaluation Evaluator::evaluate(const SearchSpace& s, const std::vector<int>& choice) {
  std::string key(reinterpret_cast<const char*>(choice.data()), choice.size() * sizeof(int));
  auto it = cache_.find(key);
  if (it != cache_.end()) {
    ++hits_;
    return it->second;
  }
  ++compiles_;
  Evaluation e = compile(resolve(s, choice)).eval;
  cache_.emplace(std::move(key), e);
  return e;
}

McmcResult mcmc_search(Evaluator& ev, const SearchSpace& s, const std::vector<int>& start, const McmcOptions& o) {
  FFC_CHECK(o.budget > 0 || o.seconds > 0);
  const Clock::time_point t0 = Clock::now();
  std::mt19937_64 rng(o.seed);
  McmcResult r;
  std::vector<int> cur = start;
  Evaluation now = ev.evaluate(s, cur);
  r.best = cur;
  r.best_time = r.start_time = now.time;
  double best_seconds = 0;

  // Ops with a choice to make.
  std::vector<int> movable;
  for (int op : s.ops)
    if (s.configs[op].size() > 1) movable.push_back(op);
  const int64_t min_iterations = o.min_iterations >= 0 ? o.min_iterations : 10 * static_cast<int64_t>(s.ops.size());
  auto report = [&](int64_t it) {
    if (o.progress) o.progress(SearchProgress{it, now.time, r.best_time, since(t0)});
  };

  for (int64_t it = 1; !movable.empty(); ++it) {
    const int64_t done = it - 1;
    const double elapsed = since(t0);
    if (o.budget > 0 && done >= o.budget) break;
    if (o.seconds > 0 && elapsed >= o.seconds) break;
    // Early stop: no improvement over the last half of the search (proposals under a budget,
    // wall time under a time limit alone).
    if (done >= min_iterations) {
      const bool stale = o.budget > 0 ? done - r.best_iteration > done / 2 : elapsed - best_seconds > elapsed / 2;
      if (stale) {
        r.stopped_early = true;
        break;
      }
    }

    // Proposal: one op, uniformly; a config other than its current one, uniformly.
    const int op = movable[uniform_index(rng, movable.size())];
    const int n = static_cast<int>(s.configs[op].size());
    int c = static_cast<int>(uniform_index(rng, n - 1));
    if (c >= cur[op]) ++c;
    std::vector<int> next = cur;
    next[op] = c;
    const Evaluation e = ev.evaluate(s, next);
    r.iterations = it;

    bool accept = false;
    if (!e.fits) {
      ++r.over_memory;
    } else if (e.time < now.time) {
      accept = true;
    } else {
      accept = uniform_unit(rng) < std::exp(-o.beta * (e.time - now.time) / now.time);
    }
    if (accept) {
      ++r.accepted;
      cur = std::move(next);
      now = e;
      if (now.time < r.best_time) {
        r.best = cur;
        r.best_time = now.time;
        r.best_iteration = it;
        best_seconds = since(t0);
        report(it);
        continue;
      }
    }
    if (o.progress_every > 0 && it % o.progress_every == 0) report(it);
  }
  r.seconds = since(t0);
  return r;
}

double reshard_time(const Machine& m, const OpParts& producer, int out, const OpParts& consumer, int in,
                    int element_bytes) {
  // Per rank and kind of link (0: inside a node, 1: between nodes), the bytes it sends and receives.
  struct Load {
    double sent[2] = {0, 0}, recv[2] = {0, 0};
  };
  int ranks = 0;
  for (const Part& p : producer.parts) ranks = std::max(ranks, p.device + 1);
  for (const Part& p : consumer.parts) ranks = std::max(ranks, p.device + 1);
  std::vector<Load> load(ranks);
  for (const Part& q : consumer.parts) {
    const Box& need = q.in.at(in);
    if (need.empty()) continue;
    for (const Part& p : producer.parts) {
      if (p.device == q.device) continue;
      const Box x = intersect(need, p.out.at(out));
      if (x.empty()) continue;
      const double bytes = static_cast<double>(x.volume()) * element_bytes;
      const int kind = m.node_of(p.device) == m.node_of(q.device) ? 0 : 1;
      load[p.device].sent[kind] += bytes;
      load[q.device].recv[kind] += bytes;
    }
  }
  const double bandwidth[2] = {m.intra_node_bandwidth, m.inter_node_bandwidth};
  const double latency[2] = {m.intra_node_latency, m.inter_node_latency};
  double worst = 0;
  for (const Load& l : load)
    for (int k = 0; k < 2; ++k) {
      const double bytes = std::max(l.sent[k], l.recv[k]);
      if (bytes > 0) worst = std::max(worst, latency[k] + bytes / bandwidth[k]);
    }
  return worst;
}

OpCosts measure_op_costs(Evaluator& ev, const SearchSpace& s) {
  const Clock::time_point t0 = Clock::now();
  const Graph& g = ev.graph();
  const int ops = static_cast<int>(g.ops.size());
  OpCosts out;
  std::vector<int> node_of(ops, -1);
  size_t rounds = 1;
  for (size_t i = 0; i < s.ops.size(); ++i) {
    node_of[s.ops[i]] = static_cast<int>(i);
    out.graph.node.emplace_back(s.configs[s.ops[i]].size(), 0.0);
    rounds = std::max(rounds, s.configs[s.ops[i]].size());
  }
  // Per op, the partition of each candidate (one, data parallel, for ops not searched).
  std::vector<std::vector<OpParts>> parts(ops);
  for (int round = 0; round < static_cast<int>(rounds); ++round) {
    std::vector<int> choice(ops, -1);
    for (int op : s.ops) choice[op] = round % static_cast<int>(s.configs[op].size());
    const Evaluator::Costed c = ev.compile(ev.resolve(s, choice));
    const Program& p = c.compiled.program;
    // Each op's compute per rank (kernels, input loads, updates) and its own phases.
    std::vector<std::vector<double>> compute(ops, std::vector<double>(p.ranks.size(), 0.0));
    for (size_t r = 0; r < p.ranks.size(); ++r)
      for (size_t i = 0; i < p.ranks[r].step.size(); ++i) {
        const Instr& in = p.ranks[r].step[i];
        if (in.kind != InstrKind::comm && in.op >= 0) compute[in.op][r] += c.costs.ranks[r][i].cost;
      }
    // Each op's own phases: the reductions of its parameters' gradients (a phase that reduces
    // several ops' gradients, a bucket, is shared by their bytes) and its statistics.
    std::vector<double> sync(ops, 0.0);
    std::vector<double> grad_bytes(ops, 0.0);
    std::vector<bool> seen(p.phases.size(), false);
    for (const RankProgram& rp : p.ranks) {
      // A statistics buffer belongs to the op whose kernels read or write it.
      std::vector<int> stats_op(rp.buffers.size(), -1);
      for (const Instr& in : rp.step)
        if (in.stats.present() && in.op >= 0)
          stats_op[in.stats.buffer] = in.op;
      for (const Instr& in : rp.step) {
        if (in.kind != InstrKind::comm || seen[in.phase]) continue;
        seen[in.phase] = true;
        const double cost = c.costs.phase_cost[in.phase];
        int owner = -1;
        for (const CommOp& op : in.comm)
          if (op.dst.present() && stats_op[op.dst.buffer] >= 0) owner = stats_op[op.dst.buffer];
        if (owner >= 0) {
          sync[owner] += cost;
          continue;
        }
        std::fill(grad_bytes.begin(), grad_bytes.end(), 0.0);
        double total = 0;
        for (const CommOp& op : in.comm) {
          if (!op.dst.present()) continue;
          const Buffer& b = rp.buffers[op.dst.buffer];
          if (b.role != BufferRole::param_grad || b.param < 0) continue;
          const double bytes = static_cast<double>(op.dst.box.volume()) * dtype_bytes(b.dtype);
          grad_bytes[p.params[b.param].op] += bytes;
          total += bytes;
        }
        if (total > 0)
          for (int o = 0; o < ops; ++o) sync[o] += cost * grad_bytes[o] / total;
      }
    }
    for (int o = 0; o < ops; ++o) {
      if (node_of[o] < 0) {
        if (round == 0) parts[o].push_back(c.compiled.partition.ops[o]);
        continue;
      }
      if (round >= static_cast<int>(s.configs[o].size())) continue;
      out.graph.node[node_of[o]][round] = *std::max_element(compute[o].begin(), compute[o].end()) + sync[o];
      parts[o].push_back(c.compiled.partition.ops[o]);
    }
  }

  // Edges: every input of every op, its resharding forward and, when the tensor carries a
  // gradient, the same volume back. An edge to an op that is not searched costs its other end.
  const Machine& m = ev.target().machine;
  for (int v = 0; v < ops; ++v)
    for (size_t slot = 0; slot < g.ops[v].inputs.size(); ++slot) {
      const TensorId t = g.ops[v].inputs[slot];
      const int u = g.tensors[t].producer;
      const int k = g.tensors[t].index;
      const int bytes = dtype_bytes(g.type(t).dtype);
      const double times = ev.backward().needs_grad[t] ? 2.0 : 1.0;
      const int in = static_cast<int>(slot);
      auto cost = [&](size_t cu, size_t cv) { return times * reshard_time(m, parts[u][cu], k, parts[v][cv], in, bytes); };
      const int nu = node_of[u], nv = node_of[v];
      if (nu >= 0 && nv >= 0) {
        CostGraph::Edge& e = out.graph.add_edge(nu, nv);
        const size_t cols = parts[v].size();
        for (size_t cu = 0; cu < parts[u].size(); ++cu)
          for (size_t cv = 0; cv < cols; ++cv) e.cost[cu * cols + cv] = cost(cu, cv);
      } else if (nu >= 0) {
        for (size_t c = 0; c < parts[u].size(); ++c) out.graph.node[nu][c] += cost(c, 0);
      } else if (nv >= 0) {
        for (size_t c = 0; c < parts[v].size(); ++c) out.graph.node[nv][c] += cost(0, c);
      }
    }
  out.seconds = since(t0);
  return out;
}

EliminationSearch elimination_search(Evaluator& ev, const SearchSpace& s, const std::vector<int>& start) {
  const Clock::time_point t0 = Clock::now();
  EliminationSearch out;
  OpCosts costs = measure_op_costs(ev, s);
  std::vector<int> start_nodes;
  for (int op : s.ops) start_nodes.push_back(start.at(op));
  out.result = eliminate(costs.graph, start_nodes);
  out.choice = start;
  for (size_t i = 0; i < s.ops.size(); ++i) out.choice[s.ops[i]] = out.result.choice[i];
  out.seconds = since(t0);
  return out;
}

}  // namespace ffc
