// Tests of the cpu backend's normalization, loss and layout kernels (runtime/cpu/norm.cc, loss.cc,
// layout.cc).
//
// Every kernel is checked on random shapes (odd extents) against naive references in double at
// float32 tolerance, backwards against the formulas and against finite differences of the double
// reference forward. Part assembly: outputs are split into random uneven grids of boxes; each part
// gets input views holding exactly the boxes it needs, copied into small buffers of their own with
// random strided layouts whose padding is a NaN sentinel. Batch norm runs the distributed protocol:
// partial statistics per part (f64 [2, C] views), added in double (the "reduction"), then forward
// and backward per part, and must match the whole batch, also for a channel whose mean is large
// next to its spread; the losses' partial sums must add up to the whole loss.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ffrt/kernels.h"
#include "ffrt/view.h"
#include "kernel_test_util.h"

namespace {

using namespace ffrt::test;

constexpr double kTol = 1e-4, kAbs = 1e-7;

/// A [lo, lo + n) range of one dim added to a box.
Box with_dim(Box b, int64_t lo, int64_t n) {
  b.lo.push_back(lo);
  b.size.push_back(n);
  return b;
}
/// The box without its last dim.
Box drop_last(Box b) {
  b.lo.pop_back();
  b.size.pop_back();
  return b;
}
/// d loss / d x[k] by central differences (over the step the floats actually take).
template <typename F>
double central_difference(const Tensor& x, size_t k, float h, F&& loss) {
  Tensor p = x, m = x;
  p.v[k] += h, m.v[k] -= h;
  return (loss(p) - loss(m)) / (static_cast<double>(p.v[k]) - m.v[k]);
}

/// Expects double sums got ≈ want to 1e-12 of the sum of their terms' magnitudes abs_sum (a float
/// sum, or a double sum rounded to float, is off by ~1e-7 of it).
void expect_double_sums(const std::vector<double>& got, const std::vector<double>& want,
                        const std::vector<double>& abs_sum, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  ASSERT_EQ(abs_sum.size(), want.size()) << what;
  for (size_t k = 0; k < got.size(); ++k)
    EXPECT_NEAR(got[k], want[k], 1e-12 * abs_sum[k] + 1e-300) << what << ": element " << k;
}

Box channel_box(const Box& part) { return Box{{part.lo[1]}, {part.size[1]}}; }
Box stats_box(const Box& part) { return Box{{0, part.lo[1]}, {2, part.size[1]}}; }

// ---- batch norm -----------------------------------------------------------------------------------

struct BnRef {
  std::vector<double> y, mean, invstd, unbiased, dx, dw, db;
  double dx_scale = 0;  ///< the mean |weight * invstd * dy|: the size of the terms dx cancels down from
  /// Per channel: the sums of |x|, x^2, |dy| and |dy * xhat| (the sizes of the statistics' terms),
  /// rows 0 and 1 of a [2, C] statistics view.
  std::vector<double> stats_abs, backward_abs;
  /// The forward statistics themselves, sum x and sum x^2 (rows 0 and 1), summed in double.
  std::vector<double> sums;
};

/// PyTorch's training batch norm in double: statistics over all but the channel dim, the biased
/// variance for normalization; the backward from dy (the gradient after the activation's backward).
BnRef bn_reference(const Tensor& x, const Tensor* w, const Tensor* b, Act act, double eps, const Tensor& dy) {
  const int64_t C = x.shape[1], count = volume(x.shape) / C;
  BnRef r;
  r.mean.assign(C, 0), r.invstd.assign(C, 0), r.unbiased.assign(C, 0), r.dw.assign(C, 0), r.db.assign(C, 0);
  r.stats_abs.assign(2 * C, 0), r.backward_abs.assign(2 * C, 0), r.sums.assign(2 * C, 0);
  std::vector<double> var(C, 0);
  const Shape zero(x.shape.size(), 0);
  for_box(zero, x.shape, [&](const Shape& g) {
    r.mean[g[1]] += x.at(g) / count;
    r.stats_abs[g[1]] += std::abs(x.at(g)), r.stats_abs[C + g[1]] += x.at(g) * x.at(g);
    const double v = x.at(g);
    r.sums[g[1]] += v, r.sums[C + g[1]] += v * v;
  });
  for_box(zero, x.shape, [&](const Shape& g) { var[g[1]] += std::pow(x.at(g) - r.mean[g[1]], 2) / count; });
  for (int64_t c = 0; c < C; ++c)
    r.invstd[c] = 1 / std::sqrt(var[c] + eps), r.unbiased[c] = var[c] * count / (count - 1);
  auto xhat = [&](const Shape& g) { return (x.at(g) - r.mean[g[1]]) * r.invstd[g[1]]; };
  r.y.assign(x.v.size(), 0), r.dx.assign(x.v.size(), 0);
  for_box(zero, x.shape, [&](const Shape& g) {
    double v = xhat(g) * (w ? w->v[g[1]] : 1.0) + (b ? b->v[g[1]] : 0.0);
    r.y[flat_index(x.shape, g)] = act == Act::relu ? std::max(v, 0.0) : v;
    r.db[g[1]] += dy.at(g), r.dw[g[1]] += dy.at(g) * xhat(g);
    r.backward_abs[g[1]] += std::abs(dy.at(g)), r.backward_abs[C + g[1]] += std::abs(dy.at(g) * xhat(g));
  });
  for_box(zero, x.shape, [&](const Shape& g) {
    const int64_t c = g[1];
    r.dx[flat_index(x.shape, g)] =
        (w ? w->v[c] : 1.0) * r.invstd[c] / count * (count * dy.at(g) - r.db[c] - xhat(g) * r.dw[c]);
    r.dx_scale += std::abs((w ? w->v[c] : 1.0) * r.invstd[c] * dy.at(g)) / x.v.size();
  });
  return r;
}

Shape random_bn_shape(Rng& rng, bool four_d) {
  return four_d ? Shape{rng.range(3, 5), rng.range(1, 5), rng.range(1, 5), rng.range(1, 5)}
                : Shape{rng.range(4, 12), rng.range(1, 7)};
}

/// x with a different offset and spread per channel. (The statistics are double sums, but y is
/// computed in float around the float mean, whose rounding is relative to the mean, not the spread:
/// the offsets stay moderate. BatchNorm.LargeMeanPartsMatchWholeBatch takes large ones.)
Tensor bn_input(const Shape& s, Rng& rng) {
  Tensor x(s);
  const Shape zero(s.size(), 0);
  for (int64_t c = 0; c < s[1]; ++c) {
    Shape lo = zero, size = s;
    lo[1] = c, size[1] = 1;
    const double off = rng.uniform(-1, 1), mul = rng.uniform(0.5, 2);
    // U(-1, 1) values, drawn again while their variance is below 0.1 (near-constant channels are
    // ill-conditioned in float, in PyTorch too).
    for (double var = 0; var < 0.1;) {
      std::vector<double> u;
      for_box(lo, size, [&](const Shape&) { u.push_back(rng.uniform(-1, 1)); });
      double m = 0;
      for (double v : u) m += v / u.size();
      var = 0;
      for (double v : u) var += (v - m) * (v - m) / u.size();
      size_t k = 0;
      for_box(lo, size, [&](const Shape& g) { x.at(g) = static_cast<float>(u[k++] * mul + off); });
    }
  }
  return x;
}

TEST(BatchNorm, WholeBatchMatchesReference) {
  auto ctx = make_ctx();
  Rng rng(11);
  for (int trial = 0; trial < 24; ++trial) {
    const Shape s = random_bn_shape(rng, trial % 2);
    const int64_t C = s[1], count = volume(s) / C;
    const bool affine = trial % 3 != 2;
    const Act act = trial % 4 == 1 ? Act::relu : Act::none;
    const float eps = 1e-5f, momentum = 0.1f;
    const std::string what = shape_str(s) + (affine ? " affine" : "") + (act == Act::relu ? " relu" : "");
    const Tensor x = bn_input(s, rng), dy = random_tensor(s, rng);
    const Tensor w = random_tensor({C}, rng, 0.5, 1.5), b = random_tensor({C}, rng);
    const BnRef ref = bn_reference(x, affine ? &w : nullptr, affine ? &b : nullptr, act, eps, dy);

    auto xb = part_of(x, whole_box(s), rng), dyb = part_of(dy, whole_box(s), rng);
    auto wb = part_of(w, whole_box({C}), rng), bb = part_of(b, whole_box({C}), rng);
    auto stats = out_buf({2, C}, whole_box({2, C}), rng, NAN, DType::f64), yb = out_buf(s, whole_box(s), rng);
    auto mean = out_buf({C}, whole_box({C}), rng), invstd = out_buf({C}, whole_box({C}), rng);
    ffrt::batch_norm_stats(*ctx, xb->view, stats->view);
    ffrt::batch_norm_forward(*ctx, act, eps, count, xb->view, stats->view, affine ? &wb->view : nullptr,
                             affine ? &bb->view : nullptr, yb->view, mean->view, invstd->view);
    EXPECT_TRUE(stats->padding_intact() && yb->padding_intact() && mean->padding_intact() && invstd->padding_intact());
    // The statistics are double sums, unrounded: as exact as the reference's, far below float's ulp.
    expect_double_sums(stats->whole64().v, ref.sums, ref.stats_abs, what + " statistics");
    expect_close(yb->whole().v, ref.y, kTol, what + " y");
    expect_close(mean->whole().v, ref.mean, kTol, what + " mean");
    expect_close(invstd->whole().v, ref.invstd, kTol, what + " invstd");

    // Running statistics: (1 - momentum) * running + momentum * batch, the variance unbiased.
    const Tensor rm0 = random_tensor({C}, rng), rv0 = random_tensor({C}, rng, 0.5, 2);
    auto rm = part_of(rm0, whole_box({C}), rng), rv = part_of(rv0, whole_box({C}), rng);
    ffrt::batch_norm_update_running(*ctx, momentum, count, stats->view, rm->view, rv->view);
    std::vector<double> want_rm(C), want_rv(C);
    for (int64_t c = 0; c < C; ++c) {
      want_rm[c] = (1 - momentum) * rm0.v[c] + momentum * ref.mean[c];
      want_rv[c] = (1 - momentum) * rv0.v[c] + momentum * ref.unbiased[c];
    }
    expect_close(rm->whole().v, want_rm, kTol, what + " running_mean");
    expect_close(rv->whole().v, want_rv, kTol, what + " running_var");

    // Backward: the sums are the bias and weight gradients; then dx, overwriting and accumulating.
    auto bstats = out_buf({2, C}, whole_box({2, C}), rng, NAN, DType::f64), dx = out_buf(s, whole_box(s), rng);
    ffrt::batch_norm_backward_stats(*ctx, xb->view, dyb->view, mean->view, invstd->view, bstats->view);
    const Tensor64 bs = bstats->whole64();
    std::vector<double> want_bs = ref.db;
    want_bs.insert(want_bs.end(), ref.dw.begin(), ref.dw.end());
    expect_close_sums(bs.v, want_bs, ref.backward_abs, kTol, what + " db and dw");
    ffrt::batch_norm_backward_data(*ctx, count, xb->view, dyb->view, mean->view, invstd->view,
                                   affine ? &wb->view : nullptr, bstats->view, dx->view, false);
    EXPECT_TRUE(bstats->padding_intact() && dx->padding_intact());
    expect_close(dx->whole().v, ref.dx, kTol, what + " dx", kTol * ref.dx_scale);
    ffrt::batch_norm_backward_data(*ctx, count, xb->view, dyb->view, mean->view, invstd->view,
                                   affine ? &wb->view : nullptr, bstats->view, dx->view, true);
    std::vector<double> twice = ref.dx;
    for (auto& v : twice) v *= 2;
    expect_close(dx->whole().v, twice, kTol, what + " dx accumulated", 2 * kTol * ref.dx_scale);
  }
}

TEST(BatchNorm, BackwardMatchesFiniteDifferences) {
  // d/dx of L = sum(r * y) by central differences of the double reference, against the kernels' dx.
  auto ctx = make_ctx();
  Rng rng(12);
  for (bool four_d : {false, true}) {
    const Shape s = random_bn_shape(rng, four_d);
    const int64_t C = s[1], count = volume(s) / C;
    const Tensor x = bn_input(s, rng), r = random_tensor(s, rng), w = random_tensor({C}, rng, 0.5, 1.5),
                 b = random_tensor({C}, rng);
    Tensor mean({C}), invstd({C}), y(s), dx(s);
    Tensor64 stats({2, C}), bstats({2, C});
    Tensor xc = x, rc = r, wc = w, bc = b;
    auto v = [](auto& t) { return view_of(t); };
    const View wv = v(wc), bv = v(bc);
    ffrt::batch_norm_stats(*ctx, v(xc), v(stats));
    ffrt::batch_norm_forward(*ctx, Act::none, 1e-5f, count, v(xc), v(stats), &wv, &bv, v(y), v(mean), v(invstd));
    ffrt::batch_norm_backward_stats(*ctx, v(xc), v(rc), v(mean), v(invstd), v(bstats));
    ffrt::batch_norm_backward_data(*ctx, count, v(xc), v(rc), v(mean), v(invstd), &wv, v(bstats), v(dx), false);
    std::vector<double> fd(x.v.size());
    for (size_t k = 0; k < x.v.size(); ++k) {
      fd[k] = central_difference(x, k, 1e-3f, [&](const Tensor& xp) {
        const BnRef ref = bn_reference(xp, &w, &b, Act::none, 1e-5, r);
        double l = 0;
        for (size_t j = 0; j < ref.y.size(); ++j) l += r.v[j] * ref.y[j];
        return l;
      });
    }
    expect_close(dx.v, fd, 2e-3, "batch norm dx vs finite differences " + shape_str(s),
                 2e-3 * bn_reference(x, &w, &b, Act::none, 1e-5, r).dx_scale);
  }
}

TEST(BatchNorm, SplitBatchReducesToWhole) {
  auto ctx = make_ctx();
  Rng rng(13);
  for (int trial = 0; trial < 30; ++trial) {
    const Shape s = random_bn_shape(rng, trial % 2);
    const int64_t C = s[1], count = volume(s) / C;
    const Act act = trial % 3 == 0 ? Act::relu : Act::none;
    const std::string what = shape_str(s);
    const Tensor x = bn_input(s, rng), dy = random_tensor(s, rng);
    const Tensor w = random_tensor({C}, rng, 0.5, 1.5), b = random_tensor({C}, rng);

    // The whole batch in one part.
    auto xw = part_of(x, whole_box(s), rng), dyw = part_of(dy, whole_box(s), rng);
    auto ww = part_of(w, whole_box({C}), rng), bw = part_of(b, whole_box({C}), rng);
    auto st = out_buf({2, C}, whole_box({2, C}), rng, NAN, DType::f64), yw = out_buf(s, whole_box(s), rng);
    auto mw = out_buf({C}, whole_box({C}), rng), iw = out_buf({C}, whole_box({C}), rng);
    auto bst = out_buf({2, C}, whole_box({2, C}), rng, NAN, DType::f64), dxw = out_buf(s, whole_box(s), rng);
    ffrt::batch_norm_stats(*ctx, xw->view, st->view);
    ffrt::batch_norm_forward(*ctx, act, 1e-5f, count, xw->view, st->view, &ww->view, &bw->view, yw->view, mw->view,
                             iw->view);
    ffrt::batch_norm_backward_stats(*ctx, xw->view, dyw->view, mw->view, iw->view, bst->view);
    ffrt::batch_norm_backward_data(*ctx, count, xw->view, dyw->view, mw->view, iw->view, &ww->view, bst->view,
                                   dxw->view, false);

    // Parts: partial statistics, reduced; forward; partial backward sums, reduced; dx.
    const std::vector<Box> parts = random_grid(s, rng);
    Tensor64 stats({2, C}, 0), bstats({2, C}, 0);
    Tensor y(s, NAN), dx(s, NAN), mean({C}, NAN), invstd({C}, NAN);
    for (const Box& p : parts) {
      auto xp = part_of(x, p, rng), sp = out_buf({2, C}, stats_box(p), rng, NAN, DType::f64);
      ffrt::batch_norm_stats(*ctx, xp->view, sp->view);
      EXPECT_TRUE(sp->padding_intact());
      for_box(sp->lo(), sp->size(), [&](const Shape& g) { stats.at(g) += sp->d(g); });
    }
    for (const Box& p : parts) {
      const Box cb = channel_box(p);
      auto xp = part_of(x, p, rng), sp = part_of(stats, stats_box(p), rng);
      auto wp = part_of(w, cb, rng), bp = part_of(b, cb, rng);
      auto yp = out_buf(s, p, rng), mp = out_buf({C}, cb, rng), ip = out_buf({C}, cb, rng);
      ffrt::batch_norm_forward(*ctx, act, 1e-5f, count, xp->view, sp->view, &wp->view, &bp->view, yp->view, mp->view,
                               ip->view);
      EXPECT_TRUE(yp->padding_intact() && mp->padding_intact() && ip->padding_intact());
      yp->store_into(y), mp->store_into(mean), ip->store_into(invstd);
      auto dyp = part_of(dy, p, rng), bp2 = out_buf({2, C}, stats_box(p), rng, NAN, DType::f64);
      ffrt::batch_norm_backward_stats(*ctx, xp->view, dyp->view, mp->view, ip->view, bp2->view);
      EXPECT_TRUE(bp2->padding_intact());
      for_box(bp2->lo(), bp2->size(), [&](const Shape& g) { bstats.at(g) += bp2->d(g); });
    }
    for (const Box& p : parts) {
      const Box cb = channel_box(p);
      auto xp = part_of(x, p, rng), dyp = part_of(dy, p, rng), mp = part_of(mean, cb, rng),
           ip = part_of(invstd, cb, rng);
      auto wp = part_of(w, cb, rng), sp = part_of(bstats, stats_box(p), rng), dxp = out_buf(s, p, rng);
      ffrt::batch_norm_backward_data(*ctx, count, xp->view, dyp->view, mp->view, ip->view, &wp->view, sp->view,
                                     dxp->view, false);
      EXPECT_TRUE(dxp->padding_intact());
      dxp->store_into(dx);
    }
    const BnRef ref = bn_reference(x, &w, &b, act, 1e-5, dy);
    const Tensor64 st_t = st->whole64(), bst_t = bst->whole64();
    expect_close_sums(stats.v, std::vector<double>(st_t.v.begin(), st_t.v.end()), ref.stats_abs, kTol,
                      what + " reduced statistics");
    // Added in double, unrounded: the parts' sums are the whole batch's to double precision.
    expect_double_sums(stats.v, st_t.v, ref.stats_abs, what + " reduced statistics (double)");
    expect_double_sums(stats.v, ref.sums, ref.stats_abs, what + " reduced statistics vs reference");
    expect_close(y.v, yw->whole().v, kTol, what + " y");
    expect_close(mean.v, mw->whole().v, kTol, what + " mean");
    expect_close(invstd.v, iw->whole().v, kTol, what + " invstd");
    expect_close_sums(bstats.v, std::vector<double>(bst_t.v.begin(), bst_t.v.end()), ref.backward_abs, kTol,
                      what + " reduced backward sums");
    expect_close(dx.v, dxw->whole().v, kTol, what + " dx", kTol * ref.dx_scale);
  }
}

TEST(BatchNorm, LargeMeanPartsMatchWholeBatch) {
  // Channels whose mean is large next to their spread (1000 ± 0.2, -3000 ± 0.5; the third
  // moderate): the variance sumsq / count - mean^2 cancels ~8 digits. Two parts along the batch each
  // compute partial statistics; added in double they give the whole batch's normalization to ~1e-6.
  // Rounded to float before the addition (f32 statistics), the variance would be off by O(1).
  auto ctx = make_ctx();
  Rng rng(15);
  for (bool four_d : {true, false}) {
    const Shape s = four_d ? Shape{48, 3, 5, 7} : Shape{1000, 3};
    const int64_t C = s[1], count = volume(s) / C;
    const std::string what = shape_str(s);
    const double offset[3] = {1000, -3000, 0.25}, spread[3] = {0.2, 0.5, 1};
    Tensor x(s);
    for_box(Shape(s.size(), 0), s, [&](const Shape& g) {
      x.at(g) = static_cast<float>(offset[g[1]] + rng.uniform(-spread[g[1]], spread[g[1]]));
    });
    const Tensor dy = random_tensor(s, rng), w = random_tensor({C}, rng, 0.5, 1.5), b = random_tensor({C}, rng);
    const float eps = 1e-5f, momentum = 0.1f;
    const Tensor rm0 = random_tensor({C}, rng), rv0 = random_tensor({C}, rng, 0.5, 2);

    // The whole batch in one part.
    auto xw = part_of(x, whole_box(s), rng), dyw = part_of(dy, whole_box(s), rng);
    auto ww = part_of(w, whole_box({C}), rng), bw = part_of(b, whole_box({C}), rng);
    auto st = out_buf({2, C}, whole_box({2, C}), rng, NAN, DType::f64), yw = out_buf(s, whole_box(s), rng);
    auto mw = out_buf({C}, whole_box({C}), rng), iw = out_buf({C}, whole_box({C}), rng);
    auto rmw = part_of(rm0, whole_box({C}), rng), rvw = part_of(rv0, whole_box({C}), rng);
    auto bst = out_buf({2, C}, whole_box({2, C}), rng, NAN, DType::f64), dxw = out_buf(s, whole_box(s), rng);
    ffrt::batch_norm_stats(*ctx, xw->view, st->view);
    ffrt::batch_norm_forward(*ctx, Act::none, eps, count, xw->view, st->view, &ww->view, &bw->view, yw->view,
                             mw->view, iw->view);
    ffrt::batch_norm_update_running(*ctx, momentum, count, st->view, rmw->view, rvw->view);
    ffrt::batch_norm_backward_stats(*ctx, xw->view, dyw->view, mw->view, iw->view, bst->view);
    ffrt::batch_norm_backward_data(*ctx, count, xw->view, dyw->view, mw->view, iw->view, &ww->view, bst->view,
                                   dxw->view, false);

    // Two uneven parts along the batch, every channel in each: partial statistics added in double.
    const int64_t cut = s[0] * 7 / 16;
    std::vector<Box> parts{whole_box(s), whole_box(s)};
    parts[0].size[0] = cut, parts[1].lo[0] = cut, parts[1].size[0] = s[0] - cut;
    Tensor64 stats({2, C}, 0), bstats({2, C}, 0);
    Tensor stats_f32({2, C}, 0.f);  // what f32 statistics would hold: each part's sums rounded, then added
    for (const Box& p : parts) {
      auto xp = part_of(x, p, rng), sp = out_buf({2, C}, stats_box(p), rng, NAN, DType::f64);
      ffrt::batch_norm_stats(*ctx, xp->view, sp->view);
      EXPECT_TRUE(sp->padding_intact());
      for_box(sp->lo(), sp->size(), [&](const Shape& g) {
        stats.at(g) += sp->d(g);
        stats_f32.at(g) += static_cast<float>(sp->d(g));
      });
    }
    Tensor y(s, NAN), dx(s, NAN), mean({C}, NAN), invstd({C}, NAN), rm(rm0), rv(rv0);
    for (const Box& p : parts) {
      auto xp = part_of(x, p, rng), sp = part_of(stats, stats_box(p), rng);
      auto wp = part_of(w, whole_box({C}), rng), bp = part_of(b, whole_box({C}), rng);
      auto yp = out_buf(s, p, rng), mp = out_buf({C}, whole_box({C}), rng), ip = out_buf({C}, whole_box({C}), rng);
      ffrt::batch_norm_forward(*ctx, Act::none, eps, count, xp->view, sp->view, &wp->view, &bp->view, yp->view,
                               mp->view, ip->view);
      EXPECT_TRUE(yp->padding_intact() && mp->padding_intact() && ip->padding_intact());
      yp->store_into(y), mp->store_into(mean), ip->store_into(invstd);
      auto dyp = part_of(dy, p, rng), bp2 = out_buf({2, C}, stats_box(p), rng, NAN, DType::f64);
      ffrt::batch_norm_backward_stats(*ctx, xp->view, dyp->view, mp->view, ip->view, bp2->view);
      EXPECT_TRUE(bp2->padding_intact());
      for_box(bp2->lo(), bp2->size(), [&](const Shape& g) { bstats.at(g) += bp2->d(g); });
    }
    ffrt::batch_norm_update_running(*ctx, momentum, count, view_of(stats), view_of(rm), view_of(rv));
    for (const Box& p : parts) {
      auto xp = part_of(x, p, rng), dyp = part_of(dy, p, rng), mp = part_of(mean, whole_box({C}), rng),
           ip = part_of(invstd, whole_box({C}), rng), wp = part_of(w, whole_box({C}), rng);
      auto sp = part_of(bstats, stats_box(p), rng), dxp = out_buf(s, p, rng);
      ffrt::batch_norm_backward_data(*ctx, count, xp->view, dyp->view, mp->view, ip->view, &wp->view, sp->view,
                                     dxp->view, false);
      EXPECT_TRUE(dxp->padding_intact());
      dxp->store_into(dx);
    }

    // Parts against the whole batch, to ~1e-6 relative.
    const BnRef ref = bn_reference(x, &w, &b, Act::none, eps, dy);
    expect_double_sums(stats.v, st->whole64().v, ref.stats_abs, what + " reduced statistics");
    expect_close(y.v, yw->whole().v, 1e-6, what + " y: parts vs whole");
    expect_close(mean.v, mw->whole().v, 1e-6, what + " mean: parts vs whole");
    expect_close(invstd.v, iw->whole().v, 1e-6, what + " invstd: parts vs whole");
    expect_close(rm.v, rmw->whole().v, 1e-6, what + " running_mean: parts vs whole");
    expect_close(rv.v, rvw->whole().v, 1e-6, what + " running_var: parts vs whole");
    expect_close(dx.v, dxw->whole().v, 1e-6, what + " dx: parts vs whole", 1e-6 * ref.dx_scale);

    // And against the double reference: the statistics to double precision, mean, invstd and the
    // running statistics to float rounding. y is (x - mean) * invstd with the mean rounded to float
    // (as PyTorch saves it), whose rounding is relative to the mean: the reference rounds it too.
    expect_close(mean.v, ref.mean, 1e-6, what + " mean vs reference");
    expect_close(invstd.v, ref.invstd, 1e-6, what + " invstd vs reference");
    std::vector<double> want_rm(C), want_rv(C), want_y(x.v.size());
    for (int64_t c = 0; c < C; ++c) {
      want_rm[c] = (1 - momentum) * rm0.v[c] + momentum * ref.mean[c];
      want_rv[c] = (1 - momentum) * rv0.v[c] + momentum * ref.unbiased[c];
    }
    expect_close(rm.v, want_rm, 1e-6, what + " running_mean vs reference");
    expect_close(rv.v, want_rv, 1e-6, what + " running_var vs reference");
    for_box(Shape(s.size(), 0), s, [&](const Shape& g) {
      const int64_t c = g[1];
      const double mf = static_cast<float>(ref.mean[c]);
      want_y[flat_index(s, g)] = (x.at(g) - mf) * ref.invstd[c] * w.v[c] + b.v[c];
    });
    expect_close(y.v, want_y, 1e-6, what + " y vs reference (float mean)");

    // The data is such that f32 statistics fail: the variance from the rounded partial sums is off
    // by far more than the tolerances above (so this test would catch a return to them).
    for (int64_t c = 0; c < 2; ++c) {
      const double m = static_cast<double>(stats_f32.v[c]) / count;
      const double var_f32 = static_cast<double>(stats_f32.v[C + c]) / count - m * m;
      const double var = ref.unbiased[c] * (count - 1) / count;
      EXPECT_GT(std::abs(var_f32 - var), 1e-2 * var) << what << " channel " << c << ": f32 statistics would give "
                                                     << var_f32 << ", the variance is " << var;
    }
  }
}

TEST(BatchNorm, StatisticsMustBeF64) {
  // Every batch-norm kernel refuses an f32 [2, C] statistics view (it would round the partial sums).
  auto ctx = make_ctx();
  const Shape s{4, 3};
  Tensor x(s, 1.f), dy(s, 1.f), y(s), dx(s), mean({3}, 0.f), invstd({3}, 1.f), rm({3}), rv({3});
  Tensor stats32({2, 3}, 1.f);
  const View bad = view_of(stats32);
  EXPECT_THROW(ffrt::batch_norm_stats(*ctx, view_of(x), bad), ffrt::Error);
  EXPECT_THROW(ffrt::batch_norm_forward(*ctx, Act::none, 1e-5f, 4, view_of(x), bad, nullptr, nullptr, view_of(y),
                                        view_of(mean), view_of(invstd)),
               ffrt::Error);
  EXPECT_THROW(ffrt::batch_norm_update_running(*ctx, 0.1f, 4, bad, view_of(rm), view_of(rv)), ffrt::Error);
  EXPECT_THROW(ffrt::batch_norm_backward_stats(*ctx, view_of(x), view_of(dy), view_of(mean), view_of(invstd), bad),
               ffrt::Error);
  EXPECT_THROW(ffrt::batch_norm_backward_data(*ctx, 4, view_of(x), view_of(dy), view_of(mean), view_of(invstd),
                                              nullptr, bad, view_of(dx), false),
               ffrt::Error);
  // The same calls with f64 statistics run.
  Tensor64 stats({2, 3});
  ffrt::batch_norm_stats(*ctx, view_of(x), view_of(stats));
  EXPECT_EQ(stats.v, (std::vector<double>{4, 4, 4, 4, 4, 4}));
}

TEST(BatchNorm, LargeThreadedMatchesSerial) {
  auto one = make_ctx(1), four = make_ctx(4);
  Rng rng(14);
  const Shape s{37, 5, 19, 23};
  const Tensor x = bn_input(s, rng), dy = random_tensor(s, rng);
  Tensor y1(s), y4(s), m({5}), is({5}), dx1(s), dx4(s);
  Tensor64 st1({2, 5}), st4({2, 5}), b1({2, 5}), b4({2, 5});
  Tensor xc = x, dyc = dy;
  auto v = [](auto& t) { return view_of(t); };
  const int64_t count = volume(s) / 5;
  for (auto* c : {one.get(), four.get()}) {
    const bool first = c == one.get();
    ffrt::batch_norm_stats(*c, v(xc), v(first ? st1 : st4));
    ffrt::batch_norm_forward(*c, Act::none, 1e-5f, count, v(xc), v(st1), nullptr, nullptr, v(first ? y1 : y4), v(m),
                             v(is));
    ffrt::batch_norm_backward_stats(*c, v(xc), v(dyc), v(m), v(is), v(first ? b1 : b4));
    ffrt::batch_norm_backward_data(*c, count, v(xc), v(dyc), v(m), v(is), nullptr, v(b1), v(first ? dx1 : dx4), false);
  }
  expect_close(st4.v, st1.v, 1e-6, "stats");
  EXPECT_EQ(y1.v, y4.v);
  expect_close(b4.v, b1.v, 1e-6, "backward sums");
  EXPECT_EQ(dx1.v, dx4.v);
}

// ---- layer norm -----------------------------------------------------------------------------------

struct LnRef {
  std::vector<double> y, mean, invstd, dx, dw, db;
  double dx_scale = 0;  ///< the mean |invstd * dy * weight|: the size of the terms dx cancels down from
};

LnRef ln_reference(const Tensor& x, const Tensor* w, const Tensor* b, double eps, const Tensor& dy) {
  const int64_t D = x.shape.back(), rows = volume(x.shape) / D;
  LnRef r;
  r.y.resize(x.v.size()), r.dx.resize(x.v.size()), r.mean.resize(rows), r.invstd.resize(rows);
  r.dw.assign(D, 0), r.db.assign(D, 0);
  for (int64_t row = 0; row < rows; ++row) {
    const float* p = x.v.data() + row * D;
    const float* g = dy.v.data() + row * D;
    double m = 0, var = 0;
    for (int64_t i = 0; i < D; ++i) m += p[i] / static_cast<double>(D);
    for (int64_t i = 0; i < D; ++i) var += (p[i] - m) * (p[i] - m) / D;
    const double is = 1 / std::sqrt(var + eps);
    r.mean[row] = m, r.invstd[row] = is;
    double a = 0, c = 0;
    for (int64_t i = 0; i < D; ++i) {
      const double xh = (p[i] - m) * is, wi = w ? w->v[i] : 1.0;
      r.y[row * D + i] = xh * wi + (b ? b->v[i] : 0.0);
      a += g[i] * wi / D, c += g[i] * wi * xh / D;
      r.dw[i] += g[i] * xh, r.db[i] += g[i];
    }
    for (int64_t i = 0; i < D; ++i) {
      r.dx[row * D + i] = is * (g[i] * (w ? w->v[i] : 1.0) - a - (p[i] - m) * is * c);
      r.dx_scale += std::abs(is * g[i] * (w ? w->v[i] : 1.0)) / x.v.size();
    }
  }
  return r;
}

/// Rows of U(-2, 3) values with a variance of at least 0.01: in float, xhat = (x - mean) * invstd
/// has an error near ulp(mean) * invstd, which a near-constant row would blow up (in PyTorch too).
Tensor ln_input(const Shape& s, Rng& rng) {
  Tensor x = random_tensor(s, rng, -2, 3);
  const int64_t D = s.back();
  for (int64_t row = 0; D > 1 && row < volume(s) / D; ++row) {
    float* p = x.v.data() + row * D;
    for (double var = 0; var < 0.01;) {
      double m = 0;
      for (int64_t i = 0; i < D; ++i) m += p[i] / static_cast<double>(D);
      var = 0;
      for (int64_t i = 0; i < D; ++i) var += (p[i] - m) * (p[i] - m) / D;
      if (var < 0.01)
        for (int64_t i = 0; i < D; ++i) p[i] = static_cast<float>(rng.uniform(-2, 3));
    }
  }
  return x;
}

TEST(LayerNorm, WholeMatchesReferenceAndFiniteDifferences) {
  auto ctx = make_ctx();
  Rng rng(21);
  for (int trial = 0; trial < 20; ++trial) {
    const Shape s = random_shape(rng, 1 + trial % 4, 7);
    const int64_t D = s.back();
    const bool affine = trial % 3 != 1;
    const std::string what = shape_str(s) + (affine ? " affine" : "");
    const Tensor x = ln_input(s, rng), dy = random_tensor(s, rng);
    const Tensor w = random_tensor({D}, rng, 0.5, 1.5), b = random_tensor({D}, rng);
    const LnRef ref = ln_reference(x, affine ? &w : nullptr, affine ? &b : nullptr, 1e-5, dy);
    const Shape rows(s.begin(), s.end() - 1);
    auto xb = part_of(x, whole_box(s), rng), dyb = part_of(dy, whole_box(s), rng);
    auto wb = part_of(w, whole_box({D}), rng), bb = part_of(b, whole_box({D}), rng);
    auto yb = out_buf(s, whole_box(s), rng), mb = out_buf(rows, whole_box(rows), rng),
         ib = out_buf(rows, whole_box(rows), rng);
    ffrt::layer_norm_forward(*ctx, 1e-5f, xb->view, affine ? &wb->view : nullptr, affine ? &bb->view : nullptr,
                             yb->view, mb->view, ib->view);
    EXPECT_TRUE(yb->padding_intact() && mb->padding_intact() && ib->padding_intact());
    expect_close(yb->whole().v, ref.y, kTol, what + " y");
    expect_close(mb->whole().v, ref.mean, kTol, what + " mean");
    expect_close(ib->whole().v, ref.invstd, kTol, what + " invstd");
    auto dxb = out_buf(s, whole_box(s), rng), dwb = out_buf({D}, whole_box({D}), rng),
         dbb = out_buf({D}, whole_box({D}), rng);
    ffrt::layer_norm_backward(*ctx, xb->view, dyb->view, mb->view, ib->view, affine ? &wb->view : nullptr, dxb->view,
                              &dwb->view, &dbb->view, false);
    EXPECT_TRUE(dxb->padding_intact() && dwb->padding_intact() && dbb->padding_intact());
    expect_close(dxb->whole().v, ref.dx, kTol, what + " dx", kTol * ref.dx_scale);
    expect_close(dwb->whole().v, ref.dw, kTol, what + " dw");
    expect_close(dbb->whole().v, ref.db, kTol, what + " db");

    // dx by central differences of L = sum(dy * y) over the reference.
    std::vector<double> fd(x.v.size());
    for (size_t k = 0; k < x.v.size(); ++k) {
      fd[k] = central_difference(x, k, 1e-3f, [&](const Tensor& xp) {
        const LnRef rr = ln_reference(xp, affine ? &w : nullptr, affine ? &b : nullptr, 1e-5, dy);
        double l = 0;
        for (size_t j = 0; j < rr.y.size(); ++j) l += dy.v[j] * rr.y[j];
        return l;
      });
    }
    expect_close(dxb->whole().v, fd, 2e-3, what + " dx vs finite differences", 2e-3 * ref.dx_scale);
  }
}

TEST(LayerNorm, PartsAssembleToWhole) {
  auto ctx = make_ctx();
  Rng rng(22);
  for (int trial = 0; trial < 24; ++trial) {
    const Shape s = random_shape(rng, 1 + trial % 4, 7);
    const int64_t D = s.back();
    const Shape rows(s.begin(), s.end() - 1);
    const Tensor x = ln_input(s, rng), dy = random_tensor(s, rng);
    const Tensor w = random_tensor({D}, rng, 0.5, 1.5), b = random_tensor({D}, rng);
    const LnRef ref = ln_reference(x, &w, &b, 1e-5, dy);
    auto wb = part_of(w, whole_box({D}), rng), bb = part_of(b, whole_box({D}), rng);
    std::vector<bool> split(s.size(), true);
    split.back() = false;
    Tensor y(s, NAN), mean(rows, NAN), invstd(rows, NAN), dx(s, NAN);
    std::vector<double> dw(D, 0), db(D, 0);
    for (const Box& p : random_grid(s, rng, split)) {
      const Box rb = drop_last(p);
      auto xp = part_of(x, p, rng), yp = out_buf(s, p, rng), mp = out_buf(rows, rb, rng), ip = out_buf(rows, rb, rng);
      ffrt::layer_norm_forward(*ctx, 1e-5f, xp->view, &wb->view, &bb->view, yp->view, mp->view, ip->view);
      EXPECT_TRUE(yp->padding_intact() && mp->padding_intact() && ip->padding_intact());
      yp->store_into(y), mp->store_into(mean), ip->store_into(invstd);
      auto dyp = part_of(dy, p, rng), dxp = out_buf(s, p, rng);
      auto dwp = out_buf({D}, whole_box({D}), rng), dbp = out_buf({D}, whole_box({D}), rng);
      ffrt::layer_norm_backward(*ctx, xp->view, dyp->view, mp->view, ip->view, &wb->view, dxp->view, &dwp->view,
                                &dbp->view, false);
      EXPECT_TRUE(dxp->padding_intact() && dwp->padding_intact() && dbp->padding_intact());
      dxp->store_into(dx);
      for (int64_t i = 0; i < D; ++i) dw[i] += dwp->f({i}), db[i] += dbp->f({i});
    }
    expect_close(y.v, ref.y, kTol, shape_str(s) + " y");
    expect_close(mean.v, ref.mean, kTol, shape_str(s) + " mean");
    expect_close(invstd.v, ref.invstd, kTol, shape_str(s) + " invstd");
    expect_close(dx.v, ref.dx, kTol, shape_str(s) + " dx", kTol * ref.dx_scale);
    std::vector<float> dwf(dw.begin(), dw.end()), dbf(db.begin(), db.end());
    expect_close(dwf, ref.dw, kTol, shape_str(s) + " reduced dw");
    expect_close(dbf, ref.db, kTol, shape_str(s) + " reduced db");
  }
}

// ---- softmax --------------------------------------------------------------------------------------

/// Softmax along `axis` in double, and its backward.
void softmax_reference(const Tensor& x, int axis, const Tensor& dy, std::vector<double>& y, std::vector<double>& dx) {
  y.assign(x.v.size(), 0), dx.assign(x.v.size(), 0);
  Shape lines = x.shape;
  lines[axis] = 1;
  for_box(Shape(x.shape.size(), 0), lines, [&](const Shape& g0) {
    Shape g = g0;
    double mx = -INFINITY, sum = 0, dot = 0;
    for (g[axis] = 0; g[axis] < x.shape[axis]; ++g[axis]) mx = std::max(mx, static_cast<double>(x.at(g)));
    for (g[axis] = 0; g[axis] < x.shape[axis]; ++g[axis]) sum += std::exp(x.at(g) - mx);
    for (g[axis] = 0; g[axis] < x.shape[axis]; ++g[axis]) {
      y[flat_index(x.shape, g)] = std::exp(x.at(g) - mx) / sum;
      dot += y[flat_index(x.shape, g)] * dy.at(g);
    }
    for (g[axis] = 0; g[axis] < x.shape[axis]; ++g[axis])
      dx[flat_index(x.shape, g)] = y[flat_index(x.shape, g)] * (dy.at(g) - dot);
  });
}

TEST(Softmax, PartsAlongAnyAxisMatchReference) {
  auto ctx = make_ctx();
  Rng rng(31);
  for (int trial = 0; trial < 32; ++trial) {
    const int rank = 1 + trial % 4;
    const Shape s = random_shape(rng, rank, 7);
    const int axis = static_cast<int>(rng.range(0, rank - 1));
    const int axis_arg = rng.chance(0.5) ? axis - rank : axis;  // negative axes count from the back
    const std::string what = shape_str(s) + " axis " + std::to_string(axis_arg);
    const Tensor x = random_tensor(s, rng, -20, 20), dy = random_tensor(s, rng);
    std::vector<double> ry, rdx;
    softmax_reference(x, axis, dy, ry, rdx);
    std::vector<bool> split(rank, true);
    split[axis] = false;
    Tensor y(s, NAN), dx(s, NAN);
    for (const Box& p : random_grid(s, rng, split)) {
      auto xp = part_of(x, p, rng), yp = out_buf(s, p, rng);
      ffrt::softmax_forward(*ctx, axis_arg, xp->view, yp->view);
      EXPECT_TRUE(yp->padding_intact()) << what;
      yp->store_into(y);
      auto dyp = part_of(dy, p, rng), dxp = out_buf(s, p, rng, 0.5f);
      ffrt::softmax_backward(*ctx, axis_arg, yp->view, dyp->view, dxp->view, true);
      EXPECT_TRUE(dxp->padding_intact()) << what;
      dxp->store_into(dx);
    }
    expect_close(y.v, ry, kTol, what + " y");
    for (auto& v : rdx) v += 0.5;
    expect_close(dx.v, rdx, kTol, what + " dx accumulated");
  }
  // Lines longer than the kernels' groups of lines along the last dim.
  for (const auto& [s, axis] :
       {std::pair{Shape{3, 5, 150}, 1}, std::pair{Shape{9, 131}, 0}, std::pair{Shape{4, 200}, 1}}) {
    const Tensor x = random_tensor(s, rng, -20, 20), dy = random_tensor(s, rng);
    std::vector<double> ry, rdx;
    softmax_reference(x, axis, dy, ry, rdx);
    std::vector<bool> split(s.size(), true);
    split[axis] = false;
    Tensor y(s, NAN), dx(s, NAN);
    for (const Box& p : random_grid(s, rng, split)) {
      auto xp = part_of(x, p, rng), yp = out_buf(s, p, rng), dyp = part_of(dy, p, rng), dxp = out_buf(s, p, rng);
      ffrt::softmax_forward(*ctx, axis, xp->view, yp->view);
      ffrt::softmax_backward(*ctx, axis, yp->view, dyp->view, dxp->view, false);
      EXPECT_TRUE(yp->padding_intact() && dxp->padding_intact());
      yp->store_into(y), dxp->store_into(dx);
    }
    expect_close(y.v, ry, kTol, shape_str(s) + " y");
    expect_close(dx.v, rdx, kTol, shape_str(s) + " dx");
  }
  std::vector<float> a(6);
  const View v = ffrt::make_view(a.data(), DType::f32, {2, 3}, {0, 0}, {2, 2});
  EXPECT_THROW(ffrt::softmax_forward(*ctx, 1, v, v), ffrt::Error);  // the axis must be whole
}

// ---- softmax cross-entropy ---------------------------------------------------------------------------

struct SceCase {
  Shape logits_shape, labels_shape;
  Tensor logits;
  std::vector<int64_t> labels;
};

SceCase random_sce_case(Rng& rng, int rank, double spread) {
  SceCase c;
  c.logits_shape = random_shape(rng, rank, 6);
  c.logits_shape.back() = rng.range(1, 11);
  c.labels_shape.assign(c.logits_shape.begin(), c.logits_shape.end() - 1);
  c.logits = random_tensor(c.logits_shape, rng, -spread, spread);
  for (int64_t k = 0; k < volume(c.labels_shape); ++k) c.labels.push_back(rng.range(0, c.logits_shape.back() - 1));
  return c;
}

/// The mean cross-entropy and its gradient, in double with a stable log-softmax.
double sce_reference(const SceCase& c, std::vector<double>& grad) {
  const int64_t C = c.logits_shape.back(), rows = volume(c.labels_shape);
  grad.assign(c.logits.v.size(), 0);
  double loss = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = c.logits.v.data() + r * C;
    double mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < C; ++i) mx = std::max(mx, static_cast<double>(p[i]));
    for (int64_t i = 0; i < C; ++i) sum += std::exp(p[i] - mx);
    const double lse = mx + std::log(sum);
    loss += (lse - p[c.labels[r]]) / rows;
    for (int64_t i = 0; i < C; ++i) grad[r * C + i] = (std::exp(p[i] - lse) - (i == c.labels[r])) / rows;
  }
  return loss;
}

