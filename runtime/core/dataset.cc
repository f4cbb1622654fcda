// Data sets: npy pairs, IDX files and synthetic data, read a part's samples at a time.
#include "ffrt/dataset.h"

#include <sys/stat.h>

#include <algorithm>
#include <utility>

#include "ffrt/idx.h"

namespace ffrt {

struct Dataset::Impl {
  virtual ~Impl() = default;
  virtual const char* kind() const = 0;
  virtual std::string describe() const = 0;
  /// Reads samples [lo, hi) (of the data set, no wrapping) into dense buffers (either nullable).
  virtual void read(int64_t lo, int64_t hi, void* inputs, void* labels) = 0;

  int64_t size = 0;
  DType input_dtype = DType::f32, label_dtype = DType::i64;
  std::vector<int64_t> input_shape, label_shape;

  std::string shapes() const {
    return std::to_string(size) + " samples, inputs " + shape_str(input_shape) + " " + dtype_name(input_dtype) +
           ", labels " + shape_str(label_shape) + " " + dtype_name(label_dtype);
  }
};

namespace {

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string join(const std::string& dir, const std::string& name) {
  return !dir.empty() && dir.back() == '/' ? dir + name : dir + "/" + name;
}

class NpySource final : public Dataset::Impl {
 public:
  NpySource(const std::string& dir, const std::string& inputs, const std::string& labels)
      : dir_(dir), in_(inputs), lab_(labels) {
    if (in_.shape().empty()) throw Error("dataset: " + inputs + " holds a scalar; it needs a first dim of samples");
    if (lab_.shape().empty()) throw Error("dataset: " + labels + " holds a scalar; it needs a first dim of samples");
    if (in_.shape()[0] != lab_.shape()[0])
      throw Error("dataset: " + inputs + " holds " + std::to_string(in_.shape()[0]) + " samples but " + labels +
                  " holds " + std::to_string(lab_.shape()[0]));
    if (in_.shape()[0] == 0) throw Error("dataset: " + inputs + " holds no samples");
    size = in_.shape()[0];
    input_dtype = in_.dtype();
    label_dtype = lab_.dtype();
    input_shape.assign(in_.shape().begin() + 1, in_.shape().end());
    label_shape.assign(lab_.shape().begin() + 1, lab_.shape().end());
  }
  const char* kind() const override { return "npy"; }
  std::string describe() const override { return "npy data set " + dir_ + ": " + shapes(); }
  void read(int64_t lo, int64_t hi, void* inputs, void* labels) override {
    if (inputs) in_.read_rows(lo, hi, inputs);
    if (labels) lab_.read_rows(lo, hi, labels);
  }

 private:
  std::string dir_;
  NpyReader in_, lab_;
};

class IdxSource final : public Dataset::Impl {
 public:
  IdxSource(const std::string& dir, Split split, const std::string& images, const std::string& labels)
      : dir_(dir), split_(split), img_(images), lab_(labels) {
    if (img_.dims().size() != 3)
      throw Error("dataset: " + images + " is not an image file (dims " + shape_str(img_.dims()) + ", need [N, H, W])");
    if (lab_.dims().size() != 1)
      throw Error("dataset: " + labels + " is not a label file (dims " + shape_str(lab_.dims()) + ", need [N])");
    if (img_.count() != lab_.count())
      throw Error("dataset: " + images + " holds " + std::to_string(img_.count()) + " images but " + labels +
                  " holds " + std::to_string(lab_.count()) + " labels");
    if (img_.count() == 0) throw Error("dataset: " + images + " holds no samples");
    size = img_.count();
    input_dtype = DType::f32;
    label_dtype = DType::i64;
    input_shape = {1, img_.dims()[1], img_.dims()[2]};
    label_shape = {};
  }
  const char* kind() const override { return "idx"; }
  std::string describe() const override {
    return std::string("IDX data set ") + dir_ + " (" + (split_ == Split::train ? "train" : "test") + "): " + shapes();
  }
  void read(int64_t lo, int64_t hi, void* inputs, void* labels) override {
    if (inputs) {
      const int64_t n = (hi - lo) * img_.sample_bytes();
      buf_.resize(static_cast<size_t>(n));
      img_.read(lo, hi, buf_.data());
      auto* out = static_cast<float*>(inputs);
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(buf_[static_cast<size_t>(i)]) / 255.f;
    }
    if (labels) {
      buf_.resize(static_cast<size_t>(hi - lo));
      lab_.read(lo, hi, buf_.data());
      auto* out = static_cast<int64_t*>(labels);
      for (int64_t i = 0; i < hi - lo; ++i) out[i] = buf_[static_cast<size_t>(i)];
    }
  }

