// `ffc verify`: emulate the partitioned program on every rank and compare it with the serial one.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "tools/ffc/train_flags.h"

namespace ffc {

struct VerifyFlags {
  TrainFlags train;  ///< model, batch, data, optimizer, loss, seed, save, threads
  std::string strategy;
  int devices = 0;
  int64_t steps = 2;
  double tolerance = 1e-4;
  double grad_tolerance = -1;  ///< < 0: tolerance
  bool quiet = false;
  bool no_resync = false;
};

void add_verify_flags(CLI::App* cmd, VerifyFlags& f);

/// Runs the check; 0 when everything agrees within the tolerance, 1 otherwise.
int cmd_verify(const VerifyFlags& f);

}  // namespace ffc
