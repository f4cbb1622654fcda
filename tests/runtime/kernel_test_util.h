// Helpers shared by the runtime tests (tests/runtime/*_test.cc): shapes and boxes, whole tensors
// (f32, and f64 for batch-norm statistics), boxes of tensors copied into buffers of their own with
// scrambled layouts (a NaN sentinel around them), random grids of parts, comparisons at float
// tolerance, naive activation references, and temporary directories and the Python interpreter for
// the tests that run Python.
//
// Header-only; every test file includes it and says `using namespace ffrt::test;` (or names what it
// uses).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ffrt/kernels.h"
#include "ffrt/view.h"

namespace ffrt::test {

// ---- shapes, boxes and whole tensors ---------------------------------------------------------------

using ffrt::Act;
using ffrt::DType;
using ffrt::View;
using Shape = std::vector<int64_t>;

inline int64_t volume(const Shape& s) {
  int64_t v = 1;
  for (int64_t e : s) v *= e;
  return v;
}

/// Calls f(g) for every index g of the box [lo, lo + size), row-major (once for rank 0).
template <typename F>
void for_box(const Shape& lo, const Shape& size, F&& f) {
  for (int64_t s : size)
    if (s == 0) return;
  Shape g = lo;
  const int r = static_cast<int>(size.size());
  while (true) {
    f(static_cast<const Shape&>(g));
    int d = r - 1;
    for (; d >= 0; --d) {
      if (++g[d] < lo[d] + size[d]) break;
      g[d] = lo[d];
    }
    if (d < 0) return;
  }
}

/// Calls f(g) for every element of v's box, row-major, g its global coordinates (const int64_t*).
template <typename F>
void for_view(const View& v, F&& f) {
  for_box(Shape(v.lo, v.lo + v.rank), Shape(v.size, v.size + v.rank), [&](const Shape& g) { f(g.data()); });
}

inline int64_t flat_index(const Shape& full, const Shape& g) {
  int64_t i = 0;
  for (size_t d = 0; d < full.size(); ++d) i = i * full[d] + g[d];
  return i;
}

struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  int64_t range(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen); }
  double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(gen); }
  bool chance(double p) { return uniform(0, 1) < p; }
};

inline Shape random_shape(Rng& rng, int rank, int64_t max_extent) {
  Shape s(rank);
  for (auto& e : s) e = rng.range(1, max_extent);
  return s;
}

/// A whole tensor, dense row-major: f32 (Tensor) or f64 (Tensor64, batch-norm statistics).
template <typename T>
struct TensorT {
  using value_type = T;
  Shape shape;
  std::vector<T> v;
  explicit TensorT(Shape s = {}, T value = 0) : shape(std::move(s)), v(volume(shape), value) {}
  T& at(const Shape& g) { return v[flat_index(shape, g)]; }
  T at(const Shape& g) const { return v[flat_index(shape, g)]; }
};
using Tensor = TensorT<float>;
using Tensor64 = TensorT<double>;

/// The dtype of a tensor's elements.
template <typename T>
constexpr DType dtype_of() {
  return std::is_same_v<T, double> ? DType::f64 : std::is_same_v<T, int64_t> ? DType::i64 : DType::f32;
}
/// A dense row-major view of a whole tensor.
template <typename T>
View view_of(TensorT<T>& t) {
  const Shape zero(t.shape.size(), 0);
  return ffrt::make_view(t.v.data(), dtype_of<T>(), static_cast<int>(t.shape.size()), t.shape.data(), zero.data(),
                         t.shape.data());
}

inline Tensor random_tensor(const Shape& s, Rng& rng, double lo = -1, double hi = 1) {
  Tensor t(s);
  for (auto& x : t.v) x = static_cast<float>(rng.uniform(lo, hi));
  return t;
}

struct Box {
  Shape lo, size;
};
inline Box whole_box(const Shape& s) { return Box{Shape(s.size(), 0), s}; }

// ---- boxes in buffers of their own ------------------------------------------------------------------

