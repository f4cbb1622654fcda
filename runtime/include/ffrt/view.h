// Views: a box of a global tensor, held in a strided buffer.
//
// Every kernel works on parts. A part's operands are boxes of whole ("global") tensors: a conv2d
// part's input is its halo'd box of the input, its weight the block of output channels it makes.
// A View says which box a buffer holds (its global offset `lo` and extents `size`), how the box is
// laid out (`stride`, in elements) and the global tensor's extents (`full`), so a kernel computes
// exactly the serial result for its box: padding appears only at the global borders, and
// counter-based randomness is keyed by global element indices.
#pragma once

#include <cstdint>
#include <initializer_list>

namespace ffrt {

constexpr int kMaxRank = 6;

/// Element types the kernels handle. f64 is for batch-norm statistics ([2, C] per-channel sums that
/// parts add without rounding) and what moves them (copy_box, fill).
enum class DType : int { f32 = 0, i64 = 1, f64 = 2 };

struct View {
  void* data = nullptr;
  DType dtype = DType::f32;
  int rank = 0;
  int64_t lo[kMaxRank] = {};      ///< global coordinates of the box's first element
  int64_t size[kMaxRank] = {};    ///< extents of the box
  int64_t stride[kMaxRank] = {};  ///< element strides of the buffer
  int64_t full[kMaxRank] = {};    ///< extents of the global tensor

  float* f32() const { return static_cast<float*>(data); }
  int64_t* i64() const { return static_cast<int64_t*>(data); }
  double* f64() const { return static_cast<double*>(data); }
  int64_t hi(int d) const { return lo[d] + size[d]; }
  int64_t volume() const;
  /// Whether the box is laid out densely, row-major.
  bool contiguous() const;
  /// The offset in elements of global coordinates `g` (which must lie in the box).
  int64_t offset_of(const int64_t* g) const;
};

/// A dense row-major view of the box [lo, lo+size) of a tensor with extents `full`.
View make_view(void* data, DType dtype, std::initializer_list<int64_t> full, std::initializer_list<int64_t> lo,
               std::initializer_list<int64_t> size);
/// A dense row-major view of a whole tensor.
View whole_view(void* data, DType dtype, std::initializer_list<int64_t> full);
/// The same, from arrays.
View make_view(void* data, DType dtype, int rank, const int64_t* full, const int64_t* lo, const int64_t* size);

/// The box [lo, lo + size) of v's box, in the same buffer (it must lie inside v's box).
View sub_view(const View& v, const int64_t* lo, const int64_t* size);

/// The view with its dims reordered: dim i of the result is dim perm[i] of `v` (no data moves).
View permute(const View& v, const int* perm);

}  // namespace ffrt
