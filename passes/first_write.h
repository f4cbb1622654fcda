// First writes: gradients are not zero-filled only to be added to.
//
// The communicate pass gives every gradient buffer a fill with 0 before the contributions that add
// into it (a gradient with several consumers sums their contributions). Where the first instruction
// after the fill that touches the buffer writes the whole buffer — a backward whose din or dparams
// operand is the buffer, once, or a copy from a box that covers it — the fill is dropped and that
// instruction writes instead of adding: the backward's Instr::overwrite bit (its op writes the
// gradient, or zeroes it itself when its kernels can only add), the copy's `accumulate` off. One
// memset and one read of every gradient fewer per iteration.
#pragma once

#include "ir/rank_ir.h"

namespace ffc {

void elide_zero_fills(Program& p);

}  // namespace ffc