 private:
  std::string dir_;
  Split split_;
  IdxReader img_, lab_;
  std::vector<uint8_t> buf_;
};

class SyntheticSource final : public Dataset::Impl {
 public:
  explicit SyntheticSource(const SyntheticSpec& s) : spec_(s) {
    if (s.samples <= 0) throw Error("dataset: a synthetic data set needs samples > 0");
    if (s.classes < 0 || s.input_classes < 0) throw Error("dataset: synthetic classes must be ≥ 0");
    for (int64_t d : s.input_shape)
      if (d < 0) throw Error("dataset: synthetic input shape " + shape_str(s.input_shape) + " has a negative dim");
    for (int64_t d : s.label_shape)
      if (d < 0) throw Error("dataset: synthetic label shape " + shape_str(s.label_shape) + " has a negative dim");
    size = s.samples;
    input_shape = s.input_shape;
    label_shape = s.label_shape;
    input_dtype = s.input_classes > 0 ? DType::i64 : DType::f32;
    label_dtype = s.classes > 0 ? DType::i64 : DType::f32;
    in_key_ = key_of("inputs", s.seed);
    lab_key_ = key_of("labels", s.seed);
  }
  const char* kind() const override { return "synthetic"; }
  std::string describe() const override {
    return "synthetic data set (seed " + std::to_string(spec_.seed) + "): " + shapes();
  }
  void read(int64_t lo, int64_t hi, void* inputs, void* labels) override {
    if (inputs) fill(in_key_, spec_.input_classes, numel_of(input_shape), lo, hi, inputs);
    if (labels) fill(lab_key_, spec_.classes, numel_of(label_shape), lo, hi, labels);
  }

 private:
  static void fill(uint64_t key, int64_t classes, int64_t per, int64_t lo, int64_t hi, void* dst) {
    const auto first = static_cast<uint64_t>(lo * per);
    const int64_t n = (hi - lo) * per;
    if (classes > 0) {
      auto* out = static_cast<int64_t*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = synthetic_label(key, first + static_cast<uint64_t>(i), classes);
    } else {
      auto* out = static_cast<float*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = synthetic_f32(key, first + static_cast<uint64_t>(i));
    }
  }

  SyntheticSpec spec_;
  uint64_t in_key_ = 0, lab_key_ = 0;
};

/// The first of `names` that exists in dir (empty when none does).
std::string find_first(const std::string& dir, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    std::string p = join(dir, n);
    if (exists(p)) return p;
  }
  return {};
}

}  // namespace

