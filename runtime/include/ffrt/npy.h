// NumPy .npy files: the data set format of `inputs.npy` / `labels.npy` pairs, and the simplest way
// to exchange tensors with Python. Little-endian, C order; '<f4' and '<i8' are the runtime's own
// dtypes, '<f8' reads as f32 and '<i4' as i64 (an f64 array writes as '<f8'). Anything else
// (Fortran order, big-endian, other dtypes, truncated files) throws ffrt::Error naming the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ffrt/kernels.h"
#include "ffrt/view.h"

namespace ffrt {

/// Bytes of one element of a dtype.
inline int64_t dtype_size(DType t) { return t == DType::f32 ? 4 : 8; }
/// "f32" / "i64" / "f64".
const char* dtype_name(DType t);

/// A host tensor: a dtype, a shape and its elements, dense row-major.
struct HostArray {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;

  HostArray() = default;
  /// A zero-filled array.
  HostArray(DType t, std::vector<int64_t> s);

  int64_t numel() const;
  float* f32() { return reinterpret_cast<float*>(bytes.data()); }
  const float* f32() const { return reinterpret_cast<const float*>(bytes.data()); }
  int64_t* i64() { return reinterpret_cast<int64_t*>(bytes.data()); }
  const int64_t* i64() const { return reinterpret_cast<const int64_t*>(bytes.data()); }
  double* f64() { return reinterpret_cast<double*>(bytes.data()); }
  const double* f64() const { return reinterpret_cast<const double*>(bytes.data()); }
  /// A whole-tensor view of the array (rank ≤ kMaxRank).
  View view();
};

/// Elements of a shape (1 for a scalar).
int64_t numel_of(const std::vector<int64_t>& shape);
/// "[2, 3, 4]".
std::string shape_str(const std::vector<int64_t>& shape);

/// An open .npy file: its header parsed; rows (slices along the first dim) read on demand.
class NpyReader {
 public:
  /// Parses the header. Throws ffrt::Error for a missing, truncated or unsupported file.
  explicit NpyReader(const std::string& path);
  ~NpyReader();
  NpyReader(const NpyReader&) = delete;
  NpyReader& operator=(const NpyReader&) = delete;
  NpyReader(NpyReader&& o) noexcept;
  NpyReader& operator=(NpyReader&& o) noexcept;

  const std::string& path() const { return path_; }
  /// The dtype rows read as (f32 for '<f4' and '<f8', i64 for '<i8' and '<i4').
  DType dtype() const { return dtype_; }
  /// The descr of the file ("<f4", "<f8", "<i8", "<i4").
  const std::string& descr() const { return descr_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  /// Elements of one row (the product of the dims after the first; 1 for rank ≤ 1).
  int64_t row_numel() const;
  /// Reads rows [lo, hi) of the first dim, converted to dtype(), into `dst` (dense). A scalar
  /// (rank 0) has one row.
  void read_rows(int64_t lo, int64_t hi, void* dst) const;
  /// All of it.
  HostArray read_all() const;

 private:
  std::string path_;
  int fd_ = -1;
  DType dtype_ = DType::f32;
  std::string descr_;
  int64_t file_elem_ = 4;  // bytes of one stored element
  std::vector<int64_t> shape_;
  int64_t data_offset_ = 0;
};

/// Reads a whole .npy file.
HostArray read_npy(const std::string& path);
/// Rows [lo, hi) of the first dim of a .npy file.
HostArray read_npy_rows(const std::string& path, int64_t lo, int64_t hi);
/// Writes a .npy file (version 1.0 header, or 2.0 when the header needs it; '<f4', '<i8' or '<f8').
void write_npy(const std::string& path, DType dtype, const std::vector<int64_t>& shape, const void* data);
void write_npy(const std::string& path, const HostArray& a);

}  // namespace ffrt
