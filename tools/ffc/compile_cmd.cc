// `ffc compile`: the middle end, then codegen into a CMake project.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "tools/ffc/compile_cmd.h"

#include "codegen/emit.h"
#include "passes/memory_plan.h"
#include "passes/parallel.h"
#include "passes/pipeline.h"
#include "tools/ffc/load.h"

namespace ffc {

void add_compile_flags(CLI::App* cmd, CompileFlags& f) {
  cmd->add_option("MODEL", f.model, "the model: a .ff file or an .onnx file")->required();
  cmd->add_option("-s,--strategy", f.strategy, "a strategy file (.pb or .pbtxt); data parallel when absent");
  cmd->add_option("-g,--devices", f.devices, "number of ranks (default: what the strategy names, or 1)")
      ->check(CLI::Range(1, kMaxDevices));
  cmd->add_option("-b,--batch-size", f.batch, "global batch size (default 64)")->check(CLI::PositiveNumber);
  cmd->add_option("-o,--output", f.out_dir, "output directory (default: the model's name)");
  cmd->add_option("--name", f.name, "the program's name (default: the model's)");
  cmd->add_option("--optimizer", f.optimizer,
                  "the most demanding optimizer the program will run with: its state is planned (default adam)")
      ->check(CLI::IsMember({"sgd", "momentum", "adam"}));
  cmd->add_option("--gpu-memory", f.gpu_memory_mb,
                  "memory per device in MiB (FlexFlow's -ll:fsize): a plan that does not fit is an error")
      ->check(CLI::PositiveNumber);
}

namespace {

std::string mib(int64_t bytes) {
  if (bytes < (1 << 20)) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / (1 << 10));
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
}

/// Fails naming the first rank whose planned memory exceeds the limit, and its biggest buffers.
void check_memory(const Program& p, double limit_mb, const std::string& model) {
  const auto limit = static_cast<int64_t>(limit_mb * (1 << 20));
  for (const RankProgram& r : p.ranks) {
    const int64_t total = r.persistent_bytes + r.arena_bytes;
    if (total <= limit) continue;
    std::vector<std::pair<int64_t, const Buffer*>> sizes;
    for (const Buffer& b : r.buffers) sizes.emplace_back(b.box.volume() * dtype_bytes(b.dtype), &b);
    std::sort(sizes.begin(), sizes.end(),
              [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second->name < b.second->name; });
    std::string biggest;
    for (size_t i = 0; i < std::min<size_t>(5, sizes.size()); ++i)
      biggest += fmt::format("\n  {} ({}, {})", sizes[i].second->name, buffer_role_name(sizes[i].second->role),
                             mib(sizes[i].first));
    user_error(SourceLoc{model}, "rank {} needs {} (persistent {}, arena {}), more than --gpu-memory {} MiB; its biggest buffers:{}",
               r.rank, mib(total), mib(r.persistent_bytes), mib(r.arena_bytes), limit_mb, biggest);
  }
}

}  // namespace

int cmd_compile(const CompileFlags& f) {
  Graph g = load_model(f.model);
  run_graph_pipeline(g, PipelineOptions{});
  Strategy s;
  if (!f.strategy.empty()) s = read_strategy_file(f.strategy);
  ParallelOptions po;
  po.devices = device_count(f.devices, f.strategy.empty() ? nullptr : &s);
  po.batch = f.batch;
  po.optimizer_states = f.optimizer == "adam" ? 2 : f.optimizer == "momentum" ? 1 : 0;
  Compiled c = compile_parallel(std::move(g), s, po);
  if (f.gpu_memory_mb > 0) check_memory(c.program, f.gpu_memory_mb, f.model);
  EmitOptions o;
  o.name = f.name.empty() ? c.graph.name : f.name;
  o.model_path = std::filesystem::path(f.model).filename().string();
  o.strategy_path = f.strategy.empty() ? "" : std::filesystem::path(f.strategy).filename().string();
  o.strategy_table = strategy_table(c.graph, c.strategy);
  o.source_dir = FFC_SOURCE_DIR;
  const std::string dir = f.out_dir.empty() ? o.name : f.out_dir;
  write_project(emit_project(c.graph, c.program, o), dir);
  std::printf("wrote %s: %s on %d rank%s, batch %lld\n%s", dir.c_str(), o.name.c_str(), po.devices,
              po.devices == 1 ? "" : "s", static_cast<long long>(f.batch), print_memory(c.program).c_str());
  return 0;
}

}  // namespace ffc