constexpr uint32_t kSentinelBits = 0x7fc0dead;  // a NaN: reading it poisons the result
constexpr uint64_t kSentinelF64Bits = 0x7ff80000deadbeefULL;  // the same in double
constexpr int64_t kSentinelI64 = -0x5eadbeefLL;

/// A box of a global tensor in a buffer of its own. With an Rng the layout is random: the dims are
/// stored in a random order with padding around the box, and the padding holds a NaN sentinel that
/// kernels must neither read (it would poison their results) nor write (padding_intact checks).
class Buf {
 public:
  View view;

  Buf(DType dtype, const Shape& full, const Box& box, Rng* rng = nullptr) {
    const int r = static_cast<int>(full.size());
    Shape ext(r), pad_lo(r), stride(r);
    std::vector<int> order(r);
    for (int d = 0; d < r; ++d) {
      pad_lo[d] = rng ? rng->range(0, 2) : 0;
      ext[d] = box.size[d] + pad_lo[d] + (rng ? rng->range(0, 2) : 0);
      order[d] = d;
    }
    if (rng) std::shuffle(order.begin(), order.end(), rng->gen);
    int64_t s = 1, offset = 0;
    for (int k = r - 1; k >= 0; --k) stride[order[k]] = s, s *= ext[order[k]];
    for (int d = 0; d < r; ++d) offset += pad_lo[d] * stride[d];
    const size_t total = static_cast<size_t>(std::max<int64_t>(s, 1));
    view.dtype = dtype;
    view.rank = r;
    for (int d = 0; d < r; ++d) {
      view.lo[d] = box.lo[d], view.size[d] = box.size[d], view.stride[d] = stride[d], view.full[d] = full[d];
    }
    if (dtype == DType::f32) {
      float nan;
      std::memcpy(&nan, &kSentinelBits, 4);
      f_.assign(total, nan);
      view.data = f_.data() + offset;
    } else if (dtype == DType::f64) {
      double nan;
      std::memcpy(&nan, &kSentinelF64Bits, 8);
      d_.assign(total, nan);
      view.data = d_.data() + offset;
    } else {
      i_.assign(total, kSentinelI64);
      view.data = i_.data() + offset;
    }
    in_box_.assign(total, 0);
    for_box(box.lo, box.size, [&](const Shape& g) { in_box_[offset + off(g)] = 1; });
  }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;

  int64_t off(const Shape& g) const { return view.offset_of(g.data()); }
  Shape lo() const { return Shape(view.lo, view.lo + view.rank); }
  Shape size() const { return Shape(view.size, view.size + view.rank); }
  float& f(const Shape& g) { return view.f32()[off(g)]; }
  double& d(const Shape& g) { return view.f64()[off(g)]; }
  int64_t& i(const Shape& g) { return view.i64()[off(g)]; }

  /// Copies the box's elements from a whole tensor (of the buffer's dtype), or sets them all.
  Buf& load(const Tensor& t) {
    for_box(lo(), size(), [&](const Shape& g) { f(g) = t.at(g); });
    return *this;
  }
  Buf& load(const Tensor64& t) {
    for_box(lo(), size(), [&](const Shape& g) { d(g) = t.at(g); });
    return *this;
  }
  Buf& load(const std::vector<int64_t>& t) {
    Shape full(view.full, view.full + view.rank);
    for_box(lo(), size(), [&](const Shape& g) { i(g) = t[flat_index(full, g)]; });
    return *this;
  }
  Buf& set(float value) {
    if (view.dtype == DType::f64)
      for_box(lo(), size(), [&](const Shape& g) { d(g) = value; });
    else
      for_box(lo(), size(), [&](const Shape& g) { f(g) = value; });
    return *this;
  }
  /// Copies the box's elements into a whole tensor (of the buffer's dtype).
  void store_into(Tensor& t) {
    for_box(lo(), size(), [&](const Shape& g) { t.at(g) = f(g); });
  }
  void store_into(Tensor64& t) {
    for_box(lo(), size(), [&](const Shape& g) { t.at(g) = d(g); });
  }
  Tensor whole() {
    Tensor t(Shape(view.full, view.full + view.rank));
    store_into(t);
    return t;
  }
  Tensor64 whole64() {
    Tensor64 t(Shape(view.full, view.full + view.rank));
    store_into(t);
    return t;
  }
  bool padding_intact() const {
    for (size_t k = 0; k < in_box_.size(); ++k) {
      if (in_box_[k]) continue;
      if (!f_.empty()) {
        uint32_t bits;
        std::memcpy(&bits, &f_[k], 4);
        if (bits != kSentinelBits) return false;
      } else if (!d_.empty()) {
        uint64_t bits;
        std::memcpy(&bits, &d_[k], 8);
        if (bits != kSentinelF64Bits) return false;
      } else if (i_[k] != kSentinelI64) {
        return false;
      }
    }
    return true;
  }

