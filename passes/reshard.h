// The reshard table (DESIGN.md §4): how a tensor held as pieces on devices becomes the pieces its
// consumers need.
//
// A tensor is held as `sources` (each a box of the global tensor in a buffer on a device) and needed
// as `dests` (boxes on devices). The table is tried in order, per connected component of the
// bipartite graph "source box intersects dest box":
//   1. nothing: a dest whose box lies inside a source on its own device reads that source (a view);
//      in sum mode only when that source is the only one meeting the dest's box;
//   2. (the same rule covers local slices: a view's box may be a sub-box of the source's);
//   3. a collective when the component has one's exact shape: all-gather, all-reduce,
//      reduce-scatter, all-to-all (see each kind); tried only where rule 1 made no view;
//   4. otherwise point-to-point: for each (source, dest) pair whose boxes intersect, a transfer of
//      the intersection — a local copy when both lie on one device. In copy mode a dest reads one
//      replica per distinct source box (the one on its device if any, else the lowest index). In
//      sum mode a dest whose box lies inside a source on its device is a view of that source and
//      the other contributions are added into it in place, unless another dest accumulating into
//      the same source overlaps it; otherwise it is an own buffer.
// A piece with an empty box belongs to no component: an empty dest is `own` with no moves.
//
// Two modes:
//   - copy: every element has one value; sources hold it (sources are pairwise disjoint, or equal
//     boxes on different devices holding the same values). A dest is written once per element.
//   - sum: each source holds a partial contribution over its box (zero elsewhere); a dest needs the
//     sum of every contribution over its box. Used for gradients (halos, fan-out, replicated
//     weights), batch-norm statistics and the loss.
//
// The plan says, per dest, where its values live (`storage`) and lists the moves that fill it. The
// executor runs a plan as: every transfer reads its source over its box (sends and local copies
// alike; all_to_all's transfers included), then the collectives run, then the transfers write (copy)
// or add (sum) what they read into their dests, in move order. Reading first matters in sum mode: a
// transfer may read a region of a source that another dest of the plan accumulates into in place
// (sources [0,6) and [4,8) and dests [0,5) and [4,8), all on one device: each dest views one source
// and adds the other's overlap, so each reads [4,5) of the buffer the other writes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/box.h"

namespace ffc {

enum class ReshardMode { copy, sum };

/// A box of the tensor in a buffer on a device.
struct Piece {
  int device = 0;
  Box box;
};

/// Where a dest's values live after the plan runs.
enum class DestStorage {
  /// A view into source `source`'s buffer (which contains the dest's box, on the dest's device).
  /// In sum mode, moves may add other contributions into that buffer in place (only over the dest's
  /// box, so a region another dest reads is never written).
  view,
  /// A buffer of the dest's own, holding exactly its box: written by the moves (copy mode), or
  /// zero-filled and then accumulated into (sum mode).
  own,
};

struct DestPlan {
  DestStorage storage = DestStorage::own;
  int source = -1;  ///< for view: the source viewed
};

enum class MoveKind {
  /// Source `src`'s values over `box` go into dest `dst`'s storage (overwritten in copy mode, added
  /// in sum mode). A local copy when both are on one device, else a send/recv of the packed box.
  transfer,
  /// Sum mode. The sources `srcs` (equal boxes, distinct devices) are summed in place: afterwards
  /// every one of their buffers holds the total. Each dest in `dsts` (the same box, on the devices
  /// of `srcs`, one each) is a view of its device's source.
  all_reduce,
  /// Copy mode. Sources `srcs` (disjoint boxes, one per device, tiling `box`) are gathered: each
  /// dest in `dsts` (box `box`, one on each device of `srcs`) gets the whole box in its own buffer.
  all_gather,
  /// Sum mode. Sources `srcs` (equal boxes `box`, one per device) are summed; each dest in `dsts`
  /// (disjoint boxes tiling `box`, one on each device of `srcs`) gets its box of the total in its
  /// own buffer.
  reduce_scatter,
  /// Copy mode. Sources `srcs` (disjoint, one per device) and dests `dsts` (disjoint, one on each
  /// of the same devices) tile the same box, and every device sends to every other: executed as the
  /// grouped transfers listed in `transfers` (local ones included), labelled as one pattern.
  all_to_all,
};

struct Move {
  MoveKind kind = MoveKind::transfer;
  // transfer:
  int src = -1;
  int dst = -1;
  Box box;  ///< transfer: the intersection; collectives: the whole box (all_to_all: the box both sides tile)
  // collectives:
  std::vector<int> srcs;        ///< in device order
  std::vector<int> dsts;        ///< in device order (dsts[i] on srcs[i]'s device)
  std::vector<Move> transfers;  ///< all_to_all only: its transfers, by dest index, then source index
};

struct ReshardPlan {
  std::vector<DestPlan> dests;  ///< one per dest
  /// By component (in the order of their lowest dest index), then by dest index, then source index;
  /// a collective stands for its whole component.
  std::vector<Move> moves;
};

/// Plans moving `sources` to `dests`. Deterministic: depends only on the arguments, in order.
/// A malformed request is an internal error (FFC_INTERNAL_ERROR) (copy-mode sources overlapping with different boxes,
/// a dest element no source covers in copy mode, boxes of different ranks).
ReshardPlan plan_reshard(ReshardMode mode, const std::vector<Piece>& sources, const std::vector<Piece>& dests);

/// `all_reduce`, `transfer`, ...
const char* move_kind_name(MoveKind k);

}  // namespace ffc
