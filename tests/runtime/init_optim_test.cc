// init_param, fill_synthetic, sgd_step and adam_step: values independent of the partition, the
// distributions' moments, and optimizer steps against torch.optim (tests/runtime/optim_reference.py,
// run at test time; skipped when python3 or torch is missing).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ffrt/dataset.h"
#include "ffrt/kernels.h"
#include "ffrt/npy.h"
#include "ffrt/philox.h"
#include "kernel_test_util.h"

namespace ffrt {
namespace {

using test::python;
using test::TempDir;

// ---- helpers -----------------------------------------------------------------------------------

auto ctx_ptr() { return make_context({.threads = 2, .device = 0}); }

/// A buffer holding the box [lo, lo+size) of a tensor with extents `full`, with padded strides
/// (each dim's stride is larger than dense), filled with a sentinel.
struct PaddedPart {
  std::vector<std::byte> buf;
  View v;
  PaddedPart(DType t, const std::vector<int64_t>& full, const std::vector<int64_t>& lo,
             const std::vector<int64_t>& size) {
    // A dense view of a box two larger along every dim, narrowed to `size`.
    std::vector<int64_t> padded = size;
    for (int64_t& e : padded) e += 2;
    buf.assign(static_cast<size_t>(test::volume(padded) * 8), std::byte{0x7f});
    v = make_view(buf.data(), t, static_cast<int>(full.size()), full.data(), lo.data(), padded.data());
    for (size_t d = 0; d < size.size(); ++d) v.size[d] = size[d];
  }
};

/// The element at global coordinates g of a view.
double at(const View& v, const int64_t* g) {
  const int64_t off = v.offset_of(g);
  return v.dtype == DType::i64 ? static_cast<double>(v.i64()[off]) : v.f32()[off];
}

/// Fills a tensor's whole and its parts (a 2×2×2 grid of boxes with padded strides, plus one
/// permuted box) with `fill` and checks that every part agrees with the whole, bit for bit.
template <typename Fill>
void expect_partition_independent(DType t, Fill fill) {
  auto ctx = ctx_ptr();
  const std::vector<int64_t> full{6, 5, 4};
  HostArray whole(t, full);
  fill(*ctx, whole.view());
  View w = whole.view();
  const int64_t cuts[3][3] = {{0, 2, 6}, {0, 3, 5}, {0, 1, 4}};
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b)
      for (int c = 0; c < 2; ++c) {
        std::vector<int64_t> lo{cuts[0][a], cuts[1][b], cuts[2][c]};
        std::vector<int64_t> size{cuts[0][a + 1] - lo[0], cuts[1][b + 1] - lo[1], cuts[2][c + 1] - lo[2]};
        PaddedPart p(t, full, lo, size);
        fill(*ctx, p.v);
        test::for_view(p.v, [&](const int64_t* g) {
          const double x = at(p.v, g), y = at(w, g);
          ASSERT_TRUE(x == y || (std::isnan(x) && std::isnan(y)))
              << "at (" << g[0] << ", " << g[1] << ", " << g[2] << "): part " << x << " whole " << y;
        });
      }
  // A box stored with its dims permuted: memory layout (d2, d0, d1).
  const int64_t lo[3] = {1, 2, 1}, sz[3] = {4, 3, 2};
  std::vector<std::byte> buf(static_cast<size_t>(4 * 3 * 2 * 8));
  const int64_t pfull[3] = {full[2], full[0], full[1]}, plo[3] = {lo[2], lo[0], lo[1]}, psz[3] = {sz[2], sz[0], sz[1]};
  View u = make_view(buf.data(), t, 3, pfull, plo, psz);
  const int perm[3] = {1, 2, 0};
  View pv = permute(u, perm);
  ASSERT_EQ(pv.full[0], 6);
  ASSERT_EQ(pv.lo[2], 1);
  fill(*ctx, pv);
  test::for_view(pv, [&](const int64_t* g) { ASSERT_EQ(at(pv, g), at(w, g)); });
}

struct Moments {
  double mean = 0, var = 0, min = 1e300, max = -1e300;
};
Moments moments(const std::vector<float>& x) {
  Moments m;
  for (float v : x) {
    m.mean += v;
    m.min = std::min<double>(m.min, v);
    m.max = std::max<double>(m.max, v);
  }
  m.mean /= static_cast<double>(x.size());
  for (float v : x) m.var += (v - m.mean) * (v - m.mean);
  m.var /= static_cast<double>(x.size());
  return m;
}

// ---- init_param and fill_synthetic ---------------------------------------------------------------

TEST(InitParam, IndependentOfThePartition) {
  for (Init init : {Init::zeros, Init::ones, Init::uniform_fan_in, Init::normal}) {
    SCOPED_TRACE(static_cast<int>(init));
    expect_partition_independent(DType::f32, [&](Context& c, const View& v) { init_param(c, init, 20, 42, v); });
  }
  expect_partition_independent(DType::i64, [&](Context& c, const View& v) { init_param(c, Init::ones, 0, 1, v); });
}

TEST(FillSynthetic, IndependentOfThePartition) {
  expect_partition_independent(DType::f32, [&](Context& c, const View& v) { fill_synthetic(c, 7, 0, v); });
  expect_partition_independent(DType::i64, [&](Context& c, const View& v) { fill_synthetic(c, 7, 10, v); });
}

TEST(InitParam, IndependentOfThreads) {
  // Large enough to be spread over threads; the result must not depend on how many.
  std::vector<float> a(1 << 17), b(1 << 17);
  auto c1 = make_context({.threads = 1, .device = 0});
  auto c4 = make_context({.threads = 4, .device = 0});
  init_param(*c1, Init::normal, 0, 5, whole_view(a.data(), DType::f32, {256, 512}));
  init_param(*c4, Init::normal, 0, 5, whole_view(b.data(), DType::f32, {256, 512}));
  EXPECT_EQ(a, b);
}

TEST(InitParam, ValuesFollowTheGlobalIndex) {
  // Element (i, j) of a [3, 4] tensor is drawn from counter i*4 + j.
  auto ctx = ctx_ptr();
  std::vector<float> x(12);
  init_param(*ctx, Init::uniform_fan_in, 9, 123, whole_view(x.data(), DType::f32, {3, 4}));
  for (int i = 0; i < 12; ++i) {
    const float u = uniform01(philox4x32(static_cast<uint64_t>(i), 123).v[0]);
    EXPECT_EQ(x[i], (2.f * u - 1.f) * (1.f / 3.f)) << i;
  }
  std::vector<int64_t> lab(12);
  fill_synthetic(*ctx, 9, 7, whole_view(lab.data(), DType::i64, {12}));
  for (int i = 0; i < 12; ++i) EXPECT_EQ(lab[i], synthetic_label(9, static_cast<uint64_t>(i), 7));
}

TEST(InitParam, ZerosAndOnes) {
  auto ctx = ctx_ptr();
  std::vector<float> x(10, 5.f);
  init_param(*ctx, Init::zeros, 0, 0, whole_view(x.data(), DType::f32, {10}));
  for (float v : x) EXPECT_EQ(v, 0.f);
  init_param(*ctx, Init::ones, 0, 0, whole_view(x.data(), DType::f32, {2, 5}));
  for (float v : x) EXPECT_EQ(v, 1.f);
}

TEST(InitParam, UniformFanInMoments) {
  auto ctx = ctx_ptr();
  const int64_t fan_in = 25;  // bound 0.2
  std::vector<float> x(200000);
  init_param(*ctx, Init::uniform_fan_in, fan_in, 99, whole_view(x.data(), DType::f32, {400, 500}));
  Moments m = moments(x);
  EXPECT_GE(m.min, -0.2);
  EXPECT_LT(m.max, 0.2);
  EXPECT_LT(m.min, -0.199);
  EXPECT_GT(m.max, 0.199);
  EXPECT_NEAR(m.mean, 0.0, 0.002);
  EXPECT_NEAR(m.var, 0.04 / 3, 0.0003);
}

TEST(InitParam, NormalMoments) {
  auto ctx = ctx_ptr();
  std::vector<float> x(200000);
  init_param(*ctx, Init::normal, 0, 17, whole_view(x.data(), DType::f32, {200000}));
  Moments m = moments(x);
  EXPECT_NEAR(m.mean, 0.0, 0.01);
  EXPECT_NEAR(m.var, 1.0, 0.015);
  double m4 = 0, within1 = 0;
  for (float v : x) {
    m4 += std::pow(v - m.mean, 4);
    within1 += std::fabs(v) < 1.f;
  }
  EXPECT_NEAR(m4 / x.size() / (m.var * m.var), 3.0, 0.1);  // kurtosis
  EXPECT_NEAR(within1 / x.size(), 0.6827, 0.005);
  for (float v : x) ASSERT_TRUE(std::isfinite(v));
}

TEST(InitParam, KeysGiveDifferentStreams) {
  auto ctx = ctx_ptr();
  std::vector<float> a(1000), b(1000);
  init_param(*ctx, Init::normal, 0, key_of("conv1.weight", 0), whole_view(a.data(), DType::f32, {1000}));
  init_param(*ctx, Init::normal, 0, key_of("conv1.bias", 0), whole_view(b.data(), DType::f32, {1000}));
  int same = 0;
  for (int i = 0; i < 1000; ++i) same += a[i] == b[i];
  EXPECT_LT(same, 5);
  double corr = 0;
  for (int i = 0; i < 1000; ++i) corr += a[i] * b[i];
  EXPECT_LT(std::fabs(corr / 1000), 0.15);
}

TEST(FillSynthetic, Moments) {
  auto ctx = ctx_ptr();
  std::vector<float> x(200000);
  fill_synthetic(*ctx, 3, 0, whole_view(x.data(), DType::f32, {100, 2000}));
  Moments m = moments(x);
  EXPECT_GE(m.min, -1.0);
  EXPECT_LT(m.max, 1.0);
  EXPECT_NEAR(m.mean, 0.0, 0.01);
  EXPECT_NEAR(m.var, 1.0 / 3, 0.005);

  std::vector<int64_t> lab(100000);
  fill_synthetic(*ctx, 3, 10, whole_view(lab.data(), DType::i64, {100000}));
  std::vector<int64_t> count(10);
  for (int64_t l : lab) {
    ASSERT_GE(l, 0);
    ASSERT_LT(l, 10);
    ++count[l];
  }
  double chi2 = 0;
  for (int64_t c : count) chi2 += (c - 10000.0) * (c - 10000.0) / 10000.0;
  EXPECT_LT(chi2, 30.0);  // 9 degrees of freedom: p < 0.001
}

TEST(InitParam, Errors) {
  auto ctx = ctx_ptr();
  std::vector<float> x(4);
  std::vector<int64_t> y(4);
  EXPECT_THROW(init_param(*ctx, Init::uniform_fan_in, 0, 1, whole_view(x.data(), DType::f32, {4})), Error);
  EXPECT_THROW(init_param(*ctx, Init::normal, 0, 1, whole_view(y.data(), DType::i64, {4})), Error);
  EXPECT_THROW(fill_synthetic(*ctx, 1, 0, whole_view(y.data(), DType::i64, {4})), Error);
  View bad = make_view(x.data(), DType::f32, {4}, {2}, {4});  // box beyond the tensor
  EXPECT_THROW(init_param(*ctx, Init::zeros, 0, 1, bad), Error);
}

TEST(FillSynthetic, MatchesTheSyntheticDataset) {
  // Dataset::synthetic draws the same tensors fill_synthetic does under key_of("inputs"/"labels", seed).
  auto ctx = ctx_ptr();
  SyntheticSpec spec;
  spec.input_shape = {3, 4};
  spec.classes = 5;
  spec.samples = 20;
  spec.seed = 11;
  Dataset ds = Dataset::synthetic(spec);
  std::vector<float> in(20 * 12);
  std::vector<int64_t> lab(20);
  fill_synthetic(*ctx, key_of("inputs", 11), 0, whole_view(in.data(), DType::f32, {20, 3, 4}));
  fill_synthetic(*ctx, key_of("labels", 11), 5, whole_view(lab.data(), DType::i64, {20}));
  Batch b = ds.batch(2, 8, 1, 7);  // samples 17..19, 0..2
  ASSERT_EQ(b.inputs.shape, (std::vector<int64_t>{6, 3, 4}));
  for (int i = 0; i < 6; ++i) {
    const int s = (2 * 8 + 1 + i) % 20;
    EXPECT_EQ(b.labels.i64()[i], lab[s]);
    for (int j = 0; j < 12; ++j) EXPECT_EQ(b.inputs.f32()[i * 12 + j], in[s * 12 + j]);
  }
}

// ---- optimizers: hand-computed -----------------------------------------------------------------

TEST(Sgd, PlainMomentumNesterovByHand) {
  auto ctx = ctx_ptr();
  std::vector<float> w{1.f, -2.f}, g{0.5f, 0.25f}, buf(2, 99.f);
  View W = whole_view(w.data(), DType::f32, {2}), G = whole_view(g.data(), DType::f32, {2}),
       Bv = whole_view(buf.data(), DType::f32, {2});
  SgdAttrs a;
  a.lr = 0.5f;
  sgd_step(*ctx, a, W, G, nullptr, true);
  EXPECT_FLOAT_EQ(w[0], 0.75f);
  EXPECT_FLOAT_EQ(w[1], -2.125f);
  a.momentum = 0.5f;
  sgd_step(*ctx, a, W, G, &Bv, true);  // buf = g
  EXPECT_FLOAT_EQ(buf[0], 0.5f);
  EXPECT_FLOAT_EQ(w[0], 0.5f);
  sgd_step(*ctx, a, W, G, &Bv, false);  // buf = 0.5*0.5 + 0.5 = 0.75
  EXPECT_FLOAT_EQ(buf[0], 0.75f);
  EXPECT_FLOAT_EQ(w[0], 0.125f);
  a.nesterov = true;
  sgd_step(*ctx, a, W, G, &Bv, false);  // buf = 0.875; d = 0.5 + 0.5*0.875 = 0.9375
  EXPECT_FLOAT_EQ(buf[0], 0.875f);
  EXPECT_FLOAT_EQ(w[0], 0.125f - 0.46875f);
  EXPECT_THROW(sgd_step(*ctx, a, W, G, nullptr, false), Error);
}

TEST(Adam, FirstStepByHand) {
  // The first step moves every weight by about lr * sign(g).
  auto ctx = ctx_ptr();
  std::vector<float> w{1.f, -2.f, 0.f}, g{0.5f, -3.f, 1e-3f}, m(3), v(3);
  AdamAttrs a;
  a.lr = 0.1f;
  adam_step(*ctx, a, whole_view(w.data(), DType::f32, {3}), whole_view(g.data(), DType::f32, {3}),
            whole_view(m.data(), DType::f32, {3}), whole_view(v.data(), DType::f32, {3}));
  EXPECT_NEAR(w[0], 0.9f, 1e-6);
  EXPECT_NEAR(w[1], -1.9f, 1e-6);
  EXPECT_NEAR(w[2], -0.1f, 1e-5);
  EXPECT_NEAR(m[1], -0.3f, 1e-7);
  EXPECT_NEAR(v[1], 0.009f, 1e-8);
}

// ---- optimizers: parts agree with the whole ----------------------------------------------------

TEST(Optim, PartsAgreeWithTheWhole) {
  // Stepping each box of a 2×2 grid (state in padded or shared buffers) gives exactly the whole
  // tensor's step.
  auto ctx = ctx_ptr();
  const std::vector<int64_t> full{9, 10};
  auto fresh = [&](uint64_t key) {
    HostArray a(DType::f32, full);
    init_param(*ctx, Init::normal, 0, key, a.view());
    return a;
  };
  for (int kind = 0; kind < 3; ++kind) {
    SCOPED_TRACE(kind);
    HostArray w = fresh(1), buf = fresh(3), m = fresh(4), v = fresh(5);
    for (int64_t i = 0; i < v.numel(); ++i) v.f32()[i] = std::fabs(v.f32()[i]);
    HostArray w2 = w, buf2 = buf, m2 = m, v2 = v;
    SgdAttrs s;
    s.lr = 0.1f;
    s.momentum = 0.9f;
    s.weight_decay = 0.01f;
    s.nesterov = kind == 1;
    AdamAttrs ad;
    ad.lr = 0.01f;
    ad.weight_decay = 0.1f;
    ad.decoupled = kind == 2;
    for (int step = 1; step <= 3; ++step) {
      HostArray g = fresh(100 + step);
      View bv = buf.view();
      if (kind < 2) sgd_step(*ctx, s, w.view(), g.view(), &bv, step == 1);
      else {
        ad.step = step;
        adam_step(*ctx, ad, w.view(), g.view(), m.view(), v.view());
      }
      // Parts: the weight box in a padded buffer, the gradient and state whole (they contain the box).
      const int64_t rc[2][3] = {{0, 4, 9}, {0, 7, 10}};
      View G2 = g.view(), B2 = buf2.view(), M2 = m2.view(), V2 = v2.view(), W2 = w2.view();
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) {
          PaddedPart p(DType::f32, full, {rc[0][a], rc[1][b]}, {rc[0][a + 1] - rc[0][a], rc[1][b + 1] - rc[1][b]});
          test::for_view(p.v, [&](const int64_t* gc) { p.v.f32()[p.v.offset_of(gc)] = W2.f32()[W2.offset_of(gc)]; });
          if (kind < 2) sgd_step(*ctx, s, p.v, G2, &B2, step == 1);
          else adam_step(*ctx, ad, p.v, G2, M2, V2);
          test::for_view(p.v, [&](const int64_t* gc) { W2.f32()[W2.offset_of(gc)] = p.v.f32()[p.v.offset_of(gc)]; });
        }
    }
    EXPECT_EQ(w.bytes, w2.bytes);
    if (kind < 2) EXPECT_EQ(buf.bytes, buf2.bytes);
    else {
      EXPECT_EQ(m.bytes, m2.bytes);
      EXPECT_EQ(v.bytes, v2.bytes);
    }
  }
}

