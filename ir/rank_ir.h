// The Rank IR: what each rank runs, one instruction list per rank over named buffers.
//
// It is the one output of the middle end and the one input of codegen, the emulator (ffc verify)
// and the simulator, so the three cannot disagree about what runs. A buffer holds a box of a global
// tensor (an activation, a gradient, a parameter, optimizer state, saved state, statistics or a
// staging area for a transfer), laid out densely row-major. An operand is a box inside a buffer: a
// view, so a consumer reads a slice of its producer's buffer without a copy.
//
// A program is one training iteration (load inputs, forward, backward, reduce gradients, update)
// plus its set-up (parameter initialization). Communication comes in phases: the global schedule
// numbers them, every rank that takes part in a phase issues its part of it as one group (its sends,
// receives and collectives in the listed order), and every rank meets the phases in increasing
// order, so matching operations are posted in the same order on every rank (DESIGN.md §5).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/box.h"
#include "ir/types.h"

namespace ffc {

struct Graph;

enum class BufferRole {
  activation,   ///< an op's output part, or an input box gathered for a consumer
  gradient,     ///< a gradient of an activation (a contribution, or the reduced gradient)
  param,        ///< a parameter or state block (persistent)
  param_grad,   ///< a parameter's gradient (persistent)
  optim_state,  ///< momentum, Adam's moments (persistent)
  saved,        ///< state a forward saves for its backward
  stats,        ///< batch-norm statistics of a part
  staging,      ///< a received box before it is unpacked
  loss,         ///< the loss (partial or reduced) and its seed gradient
};

const char* buffer_role_name(BufferRole r);

/// Whether a buffer of this role lives across iterations.
bool is_persistent(BufferRole r);

struct Buffer {
  std::string name;  ///< unique within its rank
  BufferRole role = BufferRole::activation;
  DType dtype = DType::f32;
  std::vector<int64_t> full;  ///< extents of the global tensor it holds a box of
  Box box;                    ///< the box it holds
  int tensor = -1;            ///< the graph tensor (activation, gradient)
  int param = -1;             ///< the program's parameter (param, param_grad, optim_state)
  int64_t offset = -1;        ///< memory plan: byte offset in its region (persistent or arena)
  /// Bit d: dim d is the batch N bound to the program's batch. Its extents and coordinates (full,
  /// box, and those of every operand of the buffer) are proportional to the global batch, which is
  /// how an emitted program runs another batch than the compiled one.
  uint32_t batch_dims = 0;

