// Backend cases: normalizations — batch norm (f64 statistics of parts, forward with each fused
// activation, running statistics, backward sums and data), layer norm, softmax and log-softmax
// along any axis — the losses (softmax cross-entropy, MSE) and count_correct on whole tensors and
// on parts, and data errors (ids and labels out of range must throw ffrt::Error).
#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>

#include "backend_cases.h"

namespace ffrt::cases {

namespace {

using L = Layout;

constexpr float kEps = 1e-5f;

/// Elements of x per channel (dim 1) of a [N, C] or [N, C, H, W] tensor.
int64_t per_channel(const Shape& s) { return s[0] * (s.size() == 4 ? s[2] * s[3] : 1); }

/// Calls f(channel, k) for every element k of a dense [N, C] or [N, C, H, W] tensor.
template <typename F>
void for_channels(const Shape& s, F&& f) {
  const int64_t C = s[1], inner = s.size() == 4 ? s[2] * s[3] : 1;
  for (int64_t k = 0; k < s[0] * C * inner; ++k) f((k / inner) % C, k);
}

/// Whole-batch statistics of x, as batch_norm_stats sums them: f64 [2, C] (sum, sum of squares).
HostArray host_stats(const HostArray& x) {
  HostArray s(DType::f64, {2, x.shape[1]});
  const int64_t C = x.shape[1];
  for_channels(x.shape, [&](int64_t c, int64_t k) {
    const double v = x.f32()[k];
    s.f64()[c] += v, s.f64()[C + c] += v * v;
  });
  return s;
}

/// mean and invstd (f32 [C]) from whole-batch statistics.
void host_moments(const HostArray& stats, int64_t count, HostArray& mean, HostArray& invstd) {
  const int64_t C = stats.shape[1];
  mean = HostArray(DType::f32, {C});
  invstd = HostArray(DType::f32, {C});
  for (int64_t c = 0; c < C; ++c) {
    const double m = stats.f64()[c] / count, var = std::max(0.0, stats.f64()[C + c] / count - m * m);
    mean.f32()[c] = static_cast<float>(m);
    invstd.f32()[c] = static_cast<float>(1.0 / std::sqrt(var + kEps));
  }
}

/// The reduced backward sums: f64 [2, C] (sum dy, sum dy * xhat).
HostArray host_backward_stats(const HostArray& x, const HostArray& dy, const HostArray& mean, const HostArray& invstd) {
  const int64_t C = x.shape[1];
  HostArray s(DType::f64, {2, C});
  for_channels(x.shape, [&](int64_t c, int64_t k) {
    const double d = dy.f32()[k];
    s.f64()[c] += d, s.f64()[C + c] += d * (x.f32()[k] - mean.f32()[c]) * invstd.f32()[c];
  });
  return s;
}

/// Everything the batch-norm kernels read, drawn for a tensor of extents `s`.
struct BnData {
  HostArray x, dy, stats, mean, invstd, weight, bias, bstats;
  int64_t count;
  BnData(Case& c, const Shape& s, float lo = -1.f, float hi = 1.f) : count(per_channel(s)) {
    x = c.uniform(s, lo, hi), dy = c.uniform(s);
    weight = c.uniform({s[1]}, 0.5f, 1.5f), bias = c.uniform({s[1]}, -0.5f, 0.5f);
    stats = host_stats(x);
    host_moments(stats, count, mean, invstd);
    bstats = host_backward_stats(x, dy, mean, invstd);
  }
};

const Shape kBn4{8, 16, 9, 9}, kBn2{64, 48}, kBnBig{8, 64, 28, 28};

void bn_forward(Case& c, const Shape& s, Act act, bool affine, const Box& yb, const Box& xb, const Box& mb, L l,
                float lo = -1.f, float hi = 1.f) {
  const BnData d(c, s, lo, hi);
  const Box channels = range(yb.lo[1], yb.size[1]);
  const View w = affine ? c.in(d.weight, channels, l) : none(), b = affine ? c.in(d.bias, channels, l) : none();
  batch_norm_forward(c.ctx, act, kEps, d.count, c.in(d.x, xb, l), c.in(d.stats, l), affine ? &w : nullptr,
                     affine ? &b : nullptr, c.out("y", s, yb, l), c.out("mean", {s[1]}, mb, l),
                     c.out("invstd", {s[1]}, mb, l));
}

void bn_backward_data(Case& c, const Shape& s, bool weight, const Box& dxb, const Box& inb, bool accumulate, L l) {
  const BnData d(c, s);
  const HostArray dx = c.uniform(s);
  const Box channels = range(dxb.lo[1], dxb.size[1]);
  const View w = weight ? c.in(d.weight, channels, l) : none();
  batch_norm_backward_data(c.ctx, d.count, c.in(d.x, inb, l), c.in(d.dy, inb, l), c.in(d.mean, channels, l),
                           c.in(d.invstd, channels, l), weight ? &w : nullptr, c.in(d.bstats, l),
                           accumulate ? c.inout("dx", dx, dxb, l) : c.out("dx", s, dxb, l), accumulate);
}

void add_batch_norm_cases(Registry& r) {
  const Box stats_all = whole({2, 16});
  r.add("bn_stats/4d_whole", [=](Case& c) {
    batch_norm_stats(c.ctx, c.in(c.uniform(kBn4)), c.out("stats", {2, 16}, L::dense, DType::f64));
  });
  r.add("bn_stats/4d_part", [](Case& c) {
    batch_norm_stats(c.ctx, c.in(c.uniform(kBn4), Box{{2, 4, 0, 0}, {4, 8, 5, 9}}, L::scrambled),
                     c.out("stats", {2, 16}, Box{{0, 4}, {2, 8}}, L::padded, DType::f64));
  });
  r.add("bn_stats/2d_whole", [](Case& c) {
    batch_norm_stats(c.ctx, c.in(c.uniform(kBn2)), c.out("stats", {2, 48}, L::dense, DType::f64));
  });
  r.add("bn_stats/2d_part_channel_subset", [](Case& c) {
    batch_norm_stats(c.ctx, c.in(c.uniform(kBn2), Box{{10, 8}, {30, 32}}, L::scrambled),
                     c.out("stats", {2, 48}, Box{{0, 12}, {2, 18}}, L::scrambled, DType::f64));
  });
  // A large mean next to a small spread: sums of squares that only double holds.
  r.add("bn_stats/large_mean", [](Case& c) {
    batch_norm_stats(c.ctx, c.in(c.uniform(kBn4, 99.99f, 100.01f), L::padded),
                     c.out("stats", {2, 16}, L::dense, DType::f64));
  });
  r.add("bn_stats/big", [](Case& c) {
    batch_norm_stats(c.ctx, c.in(c.uniform(kBnBig)), c.out("stats", {2, 64}, L::dense, DType::f64));
  });

  const Box all16 = range(0, 16);
  r.add("bn_fwd/4d_affine",
        [=](Case& c) { bn_forward(c, kBn4, Act::none, true, whole(kBn4), whole(kBn4), all16, L::dense); });
  for (Act act : {Act::relu, Act::sigmoid, Act::tanh, Act::gelu}) {
    r.add(std::string("bn_fwd/4d_act_") + act_name(act),
          [=](Case& c) { bn_forward(c, kBn4, act, true, whole(kBn4), whole(kBn4), all16, L::dense); });
  }
  r.add("bn_fwd/4d_no_affine",
        [=](Case& c) { bn_forward(c, kBn4, Act::none, false, whole(kBn4), whole(kBn4), all16, L::padded); });
  r.add("bn_fwd/4d_part", [](Case& c) {
    bn_forward(c, kBn4, Act::relu, true, Box{{2, 3, 1, 0}, {4, 9, 8, 9}}, Box{{1, 2, 0, 0}, {6, 12, 9, 9}}, range(3, 9),
               L::scrambled);
  });
  r.add("bn_fwd/2d",
        [](Case& c) { bn_forward(c, kBn2, Act::none, true, whole(kBn2), whole(kBn2), range(0, 48), L::dense); });
  r.add("bn_fwd/2d_part", [](Case& c) {
    bn_forward(c, kBn2, Act::tanh, true, Box{{10, 8}, {30, 32}}, Box{{10, 8}, {30, 32}}, range(8, 32), L::scrambled);
  });
  r.add("bn_fwd/large_mean", [=](Case& c) {
    bn_forward(c, kBn4, Act::none, true, whole(kBn4), whole(kBn4), all16, L::dense, 99.99f, 100.01f);
  });
  r.add("bn_fwd/big",
        [](Case& c) { bn_forward(c, kBnBig, Act::relu, true, whole(kBnBig), whole(kBnBig), range(0, 64), L::dense); });

  r.add("bn_update_running/whole", [=](Case& c) {
    const BnData d(c, kBn4);
    const HostArray rm = c.uniform({16}), rv = c.uniform({16}, 0.5f, 1.5f);
    batch_norm_update_running(c.ctx, 0.1f, d.count, c.in(d.stats), c.inout("running_mean", rm),
                              c.inout("running_var", rv));
  });
  r.add("bn_update_running/part", [=](Case& c) {
    const BnData d(c, kBn4);
    const HostArray rm = c.uniform({16}), rv = c.uniform({16}, 0.5f, 1.5f);
    batch_norm_update_running(c.ctx, 0.01f, d.count, c.in(d.stats, L::scrambled),
                              c.inout("running_mean", rm, range(3, 5), L::shifted),
                              c.inout("running_var", rv, range(5, 4), L::padded));
  });

  r.add("bn_bwd_stats/4d_whole", [=](Case& c) {
    const BnData d(c, kBn4);
    batch_norm_backward_stats(c.ctx, c.in(d.x), c.in(d.dy), c.in(d.mean), c.in(d.invstd),
                              c.out("stats", {2, 16}, L::dense, DType::f64));
  });
  r.add("bn_bwd_stats/4d_part", [=](Case& c) {
    const BnData d(c, kBn4);
    const Box dyb{{2, 4, 0, 0}, {4, 8, 5, 9}};
    batch_norm_backward_stats(c.ctx, c.in(d.x, Box{{1, 2, 0, 0}, {6, 12, 6, 9}}, L::scrambled),
                              c.in(d.dy, dyb, L::scrambled), c.in(d.mean, range(4, 8), L::padded),
                              c.in(d.invstd, range(6, 4), L::padded),
                              c.out("stats", {2, 16}, Box{{0, 6}, {2, 4}}, L::scrambled, DType::f64));
  });
  r.add("bn_bwd_stats/2d_part", [](Case& c) {
    const BnData d(c, kBn2);
    const Box b{{10, 8}, {30, 32}};
    batch_norm_backward_stats(c.ctx, c.in(d.x, b, L::scrambled), c.in(d.dy, b, L::padded),
                              c.in(d.mean, range(8, 32), L::shifted), c.in(d.invstd, range(8, 32), L::padded),
                              c.out("stats", {2, 48}, Box{{0, 8}, {2, 32}}, L::padded, DType::f64));
  });
  r.add("bn_bwd_stats/big", [](Case& c) {
    const BnData d(c, kBnBig);
    batch_norm_backward_stats(c.ctx, c.in(d.x), c.in(d.dy), c.in(d.mean), c.in(d.invstd),
                              c.out("stats", {2, 64}, L::dense, DType::f64));
  });

  r.add("bn_param_grads/whole", [=](Case& c) {
    const HostArray stats = c.uniform64({2, 16}, -10.0, 10.0), dw = c.uniform({16}), db = c.uniform({16});
    const View dwv = c.inout("dweight", dw), dbv = c.inout("dbias", db);
    batch_norm_param_grads(c.ctx, c.in(stats), &dwv, &dbv);
  });
  r.add("bn_param_grads/part_dweight_only", [=](Case& c) {
    const HostArray stats = c.uniform64({2, 16}, -10.0, 10.0), dw = c.uniform({16});
    const View dwv = c.inout("dweight", dw, range(3, 6), L::padded);
    batch_norm_param_grads(c.ctx, c.in(stats, L::scrambled), &dwv, nullptr);
  });
  r.add("bn_running_stats/whole", [=](Case& c) {
    const HostArray rm = c.uniform({16}), rv = c.uniform({16}, 0.5f, 1.5f);
    batch_norm_running_stats(c.ctx, 648, c.in(rm), c.in(rv), c.out("stats", {2, 16}, stats_all, L::dense, DType::f64));
  });
  r.add("bn_running_stats/part", [=](Case& c) {
    const HostArray rm = c.uniform({16}), rv = c.uniform({16}, 0.5f, 1.5f);
    batch_norm_running_stats(c.ctx, 648, c.in(rm, range(2, 10), L::padded), c.in(rv, range(4, 8), L::shifted),
                             c.out("stats", {2, 16}, Box{{0, 4}, {2, 8}}, L::scrambled, DType::f64));
  });

  r.add("bn_bwd_data/4d_whole",
        [=](Case& c) { bn_backward_data(c, kBn4, true, whole(kBn4), whole(kBn4), false, L::dense); });
  r.add("bn_bwd_data/4d_part_accumulate", [](Case& c) {
    bn_backward_data(c, kBn4, true, Box{{2, 3, 1, 0}, {4, 9, 8, 9}}, Box{{1, 2, 0, 0}, {6, 12, 9, 9}}, true,
                     L::scrambled);
  });
  r.add("bn_bwd_data/4d_no_weight",
        [=](Case& c) { bn_backward_data(c, kBn4, false, whole(kBn4), whole(kBn4), false, L::padded); });
  r.add("bn_bwd_data/2d_part", [](Case& c) {
    bn_backward_data(c, kBn2, true, Box{{10, 8}, {30, 32}}, Box{{10, 8}, {30, 32}}, false, L::scrambled);
  });
  r.add("bn_bwd_data/big",
        [](Case& c) { bn_backward_data(c, kBnBig, true, whole(kBnBig), whole(kBnBig), false, L::dense); });
}

// ---- layer norm ------------------------------------------------------------------------------------

/// x and the per-row mean and invstd of the layer norm over its last dim (f32, from double sums).
struct LnData {
  HostArray x, dy, weight, bias, mean, invstd;
  LnData(Case& c, const Shape& s) {
    const int64_t D = s.back();
    Shape rows(s.begin(), s.end() - 1);
    x = c.uniform(s, -2.f, 2.f), dy = c.uniform(s);
    weight = c.uniform({D}, 0.5f, 1.5f), bias = c.uniform({D}, -0.5f, 0.5f);
    mean = HostArray(DType::f32, rows), invstd = HostArray(DType::f32, rows);
    for (int64_t r = 0; r < mean.numel(); ++r) {
      double sum = 0, sq = 0;
      for (int64_t i = 0; i < D; ++i) sum += x.f32()[r * D + i];
      const double m = sum / D;
      for (int64_t i = 0; i < D; ++i) sq += (x.f32()[r * D + i] - m) * (x.f32()[r * D + i] - m);
      mean.f32()[r] = static_cast<float>(m);
      invstd.f32()[r] = static_cast<float>(1.0 / std::sqrt(sq / D + kEps));
    }
  }
};

/// `b` without its last dim: the rows of a layer norm's box.
Box rows_of(const Box& b) { return Box{Shape(b.lo.begin(), b.lo.end() - 1), Shape(b.size.begin(), b.size.end() - 1)}; }

void ln_forward(Case& c, const Shape& s, bool affine, const Box& yb, const Box& xb, L l) {
  const LnData d(c, s);
  const View w = affine ? c.in(d.weight, l) : none(), b = affine ? c.in(d.bias, l) : none();
  const Shape rows(s.begin(), s.end() - 1);
  layer_norm_forward(c.ctx, kEps, c.in(d.x, xb, l), affine ? &w : nullptr, affine ? &b : nullptr, c.out("y", s, yb, l),
                     c.out("mean", rows, rows_of(yb), l), c.out("invstd", rows, rows_of(yb), l));
}

/// dx over dy's box `dyb`; dw and db (when their boxes are given) partial sums over its rows.
void ln_backward(Case& c, const Shape& s, bool weight, const Box& dyb, const Box* dwb, bool accumulate, L l) {
  const LnData d(c, s);
  const HostArray dx = c.uniform(s), dw = c.uniform({s.back()}), db = c.uniform({s.back()});
  const View w = weight ? c.in(d.weight, l) : none();
  auto grad = [&](const char* name, const HostArray& init, const Box& box) {
    return accumulate ? c.inout(name, init, box, l) : c.out(name, init.shape, box, l);
  };
  const View dxv = grad("dx", dx, dyb);
  const View dwv = dwb ? grad("dw", dw, *dwb) : none(), dbv = dwb ? grad("db", db, *dwb) : none();
  layer_norm_backward(c.ctx, c.in(d.x, dyb, l), c.in(d.dy, dyb, l), c.in(d.mean, rows_of(dyb), l),
                      c.in(d.invstd, rows_of(dyb), l), weight ? &w : nullptr, dxv, dwb ? &dwv : nullptr,
                      dwb ? &dbv : nullptr, accumulate);
}

void add_layer_norm_cases(Registry& r) {
  const Shape s3{4, 16, 64}, s2{50, 768};
  const Box part{{1, 4, 0}, {2, 8, 64}}, all_d = range(0, 64);
  r.add("ln_fwd/3d_affine", [=](Case& c) { ln_forward(c, s3, true, whole(s3), whole(s3), L::dense); });
  r.add("ln_fwd/3d_no_affine", [=](Case& c) { ln_forward(c, s3, false, whole(s3), whole(s3), L::padded); });
  r.add("ln_fwd/2d_768", [=](Case& c) { ln_forward(c, s2, true, whole(s2), whole(s2), L::dense); });
  r.add("ln_fwd/part", [=](Case& c) { ln_forward(c, s3, true, part, Box{{0, 2, 0}, {4, 12, 64}}, L::scrambled); });
  r.add("ln_bwd/3d_whole", [=](Case& c) { ln_backward(c, s3, true, whole(s3), &all_d, false, L::dense); });
  r.add("ln_bwd/part_accumulate", [=](Case& c) { ln_backward(c, s3, true, part, &all_d, true, L::scrambled); });
  r.add("ln_bwd/dw_db_part", [=](Case& c) {
    const Box dwb = range(16, 32);
    ln_backward(c, s3, true, whole(s3), &dwb, false, L::scrambled);
  });
  r.add("ln_bwd/dx_only_no_weight", [=](Case& c) { ln_backward(c, s3, false, part, nullptr, false, L::padded); });
  r.add("ln_bwd/2d_768", [=](Case& c) {
    const Box dwb = range(0, 768);
    ln_backward(c, s2, true, whole(s2), &dwb, false, L::dense);
  });
}

// ---- softmax and log-softmax ---------------------------------------------------------------------

/// softmax (or log-softmax) of x along `axis`, in double.
HostArray host_softmax(const HostArray& x, int axis, bool log) {
  const Shape& s = x.shape;
  const int a = axis < 0 ? axis + static_cast<int>(s.size()) : axis;
  int64_t inner = 1;
  for (size_t d = static_cast<size_t>(a) + 1; d < s.size(); ++d) inner *= s[d];
  const int64_t n = s[static_cast<size_t>(a)], outer = x.numel() / (n * inner);
  HostArray y(DType::f32, s);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const float* p = x.f32() + o * n * inner + i;
      double m = -INFINITY, sum = 0;
      for (int64_t k = 0; k < n; ++k) m = std::max(m, static_cast<double>(p[k * inner]));
      for (int64_t k = 0; k < n; ++k) sum += std::exp(p[k * inner] - m);
      for (int64_t k = 0; k < n; ++k) {
        const double v = p[k * inner] - m;
        y.f32()[o * n * inner + i + k * inner] = static_cast<float>(log ? v - std::log(sum) : std::exp(v) / sum);
      }
    }
  }
  return y;
}

