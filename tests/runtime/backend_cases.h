// The backend-neutral kernel cases: a fixed list of calls of every kernel of kernels.h, on whole
// tensors and on parts, whose outputs backend_cases writes to a safetensors file, so that two
// backends (the cpu reference and cuda) can be compared case by case (compare_backends.py).
//
// A case draws its inputs on the host from a generator seeded by its name (so adding a case
// changes no other), uploads them into backend memory and runs kernels there, through the
// backend-neutral interface only (make_context, allocate, upload, download, the kernels). Every
// buffer holds a box of a global tensor in a layout of its own (dense, misaligned, padded or with
// its dims permuted) with sentinels around the box; when the case ends, every buffer is downloaded
// whole: inputs must be unchanged, outputs unchanged outside their boxes, and the outputs' boxes
// are the case's results, "case/output".
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ffrt/kernels.h"
#include "ffrt/npy.h"
#include "ffrt/view.h"

namespace ffrt::cases {

using Shape = std::vector<int64_t>;

/// The box [lo, lo + size) of a global tensor.
struct Box {
  Shape lo, size;
};
/// The whole tensor of extents `s`.
Box whole(const Shape& s);

/// How a buffer lays out its box in backend memory.
enum class Layout {
  dense,      ///< row-major, nothing around it
  shifted,    ///< row-major, one sentinel in front and one behind: contiguous, aligned to one element only
  padded,     ///< row-major over the box grown by 0 to 2 sentinels on each side (at least 1 along the last dim)
  scrambled,  ///< padded, and the dims stored in a shuffled order, never row-major (rank >= 2)
};

/// splitmix64: a generator whose numbers are fixed by its definition, not by the standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [lo, hi), from 24 random bits (exact in float).
  float uniform(float lo, float hi) { return lo + (hi - lo) * (static_cast<float>(next() >> 40) * 0x1p-24f); }
  /// Uniform in [0, n).
  int64_t below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }

 private:
  uint64_t s_;
};

/// One case: its host data, its backend buffers and, once finished, its results.
class Case {
 public:
  Case(Context& ctx, const std::string& name);
  ~Case();
  Case(const Case&) = delete;
  Case& operator=(const Case&) = delete;

  Context& ctx;
  Rng rng;

  // ---- host tensors (global, dense row-major) ----
  /// f32, uniform in [lo, hi).
  HostArray uniform(const Shape& s, float lo = -1.f, float hi = 1.f);
  /// f64, uniform in [lo, hi).
  HostArray uniform64(const Shape& s, double lo = -1.0, double hi = 1.0);
  /// i64, uniform in [0, classes).
  HostArray ids(const Shape& s, int64_t classes);

  // ---- backend buffers ----
  /// A buffer holding the box `b` of `t` (an input: the kernels must not change it).
  View in(const HostArray& t, const Box& b, Layout l);
  View in(const HostArray& t, Layout l = Layout::dense) { return in(t, whole(t.shape), l); }
  /// The same from the box's values alone (`values` has the box's extents): for boxes of tensors
  /// too big for the host.
  View in(const HostArray& values, const Shape& full, const Box& b, Layout l);
  /// An output named `name` over the box `b` of a tensor of extents `full`, its box filled with NaN
  /// (the i64 sentinel for i64): the kernel must write all of it.
  View out(const std::string& name, const Shape& full, const Box& b, Layout l, DType dtype = DType::f32);
  View out(const std::string& name, const Shape& full, Layout l = Layout::dense, DType dtype = DType::f32) {
    return out(name, full, whole(full), l, dtype);
  }
  /// An output named `name` holding the box `b` of `init` (accumulating and in-place kernels).
  View inout(const std::string& name, const HostArray& init, const Box& b, Layout l);
  View inout(const std::string& name, const HostArray& init, Layout l = Layout::dense) {
    return inout(name, init, whole(init.shape), l);
  }
  /// A result computed on the host (what download returned).
  void record(const std::string& name, HostArray a);

  /// Downloads every buffer, checks the sentinels and the inputs, and adds the outputs to
  /// `results` as "case/name"; what is wrong goes to `problems`.
  void finish(std::map<std::string, HostArray>& results, std::vector<std::string>& problems);
  /// A hash (FNV-1a) of everything uploaded: two programs ran the case on the same inputs if equal.
  uint64_t input_digest() const { return digest_; }

 private:
  struct Buffer;
  View add(const std::string& name, bool written, DType dtype, const Shape& full, const Box& b, Layout l,
           const HostArray* init);

  std::string name_;
  uint64_t digest_;
  std::deque<Buffer> buffers_;
  std::vector<std::pair<std::string, HostArray>> recorded_;
};

/// The cases, in the order they run.
struct Registry {
  std::vector<std::pair<std::string, std::function<void(Case&)>>> cases;
  /// Adds a case; its name must be new and made of [A-Za-z0-9_./-] (names are JSON keys).
  void add(const std::string& name, std::function<void(Case&)> run);
};

void add_memory_cases(Registry& r);       // backend_cases_layout.cc
void add_layout_cases(Registry& r);       // backend_cases_layout.cc
void add_elementwise_cases(Registry& r);  // backend_cases_elementwise.cc
void add_conv_pool_cases(Registry& r);    // backend_cases_conv.cc
void add_contraction_cases(Registry& r);  // backend_cases_linear.cc
void add_norm_cases(Registry& r);         // backend_cases_norm.cc
void add_loss_cases(Registry& r);         // backend_cases_norm.cc
void add_param_cases(Registry& r);        // backend_cases_layout.cc
void add_data_error_cases(Registry& r);   // backend_cases_norm.cc (last: a backend may report them late)

// ---- small helpers the case files share ----

/// The global extents of a view as a Shape.
Shape full_of(const View& v);
/// `b` with dim d set to [lo, lo + size).
Box with_dim(Box b, int d, int64_t lo, int64_t size);
/// The view of nothing: kernels that may ignore an operand get it.
inline View none() { return View{}; }
/// A rank-1 view of n dense elements at p.
View flat_view(void* p, DType dtype, int64_t n);
/// The box `b` of a host tensor, dense.
HostArray host_box(const HostArray& t, const Box& b);
/// A dense host array holding the box `b` of a tensor of extents `full`, as a view.
View host_view(HostArray& a, const Shape& full, const Box& b);
/// "none", "relu", "sigmoid", "tanh", "gelu".
const char* act_name(Act a);
/// A [C] f32 view's box: channels [lo, lo + n).
inline Box range(int64_t lo, int64_t n) { return Box{{lo}, {n}}; }

}  // namespace ffrt::cases