  int64_t bytes() const;
};

/// A box of a buffer. An absent operand has buffer -1.
struct Operand {
  int buffer = -1;
  Box box;
  bool present() const { return buffer >= 0; }
};

enum class InstrKind {
  init_param,      ///< set-up: fill `dst` with the parameter's initial values
  fill,            ///< dst := value
  load_input,      ///< dst := the input op's data for this iteration (synthetic or a data set)
  forward,         ///< an op part's forward kernel
  forward_stats,   ///< a split-statistics op part's partial statistics
  backward_stats,  ///< a split-statistics op part's partial backward sums (and parameter gradients)
  backward,        ///< an op part's backward kernel (adds into its input and parameter gradients)
  copy,            ///< dst (+)= src over their boxes' intersection, on this rank
  comm,            ///< this rank's part of a communication phase
  update,          ///< the optimizer step of one parameter block
};

const char* instr_kind_name(InstrKind k);
/// An op part's kernel (forward, forward_stats, backward_stats, backward): what a cost table keys.
constexpr bool is_kernel(InstrKind k) {
  return k == InstrKind::forward || k == InstrKind::forward_stats || k == InstrKind::backward_stats ||
         k == InstrKind::backward;
}

enum class CommKind {
  send,            ///< `src` (packed) to `peer`
  recv,            ///< into `dst` (a dense buffer of exactly its box) from `peer`
  all_reduce,      ///< sum `dst` (a whole buffer) in place over `group`
  all_gather,      ///< `src` is this member's piece; `dst` (a whole buffer) gets every member's
  reduce_scatter,  ///< `src` (a whole buffer) summed over the group; `dst` gets this member's piece
};

const char* comm_kind_name(CommKind k);

struct CommOp {
  CommKind kind = CommKind::send;
  int peer = -1;   ///< send, recv
  int group = -1;  ///< collectives: index into Program::groups
  Operand src, dst;
  std::vector<Box> pieces;  ///< all_gather, reduce_scatter: each member's box, in group order
};

struct Instr {
  InstrKind kind = InstrKind::fill;
  int op = -1;    ///< the graph op (kernels, init_param, load_input)
  int part = -1;  ///< the op's part
  // Kernel operands, as exec/op_kernels.h's OpViews:
  std::vector<Operand> in, out, params, saved, dout, din, dparams;
  Operand stats;
  bool update_state = true;  ///< forward: this part updates the op's running state
  /// backward: gradients whose zero-fill was elided (passes/first_write.h), which the kernel writes
  /// instead of adding to: bit i for din[i], bit 16 + j for dparams[j] (ffrt::OpViews::overwrite).
  uint32_t overwrite = 0;
  // copy and fill:
  Operand src, dst;
  bool accumulate = false;
  float value = 0.f;
  // comm:
  int phase = -1;
  std::vector<CommOp> comm;
  /// step comm: the index in `step` of the instruction before which the phase must have finished
  /// (the first that touches memory it reads or writes; the overlap pass sets it): the instructions
  /// in between run while it communicates. -1: it finishes at once, before the next instruction.
  /// `step.size()` finishes it at the end of the step.
  int finish = -1;
  // init_param, update:
  int param = -1;
  Operand w, grad, state1, state2;
  /// What this step does, for people reading printed IR and generated code.
  std::string note;
};

/// A parameter (or state tensor) of the model, and its blocks on the ranks.
struct ParamInfo {
  std::string name;  ///< `<op>.<param>` or the external (ONNX) name
  int op = -1;
  int index = 0;  ///< position in the op's op_params
  std::vector<int64_t> shape;
  bool trainable = true;
  struct Replica {
    int rank;
    int buffer;    ///< the parameter block
    Operand grad;  ///< the reduced gradient of the block (trainable only)
  };
  std::vector<Replica> replicas;
};

/// One communication phase of the global schedule.
struct Phase {
  std::string note;         ///< what it moves: `forward conv2.in0`, `grad conv2.weight`, ...
  std::string pattern;      ///< the reshard rules it uses: `all_reduce`, `transfer`, ...
  std::vector<int> ranks;   ///< the ranks taking part
};

struct RankProgram {
  int rank = 0;
  std::vector<Buffer> buffers;
  std::vector<Instr> setup;  ///< once, before the first iteration
  std::vector<Instr> step;   ///< one training iteration
  /// step[0, forward_end) is the forward up to the whole loss: with the op descriptors' training
  /// flag off, an evaluation step.
  size_t forward_end = 0;
  Operand loss;              ///< the whole loss after the iteration (every rank has it)
  // Memory plan (bytes):
  int64_t persistent_bytes = 0;  ///< parameters, gradients, optimizer state
  int64_t arena_bytes = 0;       ///< transient buffers, reused by liveness
};

struct Program {
  std::string model;
  int num_ranks = 1;
  int64_t batch = 0;
  std::vector<std::vector<int>> groups;  ///< communicators: sorted rank lists, each created once
  std::vector<Phase> phases;
  std::vector<ParamInfo> params;
  std::vector<RankProgram> ranks;
};

/// Text form: the header (model, ranks, groups), then per rank its buffers and instructions.
/// `only_rank` >= 0 prints one rank.
std::string print_program(const Graph& g, const Program& p, int only_rank = -1);
/// One instruction, as print_program writes it.
std::string print_instr(const Graph& g, const RankProgram& r, const Instr& in);
/// An instruction's title in timelines (the simulator's and the emitted program's --trace):
/// `forward conv1 part 0`, `phase 9: grad conv5.weight`, `update fc.bias`.
std::string instr_title(const Graph& g, const Program& p, const RankProgram& r, const Instr& in);
/// `conv1.out.p0[0:2, 0:64, 0:55, 0:55]`, or `-` for an absent operand.
std::string operand_str(const RankProgram& r, const Operand& o);

/// Checks the program's invariants (operands inside their buffers, phases increasing on each rank,
/// groups sorted); an internal error otherwise.
void verify_program(const Program& p);

}  // namespace ffc