void add_softmax_cases(Registry& r) {
  struct Geom {
    const char* name;
    Shape s;
    int axis;
    Box out;  // the part's box (the axis whole)
    Box in;   // the box the input holds
  };
  const Geom geoms[] = {
      {"last_axis", {32, 100}, 1, whole({32, 100}), whole({32, 100})},
      {"axis1_4d", {4, 10, 6, 7}, 1, whole({4, 10, 6, 7}), whole({4, 10, 6, 7})},
      {"long_rows", {4, 30000}, 1, whole({4, 30000}), whole({4, 30000})},
      {"many_rows", {1024, 100}, 1, whole({1024, 100}), whole({1024, 100})},
      {"part_rows", {32, 100}, 1, Box{{8, 0}, {12, 100}}, Box{{4, 0}, {20, 100}}},
      {"axis1_part", {4, 10, 6, 7}, 1, Box{{1, 0, 2, 0}, {2, 10, 3, 7}}, Box{{1, 0, 1, 0}, {3, 10, 4, 7}}},
      {"axis0_part", {12, 5, 9}, 0, Box{{0, 1, 2}, {12, 3, 6}}, Box{{0, 1, 2}, {12, 3, 6}}},
  };
  for (bool log : {false, true}) {
    const std::string kind = log ? "log_softmax" : "softmax";
    for (const Geom& g : geoms) {
      const bool whole_box = g.out.size == g.s;
      const L l = whole_box ? L::dense : L::scrambled;
      r.add(kind + "_fwd/" + g.name, [=](Case& c) {
        const View x = c.in(c.uniform(g.s, -20.f, 20.f), g.in, l), y = c.out("y", g.s, g.out, l);
        if (log)
          log_softmax_forward(c.ctx, g.axis, x, y);
        else
          softmax_forward(c.ctx, g.axis, x, y);
      });
      // Parts accumulate.
      r.add(kind + "_bwd/" + g.name, [=](Case& c) {
        const HostArray y = host_softmax(c.uniform(g.s, -5.f, 5.f), g.axis, log), dy = c.uniform(g.s),
                        dx = c.uniform(g.s);
        const View yv = c.in(y, g.in, l), dyv = c.in(dy, g.in, l);
        const View dxv = whole_box ? c.out("dx", g.s, g.out, l) : c.inout("dx", dx, g.out, l);
        if (log)
          log_softmax_backward(c.ctx, g.axis, yv, dyv, dxv, !whole_box);
        else
          softmax_backward(c.ctx, g.axis, yv, dyv, dxv, !whole_box);
      });
    }
  }
  r.add("softmax_fwd/axis_negative", [](Case& c) {
    softmax_forward(c.ctx, -1, c.in(c.uniform({6, 50}, -20.f, 20.f)), c.out("y", {6, 50}));
  });
}

