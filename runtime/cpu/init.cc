// Parameter initialization and synthetic data: every value is drawn by Philox from (key, global
// row-major index of the element in the global tensor), so a box gets exactly the values the whole
// tensor has there, whatever the partition, strides or thread count.
#include <cmath>
#include <cstdint>

#include "loops.h"
#include "ffrt/dataset.h"
#include "ffrt/philox.h"

namespace ffrt {
namespace {

using cpu::require;

/// Checks that the box lies in its global tensor and that there is a buffer to write.
void check_box(const View& v, const char* who) {
  require(v.rank >= 0 && v.rank <= kMaxRank, who);
  for (int d = 0; d < v.rank; ++d)
    require(v.size[d] >= 0 && v.lo[d] >= 0 && v.hi(d) <= v.full[d], who);
  require(v.volume() == 0 || v.data != nullptr, who);
}

/// Calls f(global_index, offset) for every element of v's box: global_index is the element's
/// row-major index in the global tensor (extents `full`), offset its place in v's buffer. Rows (the
/// last dim) are spread over the context's threads.
template <typename F>
void for_each_element(Context& ctx, const View& v, F&& f) {
  const int r = v.rank;
  int64_t gstride[kMaxRank];
  for (int64_t d = r - 1, s = 1; d >= 0; --d) gstride[d] = s, s *= v.full[d];
  const int64_t n = cpu::line_length(v), glast = r > 0 ? gstride[r - 1] : 0, blast = r > 0 ? v.stride[r - 1] : 0;
  cpu::for_lines(ctx, v, [&](const int64_t* g) {
    int64_t index = 0, off = 0;
    for (int d = 0; d < r; ++d) index += g[d] * gstride[d], off += (g[d] - v.lo[d]) * v.stride[d];
    for (int64_t j = 0; j < n; ++j) f(index + j * glast, off + j * blast);
  });
}

/// N(0, 1) by Box-Muller from two words: u1 in (0, 1] (so the log is finite), u2 in [0, 1).
inline float normal01(uint32_t w0, uint32_t w1) {
  const double u1 = (static_cast<double>(w0 >> 8) + 1.0) * (1.0 / 16777216.0);
  const double u2 = static_cast<double>(w1 >> 8) * (1.0 / 16777216.0);
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

}  // namespace

void init_param(Context& ctx, Init init, int64_t fan_in, uint64_t key, const View& v) {
  check_box(v, "init_param: the view's box must lie inside its tensor and have a buffer");
  if (v.dtype == DType::i64) {
    require(init == Init::zeros || init == Init::ones, "init_param: only zeros and ones apply to an i64 tensor");
    const int64_t value = init == Init::ones ? 1 : 0;
    int64_t* p = v.i64();
    for_each_element(ctx, v, [&](int64_t, int64_t off) { p[off] = value; });
    return;
  }
  require(v.dtype == DType::f32, "init_param: unknown dtype");
  float* p = v.f32();
  switch (init) {
    case Init::zeros:
      for_each_element(ctx, v, [&](int64_t, int64_t off) { p[off] = 0.f; });
      return;
    case Init::ones:
      for_each_element(ctx, v, [&](int64_t, int64_t off) { p[off] = 1.f; });
      return;
    case Init::uniform_fan_in: {
      require(fan_in > 0, "init_param: uniform_fan_in needs fan_in > 0");
      const float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(fan_in)));
      for_each_element(ctx, v, [&](int64_t g, int64_t off) {
        p[off] = (2.f * uniform01(philox4x32(static_cast<uint64_t>(g), key).v[0]) - 1.f) * bound;
      });
      return;
    }
    case Init::normal:
      for_each_element(ctx, v, [&](int64_t g, int64_t off) {
        const Philox4 r = philox4x32(static_cast<uint64_t>(g), key);
        p[off] = normal01(r.v[0], r.v[1]);
      });
      return;
  }
  throw Error("init_param: unknown init");
}

void fill_synthetic(Context& ctx, uint64_t key, int64_t classes, const View& v) {
  check_box(v, "fill_synthetic: the view's box must lie inside its tensor and have a buffer");
  if (v.dtype == DType::i64) {
    require(classes > 0, "fill_synthetic: labels need classes > 0");
    int64_t* p = v.i64();
    for_each_element(ctx, v, [&](int64_t g, int64_t off) {
      p[off] = synthetic_label(key, static_cast<uint64_t>(g), classes);
    });
    return;
  }
  require(v.dtype == DType::f32, "fill_synthetic: unknown dtype");
  float* p = v.f32();
  for_each_element(ctx, v, [&](int64_t g, int64_t off) {
    p[off] = synthetic_f32(key, static_cast<uint64_t>(g));
  });
}

}  // namespace ffrt
