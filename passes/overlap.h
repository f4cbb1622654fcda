// Overlap of communication with compute: which gradient phases travel together, and how long each
// phase may run alongside the kernels after it (DESIGN.md §5).
//
// The runtime issues a phase on its communication stream (ffrt/comm.h: start, finish). A phase
// need not finish before the next instruction, only before the first instruction that touches
// memory the phase reads or writes: the weight gradients a backward produces are all-reduced while
// the backward of the layers before it runs, as data-parallel frameworks do. Two passes:
//
// - bucket (after schedule): consecutive phases that only all-reduce parameter gradients over the
//   same ranks are merged, up to a byte budget per bucket, into one phase issued where the last of
//   them was. Fewer, larger phases: less launch and synchronization overhead per gradient.
// - overlap (after memory): sets each step phase's Instr::finish, the first later instruction
//   whose operands' planned memory meets the phase's operands' (communication phases run in order
//   on their stream, so later phases never wait for earlier ones). Phases of the forward finish
//   within it (evaluation runs the forward alone), and every phase before the next data load (a
//   step recorded as CUDA graphs is cut there, and a graph ends with its streams joined).
#pragma once

#include <cstdint>
#include <string>

#include "ir/rank_ir.h"

namespace ffc {

/// Default byte budget of a gradient bucket (per rank).
constexpr int64_t kDefaultBucketBytes = int64_t{8} << 20;

/// Merges consecutive gradient all-reduce phases (see above) into buckets of at most `bytes`
/// bytes (a single larger phase stays alone). 0 merges nothing.
void bucket_gradients(Program& p, int64_t bytes);

/// Sets Instr::finish of every step phase from the memory plan (offsets must be planned).
void plan_overlap(Program& p);

/// Each rank's phases: how many overlap later instructions and by how many instructions.
std::string print_overlap(const Program& p);

}  // namespace ffc