std::unique_ptr<Buf> labels_part(const SceCase& c, const Box& box, Rng& rng) {
  auto b = std::make_unique<Buf>(DType::i64, c.labels_shape, box, &rng);
  b->load(c.labels);
  return b;
}

TEST(SoftmaxCrossEntropy, PartsAddUpToTheMeanAndGradientsMatch) {
  auto ctx = make_ctx();
  Rng rng(41);
  for (int trial = 0; trial < 32; ++trial) {
    const double spread = trial % 4 == 3 ? 1000 : 5;  // large logits: the log-softmax must stay finite
    const SceCase c = random_sce_case(rng, 2 + trial % 3, spread);
    const std::string what = shape_str(c.logits_shape) + " spread " + std::to_string(spread);
    std::vector<double> grad;
    const double want = sce_reference(c, grad);
    const float scale = 1.f / static_cast<float>(volume(c.labels_shape));
    double loss = 0;  // the reduction of the parts' losses
    for (const Box& p : random_grid(c.labels_shape, rng)) {
      auto lp = part_of(c.logits, with_dim(p, 0, c.logits_shape.back()), rng), yp = labels_part(c, p, rng);
      Buf out(DType::f32, {}, Box{}, &rng);
      out.set(NAN);
      ffrt::softmax_cross_entropy_forward(*ctx, scale, lp->view, yp->view, out.view);
      loss += out.f({});
    }
    expect_close(loss, want, kTol, what + " loss", kAbs);
    // dlogits split along every dim, the class dim included; each part reads whole logit rows.
    Tensor dl(c.logits_shape, NAN);
    for (const Box& p : random_grid(c.logits_shape, rng)) {
      const Box rows = drop_last(p);
      auto lp = part_of(c.logits, with_dim(rows, 0, c.logits_shape.back()), rng), yp = labels_part(c, rows, rng);
      auto dp = out_buf(c.logits_shape, p, rng);
      ffrt::softmax_cross_entropy_backward(*ctx, scale, lp->view, yp->view, dp->view, false);
      EXPECT_TRUE(dp->padding_intact()) << what;
      dp->store_into(dl);
    }
    expect_close(dl.v, grad, kTol, what + " dlogits", kAbs);
  }
}

