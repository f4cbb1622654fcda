// Memory plan: every buffer of every rank gets a byte offset before anything runs.
//
// Persistent buffers (parameters, their gradients, optimizer state) are laid out one after the
// other. Transient buffers (activations, gradients of activations, saved state, statistics,
// staging, the loss) live from their first to their last use in the rank's iteration and share one
// arena: a buffer may take the bytes of one whose life has ended. Offsets are aligned to 256 bytes.
#pragma once

#include <cstdint>
#include <string>

#include "ir/rank_ir.h"

namespace ffc {

constexpr int64_t kBufferAlignment = 256;

void plan_memory(Program& p);

/// Each rank's peak memory, by kind: `rank 0: params 1.2 MiB, grads ..., optimizer ..., arena ... (total ...)`.
std::string print_memory(const Program& p);

/// Calls f(operand) for every operand of an instruction.
template <typename F>
void for_each_operand(const Instr& in, F&& f) {
  for (const auto* v : {&in.in, &in.out, &in.params, &in.saved, &in.dout, &in.din, &in.dparams})
    for (const Operand& o : *v) f(o);
  for (const Operand* o : {&in.stats, &in.src, &in.dst, &in.w, &in.grad, &in.state1, &in.state2}) f(*o);
  for (const CommOp& c : in.comm) {
    f(c.src);
    f(c.dst);
  }
}

}  // namespace ffc