// ---- losses ----------------------------------------------------------------------------------------

/// A one-element f32 view of `value` (a loss's gradient).
View scalar(Case& c, float value) {
  HostArray a(DType::f32, {1});
  a.f32()[0] = value;
  return c.in(a, Layout::shifted);
}

}  // namespace

void add_norm_cases(Registry& r) {
  add_batch_norm_cases(r);
  add_layer_norm_cases(r);
  add_softmax_cases(r);
}

void add_loss_cases(Registry& r) {
  struct Geom {
    const char* name;
    Shape logits;
    Box rows;     // the labels' box (rows of the logits)
    Box dlogits;  // the backward's box
    float range;  // logits in [-range, range)
  };
  const Geom geoms[] = {
      {"whole", {64, 10}, whole({64}), whole({64, 10}), 3.f},
      {"3d", {4, 12, 30}, whole({4, 12}), whole({4, 12, 30}), 3.f},
      {"1000_classes", {32, 1000}, whole({32}), whole({32, 1000}), 10.f},
      {"part", {64, 10}, Box{{16}, {24}}, Box{{16, 3}, {24, 5}}, 3.f},
      {"3d_part", {4, 12, 30}, Box{{1, 2}, {2, 8}}, Box{{1, 2, 0}, {2, 8, 30}}, 3.f},
  };
  for (const Geom& g : geoms) {
    const Shape label_shape(g.logits.begin(), g.logits.end() - 1);
    const int64_t classes = g.logits.back();
    const float scale = 1.f / static_cast<float>(numel_of(label_shape));
    const bool whole_box = g.rows.size == label_shape;
    const L l = whole_box ? L::dense : L::scrambled;
    Box logit_rows = g.rows;
    logit_rows.lo.push_back(0), logit_rows.size.push_back(classes);
    r.add(std::string("sce_fwd/") + g.name, [=](Case& c) {
      const HostArray logits = c.uniform(g.logits, -g.range, g.range), labels = c.ids(label_shape, classes);
      softmax_cross_entropy_forward(c.ctx, scale, c.in(logits, logit_rows, l), c.in(labels, g.rows, l),
                                    c.out("loss", {1}));
    });
    // Parts accumulate and take the loss's gradient from a view.
    r.add(std::string("sce_bwd/") + g.name, [=](Case& c) {
      const HostArray logits = c.uniform(g.logits, -g.range, g.range), labels = c.ids(label_shape, classes);
      const HostArray dlogits = c.uniform(g.logits);
      Box rows = g.dlogits;
      rows.lo.back() = 0, rows.size.back() = classes;
      Box label_box{Shape(rows.lo.begin(), rows.lo.end() - 1), Shape(rows.size.begin(), rows.size.end() - 1)};
      const View dloss = whole_box ? none() : scalar(c, 0.75f);
      softmax_cross_entropy_backward(
          c.ctx, scale, c.in(logits, rows, l), c.in(labels, label_box, l),
          whole_box ? c.out("dlogits", g.logits, g.dlogits, l) : c.inout("dlogits", dlogits, g.dlogits, l), !whole_box,
          whole_box ? nullptr : &dloss);
    });
  }

  // count_correct: labels that are the first largest logit of their row, among the valid rows.
  struct CountGeom {
    const char* name;
    Shape logits;
    Box labels;
    int64_t valid_rows;
    bool ties;  // logits in steps of 0.5, so that rows have equal largest ones
  };
  const CountGeom count_geoms[] = {
      {"whole", {64, 10}, whole({64}), 64, false},
      {"part_valid_rows", {64, 10}, Box{{16}, {40}}, 48, false},
      {"3d_part", {4, 12, 30}, Box{{1, 2}, {3, 8}}, 3, false},
      {"ties", {256, 4}, whole({256}), 256, true},
  };
  for (const CountGeom& g : count_geoms) {
    r.add(std::string("count_correct/") + g.name, [g](Case& c) {
      HostArray logits = c.uniform(g.logits);
      const Shape label_shape(g.logits.begin(), g.logits.end() - 1);
      const int64_t classes = g.logits.back(), rows = numel_of(label_shape);
      if (g.ties)
        for (int64_t k = 0; k < logits.numel(); ++k) logits.f32()[k] = std::round(logits.f32()[k] * 2.f) / 2.f;
      // Half the labels are a largest logit of their row (the first or, with ties, maybe another).
      HostArray labels = c.ids(label_shape, classes);
      for (int64_t q = 0; q < rows; q += 2) {
        const float* p = logits.f32() + q * classes;
        int64_t first = 0, last = 0;
        for (int64_t k = 1; k < classes; ++k) {
          if (p[k] > p[first]) first = k;
          if (p[k] >= p[last]) last = k;
        }
        labels.i64()[q] = q % 4 == 0 ? first : last;
      }
      Box logit_rows = g.labels;
      logit_rows.lo.push_back(0), logit_rows.size.push_back(classes);
      HostArray count(DType::f64, {1});
      count.f64()[0] = 5;
      const L l = g.labels.size == label_shape ? L::dense : L::scrambled;
      count_correct(c.ctx, c.in(logits, logit_rows, l), c.in(labels, g.labels, l), g.valid_rows,
                    c.inout("count", count, L::shifted));
    });
  }

  const Shape ms{32, 17}, m4{4, 3, 8, 8};
  const Box mpart{{4, 3}, {16, 12}}, min{{2, 0}, {20, 17}};
  r.add("mse_fwd/whole",
        [=](Case& c) { mse_forward(c.ctx, 1.f / 544, c.in(c.uniform(ms)), c.in(c.uniform(ms)), c.out("loss", {1})); });
  r.add("mse_fwd/part", [=](Case& c) {
    mse_forward(c.ctx, 1.f / 544, c.in(c.uniform(ms), mpart, L::scrambled), c.in(c.uniform(ms), min, L::padded),
                c.out("loss", {1}));
  });
  r.add("mse_fwd/4d", [=](Case& c) {
    mse_forward(c.ctx, 1.f / 768, c.in(c.uniform(m4)), c.in(c.uniform(m4)), c.out("loss", {1}, L::shifted));
  });
  r.add("mse_bwd/whole", [=](Case& c) {
    mse_backward(c.ctx, 1.f / 544, c.in(c.uniform(ms)), c.in(c.uniform(ms)), c.out("dpred", ms), false);
  });
  r.add("mse_bwd/part_accumulate_dloss", [=](Case& c) {
    const HostArray pred = c.uniform(ms), target = c.uniform(ms), dpred = c.uniform(ms);
    const View dloss = scalar(c, 2.f);
    mse_backward(c.ctx, 1.f / 544, c.in(pred, min, L::padded), c.in(target, mpart, L::scrambled),
                 c.inout("dpred", dpred, mpart, L::scrambled), true, &dloss);
  });
}