TEST(SoftmaxCrossEntropy, GradientMatchesFiniteDifferences) {
  auto ctx = make_ctx();
  Rng rng(42);
  SceCase c = random_sce_case(rng, 3, 3);
  std::vector<double> unused;
  const float scale = 1.f / static_cast<float>(volume(c.labels_shape));
  Tensor dl(c.logits_shape);
  auto lw = part_of(c.logits, whole_box(c.logits_shape), rng), yw = labels_part(c, whole_box(c.labels_shape), rng);
  ffrt::softmax_cross_entropy_backward(
      *ctx, scale, lw->view, yw->view,
      ffrt::make_view(dl.v.data(), DType::f32, 3, dl.shape.data(), Shape(3).data(), dl.shape.data()), false);
  std::vector<double> fd(dl.v.size());
  for (size_t k = 0; k < fd.size(); ++k) {
    SceCase p = c, m = c;
    p.logits.v[k] += 1e-2f, m.logits.v[k] -= 1e-2f;
    const double h = p.logits.v[k] - static_cast<double>(m.logits.v[k]);
    fd[k] = (sce_reference(p, unused) - sce_reference(m, unused)) / h;
  }
  expect_close(dl.v, fd, 2e-3, "dlogits vs finite differences");
}

TEST(SoftmaxCrossEntropy, OutOfRangeLabelThrowsNamingIt) {
  auto ctx = make_ctx();
  std::vector<float> logits(12, 0.f), dl(12), loss(1);
  std::vector<int64_t> labels{1, 7, 2};
  const View lv = ffrt::whole_view(logits.data(), DType::f32, {3, 4});
  const View yv = ffrt::whole_view(labels.data(), DType::i64, {3});
  for (int64_t bad : {int64_t{7}, int64_t{-1}, int64_t{4}}) {
    labels[1] = bad;
    try {
      ffrt::softmax_cross_entropy_forward(*ctx, 1.f, lv, yv, ffrt::whole_view(loss.data(), DType::f32, {1}));
      ADD_FAILURE() << "label " << bad << " was accepted";
    } catch (const ffrt::Error& e) {
      EXPECT_NE(std::string(e.what()).find("label " + std::to_string(bad)), std::string::npos) << e.what();
    }
    EXPECT_THROW(
        ffrt::softmax_cross_entropy_backward(*ctx, 1.f, lv, yv, ffrt::whole_view(dl.data(), DType::f32, {3, 4}), false),
        ffrt::Error);
  }
  labels[1] = 3;  // a part whose rows exclude nothing bad is fine; one whose labels lack its rows is not
  const View part = ffrt::make_view(labels.data(), DType::i64, {3}, {0}, {2});
  EXPECT_THROW(
      ffrt::softmax_cross_entropy_backward(*ctx, 1.f, lv, part, ffrt::whole_view(dl.data(), DType::f32, {3, 4}), false),
      ffrt::Error);
}

