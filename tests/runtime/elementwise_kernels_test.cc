// Tests of the cpu backend's element-wise kernels (runtime/cpu/elementwise.cc): activations,
// binary arithmetic with NumPy broadcasting, dropout.
//
// Every kernel is checked on random shapes (ranks 1-4, odd extents, broadcasting) against naive
// references in double at float32 tolerance; backwards against the derivative formulas and finite
// differences. Part assembly: the output is split into a random uneven grid of boxes; each part
// gets input views holding exactly the boxes it needs (the op table's input-box rule), copied into
// small buffers of their own with random strided layouts whose padding is a NaN sentinel; the
// assembled parts must equal the whole-tensor result, and partial gradients of broadcast operands
// must add up to the whole one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numbers>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "ffrt/kernels.h"
#include "ffrt/philox.h"
#include "ffrt/view.h"
#include "kernel_test_util.h"

namespace {

using namespace ffrt::test;
using ffrt::Binary;

constexpr double kTol = 1e-4, kAbs = 1e-6;
const Act kActs[] = {Act::none, Act::relu, Act::sigmoid, Act::tanh, Act::gelu};

std::string act_name(Act a) {
  switch (a) {
    case Act::none: return "none";
    case Act::relu: return "relu";
    case Act::sigmoid: return "sigmoid";
    case Act::tanh: return "tanh";
    case Act::gelu: return "gelu";
  }
  return "?";
}

double ref_act_grad(Act a, double x) {
  switch (a) {
    case Act::none: return 1;
    case Act::relu: return x > 0 ? 1 : 0;
    case Act::sigmoid: return ref_act(a, x) * (1 - ref_act(a, x));
    case Act::tanh: return 1 - std::tanh(x) * std::tanh(x);
    case Act::gelu:
      return 0.5 * (1 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * std::numbers::pi);
  }
  return 0;
}

std::vector<double> map_ref(const Tensor& t, auto f) {
  std::vector<double> out(t.v.size());
  for (size_t k = 0; k < t.v.size(); ++k) out[k] = f(static_cast<double>(t.v[k]), k);
  return out;
}

// ---- activations ------------------------------------------------------------------------------------

TEST(Activation, ForwardAndBackwardMatchReference) {
  auto ctx = make_ctx();
  Rng rng(1);
  for (int trial = 0; trial < 24; ++trial) {
    const Shape s = random_shape(rng, 1 + trial % 4, 7);
    const Tensor x = random_tensor(s, rng, -4, 4), dy = random_tensor(s, rng), base = random_tensor(s, rng);
    for (Act act : kActs) {
      const std::string what = act_name(act) + " " + shape_str(s);
      auto xb = part_of(x, whole_box(s), rng), dyb = part_of(dy, whole_box(s), rng);
      auto yb = out_buf(s, whole_box(s), rng);
      ffrt::activation_forward(*ctx, act, xb->view, yb->view);
      EXPECT_TRUE(yb->padding_intact()) << what;
      // kAbs: float's absolute error where gelu's 1 + erf(x / sqrt(2)) cancels (as in PyTorch).
      expect_close(yb->whole().v, map_ref(x, [&](double v, size_t) { return ref_act(act, v); }), kTol,
                   what + " forward", kAbs);

      // Backward, overwriting and accumulating; x is passed only for gelu, y only for the others.
      const View none{};
      const View& xv = act == Act::gelu ? xb->view : none;
      const View& yv = act == Act::gelu ? none : yb->view;
      auto dxb = out_buf(s, whole_box(s), rng);
      ffrt::activation_backward(*ctx, act, xv, yv, dyb->view, dxb->view, false);
      EXPECT_TRUE(dxb->padding_intact()) << what;
      const auto want = map_ref(x, [&](double v, size_t k) { return dy.v[k] * ref_act_grad(act, v); });
      expect_close(dxb->whole().v, want, kTol, what + " backward", kAbs);
      auto acc = part_of(base, whole_box(s), rng);
      ffrt::activation_backward(*ctx, act, xv, yv, dyb->view, acc->view, true);
      expect_close(acc->whole().v, map_ref(base, [&](double v, size_t k) { return v + want[k]; }), kTol,
                   what + " backward, accumulating", kAbs);
    }
  }
}

TEST(Activation, BackwardMatchesFiniteDifferencesOfForward) {
  auto ctx = make_ctx();
  Rng rng(2);
  const Shape s{257};
  Tensor x = random_tensor(s, rng, -3, 3);
  for (auto& v : x.v)
    if (std::abs(v) < 0.05f) v += 0.1f;  // keep relu's kink out of the differences
  const Tensor ones(s, 1.f);
  for (Act act : kActs) {
    const double h = 1e-2;
    Tensor xp = x, xm = x, yp(s), ym(s), y(s), dx(s);
    for (auto& v : xp.v) v += static_cast<float>(h);
    for (auto& v : xm.v) v -= static_cast<float>(h);
    auto run = [&](Tensor& in, Tensor& out) {
      ffrt::activation_forward(*ctx, act, ffrt::whole_view(in.v.data(), DType::f32, {257}),
                               ffrt::whole_view(out.v.data(), DType::f32, {257}));
    };
    run(xp, yp), run(xm, ym), run(x, y);
    ffrt::activation_backward(*ctx, act, ffrt::whole_view(x.v.data(), DType::f32, {257}),
                              ffrt::whole_view(y.v.data(), DType::f32, {257}),
                              ffrt::whole_view(const_cast<float*>(ones.v.data()), DType::f32, {257}),
                              ffrt::whole_view(dx.v.data(), DType::f32, {257}), false);
    std::vector<double> fd(s[0]);
    for (int64_t k = 0; k < s[0]; ++k) fd[k] = (static_cast<double>(yp.v[k]) - ym.v[k]) / (2 * h);
    expect_close(dx.v, fd, 2e-3, act_name(act) + " vs finite differences");
  }
}

TEST(Activation, PartsAssembleToWhole) {
  auto ctx = make_ctx();
  Rng rng(3);
  for (int trial = 0; trial < 16; ++trial) {
    const Shape s = random_shape(rng, 1 + trial % 4, 9);
    const Tensor x = random_tensor(s, rng, -3, 3), dy = random_tensor(s, rng);
    for (Act act : kActs) {
      const std::string what = act_name(act) + " " + shape_str(s);
      Buf xw(DType::f32, s, whole_box(s)), yw(DType::f32, s, whole_box(s));
      xw.load(x);
      ffrt::activation_forward(*ctx, act, xw.view, yw.view);
      const Tensor y = yw.whole();
      Tensor py(s, NAN), pdx(s, NAN);
      for (const Box& box : random_grid(s, rng)) {
        auto xb = part_of(x, box, rng), yb = out_buf(s, box, rng);
        ffrt::activation_forward(*ctx, act, xb->view, yb->view);
        EXPECT_TRUE(yb->padding_intact()) << what;
        yb->store_into(py);
        // The backward part reads y (or x) and dy over its box only.
        auto yin = part_of(py, box, rng), dyb = part_of(dy, box, rng), dxb = out_buf(s, box, rng);
        ffrt::activation_backward(*ctx, act, xb->view, yin->view, dyb->view, dxb->view, false);
        EXPECT_TRUE(dxb->padding_intact()) << what;
        dxb->store_into(pdx);
      }
      EXPECT_EQ(py.v, y.v) << what << ": forward parts differ from the whole";
      Buf dyw(DType::f32, s, whole_box(s));
      dyw.load(dy);
      Buf dxw(DType::f32, s, whole_box(s));
      ffrt::activation_backward(*ctx, act, xw.view, yw.view, dyw.view, dxw.view, false);
      EXPECT_EQ(pdx.v, dxw.whole().v) << what << ": backward parts differ from the whole";
    }
  }
}

TEST(Activation, ThreadedMatchesSerial) {
  auto one = make_ctx(1), four = make_ctx(4);
  Rng rng(4);
  const Shape s{3, 301, 129};
  const Tensor x = random_tensor(s, rng, -3, 3), dy = random_tensor(s, rng);
  for (Act act : kActs) {
    Tensor y1(s), y4(s);
    Buf xb(DType::f32, s, whole_box(s), &rng), dyb(DType::f32, s, whole_box(s), &rng);
    xb.load(x), dyb.load(dy);
    Buf a(DType::f32, s, whole_box(s), &rng), b(DType::f32, s, whole_box(s), &rng);
    ffrt::activation_forward(*one, act, xb.view, a.view);
    ffrt::activation_forward(*four, act, xb.view, b.view);
    EXPECT_EQ(a.whole().v, b.whole().v) << act_name(act);
    Buf da(DType::f32, s, whole_box(s), &rng), db(DType::f32, s, whole_box(s), &rng);
    ffrt::activation_backward(*one, act, xb.view, a.view, dyb.view, da.view, false);
    ffrt::activation_backward(*four, act, xb.view, a.view, dyb.view, db.view, false);
    EXPECT_EQ(da.whole().v, db.whole().v) << act_name(act);
    EXPECT_TRUE(a.padding_intact() && b.padding_intact() && da.padding_intact() && db.padding_intact());
  }
}

TEST(Activation, ThrowsWhenAnInputLacksTheBox) {
  auto ctx = make_ctx();
  std::vector<float> x(12), y(12);
  const View yv = ffrt::make_view(y.data(), DType::f32, {4, 3}, {0, 0}, {4, 3});
  const View xv = ffrt::make_view(x.data(), DType::f32, {4, 3}, {1, 0}, {3, 3});
  EXPECT_THROW(ffrt::activation_forward(*ctx, Act::relu, xv, yv), ffrt::Error);
  const View other = ffrt::make_view(x.data(), DType::f32, {4, 4}, {0, 0}, {3, 3});
  EXPECT_THROW(ffrt::activation_forward(*ctx, Act::relu, other, yv), ffrt::Error);
  EXPECT_THROW(ffrt::activation_backward(*ctx, Act::relu, View{}, xv, yv, yv, false), ffrt::Error);
}

// ---- binary ops with broadcasting ---------------------------------------------------------------

const Binary kBinaries[] = {Binary::add, Binary::sub, Binary::mul};
std::string op_name(Binary op) { return op == Binary::add ? "add" : op == Binary::sub ? "sub" : "mul"; }
double ref_binary(Binary op, double a, double b) {
  return op == Binary::add ? a + b : op == Binary::sub ? a - b : a * b;
}

/// A random operand shape broadcasting to y's: a suffix of y's dims, some of them 1.
Shape broadcast_operand(const Shape& y, Rng& rng) {
  const size_t rank = rng.range(0, static_cast<int64_t>(y.size()));
  Shape s(y.end() - rank, y.end());
  for (auto& e : s)
    if (rng.chance(0.4)) e = 1;
  return s;
}

/// The operand's coordinates of y's element g (NumPy broadcasting).
Shape project(const Shape& g, const Shape& operand) {
  const size_t off = g.size() - operand.size();
  Shape p(operand.size());
  for (size_t i = 0; i < operand.size(); ++i) p[i] = operand[i] == 1 ? 0 : g[i + off];
  return p;
}

/// The box of an operand a part of y needs (the op table's rule): the part's range along the dims
/// it has, [0, 1) along those it is broadcast along.
Box operand_box(const Box& part, const Shape& operand) {
  const size_t off = part.lo.size() - operand.size();
  Box b;
  for (size_t i = 0; i < operand.size(); ++i) {
    b.lo.push_back(operand[i] == 1 ? 0 : part.lo[i + off]);
    b.size.push_back(operand[i] == 1 ? 1 : part.size[i + off]);
  }
  return b;
}

struct BinaryCase {
  Shape ys, as, bs;
  Tensor a, b, dy;
};

BinaryCase random_binary_case(Rng& rng, int rank, int64_t max_extent) {
  BinaryCase c;
  c.ys = random_shape(rng, rank, max_extent);
  c.as = broadcast_operand(c.ys, rng), c.bs = broadcast_operand(c.ys, rng);
  if (rng.chance(0.3)) c.as = c.ys;  // the common case: a has y's shape
  c.a = random_tensor(c.as, rng), c.b = random_tensor(c.bs, rng, 0.5, 1.5), c.dy = random_tensor(c.ys, rng);
  return c;
}

/// Naive references in double: y, da and db (dy summed over the broadcast dims), and the sums of
/// the magnitudes of da's and db's terms.
struct BinaryRef {
  std::vector<double> y, da, db, da_abs, db_abs;
};

BinaryRef binary_reference(Binary op, const BinaryCase& c) {
  BinaryRef r;
  r.y.assign(volume(c.ys), 0), r.da.assign(volume(c.as), 0), r.db.assign(volume(c.bs), 0);
  r.da_abs = r.da, r.db_abs = r.db;
  for_box(Shape(c.ys.size()), c.ys, [&](const Shape& g) {
    const Shape pa = project(g, c.as), pb = project(g, c.bs);
    const double a = c.a.at(pa), b = c.b.at(pb), dy = c.dy.at(g);
    const double ta = op == Binary::mul ? dy * b : dy, tb = op == Binary::mul ? dy * a : op == Binary::sub ? -dy : dy;
    r.y[flat_index(c.ys, g)] = ref_binary(op, a, b);
    r.da[flat_index(c.as, pa)] += ta, r.da_abs[flat_index(c.as, pa)] += std::abs(ta);
    r.db[flat_index(c.bs, pb)] += tb, r.db_abs[flat_index(c.bs, pb)] += std::abs(tb);
  });
  return r;
}

TEST(Elementwise, DenseTensorsAcrossThreads) {
  // Dense whole tensors are walked as one long run, split over the threads inside lines: against
  // the reference, and bit for bit the same on one and three threads. Binary ops too, with a
  // broadcast operand.
  auto one = make_ctx(1), three = make_ctx(3);
  Rng rng(6);
  const Shape s{4, 70, 130};
  const int64_t n = volume(s);
  const Tensor x = random_tensor(s, rng, -3, 3), dy = random_tensor(s, rng), base = random_tensor(s, rng);
  const Tensor bias = random_tensor({130}, rng);
  auto dense = [&](const Tensor& t) {
    return ffrt::whole_view(const_cast<float*>(t.v.data()), DType::f32, {4, 70, 130});
  };
  for (Act act : kActs) {
    Tensor y1(s), y3(s);
    ffrt::activation_forward(*one, act, dense(x), dense(y1));
    ffrt::activation_forward(*three, act, dense(x), dense(y3));
    expect_close(y1.v, map_ref(x, [&](double v, size_t) { return ref_act(act, v); }), kTol, act_name(act) + " dense",
                 kAbs);
    EXPECT_EQ(y1.v, y3.v) << act_name(act);
    for (bool accumulate : {false, true}) {
      Tensor d1 = base, d3 = base;
      const ffrt::View xv = act == Act::gelu ? dense(x) : View{}, yv = act == Act::gelu ? View{} : dense(y1);
      ffrt::activation_backward(*one, act, xv, yv, dense(dy), dense(d1), accumulate);
      ffrt::activation_backward(*three, act, xv, yv, dense(dy), dense(d3), accumulate);
      const auto want = map_ref(x, [&](double v, size_t k) {
        return (accumulate ? base.v[k] : 0.0) + dy.v[k] * ref_act_grad(act, v);
      });
      expect_close(d1.v, want, kTol, act_name(act) + " dense backward", kAbs);
      EXPECT_EQ(d1.v, d3.v) << act_name(act) << (accumulate ? " accumulating" : "");
    }
  }
  for (Binary op : kBinaries) {
    Tensor y1(s), y3(s), z1(s);
    const View bv = ffrt::whole_view(const_cast<float*>(bias.v.data()), DType::f32, {130});
    ffrt::binary_forward(*one, op, dense(x), dense(dy), dense(y1));
    ffrt::binary_forward(*three, op, dense(x), dense(dy), dense(y3));
    ffrt::binary_forward(*three, op, dense(x), bv, dense(z1));
    EXPECT_EQ(y1.v, y3.v) << op_name(op);
    std::vector<double> want(static_cast<size_t>(n)), want_b(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) {
      want[k] = ref_binary(op, x.v[k], dy.v[k]);
      want_b[k] = ref_binary(op, x.v[k], bias.v[k % 130]);
    }
    expect_close(y1.v, want, kTol, op_name(op) + " dense");
    expect_close(z1.v, want_b, kTol, op_name(op) + " dense, broadcast");
  }
}

TEST(Binary, BroadcastingMatchesReference) {
  auto ctx = make_ctx();
  Rng rng(5);
  for (int trial = 0; trial < 60; ++trial) {
    const BinaryCase c = random_binary_case(rng, 1 + trial % 4, 6);
    for (Binary op : kBinaries) {
      const std::string what = op_name(op) + " " + shape_str(c.as) + " " + shape_str(c.bs) + " -> " + shape_str(c.ys);
      BinaryRef ref = binary_reference(op, c);
      auto ab = part_of(c.a, whole_box(c.as), rng), bb = part_of(c.b, whole_box(c.bs), rng);
      auto dyb = part_of(c.dy, whole_box(c.ys), rng), yb = out_buf(c.ys, whole_box(c.ys), rng);
      ffrt::binary_forward(*ctx, op, ab->view, bb->view, yb->view);
      EXPECT_TRUE(yb->padding_intact()) << what;
      expect_close(yb->whole().v, ref.y, kTol, what + " forward");

      auto dab = out_buf(c.as, whole_box(c.as), rng), dbb = out_buf(c.bs, whole_box(c.bs), rng);
      ffrt::binary_backward(*ctx, op, ab->view, bb->view, dyb->view, &dab->view, &dbb->view, false);
      EXPECT_TRUE(dab->padding_intact() && dbb->padding_intact()) << what;
      expect_close_sums(dab->whole().v, ref.da, ref.da_abs, kTol, what + " da");
      expect_close_sums(dbb->whole().v, ref.db, ref.db_abs, kTol, what + " db");
      // Accumulating adds; a null gradient is skipped.
      ffrt::binary_backward(*ctx, op, ab->view, bb->view, dyb->view, nullptr, &dbb->view, true);
      for (size_t k = 0; k < ref.db.size(); ++k) ref.db[k] *= 2, ref.db_abs[k] *= 2;
      expect_close_sums(dbb->whole().v, ref.db, ref.db_abs, kTol, what + " db accumulated");
    }
  }
}

TEST(Binary, PartsAssembleToWholeAndGradientsReduce) {
  auto ctx = make_ctx();
  Rng rng(6);
  for (int trial = 0; trial < 40; ++trial) {
    const BinaryCase c = random_binary_case(rng, 1 + trial % 4, 7);
    for (Binary op : kBinaries) {
      const std::string what = op_name(op) + " " + shape_str(c.as) + " " + shape_str(c.bs) + " -> " + shape_str(c.ys);
      Buf aw(DType::f32, c.as, whole_box(c.as)), bw(DType::f32, c.bs, whole_box(c.bs));
      Buf dyw(DType::f32, c.ys, whole_box(c.ys)), yw(DType::f32, c.ys, whole_box(c.ys));
      Buf daw(DType::f32, c.as, whole_box(c.as)), dbw(DType::f32, c.bs, whole_box(c.bs));
      aw.load(c.a), bw.load(c.b), dyw.load(c.dy);
      ffrt::binary_forward(*ctx, op, aw.view, bw.view, yw.view);
      ffrt::binary_backward(*ctx, op, aw.view, bw.view, dyw.view, &daw.view, &dbw.view, false);

      const BinaryRef ref = binary_reference(op, c);
      Tensor y(c.ys, NAN);
      std::vector<double> da(volume(c.as), 0), db(volume(c.bs), 0);  // the "reduction" of the parts
      const std::vector<Box> parts = random_grid(c.ys, rng);
      for (const Box& part : parts) {
        const Box abox = operand_box(part, c.as), bbox = operand_box(part, c.bs);
        auto ab = part_of(c.a, abox, rng), bb = part_of(c.b, bbox, rng);
        auto yb = out_buf(c.ys, part, rng), dyb = part_of(c.dy, part, rng);
        ffrt::binary_forward(*ctx, op, ab->view, bb->view, yb->view);
        EXPECT_TRUE(yb->padding_intact()) << what;
        yb->store_into(y);
        // Partial gradients over the part's operand boxes, accumulated onto ones.
        auto dab = out_buf(c.as, abox, rng, 1.f), dbb = out_buf(c.bs, bbox, rng, 1.f);
        ffrt::binary_backward(*ctx, op, ab->view, bb->view, dyb->view, &dab->view, &dbb->view, true);
        EXPECT_TRUE(dab->padding_intact() && dbb->padding_intact()) << what;
        for_box(abox.lo, abox.size, [&](const Shape& g) { da[flat_index(c.as, g)] += dab->f(g) - 1.0; });
        for_box(bbox.lo, bbox.size, [&](const Shape& g) { db[flat_index(c.bs, g)] += dbb->f(g) - 1.0; });
      }
      EXPECT_EQ(y.v, yw.whole().v) << what << ": forward parts differ from the whole";
      const Tensor daw_t = daw.whole(), dbw_t = dbw.whole();
      // The parts' partial sums were accumulated onto ones: float rounding of 1 + v per part.
      const double atol = 1e-7 * static_cast<double>(parts.size());
      expect_close_sums(daw_t.v, da, ref.da_abs, kTol, what + " da: reduced parts vs whole", atol);
      expect_close_sums(dbw_t.v, db, ref.db_abs, kTol, what + " db: reduced parts vs whole", atol);
    }
  }
}

TEST(Binary, PermutedViewsAndThreads) {
  // y = a + b, a stored transposed and seen through ffrt::permute; b a [C] row broadcast over rows.
  auto one = make_ctx(1), four = make_ctx(4);
  Rng rng(7);
  const int64_t R = 509, C = 131;
  const Tensor at = random_tensor({C, R}, rng), b = random_tensor({C}, rng), dy = random_tensor({R, C}, rng);
  std::vector<float> atv = at.v;
  const int perm[2] = {1, 0};
  const View a = ffrt::permute(ffrt::whole_view(atv.data(), DType::f32, {C, R}), perm);
  Tensor bb = b, dyt = dy, y1({R, C}), y4({R, C}), db1({C}), db4({C});
  const View bv = ffrt::whole_view(bb.v.data(), DType::f32, {C}),
             dyv = ffrt::whole_view(dyt.v.data(), DType::f32, {R, C});
  ffrt::binary_forward(*one, Binary::mul, a, bv, ffrt::whole_view(y1.v.data(), DType::f32, {R, C}));
  ffrt::binary_forward(*four, Binary::mul, a, bv, ffrt::whole_view(y4.v.data(), DType::f32, {R, C}));
  EXPECT_EQ(y1.v, y4.v);
  std::vector<double> want(R * C), dbw(C, 0);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) {
      want[r * C + c] = static_cast<double>(at.v[c * R + r]) * b.v[c];
      dbw[c] += static_cast<double>(dy.v[r * C + c]) * at.v[c * R + r];
    }
  expect_close(y1.v, want, kTol, "mul through a permuted view");
  // The gradient of the permuted operand, written through the permuted view.
  std::vector<float> dat(C * R);
  const View dav = ffrt::permute(ffrt::whole_view(dat.data(), DType::f32, {C, R}), perm);
  const View db1v = ffrt::whole_view(db1.v.data(), DType::f32, {C}),
             db4v = ffrt::whole_view(db4.v.data(), DType::f32, {C});
  ffrt::binary_backward(*one, Binary::mul, a, bv, dyv, &dav, &db1v, false);
  ffrt::binary_backward(*four, Binary::mul, a, bv, dyv, nullptr, &db4v, false);
  EXPECT_EQ(db1.v, db4.v);
  expect_close(db1.v, dbw, kTol, "db summed over rows");
  std::vector<double> daw(C * R);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) daw[c * R + r] = static_cast<double>(dy.v[r * C + c]) * b.v[c];
  expect_close(dat, daw, kTol, "da through a permuted view");
}