// ---- optimizers against torch.optim -------------------------------------------------------------

struct RefConfig {
  std::string name, kind;
  int steps = 0;
  double lr = 0, momentum = 0, dampening = 0, wd = 0;
  int nesterov = 0;
  double beta1 = 0, beta2 = 0, eps = 0;
};

/// max |a - b| / max |b|: the error relative to the tensor's scale (elements near zero after a
/// cancellation keep the rounding error of their operands, a few ulps of the scale; PyTorch's
/// vectorized kernels round once where fused multiply-adds are used, so the two differ by ulps).
double rel_err(const HostArray& a, const HostArray& b) {
  double err = 0, scale = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    err = std::max(err, std::fabs(static_cast<double>(a.f32()[i]) - b.f32()[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b.f32()[i])));
  }
  return scale > 0 ? err / scale : err;
}

TEST(Optim, MatchesTorch) {
  TempDir dir("ffrt_init_optim");
  const std::string script = std::string(FFC_SOURCE_DIR) + "/tests/runtime/optim_reference.py";
  const int rc = std::system((python() + " " + script + " " + dir.path.string()).c_str());
  if (WIFEXITED(rc) && (WEXITSTATUS(rc) == 77 || WEXITSTATUS(rc) == 127))
    GTEST_SKIP() << python() << " lacks torch or numpy (or is missing)";
  ASSERT_EQ(rc, 0) << "running " << script;
  std::ifstream cf(dir.path / "configs.txt");
  std::vector<RefConfig> configs;
  std::string line;
  while (std::getline(cf, line)) {
    if (line.empty()) continue;
    std::istringstream in(line);
    RefConfig c;
    in >> c.name >> c.kind >> c.steps >> c.lr >> c.momentum >> c.dampening >> c.wd >> c.nesterov >> c.beta1 >>
        c.beta2 >> c.eps;
    ASSERT_TRUE(in) << line;
    configs.push_back(c);
  }
  ASSERT_GE(configs.size(), 10u);
  auto ctx = ctx_ptr();
  auto load = [&](const std::string& name) { return read_npy((dir.path / (name + ".npy")).string()); };
  for (const RefConfig& c : configs) {
    SCOPED_TRACE(c.name);
    HostArray w = load(c.name + "_w0");
    HostArray s1(DType::f32, w.shape), s2(DType::f32, w.shape);  // buf, or m and v
    SgdAttrs sa;
    sa.lr = static_cast<float>(c.lr);
    sa.momentum = static_cast<float>(c.momentum);
    sa.dampening = static_cast<float>(c.dampening);
    sa.weight_decay = static_cast<float>(c.wd);
    sa.nesterov = c.nesterov != 0;
    AdamAttrs aa;
    aa.lr = static_cast<float>(c.lr);
    aa.beta1 = static_cast<float>(c.beta1);
    aa.beta2 = static_cast<float>(c.beta2);
    aa.eps = static_cast<float>(c.eps);
    aa.weight_decay = static_cast<float>(c.wd);
    aa.decoupled = c.kind == "adamw";
    for (int k = 1; k <= c.steps; ++k) {
      SCOPED_TRACE("step " + std::to_string(k));
      HostArray g = load(c.name + "_g" + std::to_string(k));
      if (c.kind == "sgd") {
        View b = s1.view();
        sgd_step(*ctx, sa, w.view(), g.view(), c.momentum != 0 ? &b : nullptr, k == 1);
      } else {
        aa.step = k;
        adam_step(*ctx, aa, w.view(), g.view(), s1.view(), s2.view());
      }
      HostArray want = load(c.name + "_w" + std::to_string(k));
      EXPECT_LT(rel_err(w, want), 1e-6) << "weights";
      if (c.kind == "sgd" && c.momentum != 0) {
        EXPECT_LT(rel_err(s1, load(c.name + "_buf" + std::to_string(k))), 1e-6) << "momentum buffer";
      } else if (c.kind != "sgd") {
        EXPECT_LT(rel_err(s1, load(c.name + "_m" + std::to_string(k))), 1e-6) << "exp_avg";
        EXPECT_LT(rel_err(s2, load(c.name + "_v" + std::to_string(k))), 1e-6) << "exp_avg_sq";
      }
      // The update itself (w_k - w_{k-1}), small next to w: to 1e-5 of its own scale, plus the
      // rounding of w (an ulp or two of w's scale).
      HostArray prev = load(c.name + "_w" + std::to_string(k - 1));
      double err = 0, dscale = 0, wscale = 0;
      for (int64_t i = 0; i < w.numel(); ++i) {
        const double d_ours = static_cast<double>(w.f32()[i]) - prev.f32()[i];
        const double d_want = static_cast<double>(want.f32()[i]) - prev.f32()[i];
        err = std::max(err, std::fabs(d_ours - d_want));
        dscale = std::max(dscale, std::fabs(d_want));
        wscale = std::max(wscale, std::fabs(static_cast<double>(want.f32()[i])));
      }
      EXPECT_LT(err, 1e-5 * dscale + 2.5e-7 * wscale) << "update";
    }
  }
}

}  // namespace
}  // namespace ffrt
