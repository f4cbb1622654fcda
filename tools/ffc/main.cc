// ffc: the command-line driver. One subcommand per job of DESIGN.md §7.
//
// Exit codes: 0 success; 1 a user error (bad model, strategy or flags), with a message naming the
// file, line or op; 2 a subcommand that is not built yet.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <iostream>

#include "frontend/strategy.h"
#include "ir/printer.h"
#include "passes/pipeline.h"
#include "tools/ffc/load.h"
#include "tools/ffc/train_flags.h"

namespace ffc {
namespace {

constexpr int kExitUser = 1;
constexpr int kExitNotBuilt = 2;

struct CommonFlags {
  std::string model;
  std::string strategy;
  int devices = 0;
  int64_t batch = 0;
};

void add_model(CLI::App* cmd, CommonFlags& f) {
  cmd->add_option("MODEL", f.model, "the model: a .ff file or an .onnx file")->required();
}
void add_strategy(CLI::App* cmd, CommonFlags& f) {
  cmd->add_option("-s,--strategy", f.strategy, "a strategy file (.pb or .pbtxt); data parallel when absent");
}
void add_devices(CLI::App* cmd, CommonFlags& f, bool required = false) {
  auto* o = cmd->add_option("-g,--devices", f.devices, "number of devices (default: what the strategy names, or 1)");
  o->check(CLI::Range(1, kMaxDevices));
  if (required) o->required();
}
void add_batch(CLI::App* cmd, CommonFlags& f) {
  cmd->add_option("-b,--batch-size", f.batch, "global batch size")->check(CLI::PositiveNumber);
}

int cmd_print(const CommonFlags& f, PipelineOptions opts, bool rank_ir) {
  if (rank_ir) {
    std::fprintf(stderr, "ffc print: --rank-ir is not built yet (it comes with the middle end)\n");
    return kExitNotBuilt;
  }
  Graph g = load_model(f.model);
  opts.ir_out = &std::cout;
  opts.log = &std::cerr;
  run_graph_pipeline(g, opts);
  if (!opts.print_after_all && opts.print_after.empty()) std::cout << print_graph(g);
  return 0;
}

int cmd_strategy(const CommonFlags& f, const std::string& export_path) {
  Graph g = load_model(f.model);
  run_graph_pipeline(g, PipelineOptions{});
  Strategy s;
  if (!f.strategy.empty()) s = read_strategy_file(f.strategy);
  int devices = device_count(f.devices, f.strategy.empty() ? nullptr : &s);
  ResolvedStrategy r = resolve_strategy(g, s, devices, f.batch ? std::optional<int64_t>(f.batch) : std::nullopt);
  std::cout << fmt::format("model {} on {} device{}{}\n", g.name, devices, devices == 1 ? "" : "s",
                           f.strategy.empty() ? ", data parallel" : ", strategy " + f.strategy);
  std::cout << strategy_table(g, r);
  if (!export_path.empty()) {
    std::vector<std::string> header{
        fmt::format("Strategy for model {} on {} devices, written by `ffc strategy`.", g.name, devices),
        "Each op's dims are degrees innermost first (w h c n); part i runs on device_ids[i]."};
    write_strategy_file(to_strategy(g, r), export_path, header);
    std::cout << fmt::format("wrote {}\n", export_path);
  }
  return 0;
}

int not_built(std::string_view cmd, std::string_view what) {
  std::fprintf(stderr, "ffc %.*s: not built yet (%.*s)\n", static_cast<int>(cmd.size()), cmd.data(),
               static_cast<int>(what.size()), what.data());
  return kExitNotBuilt;
}

int run(int argc, char** argv) {
  CLI::App app{"ffc: a compiler for distributed deep-learning training"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");

  CommonFlags f;
  std::string export_path, out_dir, machine, costs;
  PipelineOptions popts;
  std::vector<std::string> print_after;
  bool rank_ir = false;
  int steps = 2;

  auto* print = app.add_subcommand("print", "print a model's Graph IR (the .ff form), after the passes");
  add_model(print, f);
  print->add_flag("--print-ir-after-all", popts.print_after_all, "print the IR after every pass");
  print->add_option("--print-ir-after", print_after, "print the IR after the named pass (repeatable)");
  print->add_option("--stop-after", popts.stop_after, "stop after the named pass");
  print->add_flag("--time-passes", popts.time_passes, "report each pass's time on stderr");
  print->add_flag("--rank-ir", rank_ir, "print the per-rank programs (Rank IR)");

  auto* strategy = app.add_subcommand("strategy", "show a model's parallelization strategy as a table; convert strategy files");
  add_model(strategy, f);
  add_strategy(strategy, f);
  add_devices(strategy, f);
  add_batch(strategy, f);
  strategy->add_option("--export", export_path, "write the full strategy (every op) to FILE: .pb binary, .pbtxt text");

  auto* compile = app.add_subcommand("compile", "emit the per-rank C++ project for a model and strategy");
  add_model(compile, f);
  add_strategy(compile, f);
  add_devices(compile, f);
  add_batch(compile, f);
  compile->add_option("-o,--output", out_dir, "output directory");

  auto* verify = app.add_subcommand("verify", "emulate the partitioned program and compare it with the serial one");
  add_model(verify, f);
  add_strategy(verify, f);
  add_devices(verify, f);
  add_batch(verify, f);
  verify->add_option("--steps", steps, "training steps to compare");

  auto* simulate = app.add_subcommand("simulate", "predict the iteration time of a strategy");
  add_model(simulate, f);
  add_strategy(simulate, f);
  add_devices(simulate, f, true);
  add_batch(simulate, f);
  simulate->add_option("--machine", machine, "machine description");
  simulate->add_option("--costs", costs, "measured cost database");

  auto* search = app.add_subcommand("search", "search for a fast strategy");
  add_model(search, f);
  add_devices(search, f, true);
  add_batch(search, f);
  search->add_option("--costs", costs, "measured cost database");
  search->add_option("-o,--output", out_dir, "where to write the strategy found");

  auto* profile = app.add_subcommand("profile", "emit the program that measures operator costs");
  add_model(profile, f);
  add_devices(profile, f, true);
  profile->add_option("-o,--output", out_dir, "output directory");

  TrainFlags train;
  auto* runc = app.add_subcommand("run", "train a model serially on the CPU, printing each step's loss");
  add_train_flags(runc, train);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUser;
  }

  try {
    for (const std::string& p : print_after) popts.print_after.insert(p);
    if (print->parsed()) return cmd_print(f, popts, rank_ir);
    if (strategy->parsed()) return cmd_strategy(f, export_path);
    if (compile->parsed()) return not_built("compile", "code generation comes with the codegen work");
    if (verify->parsed()) return not_built("verify", "equivalence checking comes with the middle end");
    if (simulate->parsed()) return not_built("simulate", "the simulator comes with strategy search");
    if (search->parsed()) return not_built("search", "strategy search is not built");
    if (profile->parsed()) return not_built("profile", "cost measurement comes with strategy search");
    if (runc->parsed()) return cmd_run(train);
  } catch (const UserError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return kExitUser;
  }
  return kExitUser;
}

}  // namespace
}  // namespace ffc

int main(int argc, char** argv) { return ffc::run(argc, argv); }
