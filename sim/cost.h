// Cost models: the time of one instruction of the Rank IR on a machine.
//
// The simulator (sim/simulate.h) asks a CostModel for every instruction a rank runs and for every
// communication phase. The analytical model computes times from first principles: a kernel's FLOPs
// and bytes (sim/flops.h) over the machine's compute and memory ceilings plus a launch floor, a
// transfer as latency plus bytes over the link's bandwidth, collectives by the ring algorithm. A
// measured cost table (sim/cost_table.h) answers for the kernels it holds and leaves the rest to
// the analytical model. docs/simulator.md gives the formulas and their limits.
#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "ir/graph.h"
#include "ir/rank_ir.h"
#include "sim/machine.h"

namespace ffc {

/// How convolutions and GEMMs compute: strict fp32, or TF32 on tensor cores (the runtime's --math).
enum class Math { fp32, tf32 };

std::string_view math_name(Math m);
std::optional<Math> parse_math(std::string_view s);

/// One member of a communication phase: a rank and its `comm` instruction.
struct PhaseMember {
  const RankProgram* rank = nullptr;
  const Instr* instr = nullptr;
};

/// The time of one instruction, in seconds. Implementations are immutable and thread-safe.
class CostModel {
 public:
  virtual ~CostModel() = default;
  /// A kernel instruction (forward, forward_stats, backward_stats, backward) of an op part.
  virtual double kernel(const Graph& g, const RankProgram& r, const Instr& in) const = 0;
  /// A local move on one rank: copy (dst (+)= src), fill, load_input.
  virtual double move(const RankProgram& r, const Instr& in) const = 0;
  /// The optimizer step of one parameter block (update).
  virtual double update(const RankProgram& r, const Instr& in) const = 0;
  /// A communication phase: from the moment its last member reaches it until it has ended on
  /// every member (the runtime issues each member's operations as one group). `members` are the
  /// ranks taking part, each with its comm instruction of the phase.
  virtual double phase(const Program& p, std::span<const PhaseMember> members) const = 0;

  /// Any instruction of a step but `comm`, by its kind.
  double instr(const Graph& g, const RankProgram& r, const Instr& in) const;
  /// The device launches (kernels, memsets, copies) an instruction but `comm` issues: 1 here; the
  /// analytical model counts a kernel's, a cost table gives its measured ones.
  virtual double launches(const Graph& g, const RankProgram& r, const Instr& in) const;
  /// s each launch pays more in a job of several ranks (Machine::job_launch); 0 without a machine.
  virtual double job_launch() const { return 0; }
  /// How many times slower compute runs while its rank's communication is in flight
  /// (Machine::overlap_slowdown); 1 without a machine.
  virtual double overlap_slowdown() const { return 1; }
};

/// Whether the runtime scatters a reduce_scatter directly (ncclReduceScatter): its pieces are the
/// members' equal runs of the source, in member order. Otherwise it all-reduces the whole source.
bool scatters_directly(const CommOp& c);

/// Ring all-reduce of `bytes` over `n` ranks: 2(n-1)/n · bytes / bandwidth + 2(n-1) · latency.
double ring_all_reduce_time(double bytes, int n, double bandwidth, double latency);
/// Ring all-gather or reduce-scatter whose whole (gathered, or reduced) buffer has `bytes`:
/// (n-1)/n · bytes / bandwidth + (n-1) · latency.
double ring_gather_time(double bytes, int n, double bandwidth, double latency);

/// The analytical model over a machine description.
class AnalyticalCostModel : public CostModel {
 public:
  AnalyticalCostModel(const Machine& m, Math math) : m_(m), math_(math) {}

  double kernel(const Graph& g, const RankProgram& r, const Instr& in) const override;
  double move(const RankProgram& r, const Instr& in) const override;
  double update(const RankProgram& r, const Instr& in) const override;
  double phase(const Program& p, std::span<const PhaseMember> members) const override;
  /// A kernel instruction's launches as kernel_work counts them (a backward: one per gradient).
  double launches(const Graph& g, const RankProgram& r, const Instr& in) const override;
  double job_launch() const override { return m_.job_launch; }
  double overlap_slowdown() const override { return m_.overlap_slowdown; }

  /// A point-to-point transfer of `bytes` between two ranks: latency + bytes / bandwidth of the
  /// link between their nodes.
  double transfer(double bytes, int from, int to) const;
  /// The time one member spends in a phase: packing operands that are not contiguous, its sends
  /// and receives (each direction and kind of link shared by its messages), then its collectives
  /// one after the other.
  double member_time(const Program& p, const PhaseMember& m) const;

  const Machine& machine() const { return m_; }
  Math math() const { return math_; }

 private:
  /// Bandwidth and latency of the slowest link among a set of ranks.
  std::pair<double, double> link(std::span<const int> ranks) const;

  Machine m_;
  Math math_;
};

}  // namespace ffc
