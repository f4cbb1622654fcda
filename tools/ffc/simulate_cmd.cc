// `ffc simulate`: the middle end, then the simulator over a cost model (docs/simulator.md).
#include "tools/ffc/simulate_cmd.h"

#include <fmt/format.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>

#include "passes/parallel.h"
#include "passes/pipeline.h"
#include "sim/cost.h"
#include "sim/cost_table.h"
#include "sim/machine.h"
#include "sim/simulate.h"
#include "tools/ffc/load.h"
#include <fmt/ranges.h>

namespace ffc {

void add_target_flags(CLI::App* cmd, TargetFlags& f) {
  cmd->add_option("--machine", f.machine, "the machine: a preset (h100, h200) or a machine file (default h100)");
  cmd->add_option("--math", f.math, "how convolutions and GEMMs compute, as the program's --math (default fp32)")
      ->check(CLI::IsMember({"fp32", "tf32"}));
  cmd->add_option("--costs", f.costs,
                  "a measured cost table: its kernel times replace the analytical ones (repeatable: merged, "
                  "a later table's entry winning)")
      ->allow_extra_args(false);
  cmd->add_option("--optimizer", f.optimizer, "the optimizer the program is planned for, as ffc compile's (default adam)")
      ->check(CLI::IsMember({"sgd", "momentum", "adam"}));
}

std::unique_ptr<CostTable> load_costs(const TargetFlags& f) {
  if (f.costs.empty()) return nullptr;
  auto table = std::make_unique<CostTable>();
  for (const std::string& path : f.costs) table->merge(CostTable::load(path));
  return table;
}

std::unique_ptr<MeasuredCostModel> measured_costs(const CostTable* table, const AnalyticalCostModel& analytical,
                                                  const Graph& model, const ParallelOptions& po) {
  if (!table) return nullptr;
  auto m = std::make_unique<MeasuredCostModel>(*table, analytical);
  // Data parallelism needs a sample per device; with fewer, kernels the table lacks stay analytical.
  if (po.batch >= po.devices) {
    const Compiled dp = compile_parallel(model, Strategy{}, po);
    m->calibrate(dp.graph, dp.program);
  }
  return m;
}

void add_simulate_flags(CLI::App* cmd, SimulateFlags& f) {
  cmd->add_option("MODEL", f.model, "the model: a .ff file or an .onnx file")->required();
  cmd->add_option("-s,--strategy", f.strategy, "a strategy file (.pb or .pbtxt); data parallel when absent");
  cmd->add_option("-g,--devices", f.devices, "number of ranks, one per GPU (default: what the strategy names, or 1)")
      ->check(CLI::Range(1, kMaxDevices));
  cmd->add_option("-b,--batch-size", f.batch, "global batch size (default 64)")->check(CLI::PositiveNumber);
  add_target_flags(cmd, f);
  cmd->add_option("--trace", f.trace, "write the simulated iteration as Chrome trace-event JSON (Perfetto)");
  cmd->add_flag("--time", f.time, "report the CPU time of the middle end and of one simulation on stderr");
}

namespace {

/// This thread's CPU time: unlike wall time, it does not count other processes sharing the cores.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// `15.5 KiB`, `245.3 MiB`, `1.20 GiB`.
std::string size_str(double bytes) {
  if (bytes < (1 << 20)) return fmt::format("{:.1f} KiB", bytes / (1 << 10));
  if (bytes < (1 << 30)) return fmt::format("{:.1f} MiB", bytes / (1 << 20));
  return fmt::format("{:.2f} GiB", bytes / (1 << 30));
}
std::string size_str(int64_t bytes) { return size_str(static_cast<double>(bytes)); }

}  // namespace

int cmd_simulate(const SimulateFlags& f) {
  Machine machine = load_machine(f.machine);
  const Math math = *parse_math(f.math);
  std::unique_ptr<CostTable> table = load_costs(f);

  const double t0 = cpu_seconds();
  Graph g = load_model(f.model);
  run_graph_pipeline(g, PipelineOptions{});
  Strategy s;
  if (!f.strategy.empty()) s = read_strategy_file(f.strategy);
  ParallelOptions po;
  po.devices = device_count(f.devices, f.strategy.empty() ? nullptr : &s);
  po.batch = f.batch;
  po.optimizer_states = f.optimizer == "adam" ? 2 : f.optimizer == "momentum" ? 1 : 0;
  if (machine.nodes == 0) machine.nodes = (po.devices + machine.gpus_per_node - 1) / machine.gpus_per_node;
  if (po.devices > machine.gpus())
    user_error(SourceLoc{f.machine}, "the program needs {} GPUs; machine {} has {} ({} node{} x {})", po.devices,
               machine.name, machine.gpus(), machine.nodes, machine.nodes == 1 ? "" : "s", machine.gpus_per_node);
  Compiled c = compile_parallel(g, s, po);
  const double middle_s = cpu_seconds() - t0;

  const AnalyticalCostModel analytical(machine, math);
  const std::unique_ptr<MeasuredCostModel> measured = measured_costs(table.get(), analytical, g, po);
  const CostModel& cost = measured ? static_cast<const CostModel&>(*measured) : analytical;

  SimOptions so;
  so.trace = !f.trace.empty();
  Simulation sim = simulate(c.graph, c.program, machine, cost, so);
  if (f.time) {
    // One simulation is short: repeat each half for a stable mean.
    auto mean = [](auto&& run) {
      const double t = cpu_seconds();
      int repeats = 0;
      do {
        run();
        ++repeats;
      } while (cpu_seconds() - t < 0.2 && repeats < 1000000);
      return (cpu_seconds() - t) / repeats;
    };
    const CostedProgram costed = cost_program(c.graph, c.program, cost);
    const double cost_s = mean([&] { cost_program(c.graph, c.program, cost); });
    const double sweep_s = mean([&] { simulate(costed); });
    std::fprintf(stderr,
                 "CPU time: middle end %.1f ms; one simulation %.1f us = costing %.1f us + sweep %.1f us "
                 "(%lld instructions, %zu phases): %.0f simulations/s, %.0f sweeps/s\n",
                 middle_s * 1e3, (cost_s + sweep_s) * 1e6, cost_s * 1e6, sweep_s * 1e6,
                 static_cast<long long>(sim.instructions), c.program.phases.size(), 1 / (cost_s + sweep_s),
                 1 / sweep_s);
  }

  if (!sim.fits()) {
    const RankTimes& r = sim.ranks[sim.over_memory];
    user_error(SourceLoc{f.model},
               "rank {} needs {} (persistent {}, arena {}), more than a GPU of machine {} has ({}): "
               "the strategy does not fit",
               sim.over_memory, size_str(r.memory()), size_str(r.persistent_bytes), size_str(r.arena_bytes),
               machine.name, size_str(machine.gpu_memory));
  }

  std::string costs = "analytical costs";
  if (measured) {
    const MeasuredCostModel::Coverage cov = measured->coverage(c.graph, c.program);
    costs = fmt::format("costs {}: {} of {} kernels measured, the rest estimated", fmt::join(f.costs, ", "),
                        cov.measured, cov.kernels);
  }

  std::string out = fmt::format("predicted iteration time: {:.3f} ms\n", sim.iteration * 1e3);
  out += fmt::format("  {} on {} rank{}, batch {}, {}, {}, {}\n", c.graph.name, po.devices, po.devices == 1 ? "" : "s",
                     f.batch, f.strategy.empty() ? "data parallel" : "strategy " + std::filesystem::path(f.strategy).filename().string(),
                     math_name(math), costs);
  out += fmt::format("  machine {}\n", machine.describe());
  out += "rank  compute ms    comm ms exposed ms    idle ms  memory (persistent + arena)\n";
  for (size_t r = 0; r < sim.ranks.size(); ++r) {
    const RankTimes& t = sim.ranks[r];
    out += fmt::format("{:>4} {:>11.3f} {:>10.3f} {:>10.3f} {:>10.3f}  {} ({} + {})\n", r, t.compute * 1e3, t.comm * 1e3,
                       t.exposed * 1e3, t.idle * 1e3, size_str(t.memory()), size_str(t.persistent_bytes), size_str(t.arena_bytes));
  }
  out += fmt::format("throughput: {:.1f} samples/s\n", static_cast<double>(f.batch) / sim.iteration);
  // What the job's launch term adds (Machine::job_launch), on the rank that launches the most.
  if (c.program.ranks.size() > 1 && cost.job_launch() > 0) {
    double most = -1;
    size_t at = 0;
    for (size_t r = 0; r < c.program.ranks.size(); ++r) {
      double n = 0;
      for (const Instr& in : c.program.ranks[r].step)
        if (in.kind != InstrKind::comm) n += cost.launches(c.graph, c.program.ranks[r], in);
      if (n > most) most = n, at = r;
    }
    out += fmt::format("launches: {:g} a step on rank {}, {:.3f} ms more in a job at {:.2f} us each\n", most, at,
                       most * cost.job_launch() * 1e3, cost.job_launch() * 1e6);
  }
  if (!f.trace.empty()) {
    std::ofstream tf(f.trace, std::ios::binary);
    if (!tf) user_error(SourceLoc{f.trace}, "cannot write the trace");
    tf << trace_json(sim, fmt::format("ffc simulate {}: {} ranks, batch {}", c.graph.name, po.devices, f.batch));
    if (!tf) user_error(SourceLoc{f.trace}, "cannot write the trace");
    out += fmt::format("wrote trace {}\n", f.trace);
  }
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace ffc
