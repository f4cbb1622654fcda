// `ffc simulate`: the predicted iteration time of a model under a strategy on a machine.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "passes/parallel.h"
#include "sim/cost_table.h"

namespace ffc {

/// What a prediction is for, beyond the model and strategy: the machine, the math mode, measured
/// costs and the optimizer state the plan makes room for (ffc simulate's and ffc search's flags).
struct TargetFlags {
  std::string machine, math = "fp32", optimizer = "adam";
  std::vector<std::string> costs;  ///< measured cost tables, merged in order (a later entry wins)
};
void add_target_flags(CLI::App* cmd, TargetFlags& f);
/// The cost tables of --costs merged in order; null when none is given.
std::unique_ptr<CostTable> load_costs(const TargetFlags& f);
/// The cost model of a table (null: none) over the analytical model, calibrated on the data
/// parallelism of `model` (after the graph pipeline) for `po`'s devices and batch: a kernel the
/// table lacks costs its op's measured-over-analytical ratio there times its analytical time
/// (MeasuredCostModel::calibrate). ffc simulate and ffc search price alike through it.
std::unique_ptr<MeasuredCostModel> measured_costs(const CostTable* table, const AnalyticalCostModel& analytical,
                                                  const Graph& model, const ParallelOptions& po);

struct SimulateFlags : TargetFlags {
  std::string model, strategy, trace;
  int devices = 0;
  int64_t batch = 64;
  bool time = false;  ///< report the CPU time of the middle end and of one simulation on stderr
};

void add_simulate_flags(CLI::App* cmd, SimulateFlags& f);
/// 0 on success; 1 for a user error, and for a strategy that does not fit the GPUs' memory.
int cmd_simulate(const SimulateFlags& f);

}  // namespace ffc
