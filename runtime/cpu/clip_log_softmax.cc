// cpu kernels: clip (ReLU6 and hardtanh) and log-softmax.
#include <algorithm>
#include <cmath>

#include "loops.h"

namespace ffrt {

namespace {

void check_whole_axis(const View& v, int axis) {
  cpu::require(axis >= 0 && axis < v.rank, "log_softmax: axis out of range");
  cpu::require(v.lo[axis] == 0 && v.size[axis] == v.full[axis], "log_softmax: the axis must be whole in every part");
}

/// Calls f(g) for the first element of every line of `v`'s box along `axis`; g is mutable so the
/// caller can walk the line by setting g[axis].
template <typename F>
void for_each_line(const View& v, int axis, F&& f) {
  View starts = v;
  starts.size[axis] = 1;
  cpu::for_each_index(starts, [&](const int64_t* g0) {
    int64_t g[kMaxRank];
    std::copy(g0, g0 + v.rank, g);
    f(g);
  });
}

}  // namespace

void clip_forward(Context&, float lo, float hi, const View& x, const View& y) {
  cpu::require(cpu::box_inside(y, x), "clip: x does not hold y's box");
  const float* xs = x.f32();
  float* ys = y.f32();
  cpu::for_each_index(y, [&](const int64_t* g) { ys[y.offset_of(g)] = std::min(std::max(xs[x.offset_of(g)], lo), hi); });
}

void clip_backward(Context&, float lo, float hi, const View& x, const View& dy, const View& dx, bool accumulate) {
  cpu::require(cpu::box_inside(dx, x) && cpu::box_inside(dx, dy), "clip_backward: views do not hold dx's box");
  const float *xs = x.f32(), *dys = dy.f32();
  float* dxs = dx.f32();
  cpu::for_each_index(dx, [&](const int64_t* g) {
    float v = xs[x.offset_of(g)];
    float d = (v > lo && v < hi) ? dys[dy.offset_of(g)] : 0.f;
    cpu::store(dxs + dx.offset_of(g), d, accumulate);
  });
}

void log_softmax_forward(Context&, int axis, const View& x, const View& y) {
  check_whole_axis(y, axis);
  cpu::require(cpu::box_inside(y, x), "log_softmax: x does not hold y's box");
  const float* xs = x.f32();
  float* ys = y.f32();
  for_each_line(y, axis, [&](int64_t* g) {
    double m = -INFINITY, sum = 0;
    for (g[axis] = 0; g[axis] < y.size[axis]; ++g[axis]) m = std::max(m, static_cast<double>(xs[x.offset_of(g)]));
    for (g[axis] = 0; g[axis] < y.size[axis]; ++g[axis]) sum += std::exp(static_cast<double>(xs[x.offset_of(g)]) - m);
    double lse = m + std::log(sum);
    for (g[axis] = 0; g[axis] < y.size[axis]; ++g[axis])
      ys[y.offset_of(g)] = static_cast<float>(static_cast<double>(xs[x.offset_of(g)]) - lse);
  });
}

void log_softmax_backward(Context&, int axis, const View& y, const View& dy, const View& dx, bool accumulate) {
  check_whole_axis(dx, axis);
  cpu::require(cpu::box_inside(dx, y) && cpu::box_inside(dx, dy), "log_softmax_backward: views do not hold dx's box");
  const float *ys = y.f32(), *dys = dy.f32();
  float* dxs = dx.f32();
  for_each_line(dx, axis, [&](int64_t* g) {
    double sum = 0;
    for (g[axis] = 0; g[axis] < dx.size[axis]; ++g[axis]) sum += dys[dy.offset_of(g)];
    for (g[axis] = 0; g[axis] < dx.size[axis]; ++g[axis]) {
      float d = static_cast<float>(dys[dy.offset_of(g)] - std::exp(static_cast<double>(ys[y.offset_of(g)])) * sum);
      cpu::store(dxs + dx.offset_of(g), d, accumulate);
    }
  });
}

}  // namespace ffrt
