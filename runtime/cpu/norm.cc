// cpu backend: normalizations — batch norm (as partial statistics that parts reduce), layer norm
// over the last dim, and softmax along an axis.
//
// Batch norm follows PyTorch's training semantics over the whole batch, however it is split: each
// part sums x and x^2 over its box per channel (batch_norm_stats); the caller adds the parts' sums;
// every part then normalizes with mean = sum / count and the biased variance sumsq / count - mean^2,
// and the running variance gets the unbiased one. The statistics are f64 [2, C] views: the variance
// is a difference of two large terms when a channel's mean is large next to its spread, so partial
// sums are exchanged and added in double, never rounded to float. The backward goes the same way:
// partial sums of dy and dy * xhat per channel (which, reduced, are the bias and weight gradients),
// then dx per part.
// Sums are accumulated in double inside a part, per thread, and combined in thread order, so a
// result does not depend on scheduling. Layer norm and softmax need their normalized dim whole in
// every part; layer norm's weight and bias gradients are partial sums over the part's rows.
#include <algorithm>
#include <cmath>
#include <vector>

#include "loops.h"

namespace ffrt {

namespace {

using namespace cpu;  // the shared loops and checks (loops.h)

/// Whether a [C]-shaped per-channel view (global extent C) holds channels [c0, c0 + n).
bool holds_channels(const View& v, int64_t channels, int64_t c0, int64_t n) {
  return v.rank == 1 && v.dtype == DType::f32 && v.full[0] == channels &&
         (n == 0 || (v.lo[0] <= c0 && c0 + n <= v.hi(0)));
}

/// Element c (global) of a [C] view, and element (row, c) of a [2, C] (f64) statistics view.
inline float& chan(const View& v, int64_t c) { return v.f32()[(c - v.lo[0]) * v.stride[0]]; }
inline double& stat(const View& s, int64_t row, int64_t c) {
  return s.f64()[(row - s.lo[0]) * s.stride[0] + (c - s.lo[1]) * s.stride[1]];
}

// ---- batch norm ---------------------------------------------------------------------------------

/// Checks a batch-norm activation ([N, C] or [N, C, H, W], f32).
void require_bn_input(const View& x, const char* what) {
  require(x.dtype == DType::f32 && (x.rank == 2 || x.rank == 4), what);
}

/// Checks an f64 [2, C] statistics view holding channels [c0, c0 + n) (both rows when `both_rows`).
bool holds_stats(const View& s, int64_t channels, int64_t c0, int64_t n, bool both_rows) {
  if (s.rank != 2 || s.dtype != DType::f64 || s.full[0] != 2 || s.full[1] != channels) return false;
  if (both_rows && (s.lo[0] != 0 || s.size[0] != 2)) return false;
  return n == 0 || (s.lo[1] <= c0 && c0 + n <= s.hi(1));
}

/// Writes per-channel sums (rows 0 and 1, each `n` channels from c0) into the box of `stats`,
/// unrounded.
void write_stats(const View& stats, const std::vector<double>& sums, int64_t c0, int64_t n) {
  for (int64_t row = stats.lo[0]; row < stats.hi(0); ++row)
    for (int64_t c = stats.lo[1]; c < stats.hi(1); ++c)
      stat(stats, row, c) = sums[row * n + (c - c0)];
}

/// mean = sum / count and the biased variance from whole-batch statistics.
void moments(const View& stats, int64_t count, int64_t c, double& mean, double& var) {
  mean = stat(stats, 0, c) / static_cast<double>(count);
  var = std::max(0.0, stat(stats, 1, c) / static_cast<double>(count) - mean * mean);
}

// ---- rows of the last dim (layer norm) ------------------------------------------------------------

/// The box of v without its last dim: the rows of a layer norm.
View rows_of(const View& v) {
  View r = v;
  r.rank = v.rank - 1;
  return r;
}

/// Checks a per-row view (mean, invstd) holding the rows of `box`.
bool holds_rows(const View& v, const View& box) {
  const View rows = rows_of(box);
  return v.dtype == DType::f32 && holds(v, rows, rows);
}

/// Checks a [D] parameter view (layer norm's weight and bias) holding all of [0, d).
bool holds_param(const View* v, int64_t d) {
  return !v || (v->rank == 1 && v->dtype == DType::f32 && v->full[0] == d && v->lo[0] == 0 && v->size[0] == d);
}

int normalize_axis(int axis, int rank) {
  const int a = axis < 0 ? axis + rank : axis;
  require(a >= 0 && a < rank, "softmax: axis out of range");
  return a;
}

}  // namespace

void batch_norm_stats(Context& ctx, const View& x, const View& stats) {
  require_bn_input(x, "batch_norm_stats: x must be an f32 [N, C] or [N, C, H, W] view");
  const int64_t c0 = stats.lo[1], n = stats.size[1];
  require(holds_stats(stats, x.full[1], c0, n, false), "batch_norm_stats: stats must be an f64 [2, C] view");
  if (stats.volume() == 0) return;
  require(c0 >= x.lo[1] && c0 + n <= x.hi(1), "batch_norm_stats: x does not hold the channels of stats");
  View box = x;  // x's box over the channels of stats
  box.lo[1] = c0, box.size[1] = n;
  const int last = x.rank - 1;
  const std::vector<double> sums = line_sums(ctx, box, 2 * n, [&](const int64_t* g, double* s) {
    const float* p = x.f32() + x.offset_of(g);
    const int64_t len = box.size[last], step = x.stride[last];
    if (x.rank == 2) {  // the line runs across channels
      for (int64_t i = 0; i < len; ++i) {
        const double v = p[i * step];
        s[i] += v, s[n + i] += v * v;
      }
    } else {
      double sum = 0, sumsq = 0;
      for (int64_t i = 0; i < len; ++i) {
        const double v = p[i * step];
        sum += v, sumsq += v * v;
      }
      s[g[1] - c0] += sum, s[n + g[1] - c0] += sumsq;
    }
  });
  write_stats(stats, sums, c0, n);
}

void batch_norm_forward(Context& ctx, Act act, float eps, int64_t count, const View& x, const View& stats,
                        const View* weight, const View* bias, const View& y, const View& mean, const View& invstd) {
  require_bn_input(y, "batch_norm_forward: y must be an f32 [N, C] or [N, C, H, W] view");
  require(count > 0, "batch_norm_forward: count must be positive");
  const int64_t channels = y.full[1];
  // mean and invstd, over their boxes.
  for (const View* v : {&mean, &invstd}) {
    require(
        holds_channels(*v, channels, v->lo[0], v->size[0]) && holds_stats(stats, channels, v->lo[0], v->size[0], true),
        "batch_norm_forward: stats (an f64 [2, C] view) does not hold the channels of mean and invstd");
    for (int64_t c = v->lo[0]; c < v->hi(0); ++c) {
      double m, var;
      moments(stats, count, c, m, var);
      chan(*v, c) = static_cast<float>(v == &mean ? m : 1.0 / std::sqrt(var + eps));
    }
  }
  if (y.volume() == 0) return;
  const int64_t c0 = y.lo[1], nc = y.size[1];
  require(x.dtype == DType::f32 && holds(x, y, y), "batch_norm_forward: x does not hold y's box");
  require(holds_stats(stats, channels, c0, nc, true),
          "batch_norm_forward: stats (an f64 [2, C] view) does not hold y's channels");
  require(!weight || holds_channels(*weight, channels, c0, nc),
          "batch_norm_forward: weight does not hold y's channels");
  require(!bias || holds_channels(*bias, channels, c0, nc), "batch_norm_forward: bias does not hold y's channels");
  // y = (x - mean) * alpha + beta per channel, alpha = invstd * weight, beta = bias.
  std::vector<float> mu(nc), alpha(nc), beta(nc);
  for (int64_t i = 0; i < nc; ++i) {
    double m, var;
    moments(stats, count, c0 + i, m, var);
    mu[i] = static_cast<float>(m);
    alpha[i] = static_cast<float>((weight ? chan(*weight, c0 + i) : 1.0) / std::sqrt(var + eps));
    beta[i] = bias ? chan(*bias, c0 + i) : 0.f;
  }
  const int last = y.rank - 1;
  const int64_t len = y.size[last];
  for_lines(y, last, threads_for(ctx, y.volume(), y.volume() / len), [&](const int64_t* g) {
    const float* xp = x.f32() + x.offset_of(g);
    float* yp = y.f32() + y.offset_of(g);
    const int64_t sx = x.stride[last], sy = y.stride[last];
    for (int64_t i = 0; i < len; ++i) {
      const int64_t c = (y.rank == 2 ? g[1] + i : g[1]) - c0;
      const float v = (xp[i * sx] - mu[c]) * alpha[c] + beta[c];
      yp[i * sy] = act == Act::none ? v : apply_act(act, v);
    }
  });
}

void batch_norm_update_running(Context&, float momentum, int64_t count, const View& stats, const View& running_mean,
                               const View& running_var) {
  require(count > 1, "batch_norm_update_running: the unbiased variance needs more than one value per channel");
  const int64_t channels = stats.full[1];
  for (const View* v : {&running_mean, &running_var}) {
    require(
        holds_channels(*v, channels, v->lo[0], v->size[0]) && holds_stats(stats, channels, v->lo[0], v->size[0], true),
        "batch_norm_update_running: stats (an f64 [2, C] view) does not hold the channels of the running statistics");
    for (int64_t c = v->lo[0]; c < v->hi(0); ++c) {
      double m, var;
      moments(stats, count, c, m, var);
      const double batch = v == &running_mean ? m : var * count / (count - 1);
      float& r = chan(*v, c);
      r = static_cast<float>((1.0 - momentum) * r + momentum * batch);
    }
  }
}

void batch_norm_param_grads(Context&, const View& stats, const View* dweight, const View* dbias) {
  const int64_t channels = stats.full[1];
  for (const View* v : {dweight, dbias}) {
    if (!v) continue;
    require(holds_channels(*v, channels, v->lo[0], v->size[0]) &&
                holds_stats(stats, channels, v->lo[0], v->size[0], true),
            "batch_norm_param_grads: stats (an f64 [2, C] view) does not hold the channels of the gradients");
    for (int64_t c = v->lo[0]; c < v->hi(0); ++c) chan(*v, c) += static_cast<float>(stat(stats, v == dbias ? 0 : 1, c));
  }
}

void batch_norm_running_stats(Context&, int64_t count, const View& running_mean, const View& running_var,
                              const View& stats) {
  const int64_t channels = stats.full[1], c0 = stats.lo[1], n = stats.size[1];
  require(stats.dtype == DType::f64 && stats.rank == 2 && stats.lo[0] == 0 && stats.size[0] == 2 &&
              holds_channels(running_mean, channels, c0, n) && holds_channels(running_var, channels, c0, n),
          "batch_norm_running_stats: the running statistics do not hold the channels of stats (an f64 [2, C] view)");
  for (int64_t c = c0; c < c0 + n; ++c) {
    const double m = chan(running_mean, c), var = chan(running_var, c);
    stat(stats, 0, c) = m * static_cast<double>(count);
    stat(stats, 1, c) = (var + m * m) * static_cast<double>(count);
  }
}

void batch_norm_backward_stats(Context& ctx, const View& x, const View& dy, const View& mean, const View& invstd,
                               const View& stats) {
  require_bn_input(dy, "batch_norm_backward_stats: dy must be an f32 [N, C] or [N, C, H, W] view");
  const int64_t c0 = stats.lo[1], n = stats.size[1], channels = dy.full[1];
  require(holds_stats(stats, channels, c0, n, false), "batch_norm_backward_stats: stats must be an f64 [2, C] view");
  if (stats.volume() == 0) return;
  require(c0 >= dy.lo[1] && c0 + n <= dy.hi(1), "batch_norm_backward_stats: dy does not hold the channels of stats");
  require(holds_channels(mean, channels, c0, n) && holds_channels(invstd, channels, c0, n),
          "batch_norm_backward_stats: mean and invstd do not hold the channels of stats");
  View box = dy;  // dy's box over the channels of stats
  box.lo[1] = c0, box.size[1] = n;
  require(x.dtype == DType::f32 && holds(x, dy, box), "batch_norm_backward_stats: x does not hold dy's box");
  const int last = dy.rank - 1;
  // Row 0: sum dy; row 1: sum dy * (x - mean), times invstd at the end.
  std::vector<double> sums = line_sums(ctx, box, 2 * n, [&](const int64_t* g, double* s) {
    const float* xp = x.f32() + x.offset_of(g);
    const float* dp = dy.f32() + dy.offset_of(g);
    const int64_t len = box.size[last], sx = x.stride[last], sd = dy.stride[last];
    if (dy.rank == 2) {
      for (int64_t i = 0; i < len; ++i) {
        const double d = dp[i * sd];
        s[i] += d, s[n + i] += d * (xp[i * sx] - chan(mean, c0 + i));
      }
    } else {
      const float m = chan(mean, g[1]);
      double sum = 0, dot = 0;
      for (int64_t i = 0; i < len; ++i) {
        const double d = dp[i * sd];
        sum += d, dot += d * (xp[i * sx] - m);
      }
      s[g[1] - c0] += sum, s[n + g[1] - c0] += dot;
    }
  });
  for (int64_t i = 0; i < n; ++i) sums[n + i] *= chan(invstd, c0 + i);
  write_stats(stats, sums, c0, n);
}

void batch_norm_backward_data(Context& ctx, int64_t count, const View& x, const View& dy, const View& mean,
                              const View& invstd, const View* weight, const View& stats, const View& dx,
                              bool accumulate) {
  require_bn_input(dx, "batch_norm_backward_data: dx must be an f32 [N, C] or [N, C, H, W] view");
  require(count > 0, "batch_norm_backward_data: count must be positive");
  if (dx.volume() == 0) return;
  const int64_t c0 = dx.lo[1], nc = dx.size[1], channels = dx.full[1];
  require(x.dtype == DType::f32 && holds(x, dx, dx), "batch_norm_backward_data: x does not hold dx's box");
  require(dy.dtype == DType::f32 && holds(dy, dx, dx), "batch_norm_backward_data: dy does not hold dx's box");
  require(holds_channels(mean, channels, c0, nc) && holds_channels(invstd, channels, c0, nc) &&
              (!weight || holds_channels(*weight, channels, c0, nc)) && holds_stats(stats, channels, c0, nc, true),
          "batch_norm_backward_data: mean, invstd, weight or stats (an f64 [2, C] view) do not hold dx's channels");
  // dx = (dy - sum_dy / count - (x - mean) * invstd * sum_dy_xhat / count) * invstd * weight.
  std::vector<float> mu(nc), k1(nc), k2(nc), k3(nc);
  for (int64_t i = 0; i < nc; ++i) {
    const double is = chan(invstd, c0 + i);
    mu[i] = chan(mean, c0 + i);
    k1[i] = static_cast<float>(stat(stats, 0, c0 + i) / count);
    k2[i] = static_cast<float>(stat(stats, 1, c0 + i) / count * is);
    k3[i] = static_cast<float>(is * (weight ? chan(*weight, c0 + i) : 1.0));
  }
  const int last = dx.rank - 1;
  const int64_t len = dx.size[last];
  for_lines(dx, last, threads_for(ctx, dx.volume(), dx.volume() / len), [&](const int64_t* g) {
    const float* xp = x.f32() + x.offset_of(g);
    const float* dp = dy.f32() + dy.offset_of(g);
    float* op = dx.f32() + dx.offset_of(g);
    const int64_t sx = x.stride[last], sd = dy.stride[last], so = dx.stride[last];
    for (int64_t i = 0; i < len; ++i) {
      const int64_t c = (dx.rank == 2 ? g[1] + i : g[1]) - c0;
      store(op + i * so, (dp[i * sd] - k1[c] - (xp[i * sx] - mu[c]) * k2[c]) * k3[c], accumulate);
    }
  });
}

// ---- layer norm ---------------------------------------------------------------------------------

void layer_norm_forward(Context& ctx, float eps, const View& x, const View* weight, const View* bias, const View& y,
                        const View& mean, const View& invstd) {
  require(y.dtype == DType::f32 && y.rank >= 1, "layer_norm_forward: y must be an f32 view of rank >= 1");
  if (y.volume() == 0) return;
  const int last = y.rank - 1;
  const int64_t d = y.full[last];
  require(y.lo[last] == 0 && y.size[last] == d, "layer_norm_forward: y's box must hold whole rows");
  require(x.dtype == DType::f32 && holds(x, y, y), "layer_norm_forward: x does not hold y's box");
  require(holds_rows(mean, y) && holds_rows(invstd, y), "layer_norm_forward: mean and invstd do not hold y's rows");
  require(holds_param(weight, d) && holds_param(bias, d),
          "layer_norm_forward: weight and bias must be whole [D] views");
  const int64_t sx = x.stride[last], sy = y.stride[last];
  const int64_t sw = weight ? weight->stride[0] : 0, sb = bias ? bias->stride[0] : 0;
  for_lines(y, last, threads_for(ctx, y.volume(), y.volume() / d), [&](const int64_t* g) {
    const float* xp = x.f32() + x.offset_of(g);
    float* yp = y.f32() + y.offset_of(g);
    double sum = 0;
    for (int64_t i = 0; i < d; ++i) sum += xp[i * sx];
    const double m = sum / d;
    double sq = 0;
    for (int64_t i = 0; i < d; ++i) sq += (xp[i * sx] - m) * (xp[i * sx] - m);
    const double is = 1.0 / std::sqrt(sq / d + eps);
    mean.f32()[mean.offset_of(g)] = static_cast<float>(m);
    invstd.f32()[invstd.offset_of(g)] = static_cast<float>(is);
    const float mf = static_cast<float>(m), isf = static_cast<float>(is);
    for (int64_t i = 0; i < d; ++i) {
      float v = (xp[i * sx] - mf) * isf;
      if (weight) v *= weight->f32()[i * sw];
      if (bias) v += bias->f32()[i * sb];
      yp[i * sy] = v;
    }
  });
}

void layer_norm_backward(Context& ctx, const View& x, const View& dy, const View& mean, const View& invstd,
                         const View* weight, const View& dx, const View* dw, const View* db, bool accumulate) {
  require(dy.dtype == DType::f32 && dy.rank >= 1, "layer_norm_backward: dy must be an f32 view of rank >= 1");
  const int last = dy.rank - 1;
  const int64_t d = dy.full[last];
  require(holds_param(weight, d), "layer_norm_backward: weight must be a whole [D] view");
  const int64_t sw = weight ? weight->stride[0] : 0;
  auto w = [&](int64_t i) { return weight ? weight->f32()[i * sw] : 1.f; };

  // dx = invstd * (g - mean(g) - xhat * mean(g * xhat)) per row, g = dy * weight.
  if (dx.volume() > 0) {
    require(dx.dtype == DType::f32 && dx.rank == dy.rank && dx.lo[last] == 0 && dx.size[last] == d,
            "layer_norm_backward: dx's box must hold whole rows");
    require(x.dtype == DType::f32 && holds(x, dx, dx) && holds(dy, dx, dx),
            "layer_norm_backward: x and dy do not hold dx's box");
    require(holds_rows(mean, dx) && holds_rows(invstd, dx),
            "layer_norm_backward: mean and invstd do not hold dx's rows");
    const int64_t sx = x.stride[last], sd = dy.stride[last], so = dx.stride[last];
    for_lines(dx, last, threads_for(ctx, dx.volume(), dx.volume() / d), [&](const int64_t* g) {
      const float* xp = x.f32() + x.offset_of(g);
      const float* dp = dy.f32() + dy.offset_of(g);
      float* op = dx.f32() + dx.offset_of(g);
      const float m = mean.f32()[mean.offset_of(g)], is = invstd.f32()[invstd.offset_of(g)];
      double sum_g = 0, sum_gx = 0;
      for (int64_t i = 0; i < d; ++i) {
        const double gi = static_cast<double>(dp[i * sd]) * w(i);
        sum_g += gi, sum_gx += gi * (xp[i * sx] - m) * is;
      }
      const float a = static_cast<float>(sum_g / d), b = static_cast<float>(sum_gx / d);
      for (int64_t i = 0; i < d; ++i) {
        const float xhat = (xp[i * sx] - m) * is;
        store(op + i * so, is * (dp[i * sd] * w(i) - a - xhat * b), accumulate);
      }
    });
  }

  // dw = sum over dy's rows of dy * xhat, db = sum of dy, over their boxes of [0, D).
  if ((dw && dw->volume() > 0) || (db && db->volume() > 0)) {
    for (const View* v : {dw, db})
      require(!v || (v->rank == 1 && v->dtype == DType::f32 && v->full[0] == d),
              "layer_norm_backward: dw and db must be [D] views");
    if (dy.volume() > 0) {
      require(x.dtype == DType::f32 && holds(x, dy, dy), "layer_norm_backward: x does not hold dy's box");
      require(dy.lo[last] == 0 && dy.size[last] == d, "layer_norm_backward: dy's box must hold whole rows");
      require(holds_rows(mean, dy) && holds_rows(invstd, dy),
              "layer_norm_backward: mean and invstd do not hold dy's rows");
    }
    const int64_t sx = x.stride[last], sd = dy.stride[last];
    const std::vector<double> sums = line_sums(ctx, dy, 2 * d, [&](const int64_t* g, double* s) {
      const float* xp = x.f32() + x.offset_of(g);
      const float* dp = dy.f32() + dy.offset_of(g);
      const float m = mean.f32()[mean.offset_of(g)], is = invstd.f32()[invstd.offset_of(g)];
      for (int64_t i = 0; i < d; ++i) {
        const double dv = dp[i * sd];
        s[i] += dv * ((xp[i * sx] - m) * is);
        s[d + i] += dv;
      }
    });
    for (int k = 0; k < 2; ++k) {
      const View* v = k == 0 ? dw : db;
      if (!v) continue;
      for (int64_t i = v->lo[0]; i < v->hi(0); ++i)
        store(v->f32() + (i - v->lo[0]) * v->stride[0], static_cast<float>(sums[k * d + i]), accumulate);
    }
  }
}

// ---- softmax ------------------------------------------------------------------------------------

namespace {

/// Lines along the axis are processed this many side by side along the last dim (when the axis is
/// not the last dim), so that the inner loops run over adjacent elements.
constexpr int64_t kGroup = 64;

/// Calls f(g, m) for every group of lines of `box` along `axis`: m lines (m <= kGroup) starting at
/// global coordinates g and side by side along the last dim; single lines when `axis` is the last dim.
template <typename F>
void for_line_groups(Context& ctx, const View& box, int axis, F&& f) {
  const int last = box.rank - 1;
  const int64_t width = axis == last ? 1 : kGroup;
  View groups = box;  // one element per group of lines
  groups.size[last] = (box.size[last] + width - 1) / width;
  for_lines(groups, axis, threads_for(ctx, box.volume(), groups.volume() / box.size[axis]), [&](const int64_t* g) {
    int64_t h[kMaxRank];
    std::copy(g, g + box.rank, h);
    h[last] = box.lo[last] + (g[last] - box.lo[last]) * width;
    f(static_cast<const int64_t*>(h), std::min(width, box.hi(last) - h[last]));
  });
}

}  // namespace

void softmax_forward(Context& ctx, int axis, const View& x, const View& y) {
  require(y.dtype == DType::f32 && y.rank >= 1, "softmax_forward: y must be an f32 view of rank >= 1");
  const int a = normalize_axis(axis, y.rank), last = y.rank - 1;
  if (y.volume() == 0) return;
  const int64_t n = y.full[a];
  require(y.lo[a] == 0 && y.size[a] == n, "softmax_forward: y's box must hold the whole axis");
  require(x.dtype == DType::f32 && holds(x, y, y), "softmax_forward: x does not hold y's box");
  const int64_t sx = x.stride[a], sy = y.stride[a], lx = x.stride[last], ly = y.stride[last];
  for_line_groups(ctx, y, a, [&](const int64_t* g, int64_t m) {
    const float* xp = x.f32() + x.offset_of(g);
    float* yp = y.f32() + y.offset_of(g);
    float mx[kGroup];
    double sum[kGroup];
    std::fill(mx, mx + m, -INFINITY);
    std::fill(sum, sum + m, 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) mx[j] = std::max(mx[j], xp[i * sx + j * lx]);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) {
        const float e = std::exp(xp[i * sx + j * lx] - mx[j]);
        yp[i * sy + j * ly] = e;
        sum[j] += e;
      }
    float inv[kGroup];
    for (int64_t j = 0; j < m; ++j) inv[j] = static_cast<float>(1.0 / sum[j]);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) yp[i * sy + j * ly] *= inv[j];
  });
}

