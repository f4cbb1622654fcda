// `ffc profile`: emit the program that measures the kernels of a model's strategies on one device
// and writes them as a cost table for `ffc simulate --costs` and `ffc search --costs`.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace ffc {

struct ProfileFlags {
  std::string model, out_dir, name, math = "fp32", card;
  std::vector<std::string> strategies;
  int devices = 0;
  int64_t batch = 64;
  bool no_search_space = false;  ///< only data parallelism and the -s strategies
};

void add_profile_flags(CLI::App* cmd, ProfileFlags& f);
int cmd_profile(const ProfileFlags& f);

}  // namespace ffc
