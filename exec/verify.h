// Equivalence checking (ffc verify): the partitioned program against the serial one.
//
// Runs K training steps twice on the cpu kernels — serially (exec/serial.h) and partitioned, every
// rank's Rank IR program emulated in this process (exec/emulator.h) — and compares, step by step,
// the loss, every op part's output as it is computed, every parameter block's reduced gradient
// before its update, and every parameter after the update; all replicas of a block must agree
// exactly. Each step starts from the serial run's weights (VerifyOptions::resync). A difference is relative to the largest magnitude of the serial tensor (a gradient's to
// at least 1/1000 of the largest gradient's: see verify.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "exec/serial.h"
#include "ir/graph.h"
#include "ir/rank_ir.h"

namespace ffc {

struct VerifyOptions {
  TrainOptions train;
  int64_t steps = 2;
  double tolerance = 1e-4;       ///< losses and activations
  double grad_tolerance = 1e-4;  ///< gradients and updated weights
  InputSource source;  ///< data; synthetic when empty
  bool print_steps = false;
  /// Start every step of the partitioned run from the serial run's weights, so that each step is
  /// checked on its own (DESIGN.md §2: the invariant holds over a step). Without it, differences
  /// compound: in deep float32 networks with batch norm, rounding differences of 1e-5 in one
  /// step's weights grow to 1e-2 in the next step's activations, in any two float32 runs.
  bool resync = true;
};

/// The largest relative difference seen in one category, and where.
struct Worst {
  double diff = 0;
  std::string where;
  void see(double d, const std::string& w);
};

struct VerifyReport {
  std::vector<std::pair<float, float>> losses;  ///< per step: serial, partitioned
  Worst loss, activations, gradients, weights;
  /// The first value (in execution order: op part outputs, reduced gradients, updated weights)
  /// that differs beyond the tolerance.
  std::string first_difference;
  bool ok = false;
  std::vector<HostTensor> final_weights;  ///< the partitioned run's, per Program::params entry

  /// The comparison lines and the verdict, as ffc verify prints them.
  std::string summary(double tolerance, double grad_tolerance) const;
};

/// `g` is the graph the program was compiled from (with its loss).
VerifyReport verify_equivalence(const Graph& g, const Program& p, const VerifyOptions& opts);

}  // namespace ffc
