// `ffc search`: find a fast strategy for a model on N GPUs with the simulator (docs/search.md).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "tools/ffc/simulate_cmd.h"

namespace ffc {

struct SearchFlags : TargetFlags {
  std::string model, output;
  std::string algorithm = "mcmc";  ///< mcmc | elimination
  std::string init = "dp";         ///< dp | elimination | a strategy file
  int devices = 0;
  int64_t batch = 64;
  int64_t budget = 0;  ///< MCMC proposals (default 1000 when no --time)
  double seconds = 0;  ///< wall-clock limit of the whole search (MCMC gets what is left)
  uint64_t seed = 0;
  double beta = 100;
  int64_t progress_every = 100;
  bool quiet = false;  ///< no progress lines
};

void add_search_flags(CLI::App* cmd, SearchFlags& f);
/// 0 on success; 1 for a user error.
int cmd_search(const SearchFlags& f);

}  // namespace ffc
