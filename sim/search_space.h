// The search space of `ffc search`: for every op, the parallel configs a search may give it.
//
// A config is what a strategy file expresses (frontend/strategy.h): a degree for each dim of the
// op's parallel shape and one device per part. The search keeps to a regular subset of it: the
// number of parts P divides the device count N, each dim's degree divides P and is at most the dim's
// extent (the batch's for N), a dim the op table does not let the op split keeps degree 1, and the P
// parts run on the aligned block of devices s, s+1, …, s+P−1 for s = 0, P, 2P, … (N/P placements).
// So no two parts share a device, and every config the middle end accepts for one device per part
// on an aligned block is in the space (docs/search.md).
#pragma once

#include <cstdint>
#include <vector>

#include "frontend/strategy.h"
#include "ir/graph.h"

namespace ffc {

/// The candidate configs of a graph's ops. A point of the space (a "choice") is one index per op
/// into its candidates; ops that are not searched have none and stay data parallel.
struct SearchSpace {
  int devices = 1;
  int64_t batch = 0;
  std::vector<int> ops;                        ///< the searched ops, in graph order
  std::vector<std::vector<OpConfig>> configs;  ///< per graph op, its candidates (empty: not searched)
  std::vector<int> data_parallel;              ///< per graph op, its data-parallel candidate (-1: not searched)

  /// The index of `c` among op `op`'s candidates (same degrees and devices), or -1.
  int find(int op, const OpConfig& c) const;
  /// The index of `c` among op `op`'s candidates, adding it when absent (a starting strategy's
  /// config outside the regular space).
  int add(int op, const OpConfig& c);
  /// The data-parallel point: every searched op at its data-parallel candidate.
  std::vector<int> data_parallel_choice() const;
  /// The number of points, as log10 (the product of the candidate counts overflows).
  double log10_size() const;
};

/// The candidates of one op, in a fixed order: by number of parts, then degrees (outermost dim
/// first), then placement.
std::vector<OpConfig> candidate_configs(const Graph& g, const Op& op, int devices, int64_t batch);

/// The space over the first `searched_ops` ops of `g` (the model's own; a loss the middle end
/// appended stays data parallel).
SearchSpace build_search_space(const Graph& g, int searched_ops, int devices, int64_t batch);

/// Whether two configs are the same (degrees and devices).
bool same_config(const OpConfig& a, const OpConfig& b);

}  // namespace ffc
