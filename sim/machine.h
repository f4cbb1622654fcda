// A machine description for the simulator: how many GPUs, how fast they compute and move memory,
// and the links between them (docs/simulator.md).
//
// Ranks are placed on GPUs in order: rank r runs on node r / gpus_per_node. Two presets describe
// this project's GPU hosts (`h100`, `h200`); a text file (`--machine FILE`, key = value lines)
// starts from a preset and overrides what it names.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ffc {

/// One machine: nodes of identical GPUs. Rates are in bytes/s and FLOP/s, times in seconds.
struct Machine {
  std::string name = "h100";
  std::string card = "h100";  ///< the GPU model: the key of measured costs (sim/cost_table.h)
  int nodes = 0;  ///< 0: as many as the job's ranks need
  int gpus_per_node = 8;
  double intra_node_bandwidth = 300e9;  ///< bytes/s per direction between two GPUs of a node (NCCL, effective)
  double intra_node_latency = 5e-6;     ///< s per message / ring step inside a node
  double inter_node_bandwidth = 45e9;   ///< bytes/s per direction per GPU between nodes (one 400 Gb/s NIC per GPU)
  double inter_node_latency = 10e-6;    ///< s per message / ring step between nodes
  double gpu_memory = 80.0 * (1 << 30);  ///< bytes per GPU
  double fp32_flops = 60e12;            ///< FLOP/s of fp32 arithmetic (CUDA cores)
  double tf32_flops = 400e12;           ///< FLOP/s of TF32 tensor-core arithmetic (dense, effective)
  double memory_bandwidth = 3e12;       ///< bytes/s of the GPU's memory (HBM)
  double launch = 4e-6;                 ///< s: the floor of one kernel (launch and its tail)
  /// s: what each collective after the first over the same group of one phase adds besides its
  /// bandwidth term (a phase is one NCCL group: its collectives share a launch and overlap their
  /// ring steps). Negative: not measured, and each collective pays the whole ring latency.
  double grouped_collective = -1;
  /// s: what a phase with any communication pays once, besides its ring steps and bytes (NCCL's
  /// group launch and its kernels' start: the intercept shared by every kind of phase, which a
  /// latency per ring step alone prices as 1 step for a transfer and 6 for a 4-rank all-reduce).
  /// Negative: not measured, and the latency per step carries it.
  double phase_latency = -1;
  /// How many times longer compute takes on a GPU while a phase of its rank is in flight on the
  /// communication stream (NCCL's kernels take SMs and memory bandwidth from the compute
  /// stream's). 1: no slowdown.
  double overlap_slowdown = 1;
  /// s each device launch (kernel, memset, copy) of a step pays in a job of several ranks beyond
  /// what a single-rank measurement of it includes: measured kernel costs come from one process
  /// alone (ffc profile), and in a multi-rank job the gap between dependent launches of a
  /// replayed graph is longer (docs/simulator.md). 0: none.
  double job_launch = 0;

  /// The node that rank `rank` runs on.
  int node_of(int rank) const { return rank / gpus_per_node; }
  /// The number of GPUs (0 when `nodes` is 0: unbounded).
  int gpus() const { return nodes * gpus_per_node; }
  /// `h100: 1 node x 8 GPUs, 80 GiB, ...`, one line for reports.
  std::string describe() const;
};

/// A preset by name (`h100`, `h200`); nullopt for an unknown name.
std::optional<Machine> machine_preset(std::string_view name);

/// Parses a machine file's text (docs/simulator.md); a UserError at `file:line` for bad input.
Machine parse_machine(std::string_view text, const std::string& file);

/// `--machine ARG`: a preset name, or a file to read and parse. Empty: the `h100` preset.
Machine load_machine(const std::string& arg);

}  // namespace ffc
