// The execution simulator: one training iteration of a compiled program (compile_parallel's
// Rank IR), timed by a cost model, as the runtime executes it today.
//
// Each rank runs its `step` instructions in order on two streams: kernels on the compute stream,
// phases on the communication stream. A phase starts when every rank taking part has issued it and
// its stream is free (the kernels before it done, the phases before it ended), and ends on all of
// them together after the phase's cost (the runtime issues a phase as one group); the compute
// stream waits for it before the instruction its Instr::finish names (at once when -1). Phases are
// numbered in one global order that every rank follows, so processing them in that order needs no
// event queue: a rank's instructions before phase p involve only earlier phases. One simulation is
// linear in the program's instructions. docs/simulator.md describes the model and its limits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/rank_ir.h"
#include "sim/cost.h"
#include "sim/machine.h"

namespace ffc {

/// Where one rank's iteration went: compute + exposed + idle = the iteration time, on every rank;
/// `comm` overlaps compute where phases finish later than at once.
struct RankTimes {
  double compute = 0;  ///< s in kernels, local moves and updates
  double comm = 0;     ///< s the communication stream is busy with phases
  double exposed = 0;  ///< s the compute stream waits for communication (its peers' arrival included)
  double idle = 0;     ///< s after its own end, waiting for the slowest rank
  double end = 0;      ///< s: when its last instruction ends
  int64_t persistent_bytes = 0;  ///< memory plan: parameters, gradients, optimizer state
  int64_t arena_bytes = 0;       ///< memory plan: transient buffers
  int64_t memory() const { return persistent_bytes + arena_bytes; }
};

/// One event of the simulated iteration, for the trace.
struct SimEvent {
  int rank = 0;
  int stream = 0;  ///< 0 compute, 1 communication
  double start = 0, duration = 0;  ///< s
  std::string name;
  double wait = 0;  ///< communication: s the phase waited for its last member, after this rank was ready
};

struct SimOptions {
  bool trace = false;  ///< record every instruction as a SimEvent
};

struct Simulation {
  double iteration = 0;  ///< s: the latest rank's end
  std::vector<RankTimes> ranks;
  /// The first rank whose planned memory exceeds the machine's GPU memory, or -1: the strategy
  /// does not fit and is rejected.
  int over_memory = -1;
  std::vector<SimEvent> events;  ///< with SimOptions::trace
  int64_t instructions = 0;      ///< simulated, over all ranks (comm instructions included)
  bool fits() const { return over_memory < 0; }
};

/// A program reduced to what the event simulation needs: every instruction's cost, or the phase
/// it takes part in. Costing is the expensive half of a simulation (it reads every operand); a
/// search that changes one op can re-cost that op's instructions only and sweep again.
struct CostedProgram {
  struct Step {
    double cost = 0;  ///< s: a compute instruction's time (0 for comm)
    int phase = -1;   ///< comm: the phase; -1 for compute
    int finish = -1;  ///< comm: Instr::finish (the instruction before which the phase has ended)
  };
  std::vector<std::vector<Step>> ranks;  ///< per rank, its step instructions in order
  std::vector<double> phase_cost;        ///< s, per phase
  std::vector<std::vector<int>> members;  ///< per phase, its ranks in increasing order
  /// The cost model's CostModel::overlap_slowdown: compute runs this many times slower while its
  /// rank's communication stream is busy.
  double overlap_slowdown = 1;
};

/// Costs every instruction and phase of `p` with `cost`.
CostedProgram cost_program(const Graph& g, const Program& p, const CostModel& cost);

/// The event simulation of a costed program (`trace` events carry no names: see simulate below).
Simulation simulate(const CostedProgram& c, const SimOptions& opts = {});

/// Simulates one iteration of `p` (a complete program of compile_parallel) with `cost`, and checks
/// each rank's planned memory against the machine's: cost_program, then the sweep.
Simulation simulate(const Graph& g, const Program& p, const Machine& m, const CostModel& cost,
                    const SimOptions& opts = {});

/// The simulated iteration as Chrome trace-event JSON: a process per rank, thread 0 its compute
/// and thread 1 its communication, complete events (`ph` X) in microseconds. Opens in Perfetto
/// and chrome://tracing.
std::string trace_json(const Simulation& s, const std::string& title);

}  // namespace ffc
