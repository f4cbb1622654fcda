// Checkpoints as safetensors files (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header {name: {"dtype", "shape", "data_offsets"}, optional
// "__metadata__": {string: string}}, then the tensors' bytes. Files are written atomically
// (temporary file in the same directory, fsync, rename) and deterministically (tensors sorted by
// name, the header padded with spaces to a multiple of 8 bytes). Reading validates the header
// (offsets in range and not overlapping, sizes matching shape × dtype); a truncated or corrupt file
// throws ffrt::Error naming the file (and the tensor), never crashes. Dtypes: "F32" and "I64".
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ffrt/npy.h"

namespace ffrt {

/// A tensor to write: its bytes are read from `data` (dense row-major, dtype_size × numel bytes).
struct TensorRef {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};

/// Writes one safetensors file atomically. Names must be unique and non-empty.
void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
void write_safetensors(const std::string& path, const std::map<std::string, HostArray>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

/// An open safetensors file: the header validated; tensors read on demand.
class SafetensorsReader {
 public:
  struct Entry {
    DType dtype;
    std::vector<int64_t> shape;
    int64_t begin, end;  ///< byte offsets in the data section
  };

  explicit SafetensorsReader(const std::string& path);
  ~SafetensorsReader();
  SafetensorsReader(SafetensorsReader&&) noexcept;
  SafetensorsReader& operator=(SafetensorsReader&&) noexcept;

  const std::string& path() const;
  /// Tensors by name (sorted).
  const std::map<std::string, Entry>& entries() const;
  const std::map<std::string, std::string>& metadata() const;
  bool contains(const std::string& name) const;
  /// The entry of a tensor; throws naming the file and the tensor when it is absent.
  const Entry& entry(const std::string& name) const;
  /// Reads a tensor's bytes into dst (dense, entry(name).end - begin bytes).
  void read(const std::string& name, void* dst) const;
  HostArray read(const std::string& name) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Checkpoint names of a parameter's optimizer state, as torch.optim names them: SGD with momentum
/// keeps `<name>.momentum_buffer`, Adam `<name>.exp_avg` and `<name>.exp_avg_sq`. The metadata entry
/// kOptimizerStep counts the updates made, so a loaded run continues Adam's bias correction and
/// SGD's momentum exactly.
inline std::vector<std::string> optimizer_state_names(const std::string& param, bool adam) {
  if (adam) return {param + ".exp_avg", param + ".exp_avg_sq"};
  return {param + ".momentum_buffer"};
}
inline constexpr const char* kOptimizerStep = "optimizer_step";

/// Reads every tensor of a safetensors file.
std::map<std::string, HostArray> read_safetensors(const std::string& path);

}  // namespace ffrt
