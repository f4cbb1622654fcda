// `ffc compile`: emit the per-rank C++ project for a model and a strategy.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

namespace ffc {

struct CompileFlags {
  std::string model, strategy, out_dir, name, optimizer = "adam";
  int devices = 0;
  int64_t batch = 64;
  double gpu_memory_mb = 0;  ///< > 0: every rank's planned memory must fit
};

void add_compile_flags(CLI::App* cmd, CompileFlags& f);
int cmd_compile(const CompileFlags& f);

}  // namespace ffc
