// Strategy search (`ffc search`, docs/search.md): the cost of a point of the search space
// (sim/search_space.h) is its simulated iteration time — the middle end compiles the strategy to
// the Rank IR and the simulator times it (sim/simulate.h) — and two algorithms look for a fast one:
//
// - Markov chain Monte Carlo (FlexFlow, "Beyond Data and Model Parallelism for Deep Neural
//   Networks", SysML 2019): from a start, propose a new config for one random op; accept a faster
//   strategy always and a slower one with probability exp(−β·(new − old)/old); keep the best seen.
// - Node and edge elimination (ICML 2018, sim/elimination.h) over an additive model of the same
//   costs: each op's kernels, updates and parameter synchronization under each of its configs,
//   measured by compiling and simulating the whole model once per candidate index, plus each
//   edge's resharding transfer between its producer's and consumer's configs.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "frontend/strategy.h"
#include "ir/graph.h"
#include "ir/rank_ir.h"
#include "passes/autodiff.h"
#include "passes/parallel.h"
#include "passes/partition.h"
#include "sim/cost.h"
#include "sim/elimination.h"
#include "sim/machine.h"
#include "sim/search_space.h"
#include "sim/simulate.h"

namespace ffc {

/// A uniformly drawn integer in [0, n), n >= 1, by rejection: the same on every standard library.
uint64_t uniform_index(std::mt19937_64& rng, uint64_t n);
/// A uniformly drawn double in [0, 1), from the generator's top 53 bits.
double uniform_unit(std::mt19937_64& rng);

/// What a search compiles and simulates for.
struct SearchTarget {
  int devices = 1;
  int64_t batch = 64;
  int optimizer_states = 2;      ///< as ParallelOptions::optimizer_states
  Machine machine;               ///< with its node count set
  const CostModel* cost = nullptr;
};

/// One point's simulated iteration.
struct Evaluation {
  double time = 0;   ///< s: the simulated iteration; infinity when it does not fit
  bool fits = true;  ///< every rank's planned memory fits a GPU
};

/// Compiles points of a search space with the middle end (compile_parallel, as `ffc simulate`
/// does) and simulates them, remembering every point it has seen: a point proposed again costs a
/// lookup.
class Evaluator {
 public:
  /// `model` has passed the Graph IR pipeline; the middle end's loss is appended to a copy.
  Evaluator(const Graph& model, const SearchTarget& target);

  /// The model with its loss: the graph strategies are compiled for.
  const Graph& graph() const { return graph_; }
  /// The model's own ops (the first ones of graph()); the loss appended after them stays data parallel.
  int model_ops() const { return model_ops_; }
  const Backward& backward() const { return backward_; }
  const SearchTarget& target() const { return target_; }

  /// The strategy of a point: each searched op's chosen config, data parallelism for the rest.
  ResolvedStrategy resolve(const SearchSpace& s, const std::vector<int>& choice) const;

  /// A compiled and costed point.
  struct Costed {
    Compiled compiled;
    CostedProgram costs;
    Evaluation eval;
  };
  /// Compiles and simulates a strategy, without the cache.
  Costed compile(const ResolvedStrategy& r) const;
  /// The simulated time of a point, from the cache when it was seen before.
  Evaluation evaluate(const SearchSpace& s, const std::vector<int>& choice);

  int64_t compiles() const { return compiles_; }
  int64_t cache_hits() const { return hits_; }

 private:
  Graph graph_;
  int model_ops_ = 0;
  Backward backward_;
  SearchTarget target_;
  std::unordered_map<std::string, Evaluation> cache_;
  int64_t compiles_ = 0, hits_ = 0;
};

/// One progress report of a search.
struct SearchProgress {
  int64_t iteration = 0;
  double current = 0, best = 0;  ///< s
  double seconds = 0;            ///< since the search began
};

struct McmcOptions {
  int64_t budget = 0;   ///< proposals; 0: no limit (then `seconds` must be set)
  double seconds = 0;   ///< wall-clock limit; 0: none
  uint64_t seed = 0;
  double beta = 100;    ///< acceptance of a slower strategy: exp(−β·(new − old)/old)
  /// No early stop before this many proposals; -1: ten per searched op.
  int64_t min_iterations = -1;
  int64_t progress_every = 100;  ///< report every this many proposals (and every new best)
  std::function<void(const SearchProgress&)> progress;
};

struct McmcResult {
  std::vector<int> best;
  double best_time = 0, start_time = 0;  ///< s
  int64_t iterations = 0, accepted = 0, over_memory = 0, best_iteration = 0;
  double seconds = 0;
  bool stopped_early = false;  ///< no improvement for half the search
};

/// Metropolis–Hastings from `start`. Deterministic for a seed when limited by `budget` alone.
McmcResult mcmc_search(Evaluator& ev, const SearchSpace& s, const std::vector<int>& start, const McmcOptions& o);

/// The additive cost model of a search space, one node per searched op (in SearchSpace::ops order).
struct OpCosts {
  CostGraph graph;
  double seconds = 0;  ///< to build it
};

/// Measures each op's cost under each candidate by compiling and simulating the model once per
/// candidate index (op i takes candidate j mod its count), and each edge's resharding cost from the
/// partition's boxes and the machine's links.
OpCosts measure_op_costs(Evaluator& ev, const SearchSpace& s);

/// The time of resharding output `out` of `producer` into input `in` of `consumer` (forward; the
/// gradient comes back the same way): per rank, latency plus the larger of the bytes it sends and
/// receives over the link's bandwidth, for each kind of link; the slowest rank's.
double reshard_time(const Machine& m, const OpParts& producer, int out, const OpParts& consumer, int in,
                    int element_bytes);

struct EliminationSearch {
  std::vector<int> choice;   ///< the point found
  EliminationResult result;  ///< over the additive model
  double seconds = 0;
};

/// Node and edge elimination over measure_op_costs's model; ops left when the graph does not
/// reduce start from `start` (coordinate descent).
EliminationSearch elimination_search(Evaluator& ev, const SearchSpace& s, const std::vector<int>& start);

}  // namespace ffc
