// Training data: a Dataset gives each part the samples of its box of the batch, reading only those.
//
// Sources: a directory holding `inputs.npy` + `labels.npy` (first dim = samples; its test split, if
// any, `test_inputs.npy` + `test_labels.npy`), a directory of
// IDX files (MNIST / Fashion-MNIST: train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz],
// the test split t10k-*), or synthetic data drawn by Philox. Iteration k of a batch size B takes
// the samples k*B, ..., k*B + B - 1 of the data set, in order, wrapping at its end; a part asks for
// the range [lo, hi) of that batch it needs and gets those samples only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ffrt/npy.h"
#include "ffrt/philox.h"

namespace ffrt {

// ---- synthetic values ------------------------------------------------------------------------
// Shared by fill_synthetic (kernels.h) and Dataset::synthetic, so both give the same numbers: the
// value of the element with global row-major index `index` of a tensor under `key`.

/// U(-1, 1).
FFRT_HD float synthetic_f32(uint64_t key, uint64_t index) {
  return 2.f * uniform01(philox4x32(index, key).v[0]) - 1.f;
}

/// Uniform in [0, classes): the high half of (64 random bits) * classes.
FFRT_HD int64_t synthetic_label(uint64_t key, uint64_t index, int64_t classes) {
  const Philox4 r = philox4x32(index, key);
  const uint64_t x = (static_cast<uint64_t>(r.v[1]) << 32) | r.v[0];
#if defined(__CUDA_ARCH__)
  return static_cast<int64_t>(__umul64hi(x, static_cast<uint64_t>(classes)));
#else
  return static_cast<int64_t>((static_cast<unsigned __int128>(x) * static_cast<uint64_t>(classes)) >> 64);
#endif
}

// ---- data sets -------------------------------------------------------------------------------

enum class Split { train, test };

/// A synthetic data set: `samples` samples; inputs [samples, input_shape...] and labels
/// [samples, label_shape...] are the tensors fill_synthetic draws under the keys
/// key_of("inputs", seed) and key_of("labels", seed).
struct SyntheticSpec {
  std::vector<int64_t> input_shape;  ///< per sample, e.g. {1, 28, 28}
  std::vector<int64_t> label_shape;  ///< per sample; {} for one label per sample
  int64_t classes = 10;              ///< > 0: i64 labels in [0, classes); 0: f32 targets in U(-1, 1)
  int64_t input_classes = 0;         ///< > 0: i64 inputs (token ids) in [0, input_classes); 0: f32 U(-1, 1)
  int64_t samples = 60000;
  uint64_t seed = 0;
};

/// Samples of a batch: inputs [n, input_shape...], labels [n, label_shape...].
struct Batch {
  HostArray inputs, labels;
};

class Dataset {
 public:
  /// Opens a directory of inputs.npy + labels.npy (test split: test_inputs.npy + test_labels.npy) or
  /// of IDX files. Throws
  /// ffrt::Error naming the file that is missing, unreadable or of the wrong shape, and when the
  /// inputs and labels hold different numbers of samples.
  static Dataset open(const std::string& dir, Split split = Split::train);
  static Dataset synthetic(const SyntheticSpec& spec);

  Dataset(Dataset&&) noexcept;
  Dataset& operator=(Dataset&&) noexcept;
  ~Dataset();

  /// "npy", "idx" or "synthetic".
  const char* kind() const;
  /// One line for the log: source, split, samples, shapes.
  std::string describe() const;
  /// Samples in the data set.
  int64_t size() const;
  DType input_dtype() const;
  /// The shape of one sample's input.
  const std::vector<int64_t>& input_shape() const;
  DType label_dtype() const;
  /// The shape of one sample's label ({} for a class index).
  const std::vector<int64_t>& label_shape() const;

  /// The data set index of sample i of iteration k's batch of B.
  int64_t sample_index(int64_t k, int64_t B, int64_t i) const;
  /// Samples [lo, hi) of iteration k's batch of B (0 ≤ lo ≤ hi ≤ B).
  Batch batch(int64_t k, int64_t B, int64_t lo, int64_t hi);
  /// The same into dense buffers of (hi - lo) samples each; either may be null to skip it.
  void batch(int64_t k, int64_t B, int64_t lo, int64_t hi, void* inputs, void* labels);

  struct Impl;

 private:
  explicit Dataset(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ffrt