// ---- mse --------------------------------------------------------------------------------------------

TEST(Mse, PartsAddUpToTheMeanAndGradientsMatch) {
  auto ctx = make_ctx();
  Rng rng(51);
  for (int trial = 0; trial < 24; ++trial) {
    const Shape s = random_shape(rng, 1 + trial % 4, 7);
    const Tensor pred = random_tensor(s, rng), target = random_tensor(s, rng);
    const float scale = 1.f / static_cast<float>(volume(s));
    double want = 0;
    std::vector<double> grad(pred.v.size());
    for (size_t k = 0; k < grad.size(); ++k) {
      const double e = static_cast<double>(pred.v[k]) - target.v[k];
      want += e * e / volume(s), grad[k] = 2 * e / volume(s);
    }
    double loss = 0;
    Tensor dp(s, NAN);
    for (const Box& p : random_grid(s, rng)) {
      auto pp = part_of(pred, p, rng), tp = part_of(target, p, rng), gp = out_buf(s, p, rng);
      Buf out(DType::f32, {1}, whole_box({1}), &rng);
      ffrt::mse_forward(*ctx, scale, pp->view, tp->view, out.view);
      loss += out.f({0});
      ffrt::mse_backward(*ctx, scale, pp->view, tp->view, gp->view, false);
      EXPECT_TRUE(gp->padding_intact());
      gp->store_into(dp);
    }
    expect_close(loss, want, kTol, shape_str(s) + " loss");
    expect_close(dp.v, grad, kTol, shape_str(s) + " dpred");
  }
}