TEST(Binary, LongLinesWithBroadcasting) {
  // Lines longer than the kernels' chunks, summed over broadcast rows and along broadcast columns.
  auto ctx = make_ctx();
  Rng rng(9);
  for (const auto& [ys, as, bs] : {std::tuple{Shape{3, 601}, Shape{3, 1}, Shape{601}},
                                   std::tuple{Shape{2, 3, 777}, Shape{2, 1, 777}, Shape{3, 777}}}) {
    BinaryCase c{ys, as, bs, random_tensor(as, rng), random_tensor(bs, rng), random_tensor(ys, rng)};
    const BinaryRef ref = binary_reference(Binary::mul, c);
    auto ab = part_of(c.a, whole_box(as), rng), bb = part_of(c.b, whole_box(bs), rng);
    auto dyb = part_of(c.dy, whole_box(ys), rng), yb = out_buf(ys, whole_box(ys), rng);
    auto dab = out_buf(as, whole_box(as), rng), dbb = out_buf(bs, whole_box(bs), rng);
    ffrt::binary_forward(*ctx, Binary::mul, ab->view, bb->view, yb->view);
    ffrt::binary_backward(*ctx, Binary::mul, ab->view, bb->view, dyb->view, &dab->view, &dbb->view, false);
    EXPECT_TRUE(yb->padding_intact() && dab->padding_intact() && dbb->padding_intact());
    expect_close(yb->whole().v, ref.y, kTol, "y " + shape_str(ys));
    expect_close_sums(dab->whole().v, ref.da, ref.da_abs, kTol, "da " + shape_str(as));
    expect_close_sums(dbb->whole().v, ref.db, ref.db_abs, kTol, "db " + shape_str(bs));
  }
}

