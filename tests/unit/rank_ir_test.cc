// The Rank IR's verifier: operands inside their buffers, phases in order on every rank, and every
// phase matching across ranks (sends and receives, collectives of a group).
#include <gtest/gtest.h>

#include "ir/rank_ir.h"

namespace ffc {
namespace {

Buffer buffer(const char* name, Box box) {
  Buffer b;
  b.name = name;
  b.full = {8};
  b.box = std::move(box);
  return b;
}

Instr comm(int phase, std::vector<CommOp> ops) {
  Instr in;
  in.kind = InstrKind::comm;
  in.phase = phase;
  in.comm = std::move(ops);
  return in;
}

// Rank 0 sends [0:4) of its buffer to rank 1, which receives `got` into a buffer of that box.
Program transfer(Box got) {
  Program p;
  p.num_ranks = 2;
  p.ranks.resize(2);
  p.ranks[0].rank = 0;
  p.ranks[1].rank = 1;
  p.ranks[0].buffers.push_back(buffer("x", Box{{{0, 8}}}));
  p.ranks[1].buffers.push_back(buffer("y", got));
  CommOp send{CommKind::send, 1, -1, Operand{0, Box{{{0, 4}}}}, {}, {}};
  CommOp recv{CommKind::recv, 0, -1, {}, Operand{0, got}, {}};
  p.ranks[0].step.push_back(comm(0, {send}));
  p.ranks[1].step.push_back(comm(0, {recv}));
  return p;
}

TEST(RankIr, MatchingTransferVerifies) { verify_program(transfer(Box{{{0, 4}}})); }

TEST(RankIrDeathTest, MismatchedTransfer) {
  EXPECT_DEATH(verify_program(transfer(Box{{{0, 3}}})), "sends and receives of some phase do not match");
}

TEST(RankIrDeathTest, OperandOutsideItsBuffer) {
  Program p = transfer(Box{{{0, 4}}});
  p.ranks[0].step[0].comm[0].src.box = Box{{{4, 10}}};
  EXPECT_DEATH(verify_program(p), "is not inside buffer");
}

TEST(RankIrDeathTest, PhasesOutOfOrder) {
  Program p = transfer(Box{{{0, 4}}});
  p.ranks[0].step.push_back(comm(0, {}));
  EXPECT_DEATH(verify_program(p), "phase 0 after phase 0");
}

TEST(RankIrDeathTest, CollectiveMissingAMember) {
  Program p = transfer(Box{{{0, 4}}});
  p.groups.push_back({0, 1});
  CommOp ar{CommKind::all_reduce, -1, 0, Operand{0, Box{{{0, 8}}}}, Operand{0, Box{{{0, 8}}}}, {}};
  p.ranks[0].step.push_back(comm(1, {ar}));
  EXPECT_DEATH(verify_program(p), "1 of the 2 ranks of group 0");
}

}  // namespace
}  // namespace ffc
