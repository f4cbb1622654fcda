// Boxes: axis-aligned index ranges of a tensor, and the SOAP part boxes of a parallel config.
//
// Partitioning describes every part of an op as a box of its output, and every input a part needs
// as a box of that input. Part i of degree d over an extent E covers [floor(i*E/d), floor((i+1)*E/d)),
// so uneven extents split as evenly as integers allow.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
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

/// A box's ranges: a vector that keeps up to four in place. The middle end copies boxes with every
/// operand it builds and moves (ffc search compiles a whole model per proposal), and a copy of
/// ranges kept in place allocates nothing; higher ranks spill to the heap.
class Ranges {
 public:
  static constexpr uint32_t kInline = 4;

  Ranges() = default;
  Ranges(std::initializer_list<Range> l) {
    reserve(l.size());
    for (const Range& x : l) push_back(x);
  }
  Ranges(const Ranges& o) { *this = o; }
  Ranges(Ranges&& o) noexcept { *this = std::move(o); }
  Ranges& operator=(const Ranges& o) {
    if (this == &o) return *this;
    size_ = 0;
    reserve(o.size_);
    std::copy(o.begin(), o.end(), data());
    size_ = o.size_;
    return *this;
  }
  Ranges& operator=(Ranges&& o) noexcept {
    if (this == &o) return *this;
    if (!o.heap_) {
      std::copy(o.begin(), o.end(), data());  // our capacity is at least kInline
      size_ = o.size_;
      return *this;
    }
    heap_ = std::move(o.heap_);
    size_ = o.size_;
    capacity_ = o.capacity_;
    o.size_ = 0;
    o.capacity_ = kInline;
    return *this;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  Range* data() { return heap_ ? heap_.get() : inline_; }
  const Range* data() const { return heap_ ? heap_.get() : inline_; }
  Range* begin() { return data(); }
  Range* end() { return data() + size_; }
  const Range* begin() const { return data(); }
  const Range* end() const { return data() + size_; }
  Range& operator[](size_t i) { return data()[i]; }
  const Range& operator[](size_t i) const { return data()[i]; }
  const Range& at(size_t i) const {
    if (i >= size_) throw std::out_of_range("Ranges::at");
    return data()[i];
  }
  Range& back() { return data()[size_ - 1]; }
  const Range& back() const { return data()[size_ - 1]; }

  void reserve(size_t n) {
    if (n <= capacity_) return;
    auto grown = std::make_unique<Range[]>(n);
    std::copy(begin(), end(), grown.get());
    heap_ = std::move(grown);
    capacity_ = static_cast<uint32_t>(n);
  }
  void push_back(const Range& x) {
    if (size_ == capacity_) reserve(2 * capacity_);
    data()[size_++] = x;
  }
  void pop_back() { --size_; }
  void resize(size_t n) {
    reserve(n);
    std::fill(data() + std::min<size_t>(n, size_), data() + n, Range{});
    size_ = static_cast<uint32_t>(n);
  }
  void assign(size_t n, const Range& x) {
    size_ = 0;
    reserve(n);
    std::fill(data(), data() + n, x);
    size_ = static_cast<uint32_t>(n);
  }
  bool operator==(const Ranges& o) const { return std::equal(begin(), end(), o.begin(), o.end()); }

 private:
  std::unique_ptr<Range[]> heap_;  ///< the ranges when there are more than kInline (then inline_ is unused)
  uint32_t size_ = 0;
  uint32_t capacity_ = kInline;
  Range inline_[kInline];
};

/// A box: one range per dimension. A box of rank 0 is the single element of a scalar.
struct Box {
  Ranges r;

  /// The box covering a whole tensor of these extents.
  static Box whole(const std::vector<int64_t>& extents);
  int rank() const { return static_cast<int>(r.size()); }
  bool empty() const {
    for (const Range& x : r)
      if (x.empty()) return true;
    return false;
  }
  int64_t volume() const {
    int64_t v = 1;
    for (const Range& x : r) v *= x.size();
    return v;
  }
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
