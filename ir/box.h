// Boxes: axis-aligned index ranges of a tensor, and the SOAP part boxes of a parallel config.
//
// Partitioning describes every part of an op as a box of its output, and every input a part needs
// as a box of that input. Part i of degree d over an extent E covers [floor(i*E/d), floor((i+1)*E/d)),
// so uneven extents split as evenly as integers allow.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ffc {

/// A half-open index range [lo, hi).
struct Range {
  int64_t lo = 0;
  int64_t hi = 0;
  int64_t size() const { return hi > lo ? hi - lo : 0; }
  bool empty() const { return hi <= lo; }
  bool operator==(const Range&) const = default;
};

/// A box: one range per dimension. A box of rank 0 is the single element of a scalar.
struct Box {
  std::vector<Range> r;

  /// The box covering a whole tensor of these extents.
  static Box whole(const std::vector<int64_t>& extents);
  int rank() const { return static_cast<int>(r.size()); }
  bool empty() const;
  int64_t volume() const;
  /// Whether `other` lies inside this box (an empty box lies inside any box of its rank).
  bool contains(const Box& other) const;
  bool operator==(const Box&) const = default;
  /// Prints as `[0:4, 0:64, 3:29, 0:55]`.
  std::string str() const;
};

/// The intersection of two boxes of equal rank; empty when they do not overlap.
Box intersect(const Box& a, const Box& b);

/// The range of part `i` of `degree` over an extent: [floor(i*E/d), floor((i+1)*E/d)).
Range part_range(int64_t extent, int64_t degree, int64_t i);

/// The number of parts of a config: the product of its degrees.
int64_t num_parts(const std::vector<int64_t>& degrees);

/// The multi-index of part `index`, numbered row-major over the dims (the last dim fastest).
std::vector<int64_t> part_coords(const std::vector<int64_t>& degrees, int64_t index);

/// The box of part `index` of a tensor of these extents split by these degrees.
Box part_box(const std::vector<int64_t>& extents, const std::vector<int64_t>& degrees, int64_t index);

}  // namespace ffc