TEST(Losses, LargeThreadedMatchesSerial) {
  auto one = make_ctx(1), four = make_ctx(4);
  Rng rng(52);
  SceCase c = random_sce_case(rng, 2, 4);
  c.logits_shape = {4099, 17}, c.labels_shape = {4099};
  c.logits = random_tensor(c.logits_shape, rng, -4, 4);
  c.labels.clear();
  for (int k = 0; k < 4099; ++k) c.labels.push_back(rng.range(0, 16));
  std::vector<double> grad;
  const double want = sce_reference(c, grad);
  const View lv = ffrt::whole_view(c.logits.v.data(), DType::f32, {4099, 17});
  const View yv = ffrt::whole_view(c.labels.data(), DType::i64, {4099});
  float l1, l4;
  ffrt::softmax_cross_entropy_forward(*one, 1.f / 4099, lv, yv, ffrt::whole_view(&l1, DType::f32, {1}));
  ffrt::softmax_cross_entropy_forward(*four, 1.f / 4099, lv, yv, ffrt::whole_view(&l4, DType::f32, {1}));
  expect_close(l1, want, kTol, "serial loss");
  expect_close(l4, want, kTol, "threaded loss");
  std::vector<float> g1(grad.size()), g4(grad.size());
  ffrt::softmax_cross_entropy_backward(*one, 1.f / 4099, lv, yv, ffrt::whole_view(g1.data(), DType::f32, {4099, 17}),
                                       false);
  ffrt::softmax_cross_entropy_backward(*four, 1.f / 4099, lv, yv, ffrt::whole_view(g4.data(), DType::f32, {4099, 17}),
                                       false);
  EXPECT_EQ(g1, g4);
  expect_close(g1, grad, kTol, "dlogits");
}

