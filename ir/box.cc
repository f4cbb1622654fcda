// Boxes and SOAP part boxes.
#include "ir/box.h"

#include <fmt/format.h>

#include <algorithm>

#include "ir/diag.h"

namespace ffc {

Box Box::whole(const std::vector<int64_t>& extents) {
  Box b;
  for (int64_t e : extents) b.r.push_back({0, e});
  return b;
}

bool Box::contains(const Box& o) const {
  FFC_CHECK(o.rank() == rank());
  if (o.empty()) return true;
  for (int i = 0; i < rank(); ++i)
    if (o.r[i].lo < r[i].lo || o.r[i].hi > r[i].hi) return false;
  return true;
}

std::string Box::str() const {
  std::string s = "[";
  for (int i = 0; i < rank(); ++i) s += fmt::format("{}{}:{}", i ? ", " : "", r[i].lo, r[i].hi);
  return s + "]";
}

Box intersect(const Box& a, const Box& b) {
  FFC_CHECK(a.rank() == b.rank());
  Box out;
  for (int i = 0; i < a.rank(); ++i)
    out.r.push_back({std::max(a.r[i].lo, b.r[i].lo), std::min(a.r[i].hi, b.r[i].hi)});
  return out;
}

Range part_range(int64_t extent, int64_t degree, int64_t i) {
  FFC_CHECK(degree >= 1 && i >= 0 && i < degree);
  // In 128 bits: i * extent overflows 64 for extents above 2^63 / degree.
  using Wide = __int128;
  return {static_cast<int64_t>(Wide{i} * extent / degree), static_cast<int64_t>(Wide{i + 1} * extent / degree)};
}

int64_t num_parts(const std::vector<int64_t>& degrees) {
  int64_t n = 1;
  for (int64_t d : degrees) n *= d;
  return n;
}

std::vector<int64_t> part_coords(const std::vector<int64_t>& degrees, int64_t index) {
  std::vector<int64_t> c(degrees.size());
  for (int i = static_cast<int>(degrees.size()) - 1; i >= 0; --i) {
    c[i] = index % degrees[i];
    index /= degrees[i];
  }
  FFC_CHECK(index == 0);
  return c;
}

Box part_box(const std::vector<int64_t>& extents, const std::vector<int64_t>& degrees, int64_t index) {
  FFC_CHECK(extents.size() == degrees.size());
  std::vector<int64_t> c = part_coords(degrees, index);
  Box b;
  for (size_t i = 0; i < extents.size(); ++i) b.r.push_back(part_range(extents[i], degrees[i], c[i]));
  return b;
}

}  // namespace ffc
