// `ffc search`: the search space, a start (data parallelism, a file, or elimination's optimum),
// MCMC or elimination, then the strategy found, compiled and simulated as `ffc simulate` would.
#include "tools/ffc/search_cmd.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "passes/parallel.h"
#include "passes/pipeline.h"
#include "sim/cost.h"
#include "sim/cost_table.h"
#include "sim/machine.h"
#include "sim/search.h"
#include "sim/simulate.h"
#include "tools/ffc/load.h"

namespace ffc {

void add_search_flags(CLI::App* cmd, SearchFlags& f) {
  cmd->add_option("MODEL", f.model, "the model: a .ff file or an .onnx file")->required();
  cmd->add_option("-g,--devices", f.devices, "number of GPUs, one rank each")->required()->check(CLI::Range(1, kMaxDevices));
  cmd->add_option("-b,--batch-size", f.batch, "global batch size (default 64)")->check(CLI::PositiveNumber);
  auto* budget = cmd->add_option("--budget", f.budget, "MCMC proposals to try (default 1000)")->check(CLI::PositiveNumber);
  auto* time = cmd->add_option("--time", f.seconds, "wall-clock limit of the whole search in seconds, instead of --budget")
                   ->check(CLI::PositiveNumber);
  budget->excludes(time);
  cmd->add_option("--algorithm", f.algorithm, "mcmc (default) or elimination (ICML 2018's dynamic programming)")
      ->check(CLI::IsMember({"mcmc", "elimination"}));
  cmd->add_option("--init", f.init, "MCMC's start: dp (default), elimination, or a strategy file");
  cmd->add_option("--seed", f.seed, "seed of the MCMC's random choices (default 0)");
  cmd->add_option("--beta", f.beta, "MCMC acceptance: a slower strategy with probability exp(-beta*(new-old)/old) (default 100)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-o,--output", f.output, "write the strategy found (.pbtxt text, .pb binary)");
  add_target_flags(cmd, f);
  cmd->add_option("--progress-every", f.progress_every, "MCMC: a progress line every this many proposals (default 100)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("-q,--quiet", f.quiet, "no progress lines on stderr");
}

namespace {

std::string ms(double s) { return std::isfinite(s) ? fmt::format("{:.3f} ms", s * 1e3) : "does not fit"; }

/// The resolved strategy of the model's own ops (the table and file leave the loss out).
ResolvedStrategy model_strategy(const ResolvedStrategy& full, int model_ops) {
  ResolvedStrategy r = full;
  r.configs.resize(model_ops);
  r.from_file.assign(model_ops, true);
  return r;
}

}  // namespace

int cmd_search(const SearchFlags& f) {
  const auto t0 = std::chrono::steady_clock::now();
  Machine machine = load_machine(f.machine);
  const Math math = *parse_math(f.math);
  std::unique_ptr<CostTable> table = load_costs(f);

  Graph model = load_model(f.model);
  run_graph_pipeline(model, PipelineOptions{});
  // The strategy file checks, on data parallelism: a batch too small for the devices is an error here.
  resolve_strategy(model, Strategy{}, f.devices, f.batch);
  Strategy start_file;
  if (f.init != "dp" && f.init != "elimination") {
    start_file = read_strategy_file(f.init);
    resolve_strategy(model, start_file, f.devices, f.batch);
  }
  if (machine.nodes == 0) machine.nodes = (f.devices + machine.gpus_per_node - 1) / machine.gpus_per_node;
  if (f.devices > machine.gpus())
    user_error(SourceLoc{f.machine}, "the program needs {} GPUs; machine {} has {} ({} node{} x {})", f.devices,
               machine.name, machine.gpus(), machine.nodes, machine.nodes == 1 ? "" : "s", machine.gpus_per_node);

  const AnalyticalCostModel analytical(machine, math);
  SearchTarget target;
  target.devices = f.devices;
  target.batch = f.batch;
  target.optimizer_states = f.optimizer == "adam" ? 2 : f.optimizer == "momentum" ? 1 : 0;
  target.machine = machine;
  ParallelOptions po;
  po.devices = f.devices;
  po.batch = f.batch;
  po.optimizer_states = target.optimizer_states;
  const std::unique_ptr<MeasuredCostModel> measured = measured_costs(table.get(), analytical, model, po);
  target.cost = measured ? static_cast<const CostModel*>(measured.get()) : &analytical;

  Evaluator ev(model, target);
  SearchSpace space = build_search_space(ev.graph(), ev.model_ops(), f.devices, f.batch);
  const std::vector<int> dp = space.data_parallel_choice();
  const double dp_time = ev.evaluate(space, dp).time;

  std::string report = fmt::format("search: {} on {} GPU{}, batch {}, {}, {}\n", model.name, f.devices,
                                   f.devices == 1 ? "" : "s", f.batch, math_name(math),
                                   table ? fmt::format("costs {}", fmt::join(f.costs, ", ")) : std::string("analytical costs"));
  report += fmt::format("  machine {}\n", machine.describe());
  size_t most = 0;
  for (int op : space.ops) most = std::max(most, space.configs[op].size());
  report += fmt::format("  space: {} ops, up to {} configs each, 10^{:.1f} strategies\n", space.ops.size(), most,
                        space.log10_size());
  auto progress = [&](std::string_view what, const SearchProgress& p) {
    if (f.quiet) return;
    std::fprintf(stderr, "%.*s: iteration %lld, current %s, best %s, %.1f s\n", static_cast<int>(what.size()),
                 what.data(), static_cast<long long>(p.iteration), ms(p.current).c_str(), ms(p.best).c_str(), p.seconds);
  };

  // The start.
  std::vector<int> start = dp;
  std::string start_name = "data parallel";
  bool want_elimination = f.algorithm == "elimination" || f.init == "elimination";
  if (f.init != "dp" && f.init != "elimination") {
    ResolvedStrategy r = resolve_strategy(model, start_file, f.devices, f.batch);
    for (int op : space.ops) start[op] = space.add(op, r.configs[op]);
    start_name = f.init;
  }
  if (want_elimination) {
    if (!f.quiet) std::fprintf(stderr, "elimination: measuring %zu ops under their configs\n", space.ops.size());
    EliminationSearch e = elimination_search(ev, space, start);
    const EliminationResult& er = e.result;
    const double t = ev.evaluate(space, e.choice).time;
    report += fmt::format("  elimination: {} node, {} edge and {} leaf eliminations; ", er.node_eliminations,
                          er.edge_eliminations, er.leaf_eliminations);
    if (er.reduced) report += "the graph reduced to one op: optimal under the additive model";
    else report += fmt::format("the graph did not reduce ({} ops left, set by coordinate descent: not guaranteed optimal)", er.remaining);
    report += fmt::format("\n  elimination: additive cost {}, simulated {}, {:.2f} s\n", ms(er.cost), ms(t), e.seconds);
    // MCMC starts from the better of the two; elimination alone keeps it only when it helps.
    if (t < ev.evaluate(space, start).time || f.algorithm == "elimination") {
      start = e.choice;
      start_name = "elimination";
    }
  }
  const double start_time = ev.evaluate(space, start).time;
  report += fmt::format("  start: {}, {}\n", start_name, ms(start_time));

  std::vector<int> best = start;
  if (f.algorithm == "mcmc") {
    McmcOptions o;
    o.budget = f.budget;
    // --time bounds the whole search: MCMC gets what the set-up and elimination left.
    if (f.seconds > 0)
      o.seconds = std::max(1e-3, f.seconds - std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (o.budget == 0 && o.seconds == 0) o.budget = 1000;
    o.seed = f.seed;
    o.beta = f.beta;
    o.progress_every = f.progress_every;
    o.progress = [&](const SearchProgress& p) { progress("mcmc", p); };
    const int64_t compiles = ev.compiles(), hits = ev.cache_hits();
    McmcResult m = mcmc_search(ev, space, start, o);
    best = m.best;
    report += fmt::format(
        "  mcmc: seed {}, beta {}: {} proposals in {:.2f} s ({:.1f} proposals/s; {} compiled, {} seen before), {} "
        "accepted, {} over memory; best at proposal {}{}\n",
        f.seed, f.beta, m.iterations, m.seconds, m.seconds > 0 ? static_cast<double>(m.iterations) / m.seconds : 0.0,
        ev.compiles() - compiles, ev.cache_hits() - hits, m.accepted, m.over_memory, m.best_iteration,
        m.stopped_early ? "; stopped early (no improvement in the last half)" : "");
  }
  // Never worse than data parallelism.
  if (!(ev.evaluate(space, best).time <= dp_time)) best = dp;

  // The strategy found, compiled and simulated exactly as `ffc simulate -s` will.
  const ResolvedStrategy full = ev.resolve(space, best);
  const ResolvedStrategy found = model_strategy(full, ev.model_ops());
  const Strategy strategy = to_strategy(model, found);
  Compiled c = compile_parallel(model, strategy, po);
  const Simulation sim = simulate(c.graph, c.program, machine, *target.cost);
  if (!sim.fits())
    user_error(SourceLoc{f.model}, "no strategy found fits a GPU of machine {}: not even data parallelism",
               machine.name);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::string out = report;
  out += strategy_table(model, found);
  out += fmt::format("predicted iteration time: {} (data parallel {}: {:.2f}x)\n", ms(sim.iteration), ms(dp_time),
                     dp_time / sim.iteration);
  out += fmt::format("search time: {:.2f} s, {} strategies compiled and simulated\n", seconds, ev.compiles());
  if (measured) {
    // A kernel the table lacks is priced from the analytical model, scaled by its op's measured
    // ratio under data parallelism (measured_costs): an estimate, for the small and oddly shaped
    // parts of a split most of all. A strategy that wins on such prices is a candidate to measure.
    const MeasuredCostModel::Coverage cov = measured->coverage(c.graph, c.program);
    out += fmt::format("kernels measured: {} of {} of the strategy found\n", cov.measured, cov.kernels);
    if (!cov.complete())
      out += fmt::format(
          "note: the cost table lacks {} of its kernels, estimated from the analytical model and their ops' "
          "data-parallel kernels: measure them (`ffc profile {} -g {} -b {} --math {} -s {} -o DIR`, then build and "
          "run DIR's program) and search again with both tables\n",
          cov.kernels - cov.measured, f.model, f.devices, f.batch, math_name(math),
          f.output.empty() ? "STRATEGY" : f.output);
  }
  if (!f.output.empty()) {
    std::vector<std::string> header{
        fmt::format("Strategy for model {} on {} devices, batch {}, found by `ffc search` ({}{}).", model.name,
                    f.devices, f.batch, f.algorithm, f.algorithm == "mcmc" ? fmt::format(", seed {}", f.seed) : ""),
        fmt::format("Predicted iteration time {} on {} ({}, {}); data parallel {}.", ms(sim.iteration), machine.name,
                    math_name(math), table ? "measured costs" : "analytical costs", ms(dp_time)),
        "Each op's dims are degrees innermost first (w h c n); part i runs on device_ids[i]."};
    write_strategy_file(strategy, f.output, header);
    out += fmt::format("wrote {}\n", f.output);
  }
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace ffc
