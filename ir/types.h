// Element types, dimensions and tensor types of the Graph IR.
//
// A dimension is either a fixed extent or the batch symbol N, which stays symbolic in the Graph IR
// so that one model file serves every batch size; it is bound to a number only when a program is
// partitioned for a concrete global batch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ffc {

/// Element type of a tensor.
/// f64 is internal: batch-norm statistics buffers of the Rank IR; models cannot declare it.
enum class DType { f32, bf16, f16, i64, f64 };

/// The textual name of a dtype (`f32`, `i64`, ...).
std::string_view dtype_name(DType t);
/// Parses a dtype name; nullopt when unknown.
std::optional<DType> parse_dtype(std::string_view s);
/// Bytes per element.
int dtype_bytes(DType t);

/// One dimension: a fixed extent, or the batch symbol N.
struct Dim {
  int64_t value = 0;  ///< The extent; unused when `batch` is set.
  bool batch = false;

  static Dim n() { return Dim{0, true}; }
  static Dim fixed(int64_t v) { return Dim{v, false}; }
  bool operator==(const Dim&) const = default;
  /// The extent with N bound to `batch_size`.
  int64_t bind(int64_t batch_size) const { return batch ? batch_size : value; }
  std::string str() const;
};

using Shape = std::vector<Dim>;

/// Prints a shape as `[N,3,224,224]`.
std::string shape_str(const Shape& s);
/// The number of elements with N bound to `batch_size`.
int64_t num_elements(const Shape& s, int64_t batch_size);
/// The shape with N bound to `batch_size`.
std::vector<int64_t> bind_shape(const Shape& s, int64_t batch_size);
/// Whether any dimension is N.
bool has_batch(const Shape& s);
/// The dims that are N, as a mask: bit d for dim d.
uint32_t batch_dims(const Shape& s);

/// The type of a tensor: element type and shape.
struct TensorType {
  DType dtype = DType::f32;
  Shape shape;
  bool operator==(const TensorType&) const = default;
  int rank() const { return static_cast<int>(shape.size()); }
  /// Prints as `f32[N,3,224,224]`; a scalar prints as `f32[]`.
  std::string str() const;
};

}  // namespace ffc
