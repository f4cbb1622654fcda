// Strategy search (sim/search.h, sim/elimination.h): the random draws are the same on every
// standard library; the search space holds data parallelism and only configs the middle end
// accepts; node and edge elimination finds the brute-force optimum of small additive models
// (chains, a diamond, a residual block) and of a small model's measured costs; MCMC is
// deterministic for a seed, never ends worse than where it started, and writes a strategy that
// parses and compiles.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include "frontend/ff_parser.h"
#include "frontend/strategy.h"
#include "passes/parallel.h"
#include "passes/pipeline.h"
#include "sim/cost.h"
#include "sim/elimination.h"
#include "sim/machine.h"
#include "sim/search.h"
#include "sim/search_space.h"

namespace ffc {
namespace {

const char* kChain = R"(model chain
x = input() : f32[N,64]
fc1 = linear(x, out_features=256, activation=relu) : f32[N,256]
fc2 = linear(fc1, out_features=256, activation=relu) : f32[N,256]
fc3 = linear(fc2, out_features=10) : f32[N,10]
)";

const char* kResidual = R"(model res
x = input() : f32[N,4,8,8]
c1 = conv2d(x, out_channels=8, kernel=[3,3], padding=[1,1], activation=relu) : f32[N,8,8,8]
c2 = conv2d(c1, out_channels=8, kernel=[3,3], padding=[1,1]) : f32[N,8,8,8]
c3 = conv2d(c1, out_channels=8, kernel=[1,1]) : f32[N,8,8,8]
s = add(c2, c3) : f32[N,8,8,8]
f = flat(s) : f32[N,512]
fc = linear(f, out_features=10) : f32[N,10]
)";

Graph load(const char* ff) {
  Graph g = parse_ff(ff, "test.ff");
  run_graph_pipeline(g, PipelineOptions{});
  return g;
}

/// A search set-up over the analytical model of the h100 preset.
struct Env {
  Machine machine = *machine_preset("h100");
  AnalyticalCostModel cost{machine, Math::fp32};
  SearchTarget target;
  Env(int devices, int64_t batch) {
    machine.nodes = 1;
    target.devices = devices;
    target.batch = batch;
    target.machine = machine;
    target.cost = &cost;
  }
};

TEST(SearchRandom, DrawsAreFixed) {
  // The generator's output is fixed by the C++ standard, and the draws are ours: the same numbers
  // on every standard library.
  std::mt19937_64 rng(42);
  std::vector<uint64_t> got;
  for (int i = 0; i < 6; ++i) got.push_back(uniform_index(rng, 7));
  std::mt19937_64 again(42);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(uniform_index(again, 7), got[i]);
  std::mt19937_64 r2(1);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_LT(uniform_index(r2, 3), 3u);
    const double u = uniform_unit(r2);
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
  }
  std::mt19937_64 one(5);
  EXPECT_EQ(uniform_index(one, 1), 0u);
}

