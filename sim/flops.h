// The work of a kernel instruction of the Rank IR: floating-point operations, bytes moved and
// kernels launched, from the op's attributes and the part's operand boxes. The analytical cost
// model (sim/cost.h) divides them by the machine's ceilings; docs/simulator.md lists the formulas.
#pragma once

#include "ir/graph.h"
#include "ir/rank_ir.h"

namespace ffc {

/// What one kernel instruction (forward, forward_stats, backward_stats, backward) does.
struct KernelWork {
  double flops = 0;          ///< floating-point operations (a multiply-add is two)
  double bytes = 0;          ///< bytes read and written: every operand once, accumulated gradients twice
  int launches = 1;          ///< kernels it launches
  bool contraction = false;  ///< a convolution or GEMM: TF32 math may run it on tensor cores
};

/// The work of a kernel instruction of rank `r`'s program (an internal error for other kinds).
KernelWork kernel_work(const Graph& g, const RankProgram& r, const Instr& in);

/// Bytes of an operand's box in its buffer's element type (0 when absent).
double operand_bytes(const RankProgram& r, const Operand& o);

/// Where `inner` starts among `outer`'s elements (row-major) when it lies inside it as one contiguous
/// run of them; -1 otherwise.
int64_t run_offset(const Box& outer, const Box& inner);

/// Whether an operand's box is one contiguous run of its buffer (row-major), so that a transfer can
/// read or write it in place instead of packing it first.
bool is_contiguous(const RankProgram& r, const Operand& o);

}  // namespace ffc