// ---- layout ---------------------------------------------------------------------------------------

Box random_box(const Shape& full, Rng& rng) {
  Box b;
  for (int64_t e : full) {
    const int64_t lo = rng.range(0, e - 1);
    b.lo.push_back(lo);
    b.size.push_back(rng.range(rng.chance(0.1) ? 0 : 1, e - lo));
  }
  return b;
}

TEST(CopyBox, CopiesOrAddsTheIntersection) {
  auto ctx = make_ctx();
  Rng rng(61);
  for (int trial = 0; trial < 100; ++trial) {
    const Shape s = random_shape(rng, trial % 5, 7);  // ranks 0-4
    const Box sb = random_box(s, rng), db = random_box(s, rng);
    const bool accumulate = trial % 3 == 1;
    const std::string what = shape_str(s) + (accumulate ? " accumulate" : "");
    const Tensor src = random_tensor(s, rng), old = random_tensor(s, rng);
    auto in_src = [&](const Shape& g) {
      for (size_t d = 0; d < s.size(); ++d)
        if (g[d] < sb.lo[d] || g[d] >= sb.lo[d] + sb.size[d]) return false;
      return true;
    };
    auto sp = part_of(src, sb, rng), dp = part_of(old, db, rng);
    ffrt::copy_box(*ctx, sp->view, dp->view, accumulate);
    EXPECT_TRUE(dp->padding_intact()) << what;
    for_box(db.lo, db.size, [&](const Shape& g) {
      const bool inside = in_src(g);
      const float want = !inside ? old.at(g) : accumulate ? old.at(g) + src.at(g) : src.at(g);
      ASSERT_EQ(dp->f(g), want) << what;
    });
    // The same with i64 elements.
    std::vector<int64_t> isrc(volume(s)), iold(volume(s));
    for (auto& v : isrc) v = rng.range(-1000, 1000);
    for (auto& v : iold) v = rng.range(-1000, 1000);
    Buf is(DType::i64, s, sb, &rng), id(DType::i64, s, db, &rng);
    is.load(isrc), id.load(iold);
    ffrt::copy_box(*ctx, is.view, id.view, accumulate);
    EXPECT_TRUE(id.padding_intact()) << what;
    for_box(db.lo, db.size, [&](const Shape& g) {
      const bool inside = in_src(g);
      const int64_t o = iold[flat_index(s, g)], v = isrc[flat_index(s, g)];
      ASSERT_EQ(id.i(g), !inside ? o : accumulate ? o + v : v) << what;
    });
    // And f64 (batch-norm statistics): values no float holds, copied and added in double.
    Tensor64 dsrc(s), dold(s);
    for (auto& v : dsrc.v) v = 1e8 + rng.uniform(-1, 1);
    for (auto& v : dold.v) v = rng.uniform(-1, 1) / 3;
    auto ds = part_of(dsrc, sb, rng), dd = part_of(dold, db, rng);
    ffrt::copy_box(*ctx, ds->view, dd->view, accumulate);
    EXPECT_TRUE(dd->padding_intact()) << what;
    for_box(db.lo, db.size, [&](const Shape& g) {
      const bool inside = in_src(g);
      const double want = !inside ? dold.at(g) : accumulate ? dold.at(g) + dsrc.at(g) : dsrc.at(g);
      ASSERT_EQ(dd->d(g), want) << what;
    });
  }
  // Mixed dtypes are refused.
  std::vector<double> d6(6);
  std::vector<float> f6(6);
  EXPECT_THROW(ffrt::copy_box(*ctx, ffrt::whole_view(f6.data(), DType::f32, {2, 3}),
                              ffrt::whole_view(d6.data(), DType::f64, {2, 3}), false),
               ffrt::Error);
  std::vector<float> a(6), b(6);
  EXPECT_THROW(ffrt::copy_box(*ctx, ffrt::whole_view(a.data(), DType::f32, {2, 3}),
                              ffrt::whole_view(b.data(), DType::f32, {3, 2}), false),
               ffrt::Error);
}