TEST(Binary, ThrowsOnViewsThatDoNotFit) {
  auto ctx = make_ctx();
  std::vector<float> a(12), b(4), y(12);
  const View yv = ffrt::whole_view(y.data(), DType::f32, {3, 4});
  const View av = ffrt::whole_view(a.data(), DType::f32, {3, 4});
  // b [3] does not broadcast against [3, 4].
  EXPECT_THROW(ffrt::binary_forward(*ctx, Binary::add, av, ffrt::whole_view(b.data(), DType::f32, {3}), yv),
               ffrt::Error);
  // a holds rows 1..2 only.
  const View part = ffrt::make_view(a.data(), DType::f32, {3, 4}, {1, 0}, {2, 4});
  EXPECT_THROW(ffrt::binary_forward(*ctx, Binary::add, part, av, yv), ffrt::Error);
  // da's box reaches past dy's.
  const View dy = ffrt::make_view(y.data(), DType::f32, {3, 4}, {0, 0}, {2, 4});
  EXPECT_THROW(ffrt::binary_backward(*ctx, Binary::add, av, av, dy, &av, nullptr, false), ffrt::Error);
}

// ---- dropout --------------------------------------------------------------------------------------

/// The documented mask: keep iff uniform01(philox(global row-major index, key)[0]) >= rate.
bool kept(const Shape& full, const Shape& g, uint64_t key, float rate) {
  return ffrt::uniform01(ffrt::philox4x32(static_cast<uint64_t>(flat_index(full, g)), key).v[0]) >= rate;
}

