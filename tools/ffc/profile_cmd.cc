// `ffc profile`: the middle end under every strategy of interest, the distinct kernels of the
// programs it produces, then codegen of the program that measures them (docs/simulator.md).
#include "tools/ffc/profile_cmd.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

#include "codegen/emit.h"
#include "codegen/profile.h"
#include "passes/parallel.h"
#include "passes/pipeline.h"
#include "sim/cost_table.h"
#include "sim/search.h"
#include "sim/search_space.h"
#include "tools/ffc/load.h"

namespace ffc {

void add_profile_flags(CLI::App* cmd, ProfileFlags& f) {
  cmd->add_option("MODEL", f.model, "the model: a .ff file or an .onnx file")->required();
  cmd->add_option("-g,--devices", f.devices, "the number of GPUs the strategies are for")
      ->check(CLI::Range(1, kMaxDevices))
      ->required();
  cmd->add_option("-b,--batch-size", f.batch, "global batch size (default 64): simulate with the same")
      ->check(CLI::PositiveNumber);
  cmd->add_option("-s,--strategy", f.strategies, "also a strategy file's kernels (repeatable)")->allow_extra_args(false);
  cmd->add_option("-o,--output", f.out_dir, "output directory of the generated project")->required();
  cmd->add_option("--name", f.name, "the program's name (default: the model's, then _profile)");
  cmd->add_option("--math", f.math, "the program's default --math (default fp32)")
      ->check(CLI::IsMember({"fp32", "tf32"}));
  cmd->add_option("--card", f.card, "the card to file the times under (default: what the device reports, as h100)");
  cmd->add_flag("--no-search-space", f.no_search_space,
                "only data parallelism and the -s strategies, not every config ffc search may give an op");
}

namespace {

/// The distinct kernels of compiled programs, by cost-table key; the first instruction of a key
/// stands for all.
class KernelCollector {
 public:
  void add(const Compiled& c, const std::string& what) {
    ++programs_;
    for (const RankProgram& r : c.program.ranks)
      for (const Instr& in : r.step) {
        if (!is_kernel(in.kind)) continue;
        ++instructions_;
        std::string key = kernel_key(c.graph, r, in);
        if (kernels_.count(key)) continue;
        std::string where = fmt::format("{} part {}, rank {} of {}", c.graph.ops[in.op].name, in.part, r.rank, what);
        kernels_.emplace(key, sample_kernel(c.graph, c.program, r, in, key, std::move(where)));
      }
  }
  std::vector<ProfileSample> kernels() const {
    std::vector<ProfileSample> v;
    for (const auto& [key, k] : kernels_) v.push_back(k);
    return v;
  }
  int64_t instructions() const { return instructions_; }
  int64_t programs() const { return programs_; }

 private:
  std::map<std::string, ProfileSample> kernels_;
  int64_t instructions_ = 0, programs_ = 0;
};

}  // namespace

int cmd_profile(const ProfileFlags& f) {
  if (!f.card.empty() && (f.card.find_first_of(" \t\r\n#") != std::string::npos))
    user_error(SourceLoc{}, "--card takes one word (a cost table's first column), not '{}'", f.card);
  Graph model = load_model(f.model);
  run_graph_pipeline(model, PipelineOptions{});
  ParallelOptions po;
  po.devices = f.devices;
  po.batch = f.batch;
  KernelCollector kc;
  const std::string on = fmt::format("on {} rank{}", f.devices, f.devices == 1 ? "" : "s");
  std::string about = fmt::format("  kernels of: data parallelism {}, batch {}\n", on, f.batch);
  kc.add(compile_parallel(model, Strategy{}, po), "data parallelism " + on);
  for (const std::string& path : f.strategies) {
    const std::string file = std::filesystem::path(path).filename().string();
    kc.add(compile_parallel(model, read_strategy_file(path), po), file + " " + on);
    about += fmt::format("  kernels of: strategy {}\n", file);
  }
  if (!f.no_search_space) {
    // Every candidate config of every searched op, as ffc search's elimination measures them:
    // round j gives op i its candidate j mod its count (an op's kernels depend on its config alone).
    Machine machine = load_machine("");
    machine.nodes = (f.devices + machine.gpus_per_node - 1) / machine.gpus_per_node;
    const AnalyticalCostModel cost(machine, Math::fp32);
    SearchTarget target;
    target.devices = f.devices;
    target.batch = f.batch;
    target.machine = machine;
    target.cost = &cost;
    Evaluator ev(model, target);
    const SearchSpace space = build_search_space(ev.graph(), ev.model_ops(), f.devices, f.batch);
    size_t rounds = 1, configs = 0;
    for (int op : space.ops) {
      rounds = std::max(rounds, space.configs[op].size());
      configs += space.configs[op].size();
    }
    for (size_t round = 0; round < rounds; ++round) {
      std::vector<int> choice(ev.graph().ops.size(), -1);
      for (int op : space.ops) choice[op] = static_cast<int>(round % space.configs[op].size());
      kc.add(ev.compile(ev.resolve(space, choice)).compiled, fmt::format("search-space round {} {}", round, on));
    }
    about += fmt::format("  kernels of: the search space of ffc search, {} configs of {} ops in {} programs\n",
                         configs, space.ops.size(), rounds);
  }

  const std::vector<ProfileSample> kernels = kc.kernels();
  ProfileEmitOptions o;
  o.name = f.name.empty() ? model.name + "_profile" : f.name;
  o.model = model.name;
  o.model_path = std::filesystem::path(f.model).filename().string();
  o.about = about;
  o.card = f.card;
  o.tf32 = f.math == "tf32";
  o.source_dir = FFC_SOURCE_DIR;
  write_project(emit_profile_project(kernels, o), f.out_dir);
  std::printf("wrote %s: %s measures %zu distinct kernels (of %lld kernel instructions in %lld programs)\n%s",
              f.out_dir.c_str(), o.name.c_str(), kernels.size(), static_cast<long long>(kc.instructions()),
              static_cast<long long>(kc.programs()), about.c_str());
  std::printf("build and run it on one device: cmake -S %s -B %s/build && cmake --build %s/build && "
              "%s/build/%s --out costs.txt\n",
              f.out_dir.c_str(), f.out_dir.c_str(), f.out_dir.c_str(), f.out_dir.c_str(), o.name.c_str());
  return 0;
}

}  // namespace ffc
