// The emulator: runs every rank's Rank IR program in this process on the cpu kernels (ffc verify).
//
// Each rank gets the memory its plan asks for — one region for persistent buffers and one arena for
// the rest, buffers at their planned offsets — so a wrong plan shows up as a wrong result. Ranks run
// as cooperative tasks: a rank runs until a communication instruction cannot finish yet. A phase's
// sends are posted when the rank reaches it; a receive takes the oldest message on its (peer, rank)
// channel; a collective completes when every member of its communicator has reached it (matched by
// the communicator's sequence number). When no rank can move, the program would deadlock on real
// hardware too: that is an internal error naming each rank's position.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "exec/op_kernels.h"
#include "exec/serial.h"
#include "ir/graph.h"
#include "ir/rank_ir.h"

namespace ffc {

class Emulator {
 public:
  Emulator(const Graph& g, const Program& p, const TrainOptions& opts);
  ~Emulator();

  void set_input_source(InputSource src) { source_ = std::move(src); }
  /// Called before (`before` true) and after every instruction a rank runs.
  using Hook = std::function<void(int rank, const Instr& in, bool before)>;
  void set_hook(Hook h) { hook_ = std::move(h); }

  /// Runs iteration `step` on every rank (forward, backward, reductions, updates); returns the loss.
  float run_step(int64_t step);

  /// A view of an operand of a rank's program.
  ffrt::View view(int rank, const Operand& o) const;
  /// The whole tensor of a parameter, from its blocks on the ranks. `replica_diff` (nullable) gets
  /// the largest difference between replicas of one block, which must all be equal.
  HostTensor gather_param(int param, float* replica_diff = nullptr) const;
  /// Overwrites every block of a parameter from a whole tensor (checkpoints).
  void scatter_param(int param, HostTensor& whole);

  const Program& program() const { return p_; }

 private:
  struct Rank;
  struct Message;
  struct Collective;
  void setup();
  /// Runs rank r's instruction at its position; false when it must wait.
  bool try_run(int r);
  void execute(int r, const Instr& in);
  bool try_comm(int r, const Instr& in);
  OpViews kernel_views(int r, const Instr& in) const;

  const Graph& g_;
  const Program& p_;
  TrainOptions opts_;
  std::unique_ptr<ffrt::Context, void (*)(ffrt::Context*)> ctx_;
  InputSource source_;
  Hook hook_;
  std::vector<std::unique_ptr<Rank>> ranks_;
  std::vector<HostTensor> inputs_;  ///< per op: the whole batch of an input op, this step
  std::vector<ffrt::OpDesc> descs_;  ///< per op
  int64_t step_ = 0;
  int64_t optimizer_steps_ = 0;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ffc