 private:
  std::vector<float> f_;
  std::vector<double> d_;
  std::vector<int64_t> i_;
  std::vector<char> in_box_;
};

/// A buffer over a box of `t`'s tensor holding `t`'s values, with a random layout.
inline std::unique_ptr<Buf> part_of(const Tensor& t, const Box& box, Rng& rng) {
  auto b = std::make_unique<Buf>(DType::f32, t.shape, box, &rng);
  b->load(t);
  return b;
}
inline std::unique_ptr<Buf> part_of(const Tensor64& t, const Box& box, Rng& rng) {
  auto b = std::make_unique<Buf>(DType::f64, t.shape, box, &rng);
  b->load(t);
  return b;
}
/// An output buffer over a box, its elements NaN (or `value`); f32, or `dtype`.
inline std::unique_ptr<Buf> out_buf(const Shape& full, const Box& box, Rng& rng, float value = NAN,
                                    DType dtype = DType::f32) {
  auto b = std::make_unique<Buf>(dtype, full, box, &rng);
  b->set(value);
  return b;
}

// ---- random grids of parts ------------------------------------------------------------------------

/// Random uneven ranges covering [0, n), 1 to max_parts of them, some possibly empty.
inline std::vector<std::pair<int64_t, int64_t>> split_range(int64_t n, int max_parts, Rng& rng) {
  std::vector<int64_t> cuts{0, n};
  for (int64_t k = rng.range(1, max_parts); k > 1; --k) cuts.push_back(rng.range(0, n));
  std::sort(cuts.begin(), cuts.end());
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) ranges.push_back({cuts[i], cuts[i + 1] - cuts[i]});
  return ranges;
}

/// The boxes of a random uneven grid over `shape` that splits the dims where `splittable` says so.
inline std::vector<Box> random_grid(const Shape& shape, Rng& rng, std::vector<bool> splittable = {},
                                              int max_parts = 3) {
  if (splittable.empty()) splittable.assign(shape.size(), true);
  std::vector<Box> boxes{Box{}};
  for (size_t d = 0; d < shape.size(); ++d) {
    auto ranges =
        splittable[d] ? split_range(shape[d], max_parts, rng) : std::vector<std::pair<int64_t, int64_t>>{{0, shape[d]}};
    std::vector<Box> next;
    for (const Box& b : boxes)
      for (auto [lo, n] : ranges) {
        Box c = b;
        c.lo.push_back(lo);
        c.size.push_back(n);
        next.push_back(c);
      }
    boxes = std::move(next);
  }
  return boxes;
}

// ---- comparisons -----------------------------------------------------------------------------------

/// Expects got ≈ want: |got - want| <= rtol * (|want| + mean |want|) + atol elementwise (NaN fails).
/// got holds floats or doubles (f64 statistics).
template <typename G>
void expect_close(const std::vector<G>& got, const std::vector<double>& want, double rtol, const std::string& what,
                  double atol = 0) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double mean_abs = 0;
  for (double w : want) mean_abs += std::abs(w);
  mean_abs = want.empty() ? 0 : mean_abs / want.size();
  int bad = 0;
  for (size_t k = 0; k < got.size(); ++k) {
    const double tol = rtol * (std::abs(want[k]) + mean_abs) + atol + 1e-30;
    if (!(std::abs(got[k] - want[k]) <= tol) && ++bad <= 5)
      ADD_FAILURE() << what << ": element " << k << " is " << got[k] << ", want " << want[k];
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << got.size() << " elements differ";
}
template <typename G>
void expect_close(const std::vector<G>& got, const std::vector<float>& want, double rtol, const std::string& what,
                  double atol = 0) {
  expect_close(got, std::vector<double>(want.begin(), want.end()), rtol, what, atol);
}
inline void expect_close(double got, double want, double rtol, const std::string& what, double atol = 0) {
  expect_close(std::vector<float>{static_cast<float>(got)}, std::vector<double>{want}, rtol, what, atol);
}