TEST(CopyBox, PermutedAndLargeThreaded) {
  // A transpose through ffrt::permute: dst [R, C] gets src [C, R] seen as [R, C].
  auto four = make_ctx(4);
  const int64_t R = 301, C = 257;
  std::vector<float> src(R * C), dst(R * C);
  for (size_t k = 0; k < src.size(); ++k) src[k] = static_cast<float>(k);
  const int perm[2] = {1, 0};
  ffrt::copy_box(*four, ffrt::permute(ffrt::whole_view(src.data(), DType::f32, {C, R}), perm),
                 ffrt::whole_view(dst.data(), DType::f32, {R, C}), false);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) ASSERT_EQ(dst[r * C + c], src[c * R + r]);
}

/// A random shape with `n` elements (n's prime factors spread over 1-4 dims).
Shape random_shape_of(int64_t n, Rng& rng) {
  Shape s(rng.range(1, 4), 1);
  for (int64_t p = 2; n > 1; ++p)
    while (n % p == 0) s[rng.range(0, static_cast<int64_t>(s.size()) - 1)] *= p, n /= p;
  return s;
}

Shape unravel(int64_t flat, const Shape& full) {
  Shape g(full.size());
  for (int d = static_cast<int>(full.size()) - 1; d >= 0; --d) g[d] = flat % full[d], flat /= full[d];
  return g;
}