TEST(Dropout, SameMaskWhateverTheSplit) {
  auto ctx = make_ctx();
  Rng rng(8);
  for (int trial = 0; trial < 16; ++trial) {
    const Shape s = random_shape(rng, 1 + trial % 4, 9);
    const float rate = trial == 0 ? 0.f : static_cast<float>(rng.uniform(0.05, 0.9));
    const uint64_t key = ffrt::key_of("dropout", trial);
    const Tensor x = random_tensor(s, rng), dy = random_tensor(s, rng);
    std::vector<double> want_y(volume(s)), want_dx(volume(s));
    for_box(Shape(s.size()), s, [&](const Shape& g) {
      const double m = kept(s, g, key, rate) ? 1.0 / (1.0 - rate) : 0.0;
      want_y[flat_index(s, g)] = x.at(g) * m, want_dx[flat_index(s, g)] = dy.at(g) * m;
    });
    auto xb = part_of(x, whole_box(s), rng), dyb = part_of(dy, whole_box(s), rng);
    auto yb = out_buf(s, whole_box(s), rng), dxb = out_buf(s, whole_box(s), rng);
    ffrt::dropout_forward(*ctx, rate, key, xb->view, yb->view);
    ffrt::dropout_backward(*ctx, rate, key, dyb->view, dxb->view, false);
    const Tensor y = yb->whole(), dx = dxb->whole();
    expect_close(y.v, want_y, 1e-6, "dropout forward " + shape_str(s));
    expect_close(dx.v, want_dx, 1e-6, "dropout backward " + shape_str(s));

    Tensor py(s, NAN), pdx(s, NAN);
    for (const Box& part : random_grid(s, rng)) {
      auto xp = part_of(x, part, rng), dyp = part_of(dy, part, rng);
      auto yp = out_buf(s, part, rng), dxp = out_buf(s, part, rng, 2.f);
      ffrt::dropout_forward(*ctx, rate, key, xp->view, yp->view);
      ffrt::dropout_backward(*ctx, rate, key, dyp->view, dxp->view, true);
      EXPECT_TRUE(yp->padding_intact() && dxp->padding_intact());
      yp->store_into(py);
      dxp->store_into(pdx);
    }
    EXPECT_EQ(py.v, y.v) << "dropout parts " << shape_str(s);
    for (size_t k = 0; k < pdx.v.size(); ++k) ASSERT_EQ(pdx.v[k], 2.f + dx.v[k]) << "accumulated dropout grad";
  }
}

