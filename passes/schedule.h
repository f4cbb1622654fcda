// Schedule: one global order of steps, communication in numbered phases, and each rank's program as
// its projection (DESIGN.md §5).
//
// Communicate emits steps in an order that respects every dependency (forward in graph order,
// backward in reverse, each reduction before its readers). The schedule numbers the communication
// phases in that order and gives each rank, for every phase it takes part in, one `comm`
// instruction listing its sends, receives and collectives in the phase's order. Every rank meets
// its phases in increasing order and issues each as one group, so matching operations are posted in
// the same order everywhere: no deadlock, by construction. Collectives name a communicator (a sorted
// rank list), each created once.
#pragma once

#include <string>

#include "ir/rank_ir.h"
#include "passes/communicate.h"

namespace ffc {

Program schedule(const Graph& g, Lowered lowered, int64_t batch);

/// Text form: the phases, in order, with their ranks and patterns.
std::string print_schedule(const Program& p);

}  // namespace ffc