namespace {

/// Runs `call` (then synchronize) and expects it to report a data error: ffrt::Error (the cpu), or
/// NaN in `poisoned` (the cuda backend's kernels cannot throw: they poison the output, and the
/// driver stops at a non-finite loss); `poisoned` null: a backward the forward's poison covers.
/// Records "threw" = 1 either way, so both backends' files agree.
void expect_data_error(Case& c, const char* what, const std::function<void()>& call, const View* poisoned) {
  HostArray reported(DType::i64, {1});
  reported.i64()[0] = 1;
  try {
    call();
    synchronize(c.ctx);
  } catch (const Error&) {
    c.record("threw", std::move(reported));
    return;
  }
  if (std::string(backend_name()) == "cuda") {
    bool nan = poisoned == nullptr;
    if (poisoned) {
      HostArray out(DType::f32, std::vector<int64_t>(poisoned->size, poisoned->size + poisoned->rank));
      download(c.ctx, *poisoned, out.view());
      for (int64_t i = 0; i < out.numel() && !nan; ++i) nan = std::isnan(out.f32()[i]);
    }
    if (nan) {
      c.record("threw", std::move(reported));
      return;
    }
  }
  throw std::runtime_error(std::string(what) + " was not reported (ffrt::Error, or NaN on the cuda backend)");
}

/// Backend memory for an output the case does not record (a kernel that is to throw).
View scratch(Case& c, std::shared_ptr<std::byte>& mem, std::initializer_list<int64_t> shape) {
  int64_t n = 1;
  for (int64_t e : shape) n *= e;
  mem = allocate(c.ctx, static_cast<size_t>(n) * 4);
  return whole_view(mem.get(), DType::f32, shape);
}

}  // namespace