TEST(Dropout, KeptFractionAndThreads) {
  auto one = make_ctx(1), four = make_ctx(4);
  const Shape s{64, 37, 41};
  const int64_t n = volume(s);
  std::vector<float> x(n, 1.f), y1(n), y4(n);
  for (float rate : {0.1f, 0.5f, 0.8f}) {
    const View xv = ffrt::whole_view(x.data(), DType::f32, {64, 37, 41});
    ffrt::dropout_forward(*one, rate, 42, xv, ffrt::whole_view(y1.data(), DType::f32, {64, 37, 41}));
    ffrt::dropout_forward(*four, rate, 42, xv, ffrt::whole_view(y4.data(), DType::f32, {64, 37, 41}));
    EXPECT_EQ(y1, y4);
    int64_t keep = 0;
    for (float v : y1) {
      ASSERT_TRUE(v == 0.f || v == 1.f / (1.f - rate));
      keep += v != 0.f;
    }
    EXPECT_NEAR(static_cast<double>(keep) / n, 1.0 - rate, 0.01) << "rate " << rate;
  }
  // Another key, another mask.
  std::vector<float> y2(n);
  ffrt::dropout_forward(*one, 0.8f, 43, ffrt::whole_view(x.data(), DType::f32, {64, 37, 41}),
                        ffrt::whole_view(y2.data(), DType::f32, {64, 37, 41}));
  EXPECT_NE(y1, y2);
  EXPECT_THROW(ffrt::dropout_forward(*one, 1.f, 1, ffrt::whole_view(x.data(), DType::f32, {64, 37, 41}),
                                     ffrt::whole_view(y2.data(), DType::f32, {64, 37, 41})),
               ffrt::Error);
}

}  // namespace
