// Node and edge elimination (Jia et al., "Exploring Hidden Dimensions in Parallelizing
// Convolutional Neural Networks", ICML 2018): the optimal choice of one config per node under an
// additive cost — the nodes' costs plus the edges' costs, an edge's depending on the configs of its
// two ends — by dynamic programming over a graph that reduces step by step:
//
// - edge elimination: two edges between the same nodes become one, their costs added;
// - node elimination: a node with exactly two neighbours i and k is replaced by an edge i–k whose
//   cost for (ci, ck) is the node's best config given both: min_cj e(i,j)[ci][cj] + t(j)[cj] +
//   e(j,k)[cj][ck];
// - leaf elimination: a node with one neighbour i folds into i's cost: t(i)[ci] += min_cj
//   e(i,j)[ci][cj] + t(j)[cj] (a model's input, a branch nothing else reads);
// - a node with no neighbour left takes its cheapest config.
//
// Each step keeps the optimum, so a graph that reduces to a single node (chains, residual blocks,
// inception modules: series-parallel graphs) gets the optimal choice. Otherwise the nodes left are
// set by coordinate descent from a starting choice, and the result says the graph did not reduce.
// The model is generic here; sim/search.h builds one from a model and a cost model.
#pragma once

#include <vector>

namespace ffc {

/// A graph of nodes with a cost per config and edges with a cost per pair of configs.
struct CostGraph {
  struct Edge {
    int from = 0, to = 0;
    std::vector<double> cost;  ///< row-major [config of from][config of to]
  };
  std::vector<std::vector<double>> node;  ///< per node, its cost under each of its configs
  std::vector<Edge> edges;

  /// Adds an edge with a zero cost matrix; returns it.
  Edge& add_edge(int from, int to);
  /// The additive cost of a choice (one config index per node).
  double total(const std::vector<int>& choice) const;
};

struct EliminationResult {
  std::vector<int> choice;  ///< per node, its config
  double cost = 0;          ///< the choice's total cost
  bool reduced = false;     ///< the graph reduced completely: the choice is optimal
  int remaining = 0;        ///< nodes left when no elimination applied (0 when reduced)
  int node_eliminations = 0, edge_eliminations = 0, leaf_eliminations = 0;
};

/// Runs the eliminations; `start` (one config per node) seeds the coordinate descent over the
/// nodes left when the graph does not reduce.
EliminationResult eliminate(const CostGraph& g, const std::vector<int>& start);

/// The optimum by trying every choice (for tests on small graphs).
std::vector<int> brute_force(const CostGraph& g);

}  // namespace ffc
