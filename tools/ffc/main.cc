// ffc: the command-line driver. One subcommand per job of DESIGN.md §7.
//
// Exit codes: 0 success; 1 a user error (bad model, strategy or flags), with a message naming the
// file, line or op.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "frontend/strategy.h"
#include "ir/printer.h"
#include "passes/parallel.h"
#include "passes/pipeline.h"
#include "tools/ffc/compile_cmd.h"
#include "tools/ffc/load.h"
#include "tools/ffc/profile_cmd.h"
#include "tools/ffc/search_cmd.h"
#include "tools/ffc/simulate_cmd.h"
#include "tools/ffc/train_flags.h"
#include "tools/ffc/verify_cmd.h"

namespace ffc {
namespace {

constexpr int kExitUser = 1;

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

bool is_middle_end_pass(std::string_view name) {
  for (std::string_view p : middle_end_passes())
    if (p == name) return true;
  return false;
}

int cmd_print(const CommonFlags& f, PipelineOptions opts, bool rank_ir, int rank_filter) {
  Graph g = load_model(f.model);
  opts.ir_out = &std::cout;
  opts.log = &std::cerr;
  check_pipeline_options(opts);
  // The middle end runs when asked for (a strategy, a device count, one of its passes, the Rank IR).
  bool middle = rank_ir || !f.strategy.empty() || f.devices > 0 || is_middle_end_pass(opts.stop_after);
  for (const std::string& p : opts.print_after) middle = middle || is_middle_end_pass(p);
  PipelineOptions graph_opts = opts;
  if (middle) graph_opts.stop_after.clear();
  run_graph_pipeline(g, graph_opts);
  if (!middle) {
    if (!opts.print_after_all && opts.print_after.empty()) std::cout << print_graph(g);
    return 0;
  }
  Strategy s;
  if (!f.strategy.empty()) s = read_strategy_file(f.strategy);
  ParallelOptions po;
  po.devices = device_count(f.devices, f.strategy.empty() ? nullptr : &s);
  po.batch = f.batch ? f.batch : 8;
  po.pipeline = opts;
  Compiled c = compile_parallel(std::move(g), s, po);
  if (rank_ir && c.complete) std::cout << print_program(c.graph, c.program, rank_filter);
  return 0;
}

int cmd_strategy(const CommonFlags& f, const std::string& export_path, const std::string& dot_path) {
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
  if (!dot_path.empty()) {
    std::ofstream out(dot_path, std::ios::binary);
    out << strategy_dot(g, r);
    if (!out) throw UserError({dot_path, 0, 0}, "cannot write the Graphviz file");
    std::cout << fmt::format("wrote {}\n", dot_path);
  }
  return 0;
}

int run(int argc, char** argv) {
  CLI::App app{"ffc: a compiler for distributed deep-learning training"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");

  CommonFlags f;
  std::string export_path, dot_path, costs;
  PipelineOptions popts;
  std::vector<std::string> print_after;
  bool rank_ir = false;
  int rank_filter = -1;

  auto* print = app.add_subcommand("print", "print a model's Graph IR (the .ff form), after the passes");
  add_model(print, f);
  print->add_flag("--print-ir-after-all", popts.print_after_all, "print the IR after every pass");
  print->add_option("--print-ir-after", print_after, "print the IR after the named pass (repeatable)");
  print->add_option("--stop-after", popts.stop_after, "stop after the named pass");
  print->add_flag("--time-passes", popts.time_passes, "report each pass's time on stderr");
  print->add_flag("--rank-ir", rank_ir, "print the per-rank programs (Rank IR)");
  print->add_option("--rank", rank_filter, "with --rank-ir: print only this rank");
  add_strategy(print, f);
  add_devices(print, f);
  print->add_option("-b,--batch-size", f.batch, "global batch size of the middle end (default 8)")
      ->check(CLI::PositiveNumber);

  auto* strategy = app.add_subcommand("strategy", "show a model's parallelization strategy as a table; convert strategy files");
  add_model(strategy, f);
  add_strategy(strategy, f);
  add_devices(strategy, f);
  add_batch(strategy, f);
  strategy->add_option("--export", export_path, "write the full strategy (every op) to FILE: .pb binary, .pbtxt text");
  strategy->add_option("--dot", dot_path, "draw the graph with each op's configuration and devices (Graphviz) into FILE");

  auto* compile = app.add_subcommand("compile", "emit the per-rank C++ project for a model and strategy");
  CompileFlags cflags;
  add_compile_flags(compile, cflags);

  auto* verify = app.add_subcommand("verify", "emulate the partitioned program and compare it with the serial one");
  VerifyFlags vflags;
  add_verify_flags(verify, vflags);

  auto* simulate = app.add_subcommand("simulate", "predict the iteration time of a strategy on a machine");
  SimulateFlags sflags;
  add_simulate_flags(simulate, sflags);

  auto* search = app.add_subcommand("search", "search for a fast strategy with the simulator (MCMC, elimination)");
  SearchFlags searchflags;
  add_search_flags(search, searchflags);

  auto* profile = app.add_subcommand("profile", "emit the program that measures a model's kernels: a cost table for --costs");
  ProfileFlags pflags;
  add_profile_flags(profile, pflags);

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
    if (print->parsed()) return cmd_print(f, popts, rank_ir, rank_filter);
    if (strategy->parsed()) return cmd_strategy(f, export_path, dot_path);
    if (compile->parsed()) return cmd_compile(cflags);
    if (verify->parsed()) return cmd_verify(vflags);
    if (simulate->parsed()) return cmd_simulate(sflags);
    if (search->parsed()) return cmd_search(searchflags);
    if (profile->parsed()) return cmd_profile(pflags);
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