void add_data_error_cases(Registry& r) {
  r.add("errors/embedding_id_out_of_range", [](Case& c) {
    HostArray ids = c.ids({4, 5}, 10);
    ids.i64()[7] = 10;
    std::shared_ptr<std::byte> mem;
    const View iv = c.in(ids), wv = c.in(c.uniform({10, 8})), y = scratch(c, mem, {4, 5, 8});
    expect_data_error(c, "an id of 10 in a table of 10 rows", [&] { embedding_forward(c.ctx, iv, wv, y); }, &y);
  });
  r.add("errors/embedding_negative_id", [](Case& c) {
    HostArray ids = c.ids({4, 5}, 10);
    ids.i64()[13] = -1;
    std::shared_ptr<std::byte> mem;
    const View iv = c.in(ids), dy = c.in(c.uniform({4, 5, 8})), dw = scratch(c, mem, {10, 8});
    expect_data_error(c, "an id of -1", [&] { embedding_backward_weight(c.ctx, iv, dy, dw, false); }, nullptr);
  });
  r.add("errors/label_out_of_range", [](Case& c) {
    HostArray labels = c.ids({16}, 10);
    labels.i64()[5] = 10;
    std::shared_ptr<std::byte> mem;
    const View lv = c.in(labels), logits = c.in(c.uniform({16, 10})), loss = scratch(c, mem, {1});
    expect_data_error(c, "a label of 10 among 10 classes",
                      [&] { softmax_cross_entropy_forward(c.ctx, 1.f / 16, logits, lv, loss); }, &loss);
  });
}

}  // namespace ffrt::cases