TEST(SearchSpace, CandidatesOfALinear) {
  Graph g = load(kChain);
  const Op& fc = g.ops[g.find_op("fc1")];
  std::vector<OpConfig> c = candidate_configs(g, fc, 4, 64);
  // Parts 1 (4 placements), 2 (n or c, 2 placements each), 4 (n=4, c=4, n=2 c=2; one placement).
  ASSERT_EQ(c.size(), 4u + 4u + 3u);
  EXPECT_EQ(c[0].degrees, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(c[3].devices, std::vector<int>{3});
  EXPECT_EQ(c[4].degrees, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(c[4].devices, (std::vector<int>{0, 1}));
  EXPECT_EQ(c[5].devices, (std::vector<int>{2, 3}));
  SearchSpace s = build_search_space(g, static_cast<int>(g.ops.size()), 4, 64);
  const int i = g.find_op("fc1");
  EXPECT_TRUE(same_config(s.configs[i][s.data_parallel[i]], data_parallel_config(g, fc, 4)));
  // Every candidate of every op passes the strategy checks.
  Strategy all;
  for (int op : s.ops)
    for (const OpConfig& cfg : s.configs[op]) {
      Strategy one;
      one.ops.push_back(cfg);
      EXPECT_NO_THROW(resolve_strategy(g, one, 4, 64)) << cfg.op << " " << config_str(cfg);
    }
}

TEST(SearchSpace, SoftmaxKeepsItsClassDimWhole) {
  Graph g = load(R"(model sm
x = input() : f32[N,16]
fc = linear(x, out_features=8) : f32[N,8]
p = softmax(fc) : f32[N,8]
)");
  for (const OpConfig& c : candidate_configs(g, g.ops[g.find_op("p")], 4, 64)) EXPECT_EQ(c.degrees[1], 1);
}

/// A random additive model over a graph given by its edges.
CostGraph random_graph(int nodes, const std::vector<std::pair<int, int>>& edges, uint64_t seed) {
  std::mt19937_64 rng(seed);
  CostGraph g;
  for (int i = 0; i < nodes; ++i) {
    g.node.emplace_back(2 + uniform_index(rng, 3));
    for (double& v : g.node.back()) v = uniform_unit(rng);
  }
  for (auto [a, b] : edges) {
    CostGraph::Edge& e = g.add_edge(a, b);
    for (double& v : e.cost) v = uniform_unit(rng);
  }
  return g;
}

TEST(Elimination, MatchesBruteForce) {
  const std::vector<std::vector<std::pair<int, int>>> shapes{
      {{0, 1}, {1, 2}, {2, 3}, {3, 4}},                  // a chain
      {{0, 1}, {0, 2}, {1, 3}, {2, 3}, {3, 4}},          // a diamond (a residual block)
      {{0, 1}, {1, 2}, {1, 3}, {1, 4}, {2, 5}, {3, 5}, {4, 5}, {5, 6}},  // an inception module
      {{0, 1}, {0, 1}, {1, 2}, {2, 3}, {1, 3}},          // parallel edges
      {{0, 1}, {1, 2}, {3, 4}},                          // two components
  };
  for (size_t k = 0; k < shapes.size(); ++k)
    for (uint64_t seed = 0; seed < 5; ++seed) {
      int nodes = 0;
      for (auto [a, b] : shapes[k]) nodes = std::max({nodes, a + 1, b + 1});
      CostGraph g = random_graph(nodes, shapes[k], seed);
      EliminationResult r = eliminate(g, std::vector<int>(nodes, 0));
      EXPECT_TRUE(r.reduced) << "shape " << k;
      EXPECT_NEAR(r.cost, g.total(brute_force(g)), 1e-12) << "shape " << k << " seed " << seed;
      EXPECT_DOUBLE_EQ(r.cost, g.total(r.choice));
    }
}

TEST(Elimination, ReportsAGraphThatDoesNotReduce) {
  // K4: every node has three neighbours; no elimination applies.
  CostGraph g = random_graph(4, {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}}, 3);
  std::vector<int> start(4, 0);
  EliminationResult r = eliminate(g, start);
  EXPECT_FALSE(r.reduced);
  EXPECT_EQ(r.remaining, 4);
  // Coordinate descent from the start never ends above it.
  EXPECT_LE(r.cost, g.total(start));
}

TEST(Elimination, ModelCostsMatchBruteForce) {
  // The additive model measured on a chain model on 2 GPUs: elimination's choice is the optimum
  // over every combination of the ops' configs.
  Env s(2, 16);
  Graph g = load(kChain);
  Evaluator ev(g, s.target);
  SearchSpace space = build_search_space(ev.graph(), ev.model_ops(), 2, 16);
  OpCosts costs = measure_op_costs(ev, space);
  ASSERT_EQ(costs.graph.node.size(), 4u);
  for (const std::vector<double>& n : costs.graph.node)
    for (double v : n) EXPECT_GE(v, 0.0);
  EliminationResult r = eliminate(costs.graph, std::vector<int>(4, 0));
  EXPECT_TRUE(r.reduced);
  EXPECT_NEAR(r.cost, costs.graph.total(brute_force(costs.graph)), 1e-15);
}

TEST(Elimination, ResidualModelReduces) {
  Env s(4, 16);
  Graph g = load(kResidual);
  Evaluator ev(g, s.target);
  SearchSpace space = build_search_space(ev.graph(), ev.model_ops(), 4, 16);
  EliminationSearch e = elimination_search(ev, space, space.data_parallel_choice());
  EXPECT_TRUE(e.result.reduced);
  EXPECT_GT(e.result.node_eliminations + e.result.leaf_eliminations, 0);
  EXPECT_TRUE(ev.evaluate(space, e.choice).fits);
}

TEST(ReshardTime, SameLayoutIsFreeAndATransposeIsNot) {
  Env s(2, 16);
  Graph g = load(kChain);
  Evaluator ev(g, s.target);
  SearchSpace space = build_search_space(ev.graph(), ev.model_ops(), 2, 16);
  const int fc1 = ev.graph().find_op("fc1"), fc2 = ev.graph().find_op("fc2");
  std::vector<int> choice = space.data_parallel_choice();
  Evaluator::Costed dp = ev.compile(ev.resolve(space, choice));
  const Partition& p = dp.compiled.partition;
  // Both batch-split on the same devices: nothing moves.
  EXPECT_EQ(reshard_time(s.machine, p.ops[fc1], 0, p.ops[fc2], 0, 4), 0.0);
  // fc2 split on its output features needs whole rows: each rank receives the other's half of
  // fc1's 16x256 output, 8x256 floats.
  OpConfig c;
  c.op = "fc2";
  c.degrees = {1, 2};
  c.devices = {0, 1};
  choice[fc2] = space.find(fc2, c);
  ASSERT_GE(choice[fc2], 0);
  Evaluator::Costed mp = ev.compile(ev.resolve(space, choice));
  const double t = reshard_time(s.machine, mp.compiled.partition.ops[fc1], 0, mp.compiled.partition.ops[fc2], 0, 4);
  EXPECT_DOUBLE_EQ(t, s.machine.intra_node_latency + 8.0 * 256 * 4 / s.machine.intra_node_bandwidth);
}

TEST(Mcmc, DeterministicAndNeverWorseThanItsStart) {
  Env s(4, 32);
  Graph g = load(kResidual);
  McmcOptions o;
  o.budget = 60;
  o.seed = 7;
  o.min_iterations = 60;
  auto run = [&] {
    Evaluator ev(g, s.target);
    SearchSpace space = build_search_space(ev.graph(), ev.model_ops(), 4, 32);
    McmcResult r = mcmc_search(ev, space, space.data_parallel_choice(), o);
    EXPECT_LE(r.best_time, r.start_time);
    EXPECT_DOUBLE_EQ(r.start_time, ev.evaluate(space, space.data_parallel_choice()).time);
    EXPECT_DOUBLE_EQ(r.best_time, ev.evaluate(space, r.best).time);
    return r;
  };
  McmcResult a = run(), b = run();
  EXPECT_EQ(a.best, b.best);
  EXPECT_EQ(a.best_time, b.best_time);
  EXPECT_EQ(a.accepted, b.accepted);
  EXPECT_EQ(a.iterations, 60);
  o.seed = 8;
  McmcResult c = run();
  EXPECT_LE(c.best_time, c.start_time);
}

TEST(Mcmc, StopsEarlyWithoutImprovement) {
  Env s(2, 16);
  Graph g = load(kChain);
  Evaluator ev(g, s.target);
  SearchSpace space = build_search_space(ev.graph(), ev.model_ops(), 2, 16);
  McmcOptions o;
  o.budget = 100000;
  o.min_iterations = 20;
  McmcResult r = mcmc_search(ev, space, space.data_parallel_choice(), o);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_LT(r.iterations, 100000);
  EXPECT_GT(r.iterations - r.best_iteration, (r.iterations - 1) / 2);
}

TEST(Search, WrittenStrategyParsesAndCompiles) {
  Env s(4, 32);
  Graph g = load(kResidual);
  Evaluator ev(g, s.target);
  SearchSpace space = build_search_space(ev.graph(), ev.model_ops(), 4, 32);
  McmcOptions o;
  o.budget = 40;
  McmcResult r = mcmc_search(ev, space, space.data_parallel_choice(), o);
  ResolvedStrategy full = ev.resolve(space, r.best);
  full.configs.resize(ev.model_ops());
  const std::string path = (std::filesystem::temp_directory_path() / "ffc_search_test.pbtxt").string();
  write_strategy_file(to_strategy(g, full), path);
  Strategy back = read_strategy_file(path);
  std::remove(path.c_str());
  ASSERT_EQ(back.ops.size(), g.ops.size());
  ParallelOptions po;
  po.devices = 4;
  po.batch = 32;
  Compiled c = compile_parallel(g, back, po);
  EXPECT_TRUE(c.complete);
  // The time the search saw is the time `ffc simulate` predicts.
  EXPECT_DOUBLE_EQ(simulate(c.graph, c.program, s.machine, s.cost).iteration, r.best_time);
}

}  // namespace
}  // namespace ffc