TEST(ReshapeCopy, ByGlobalElementIndexOverParts) {
  auto ctx = make_ctx();
  Rng rng(62);
  for (int trial = 0; trial < 60; ++trial) {
    const Shape ss = random_shape(rng, 1 + trial % 4, 6);
    const Shape ds = trial % 5 == 0 ? Shape{ss[0], volume(ss) / ss[0]} : random_shape_of(volume(ss), rng);  // flat
    const bool accumulate = trial % 2 == 1;
    const std::string what = shape_str(ss) + " -> " + shape_str(ds);
    const Tensor src = random_tensor(ss, rng);
    Tensor got(ds, NAN);
    for (const Box& p : random_grid(ds, rng)) {
      // src's box: the bounding box of the elements the part needs.
      Shape lo(ss), hi(ss.size(), 0);
      bool any = false;
      for_box(p.lo, p.size, [&](const Shape& g) {
        const Shape s = unravel(flat_index(ds, g), ss);
        any = true;
        for (size_t d = 0; d < ss.size(); ++d) lo[d] = std::min(lo[d], s[d]), hi[d] = std::max(hi[d], s[d] + 1);
      });
      if (!any) continue;
      Box sb{lo, Shape(ss.size())};
      for (size_t d = 0; d < ss.size(); ++d) sb.size[d] = hi[d] - lo[d];
      auto sp = part_of(src, sb, rng), dp = out_buf(ds, p, rng, accumulate ? 1.f : NAN);
      ffrt::reshape_copy(*ctx, sp->view, dp->view, accumulate);
      EXPECT_TRUE(dp->padding_intact()) << what;
      dp->store_into(got);
      // A src box one slab short of the bounding box: the elements it holds are copied, the others
      // are left alone (a part's backward scatters its box into a larger input box).
      for (size_t d = 0; d < ss.size(); ++d) {
        if (sb.size[d] < 2) continue;
        Box shorter = sb;
        --shorter.size[d];
        auto sp2 = part_of(src, shorter, rng), dp2 = out_buf(ds, p, rng, NAN);
        ffrt::reshape_copy(*ctx, sp2->view, dp2->view, false);
        for_box(p.lo, p.size, [&](const Shape& g) {
          const Shape s = unravel(flat_index(ds, g), ss);
          bool held = true;
          for (size_t e = 0; e < ss.size(); ++e) held = held && s[e] >= shorter.lo[e] && s[e] < shorter.lo[e] + shorter.size[e];
          if (held) EXPECT_EQ(dp2->f(g), src.at(s)) << what;
          else EXPECT_TRUE(std::isnan(dp2->f(g))) << what;
        });
        break;
      }
    }
    for (int64_t k = 0; k < volume(ds); ++k) ASSERT_EQ(got.v[k], (accumulate ? 1.f : 0.f) + src.v[k]) << what;
  }
  // Whole dense tensors (one flat run, split over threads when large), f32 accumulating, i64 and
  // rank 0.
  auto three = make_ctx(3);
  const Tensor big = random_tensor({16, 49, 64}, rng);
  Tensor flat({16, 3136}, 0.5f);
  ffrt::reshape_copy(*three, ffrt::whole_view(const_cast<float*>(big.v.data()), DType::f32, {16, 49, 64}),
                     ffrt::whole_view(flat.v.data(), DType::f32, {16, 3136}), true);
  for (size_t k = 0; k < flat.v.size(); ++k) ASSERT_EQ(flat.v[k], 0.5f + big.v[k]) << k;
  std::vector<int64_t> a{1, 2, 3, 4, 5, 6}, b(6, 0);
  ffrt::reshape_copy(*ctx, ffrt::whole_view(a.data(), DType::i64, {2, 3}), ffrt::whole_view(b.data(), DType::i64, {6}),
                     false);
  EXPECT_EQ(a, b);
  // f64, into a dense buffer of rows [1, 3) of a [3, 2] tensor (elements 2-5), accumulating.
  std::vector<double> da{0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, db{1, 1, 1, 1, 1, 1};
  ffrt::reshape_copy(*ctx, ffrt::whole_view(da.data(), DType::f64, {2, 3}),
                     ffrt::make_view(db.data(), DType::f64, {3, 2}, {1, 0}, {2, 2}), true);
  EXPECT_EQ(db, (std::vector<double>{1 + 0.3, 1 + 0.4, 1 + 0.5, 1 + 0.6, 1, 1}));
  float one = 3.f, scalar = 0.f;
  ffrt::reshape_copy(*ctx, ffrt::whole_view(&one, DType::f32, {1, 1}), ffrt::whole_view(&scalar, DType::f32, {}),
                     false);
  EXPECT_EQ(scalar, 3.f);
  EXPECT_THROW(ffrt::reshape_copy(*ctx, ffrt::whole_view(a.data(), DType::i64, {2, 3}),
                                  ffrt::whole_view(b.data(), DType::i64, {5}), false),
               ffrt::Error);
}

TEST(FillAndScale, WriteTheBoxOnly) {
  auto ctx = make_ctx(), four = make_ctx(4);
  Rng rng(63);
  for (int trial = 0; trial < 20; ++trial) {
    const Shape s = trial == 0 ? Shape{301, 203} : random_shape(rng, trial % 5, 7);
    const Box b = random_box(s, rng);
    Buf f(DType::f32, s, b, &rng);
    ffrt::fill(trial == 0 ? *four : *ctx, f.view, 2.5f);
    EXPECT_TRUE(f.padding_intact());
    for_box(b.lo, b.size, [&](const Shape& g) { ASSERT_EQ(f.f(g), 2.5f); });
    const Tensor t = random_tensor(s, rng);
    auto sp = part_of(t, b, rng);
    ffrt::scale(trial == 0 ? *four : *ctx, sp->view, -0.5f);
    EXPECT_TRUE(sp->padding_intact());
    for_box(b.lo, b.size, [&](const Shape& g) { ASSERT_EQ(sp->f(g), -0.5f * t.at(g)); });
    Buf i(DType::i64, s, b, &rng);
    ffrt::fill(*ctx, i.view, 7.f);
    EXPECT_TRUE(i.padding_intact());
    for_box(b.lo, b.size, [&](const Shape& g) { ASSERT_EQ(i.i(g), 7); });
    Buf d(DType::f64, s, b, &rng);
    ffrt::fill(trial == 0 ? *four : *ctx, d.view, 0.1f);
    EXPECT_TRUE(d.padding_intact());
    for_box(b.lo, b.size, [&](const Shape& g) { ASSERT_EQ(d.d(g), static_cast<double>(0.1f)); });
  }
}

}  // namespace