Dataset::Dataset(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Dataset::Dataset(Dataset&&) noexcept = default;
Dataset& Dataset::operator=(Dataset&&) noexcept = default;
Dataset::~Dataset() = default;

Dataset Dataset::open(const std::string& dir, Split split) {
  if (!exists(dir)) throw Error("dataset: " + dir + " does not exist");
  if (!is_dir(dir)) throw Error("dataset: " + dir + " is not a directory (give the directory that holds the files)");
  const std::string inputs = join(dir, "inputs.npy"), labels = join(dir, "labels.npy");
  if (exists(inputs) || exists(labels)) {
    if (!exists(inputs)) throw Error("dataset: " + inputs + " is missing (" + labels + " needs it)");
    if (!exists(labels)) throw Error("dataset: " + labels + " is missing (" + inputs + " needs it)");
    if (split == Split::train) return Dataset(std::make_unique<NpySource>(dir, inputs, labels));
    // The test split sits beside the training one: test_inputs.npy + test_labels.npy.
    const std::string test_inputs = join(dir, "test_inputs.npy"), test_labels = join(dir, "test_labels.npy");
    if (!exists(test_inputs) && !exists(test_labels))
      throw Error("dataset: " + dir + " has no test split (test_inputs.npy + test_labels.npy beside inputs.npy)");
    if (!exists(test_inputs)) throw Error("dataset: " + test_inputs + " is missing (" + test_labels + " needs it)");
    if (!exists(test_labels)) throw Error("dataset: " + test_labels + " is missing (" + test_inputs + " needs it)");
    return Dataset(std::make_unique<NpySource>(dir, test_inputs, test_labels));
  }
  const bool train = split == Split::train;
  const std::string images =
      train ? find_first(dir, {"train-images-idx3-ubyte", "train-images-idx3-ubyte.gz", "train-images.idx3-ubyte",
                               "train-images.idx3-ubyte.gz"})
            : find_first(dir, {"t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz", "t10k-images.idx3-ubyte",
                               "t10k-images.idx3-ubyte.gz"});
  const std::string lab =
      train ? find_first(dir, {"train-labels-idx1-ubyte", "train-labels-idx1-ubyte.gz", "train-labels.idx1-ubyte",
                               "train-labels.idx1-ubyte.gz"})
            : find_first(dir, {"t10k-labels-idx1-ubyte", "t10k-labels-idx1-ubyte.gz", "t10k-labels.idx1-ubyte",
                               "t10k-labels.idx1-ubyte.gz"});
  const char* prefix = train ? "train" : "t10k";
  if (images.empty() && lab.empty()) {
    const bool other = train ? !find_first(dir, {"t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"}).empty()
                             : !find_first(dir, {"train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"}).empty();
    if (other)
      throw Error("dataset: " + dir + " has no " + (train ? "train" : "test") + " split (" + prefix +
                  "-images-idx3-ubyte[.gz] is missing)");
    throw Error("dataset: " + dir +
                " holds neither inputs.npy + labels.npy nor IDX files (train-images-idx3-ubyte[.gz] + "
                "train-labels-idx1-ubyte[.gz], t10k-* for the test split)");
  }
  if (images.empty()) throw Error("dataset: " + join(dir, prefix) + "-images-idx3-ubyte[.gz] is missing (" + lab + " needs it)");
  if (lab.empty()) throw Error("dataset: " + join(dir, prefix) + "-labels-idx1-ubyte[.gz] is missing (" + images + " needs it)");
  return Dataset(std::make_unique<IdxSource>(dir, split, images, lab));
}

Dataset Dataset::synthetic(const SyntheticSpec& spec) { return Dataset(std::make_unique<SyntheticSource>(spec)); }

const char* Dataset::kind() const { return impl_->kind(); }
std::string Dataset::describe() const { return impl_->describe(); }
int64_t Dataset::size() const { return impl_->size; }
DType Dataset::input_dtype() const { return impl_->input_dtype; }
const std::vector<int64_t>& Dataset::input_shape() const { return impl_->input_shape; }
DType Dataset::label_dtype() const { return impl_->label_dtype; }
const std::vector<int64_t>& Dataset::label_shape() const { return impl_->label_shape; }

int64_t Dataset::sample_index(int64_t k, int64_t B, int64_t i) const {
  const auto n = static_cast<unsigned __int128>(impl_->size);
  return static_cast<int64_t>((static_cast<unsigned __int128>(k) * static_cast<uint64_t>(B) + static_cast<uint64_t>(i)) % n);
}

void Dataset::batch(int64_t k, int64_t B, int64_t lo, int64_t hi, void* inputs, void* labels) {
  if (k < 0 || B <= 0 || lo < 0 || hi < lo || hi > B)
    throw Error("dataset: bad batch request (iteration " + std::to_string(k) + ", batch " + std::to_string(B) +
                ", samples [" + std::to_string(lo) + ", " + std::to_string(hi) + "))");
  Impl& m = *impl_;
  const int64_t in_bytes = numel_of(m.input_shape) * dtype_size(m.input_dtype);
  const int64_t lab_bytes = numel_of(m.label_shape) * dtype_size(m.label_dtype);
  auto* in = static_cast<std::byte*>(inputs);
  auto* lab = static_cast<std::byte*>(labels);
  int64_t done = 0, s = hi > lo ? sample_index(k, B, lo) : 0;
  while (done < hi - lo) {
    const int64_t c = std::min(hi - lo - done, m.size - s);  // a contiguous run up to the data set's end
    m.read(s, s + c, in ? in + done * in_bytes : nullptr, lab ? lab + done * lab_bytes : nullptr);
    done += c;
    s = 0;
  }
}

Batch Dataset::batch(int64_t k, int64_t B, int64_t lo, int64_t hi) {
  const int64_t n = std::max<int64_t>(hi - lo, 0);
  std::vector<int64_t> is{n}, ls{n};
  is.insert(is.end(), impl_->input_shape.begin(), impl_->input_shape.end());
  ls.insert(ls.end(), impl_->label_shape.begin(), impl_->label_shape.end());
  if (k < 0 || B <= 0 || lo < 0 || hi < lo || hi > B) batch(k, B, lo, hi, nullptr, nullptr);  // throws
  Batch b{HostArray(impl_->input_dtype, is), HostArray(impl_->label_dtype, ls)};
  batch(k, B, lo, hi, b.inputs.bytes.data(), b.labels.bytes.data());
  return b;
}

}  // namespace ffrt