void softmax_backward(Context& ctx, int axis, const View& y, const View& dy, const View& dx, bool accumulate) {
  require(dx.dtype == DType::f32 && dx.rank >= 1, "softmax_backward: dx must be an f32 view of rank >= 1");
  const int a = normalize_axis(axis, dx.rank), last = dx.rank - 1;
  if (dx.volume() == 0) return;
  const int64_t n = dx.full[a];
  require(dx.lo[a] == 0 && dx.size[a] == n, "softmax_backward: dx's box must hold the whole axis");
  require(y.dtype == DType::f32 && holds(y, dx, dx) && dy.dtype == DType::f32 && holds(dy, dx, dx),
          "softmax_backward: y and dy do not hold dx's box");
  const int64_t sy = y.stride[a], sd = dy.stride[a], so = dx.stride[a];
  const int64_t ly = y.stride[last], ld = dy.stride[last], lo = dx.stride[last];
  // dx = y * (dy - sum(dy * y)) along the axis.
  for_line_groups(ctx, dx, a, [&](const int64_t* g, int64_t m) {
    const float* yp = y.f32() + y.offset_of(g);
    const float* dp = dy.f32() + dy.offset_of(g);
    float* op = dx.f32() + dx.offset_of(g);
    double dot[kGroup];
    std::fill(dot, dot + m, 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) dot[j] += static_cast<double>(yp[i * sy + j * ly]) * dp[i * sd + j * ld];
    float dotf[kGroup];
    for (int64_t j = 0; j < m; ++j) dotf[j] = static_cast<float>(dot[j]);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j)
        store(op + i * so + j * lo, yp[i * sy + j * ly] * (dp[i * sd + j * ld] - dotf[j]), accumulate);
  });
}

}  // namespace ffrt
