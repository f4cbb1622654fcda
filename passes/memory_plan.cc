// Memory plan.
#include "passes/memory_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace ffc {

namespace {

int64_t align(int64_t n) { return (n + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment; }

std::string mib(int64_t bytes) {
  if (bytes < (1 << 10)) return fmt::format("{} B", bytes);
  if (bytes < (1 << 20)) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / (1 << 10));
  if (bytes < (int64_t{1} << 30)) return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
  return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (int64_t{1} << 30));
}

void plan_rank(RankProgram& r) {
  const int n = static_cast<int>(r.buffers.size());
  std::vector<int> first(n, -1), last(n, -1);
  for (int i = 0; i < static_cast<int>(r.step.size()); ++i)
    for_each_operand(r.step[i], [&](const Operand& o) {
      if (!o.present()) return;
      if (first[o.buffer] < 0) first[o.buffer] = i;
      last[o.buffer] = i;
    });
  if (r.loss.present()) {  // read after the iteration
    if (first[r.loss.buffer] < 0) first[r.loss.buffer] = static_cast<int>(r.step.size());
    last[r.loss.buffer] = static_cast<int>(r.step.size());
  }
  int64_t persistent = 0;
  std::vector<int> transient;
  for (int b = 0; b < n; ++b) {
    Buffer& buf = r.buffers[b];
    if (is_persistent(buf.role)) {
      buf.offset = persistent;
      persistent += align(buf.bytes());
    } else if (first[b] < 0) {
      buf.offset = 0;  // never used: takes no memory
    } else {
      transient.push_back(b);
    }
  }
  // Greedy by size (largest first), each at the lowest offset free over its lifetime.
  std::vector<int64_t> bytes(n);
  for (int b : transient) bytes[b] = r.buffers[b].bytes();
  std::stable_sort(transient.begin(), transient.end(), [&](int a, int b) { return bytes[a] > bytes[b]; });
  struct Placed {
    int64_t lo, hi;
    int first, last;
    bool operator<(const Placed& o) const { return lo != o.lo ? lo < o.lo : hi < o.hi; }
  };
  std::vector<Placed> placed;  // by (lo, hi): the first fit scans the live ones in address order
  int64_t arena = 0;
  for (int b : transient) {
    const int64_t size = align(std::max<int64_t>(bytes[b], 1));
    int64_t offset = 0;
    for (const Placed& p : placed) {
      if (p.last < first[b] || last[b] < p.first) continue;  // not live together
      if (offset + size <= p.lo) break;
      offset = std::max(offset, p.hi);
    }
    r.buffers[b].offset = offset;
    const Placed q{offset, offset + size, first[b], last[b]};
    placed.insert(std::upper_bound(placed.begin(), placed.end(), q), q);
    arena = std::max(arena, offset + size);
  }
  r.persistent_bytes = persistent;
  r.arena_bytes = arena;
}

}  // namespace

void plan_memory(Program& p) {
  for (RankProgram& r : p.ranks) plan_rank(r);
}

std::string print_memory(const Program& p) {
  std::string s;
  for (const RankProgram& r : p.ranks) {
    std::map<BufferRole, int64_t> by_role;
    for (const Buffer& b : r.buffers)
      if (is_persistent(b.role)) by_role[b.role] += align(b.bytes());
    s += fmt::format("rank {}: params {}, grads {}, optimizer {}, activations+staging {} (peak {})\n", r.rank,
                     mib(by_role[BufferRole::param]), mib(by_role[BufferRole::param_grad]),
                     mib(by_role[BufferRole::optim_state]), mib(r.arena_bytes), mib(r.persistent_bytes + r.arena_bytes));
  }
  return s;
}

}  // namespace ffc
