// IDX files, the format of MNIST and Fashion-MNIST: plain or gzip-compressed (detected by content,
// not by name). Only unsigned-byte data (type 0x08), which is what those data sets hold. Images
// ([N, H, W] u8) read as f32 [n, 1, H, W] scaled to [0, 1]; labels ([N] u8) as i64 [n]. Reads take
// a sample range [lo, hi), so a rank reads only its samples: plain files are read with pread of
// exactly those bytes; a gzip stream has no random access, so it is decompressed once, lazily, up
// to the last sample asked for, and kept (as bytes).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ffrt/npy.h"

namespace ffrt {

class IdxReader {
 public:
  /// Opens the file and parses its header. Throws ffrt::Error (naming the file) when it is missing,
  /// not IDX, of an unsupported element type, or (plain files) shorter than its header says.
  explicit IdxReader(const std::string& path);
  ~IdxReader();
  IdxReader(IdxReader&&) noexcept;
  IdxReader& operator=(IdxReader&&) noexcept;

  const std::string& path() const;
  bool compressed() const;
  /// The dims of the header ([N, H, W] for images, [N] for labels).
  const std::vector<int64_t>& dims() const;
  int64_t count() const { return dims().at(0); }
  /// Bytes of one sample (the product of the dims after the first).
  int64_t sample_bytes() const;
  /// The raw bytes of samples [lo, hi) into dst (dense).
  void read(int64_t lo, int64_t hi, uint8_t* dst);
  /// Samples [lo, hi) as f32 [n, 1, H, W] in [0, 1] (a 3-d file), or f32 [n, ...] scaled the same.
  HostArray images(int64_t lo, int64_t hi);
  /// Samples [lo, hi) of a 1-d file as i64 [n].
  HostArray labels(int64_t lo, int64_t hi);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Images [lo, hi) of an IDX file (hi < 0: to the end) as f32 [n, 1, H, W] in [0, 1].
HostArray read_idx_images(const std::string& path, int64_t lo = 0, int64_t hi = -1);
/// Labels [lo, hi) of an IDX file (hi < 0: to the end) as i64 [n].
HostArray read_idx_labels(const std::string& path, int64_t lo = 0, int64_t hi = -1);

}  // namespace ffrt