/// Expects sums got ≈ want: |got - want| <= rtol * |want| + 1e-5 * abs_sum + atol elementwise, abs_sum
/// the sum of the terms' magnitudes (a float sum's rounding error scales with it, not with the sum).
template <typename G>
void expect_close_sums(const std::vector<G>& got, const std::vector<double>& want, const std::vector<double>& abs_sum,
                       double rtol, const std::string& what, double atol = 0) {
  ASSERT_EQ(got.size(), want.size()) << what;
  ASSERT_EQ(abs_sum.size(), want.size()) << what;
  int bad = 0;
  for (size_t k = 0; k < got.size(); ++k) {
    const double tol = rtol * std::abs(want[k]) + 1e-5 * abs_sum[k] + atol + 1e-30;
    if (!(std::abs(got[k] - want[k]) <= tol) && ++bad <= 5)
      ADD_FAILURE() << what << ": element " << k << " is " << got[k] << ", want " << want[k];
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << got.size() << " elements differ";
}

/// Expects |got - ref| <= rtol * (|ref| + rms(ref)) everywhere: relative error, with cancellation
/// (a tiny element of a large sum) measured against the tensor's scale.
inline void expect_close_rms(const std::vector<float>& got, const std::vector<double>& ref, double rtol,
                             const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  double rms = 0;
  for (double x : ref) rms += x * x;
  rms = std::sqrt(rms / std::max<size_t>(ref.size(), 1)) + 1e-30;
  size_t bad = 0, worst = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double ratio = std::abs(got[i] - ref[i]) / (rtol * (std::abs(ref[i]) + rms));
    if (!(ratio <= 1.0)) {
      ++bad;
      if (!(ratio <= worst_ratio)) worst_ratio = ratio, worst = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << ref.size() << " elements off; worst at " << worst << ": got "
                     << got[worst] << ", want " << ref[worst];
}
inline void expect_close_rms(const std::vector<float>& got, const std::vector<float>& ref, double rtol,
                             const std::string& what) {
  expect_close_rms(got, std::vector<double>(ref.begin(), ref.end()), rtol, what);
}

// ---- references, contexts ---------------------------------------------------------------------------

/// act(x) in double: the naive reference of the activations (exact GELU, as PyTorch's default).
inline double ref_act(Act a, double x) {
  switch (a) {
    case Act::none: return x;
    case Act::relu: return x > 0 ? x : 0;
    case Act::sigmoid: return 1 / (1 + std::exp(-x));
    case Act::tanh: return std::tanh(x);
    case Act::gelu: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
  }
  return x;
}

inline std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t d = 0; d < s.size(); ++d) {  // (not `"," + to_string`: GCC 12's -Wrestrict misfires on it)
    if (d) out += ',';
    out += std::to_string(s[d]);
  }
  return out + "]";
}

inline auto make_ctx(int threads = 1) { return ffrt::make_context({.threads = threads}); }

// ---- files and Python -------------------------------------------------------------------------------

/// The Python interpreter tests run: $FFC_PYTHON, else /usr/bin/python3 when present, else python3.
inline std::string python() {
  if (const char* p = std::getenv("FFC_PYTHON")) return p;
  return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

/// A fresh temporary directory, removed with its contents when the object goes.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "ffrt_test") {
    std::string t = (std::filesystem::temp_directory_path() / (prefix + "_XXXXXX")).string();
    if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
    path = t;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

}  // namespace ffrt::test
