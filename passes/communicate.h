// Communicate: turns a partitioned graph into buffers on ranks and one global list of steps —
// kernel calls on a rank, and the communication between them from the reshard table
// (passes/reshard.h).
//
// Forward, per op in graph order: each input is resharded (copy mode) from the parts that produced
// it to the boxes the op's parts read; batch-norm statistics are summed over the parts that share a
// channel block between forward_stats and forward; the loss's partial sums are summed onto every
// rank. Backward, per op in reverse: the gradient of each output is summed (sum mode) from the
// contributions its consumers' parts made — halo overlaps, fan-out and replicated reads all become
// explicit reductions — into the boxes the op's parts computed; after the op's backward, the
// gradient of each parameter block is summed over the parts that hold that block (an all-reduce
// over their device group). Then every replica of every block applies the same optimizer step.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/rank_ir.h"
#include "passes/autodiff.h"
#include "passes/partition.h"

namespace ffc {

/// One communication of a phase, in global terms.
struct GlobalComm {
  enum Kind { transfer, all_reduce, all_gather, reduce_scatter } kind = transfer;
  // transfer: src on src_rank, received into dst on dst_rank (a dense buffer of exactly the box).
  int src_rank = -1, dst_rank = -1;
  Operand src, dst;
  // collectives: per member (ranks sorted), its source and destination operands.
  std::vector<int> ranks;
  std::vector<Operand> srcs, dsts;
  std::vector<Box> pieces;
};

/// A step of the global order: a kernel or local move on one rank, or a communication phase.
struct GlobalStep {
  bool is_comm = false;
  int rank = -1;  ///< compute: the rank
  Instr instr;    ///< compute
  // comm:
  std::string note;
  std::string pattern;
  std::vector<GlobalComm> comms;
};

struct CommunicateOptions {
  /// Optimizer state buffers per parameter block: 0 (plain SGD), 1 (momentum), 2 (Adam).
  int optimizer_states = 2;
};

/// The result: every rank's buffers and set-up, and the global steps of one iteration.
struct Lowered {
  std::vector<RankProgram> ranks;  ///< buffers, setup and loss filled; step empty
  std::deque<GlobalStep> steps;  ///< a deque: appended one by one, steps never move
  size_t forward_steps = 0;  ///< steps[0, forward_steps) are the forward, the loss's sum included
  std::vector<ParamInfo> params;
};

Lowered communicate(const Graph& g, const Partition& p, const Backward& b, const CommunicateOptions& opts);

/// Text form: the global steps, a line each, communications with their pattern.
std::string print_lowered(const Graph& g, const Lowered& l);

}  // namespace ffc
