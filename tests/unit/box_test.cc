// Box math: part ranges, part numbering, intersection and containment.
#include "ir/box.h"

#include <gtest/gtest.h>

#include <limits>

namespace ffc {
namespace {

TEST(Box, PartRangesSplitUnevenExtentsByFloor) {
  // 10 over 4: floor(i*10/4) = 0, 2, 5, 7, 10.
  EXPECT_EQ(part_range(10, 4, 0), (Range{0, 2}));
  EXPECT_EQ(part_range(10, 4, 1), (Range{2, 5}));
  EXPECT_EQ(part_range(10, 4, 2), (Range{5, 7}));
  EXPECT_EQ(part_range(10, 4, 3), (Range{7, 10}));
}

TEST(Box, PartRangesOfHugeExtentsDoNotOverflow) {
  // i * E overflows 64 bits here; the ranges are still floor(i*E/d).
  const int64_t e = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(part_range(e, 3, 0), (Range{0, 3074457345618258602}));
  EXPECT_EQ(part_range(e, 3, 1), (Range{3074457345618258602, 6148914691236517204}));
  EXPECT_EQ(part_range(e, 3, 2), (Range{6148914691236517204, e}));
}

TEST(Box, PartsAreNumberedRowMajorLastDimFastest) {
  std::vector<int64_t> degrees{1, 1, 2, 2};
  EXPECT_EQ(part_coords(degrees, 1), (std::vector<int64_t>{0, 0, 0, 1}));
  EXPECT_EQ(part_coords(degrees, 2), (std::vector<int64_t>{0, 0, 1, 0}));
  Box b = part_box({8, 64, 27, 27}, degrees, 3);
  EXPECT_EQ(b.str(), "[0:8, 0:64, 13:27, 13:27]");
}

TEST(Box, PartsTileTheWholeTensor) {
  std::vector<int64_t> extents{5, 7, 3}, degrees{2, 3, 1};
  int64_t total = 0;
  for (int64_t i = 0; i < num_parts(degrees); ++i) {
    Box a = part_box(extents, degrees, i);
    total += a.volume();
    for (int64_t j = i + 1; j < num_parts(degrees); ++j) EXPECT_TRUE(intersect(a, part_box(extents, degrees, j)).empty());
  }
  EXPECT_EQ(total, 5 * 7 * 3);
}

TEST(Box, IntersectAndContain) {
  Box a{{{0, 4}, {2, 6}}}, b{{{3, 8}, {0, 3}}};
  Box c = intersect(a, b);
  EXPECT_EQ(c, (Box{{{3, 4}, {2, 3}}}));
  EXPECT_EQ(c.volume(), 1);
  EXPECT_TRUE(a.contains(c));
  EXPECT_FALSE(a.contains(b));
  EXPECT_TRUE(intersect(Box{{{0, 2}}}, Box{{{2, 4}}}).empty());
}

}  // namespace
}  // namespace ffc
