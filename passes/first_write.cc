// The first-write pass (first_write.h).
#include "passes/first_write.h"

#include <vector>

#include "passes/memory_plan.h"

namespace ffc {

namespace {

/// How many of an instruction's operands name buffer b.
int uses(const Instr& in, int b) {
  int n = 0;
  for_each_operand(in, [&](const Operand& o) { n += o.buffer == b; });
  return n;
}

/// Whether an instruction reads or writes buffer b. A backward_stats lists its op's input gradients
/// but neither reads nor writes them.
bool touches(const Instr& in, int b) {
  int listed_only = 0;
  if (in.kind == InstrKind::backward_stats)
    for (const Operand& o : in.din) listed_only += o.buffer == b;
  return uses(in, b) > listed_only;
}

/// Makes instruction `in` the first write of the whole buffer b, if it can be: true when done.
bool take_first_write(const RankProgram& r, Instr& in, int b) {
  const Box& whole = r.buffers[b].box;
  if (uses(in, b) != 1) return false;
  if (in.kind == InstrKind::backward) {
    for (size_t i = 0; i < in.din.size(); ++i)
      if (in.din[i].buffer == b && in.din[i].box == whole && i < 16) {
        in.overwrite |= 1u << i;
        return true;
      }
    for (size_t j = 0; j < in.dparams.size(); ++j)
      if (in.dparams[j].buffer == b && in.dparams[j].box == whole && j < 16) {
        in.overwrite |= 1u << (16 + j);
        return true;
      }
    return false;
  }
  if (in.kind == InstrKind::copy && in.accumulate && in.dst.buffer == b && in.dst.box == whole &&
      in.src.box.contains(whole)) {
    in.accumulate = false;
    return true;
  }
  return false;
}

}  // namespace

void elide_zero_fills(Program& p) {
  for (RankProgram& r : p.ranks) {
    std::vector<bool> drop(r.step.size(), false);
    for (size_t i = 0; i < r.step.size(); ++i) {
      const Instr& fill = r.step[i];
      if (fill.kind != InstrKind::fill || fill.value != 0.f || !fill.dst.present() ||
          !(fill.dst.box == r.buffers[fill.dst.buffer].box))
        continue;
      const int b = fill.dst.buffer;
      for (size_t j = i + 1; j < r.step.size(); ++j) {
        if (!touches(r.step[j], b)) continue;
        drop[i] = take_first_write(r, r.step[j], b);
        break;
      }
    }
    // Compacted in place: the instructions kept move down over the dropped ones.
    size_t kept = 0, forward_end = r.forward_end;
    for (size_t i = 0; i < r.step.size(); ++i) {
      if (drop[i]) {
        if (i < r.forward_end) --forward_end;
        continue;
      }
      if (kept != i) r.step[kept] = std::move(r.step[i]);
      ++kept;
    }
    r.step.erase(r.step.begin() + static_cast<std::ptrdiff_t>(kept), r.step.end());
    r.forward_end = forward_end;
  }
}

}  // namespace ffc
