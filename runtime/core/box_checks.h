// The checks of views that both backends' kernels make before they run (kernels.h's contract):
// host code, shared by cpu/loops.h and cuda/common.cuh.
#pragma once

#include "ffrt/kernels.h"

namespace ffrt::checks {

/// Throws ffrt::Error when `cond` is false: a view that does not fit what the kernel needs.
inline void require(bool cond, const char* what) {
  if (!cond) throw Error(what);
}

/// Whether v's box contains the box [lo, lo + size) of v's rank (an empty box is contained anywhere).
inline bool box_holds(const View& v, const int64_t* lo, const int64_t* size) {
  for (int d = 0; d < v.rank; ++d)
    if (size[d] <= 0) return true;
  for (int d = 0; d < v.rank; ++d)
    if (lo[d] < v.lo[d] || lo[d] + size[d] > v.hi(d)) return false;
  return true;
}

/// Whether `inner`'s box lies inside `outer`'s (same rank): every dim up to the first empty one.
inline bool box_inside(const View& inner, const View& outer) {
  if (inner.rank != outer.rank) return false;
  for (int d = 0; d < inner.rank; ++d) {
    if (inner.size[d] == 0) return true;
    if (inner.lo[d] < outer.lo[d] || inner.hi(d) > outer.hi(d)) return false;
  }
  return true;
}

/// Whether v has the rank and global extents of `like` and its box holds `box`'s.
inline bool holds(const View& v, const View& like, const View& box) {
  if (v.rank != like.rank) return false;
  for (int d = 0; d < v.rank; ++d)
    if (v.full[d] != like.full[d]) return false;
  return box_inside(box, v);
}

}  // namespace ffrt::checks
