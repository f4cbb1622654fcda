// Tests of the cpu backend's nn kernels: conv2d, pool2d, linear, matmul and embedding.
//
// Each kernel and each backward is checked on random shapes (odd extents, strides, padding,
// dilation, groups, transposes, broadcast batch dims, fused activations) against naive references
// that loop directly and accumulate in double; the backward references are tied to the forward ones
// by adjoint (dot-product) identities. Part assembly: the output is cut into a grid of uneven boxes;
// each part runs on inputs copied out into their own small buffers (exactly the box the op table's
// input-box rule asks for, in a scrambled layout: permuted dims, padded rows, NaN outside the box);
// the parts must assemble into the whole-tensor result, and backward partial sums must add up to the
// whole-tensor gradient. Backward kernels are run both overwriting (into NaN-filled buffers) and
// accumulating. Finally, shapes big enough for every parallel path must match one thread.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "ffrt/kernels.h"
#include "kernel_test_util.h"

namespace ffrt {
namespace {

using test::Box;
using test::for_box;
using test::ref_act;
using test::Shape;
using test::shape_str;
using test::volume;
using Rng = std::mt19937_64;

int64_t rnd(Rng& r, int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(r); }
bool coin(Rng& r) { return rnd(r, 0, 1) == 1; }

std::vector<float> random_floats(Rng& r, int64_t n) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(r);
  return v;
}

// ---- tensors, boxes and parts ------------------------------------------------------------------

/// A whole tensor, dense row-major.
template <class T>
struct Tensor {
  Shape shape;
  std::vector<T> v;
  Tensor() = default;
  explicit Tensor(Shape s, T init = T{}) : shape(std::move(s)), v(static_cast<size_t>(volume(shape)), init) {}
  int64_t flat(const int64_t* g) const {
    int64_t f = 0;
    for (size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + g[d];
    return f;
  }
  View view() {
    Shape zeros(shape.size(), 0);
    return make_view(v.data(), std::is_same_v<T, float> ? DType::f32 : DType::i64, static_cast<int>(shape.size()),
                     shape.data(), zeros.data(), shape.data());
  }
};

Tensor<float> random_tensor(Rng& r, const Shape& s) {
  Tensor<float> t(s);
  t.v = random_floats(r, volume(s));
  return t;
}

/// Calls f(global coords, const int64_t*) for every element of the box, row-major.
template <class F>
void for_each(const Box& b, F&& f) {
  for_box(b.lo, b.size, [&](const Shape& g) { f(g.data()); });
}

/// A box of a tensor held in its own buffer, in a layout of its own: dims permuted in memory and
/// padded, everything outside the box NaN (or a sentinel id), so a kernel that reads outside its
/// views' boxes or assumes dense layouts gives itself away.
template <class T>
struct Part {
  std::vector<T> buf;
  View view;
};

template <class T>
Part<T> make_part(const Shape& full, const Box& b, Rng& rng, bool scramble) {
  const int r = static_cast<int>(full.size());
  std::vector<int> perm(static_cast<size_t>(r));
  std::iota(perm.begin(), perm.end(), 0);
  if (scramble) std::shuffle(perm.begin(), perm.end(), rng);
  Part<T> p;
  p.view.dtype = std::is_same_v<T, float> ? DType::f32 : DType::i64;
  p.view.rank = r;
  int64_t s = 1;
  for (int k = r - 1; k >= 0; --k) {
    const int d = perm[static_cast<size_t>(k)];
    p.view.stride[d] = s;
    s *= b.size[static_cast<size_t>(d)] + (scramble ? rnd(rng, 0, 2) : 0);
  }
  for (int d = 0; d < r; ++d) {
    p.view.lo[d] = b.lo[static_cast<size_t>(d)];
    p.view.size[d] = b.size[static_cast<size_t>(d)];
    p.view.full[d] = full[static_cast<size_t>(d)];
  }
  if constexpr (std::is_same_v<T, float>)
    p.buf.assign(static_cast<size_t>(std::max<int64_t>(s, 1)), NAN);
  else
    p.buf.assign(static_cast<size_t>(std::max<int64_t>(s, 1)), T(-777));
  p.view.data = p.buf.data();
  return p;
}

template <class T>
Box box_of(const Part<T>& p) {
  Box b;
  for (int d = 0; d < p.view.rank; ++d) b.lo.push_back(p.view.lo[d]), b.size.push_back(p.view.size[d]);
  return b;
}

/// Copies the part's box out of the whole tensor.
template <class T>
void load(Part<T>& p, const Tensor<T>& t) {
  for_each(box_of(p), [&](const int64_t* g) {
    p.buf[static_cast<size_t>(p.view.offset_of(g))] = t.v[static_cast<size_t>(t.flat(g))];
  });
}

/// Writes (or adds) the part's box into the whole tensor.
void save(const Part<float>& p, Tensor<float>& t, bool add) {
  for_each(box_of(p), [&](const int64_t* g) {
    float& dst = t.v[static_cast<size_t>(t.flat(g))];
    const float v = p.buf[static_cast<size_t>(p.view.offset_of(g))];
    dst = add ? dst + v : v;
  });
}

template <class T>
Part<T> part_of(const Tensor<T>& t, const Box& b, Rng& rng) {
  Part<T> p = make_part<T>(t.shape, b, rng, true);
  load(p, t);
  return p;
}

struct Span {
  int64_t lo, hi;
};

/// Cuts [0, e) into `parts` nonempty ranges at random points (uneven extents).
std::vector<Span> random_split(Rng& r, int64_t e, int64_t parts) {
  parts = std::clamp<int64_t>(parts, 1, e);
  std::vector<int64_t> cuts(static_cast<size_t>(e - 1));
  std::iota(cuts.begin(), cuts.end(), 1);
  std::shuffle(cuts.begin(), cuts.end(), r);
  cuts.resize(static_cast<size_t>(parts - 1));
  cuts.push_back(0), cuts.push_back(e);
  std::sort(cuts.begin(), cuts.end());
  std::vector<Span> out;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) out.push_back({cuts[i], cuts[i + 1]});
  return out;
}

/// A random grid of boxes covering `shape` (up to `max_parts` cuts per dim).
std::vector<Box> random_grid(Rng& r, const Shape& shape, int64_t max_parts = 3) {
  std::vector<std::vector<Span>> dims;
  for (int64_t e : shape) dims.push_back(random_split(r, e, rnd(r, 1, max_parts)));
  std::vector<Box> boxes{Box{}};
  for (const auto& spans : dims) {
    std::vector<Box> next;
    for (const Box& b : boxes)
      for (const Span& s : spans) {
        Box n = b;
        n.lo.push_back(s.lo), n.size.push_back(s.hi - s.lo);
        next.push_back(n);
      }
    boxes = next;
  }
  return boxes;
}

// ---- comparisons -------------------------------------------------------------------------------

/// Expects |got - ref| <= rtol * (|ref| + rms(ref)) everywhere (see test::expect_close_rms).
template <class Ref>
void expect_close(const std::vector<float>& got, const Ref& ref, double rtol, const std::string& what) {
  test::expect_close_rms(got, ref, rtol, what);
}

std::vector<float> minus(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

double dot(const std::vector<double>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

constexpr double kTol = 1e-4;      // kernels against double references
constexpr double kPartTol = 2e-5;  // part assembly against the whole-tensor kernel result

Act random_act(Rng& r) { return static_cast<Act>(rnd(r, 0, 4)); }

std::unique_ptr<Context, void (*)(Context*)> ctx_ = make_context();
Context& ctx() { return *ctx_; }

// ---- conv2d ------------------------------------------------------------------------------------

struct ConvCase {
  Conv2dAttrs a;
  Shape x, w, y;
  bool bias;
};

int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  int64_t span = in + 2 * p - d * (k - 1) - 1;
  return span < 0 ? 0 : span / s + 1;
}

/// A random convolution; `kind` 0: groups 1, 1: grouped, 2: depthwise (maybe with a multiplier).
ConvCase random_conv(Rng& r, int kind, int64_t max_hw = 11) {
  while (true) {
    ConvCase c;
    int64_t g = kind == 0 ? 1 : rnd(r, 2, 4);
    int64_t cg = kind == 2 ? 1 : rnd(r, 2, 4), og = rnd(r, 1, 3);
    int64_t n = rnd(r, 1, 3), h = rnd(r, 1, max_hw), w = rnd(r, 1, max_hw);
    c.a.groups = g;
    for (int i = 0; i < 2; ++i) {
      c.a.kernel[i] = rnd(r, 1, 4);
      c.a.stride[i] = rnd(r, 1, 3);
      c.a.dilation[i] = rnd(r, 1, 2);
      c.a.padding[i] = rnd(r, 0, c.a.kernel[i]);
    }
    int64_t oh = conv_out(h, c.a.kernel[0], c.a.stride[0], c.a.padding[0], c.a.dilation[0]);
    int64_t ow = conv_out(w, c.a.kernel[1], c.a.stride[1], c.a.padding[1], c.a.dilation[1]);
    if (oh < 1 || ow < 1) continue;
    c.x = {n, g * cg, h, w};
    c.w = {g * og, cg, c.a.kernel[0], c.a.kernel[1]};
    c.y = {n, g * og, oh, ow};
    c.bias = coin(r);
    return c;
  }
}

std::string describe(const ConvCase& c) {
  return "conv x" + shape_str(c.x) + " w" + shape_str(c.w) + " y" + shape_str(c.y) + " k" +
         std::to_string(c.a.kernel[0]) + "x" + std::to_string(c.a.kernel[1]) + " s" + std::to_string(c.a.stride[0]) +
         "," + std::to_string(c.a.stride[1]) + " p" + std::to_string(c.a.padding[0]) + "," +
         std::to_string(c.a.padding[1]) + " d" + std::to_string(c.a.dilation[0]) + "," +
         std::to_string(c.a.dilation[1]) + " g" + std::to_string(c.a.groups);
}

/// Calls f(n, o, oh, ow, c, ih, iw, i, j) for every (output, tap) pair that reads a real input.
template <class F>
void conv_taps(const ConvCase& c, F&& f) {
  const int64_t og = c.y[1] / c.a.groups, cg = c.w[1];
  for (int64_t n = 0; n < c.y[0]; ++n)
    for (int64_t o = 0; o < c.y[1]; ++o)
      for (int64_t oh = 0; oh < c.y[2]; ++oh)
        for (int64_t ow = 0; ow < c.y[3]; ++ow)
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t i = 0; i < c.w[2]; ++i)
              for (int64_t j = 0; j < c.w[3]; ++j) {
                const int64_t ih = oh * c.a.stride[0] - c.a.padding[0] + i * c.a.dilation[0];
                const int64_t iw = ow * c.a.stride[1] - c.a.padding[1] + j * c.a.dilation[1];
                if (ih < 0 || ih >= c.x[2] || iw < 0 || iw >= c.x[3]) continue;
                const int64_t ch = (o / og) * cg + ci;
                f(((n * c.y[1] + o) * c.y[2] + oh) * c.y[3] + ow, ((n * c.x[1] + ch) * c.x[2] + ih) * c.x[3] + iw,
                  ((o * cg + ci) * c.w[2] + i) * c.w[3] + j);
              }
}

std::vector<double> conv_forward_ref(const ConvCase& c, Act act, const Tensor<float>& x, const Tensor<float>& w,
                                     const Tensor<float>* b) {
  std::vector<double> y(static_cast<size_t>(volume(c.y)), 0.0);
  conv_taps(c, [&](int64_t yi, int64_t xi, int64_t wi) { y[yi] += double(x.v[xi]) * w.v[wi]; });
  const int64_t plane = c.y[2] * c.y[3];
  for (size_t i = 0; i < y.size(); ++i) y[i] = ref_act(act, y[i] + (b ? b->v[(i / plane) % c.y[1]] : 0.0));
  return y;
}

/// The input box a part of the output needs (the op table's conv_input_box).
Box conv_input_box(const ConvCase& c, const Box& part) {
  const int64_t og = c.y[1] / c.a.groups, cg = c.w[1];
  Box b;
  b.lo = {part.lo[0], (part.lo[1] / og) * cg};
  b.size = {part.size[0], ((part.lo[1] + part.size[1] - 1) / og + 1) * cg - b.lo[1]};
  for (int i = 0; i < 2; ++i) {
    const int64_t lo = part.lo[2 + i] * c.a.stride[i] - c.a.padding[i];
    const int64_t hi = (part.lo[2 + i] + part.size[2 + i] - 1) * c.a.stride[i] - c.a.padding[i] +
                       c.a.dilation[i] * (c.a.kernel[i] - 1) + 1;
    const int64_t l = std::clamp<int64_t>(lo, 0, c.x[2 + i]), h = std::clamp<int64_t>(hi, 0, c.x[2 + i]);
    b.lo.push_back(l), b.size.push_back(h - l);
  }
  return b;
}

TEST(NnConv, ForwardMatchesReference) {
  Rng r(11);
  for (int t = 0; t < 36; ++t) {
    ConvCase c = random_conv(r, t % 3);
    Act act = random_act(r);
    auto x = random_tensor(r, c.x), w = random_tensor(r, c.w), b = random_tensor(r, {c.y[1]});
    Tensor<float> y(c.y, NAN);
    View bv = b.view();
    conv2d_forward(ctx(), c.a, act, x.view(), w.view(), c.bias ? &bv : nullptr, y.view());
    expect_close(y.v, conv_forward_ref(c, act, x, w, c.bias ? &b : nullptr), kTol, describe(c));
  }
}

TEST(NnConv, BackwardMatchesReference) {
  Rng r(12);
  for (int t = 0; t < 36; ++t) {
    ConvCase c = random_conv(r, t % 3);
    auto x = random_tensor(r, c.x), w = random_tensor(r, c.w), dy = random_tensor(r, c.y);
    std::vector<double> dx(x.v.size(), 0.0), dw(w.v.size(), 0.0), db(static_cast<size_t>(c.y[1]), 0.0);
    conv_taps(c, [&](int64_t yi, int64_t xi, int64_t wi) {
      dx[xi] += double(dy.v[yi]) * w.v[wi];
      dw[wi] += double(dy.v[yi]) * x.v[xi];
    });
    for (size_t i = 0; i < dy.v.size(); ++i) db[(i / (c.y[2] * c.y[3])) % c.y[1]] += dy.v[i];
    // The references are the forward's adjoints: <conv(x, w), dy> = <x, dx> = <w, dw>.
    const double fwd = dot(conv_forward_ref(c, Act::none, x, w, nullptr), dy.v);
    EXPECT_NEAR(dot(dx, x.v), fwd, 1e-9 * (1 + std::abs(fwd)));
    EXPECT_NEAR(dot(dw, w.v), fwd, 1e-9 * (1 + std::abs(fwd)));

    const bool acc = coin(r);
    auto gx = acc ? random_tensor(r, c.x) : Tensor<float>(c.x, NAN);
    auto gw = acc ? random_tensor(r, c.w) : Tensor<float>(c.w, NAN);
    auto gb = acc ? random_tensor(r, {c.y[1]}) : Tensor<float>({c.y[1]}, NAN);
    const auto gx0 = gx.v, gw0 = gw.v, gb0 = gb.v;
    conv2d_backward_data(ctx(), c.a, dy.view(), w.view(), gx.view(), acc);
    View gbv = gb.view();
    conv2d_backward_weight(ctx(), c.a, x.view(), dy.view(), gw.view(), c.bias ? &gbv : nullptr, acc);
    expect_close(acc ? minus(gx.v, gx0) : gx.v, dx, kTol, "dx " + describe(c));
    expect_close(acc ? minus(gw.v, gw0) : gw.v, dw, kTol, "dw " + describe(c));
    if (c.bias) expect_close(acc ? minus(gb.v, gb0) : gb.v, db, kTol, "db " + describe(c));
  }
}

TEST(NnConv, PartsAssemble) {
  Rng r(13);
  for (int t = 0; t < 24; ++t) {
    ConvCase c = random_conv(r, t % 3, 13);
    Act act = random_act(r);
    auto x = random_tensor(r, c.x), w = random_tensor(r, c.w), b = random_tensor(r, {c.y[1]});
    auto dy = random_tensor(r, c.y);
    // Whole-tensor results.
    Tensor<float> y(c.y), dx(c.x), dw(c.w), db({c.y[1]});
    View bv = b.view(), dbv = db.view();
    const View* bp = c.bias ? &bv : nullptr;
    conv2d_forward(ctx(), c.a, act, x.view(), w.view(), bp, y.view());
    conv2d_backward_data(ctx(), c.a, dy.view(), w.view(), dx.view(), false);
    conv2d_backward_weight(ctx(), c.a, x.view(), dy.view(), dw.view(), c.bias ? &dbv : nullptr, false);
    // Parts: outputs assembled, partial gradients summed.
    Tensor<float> ya(c.y, NAN), dxa(c.x, 0.f), dwa(c.w, 0.f), dba({c.y[1]}, 0.f);
    for (const Box& p : random_grid(r, c.y)) {
      const Box in = conv_input_box(c, p);
      const Box wbox{{p.lo[1], 0, 0, 0}, {p.size[1], c.w[1], c.w[2], c.w[3]}}, bbox{{p.lo[1]}, {p.size[1]}};
      auto xp = part_of(x, in, r), wp = part_of(w, wbox, r), bpart = part_of(b, bbox, r), dyp = part_of(dy, p, r);
      auto yp = make_part<float>(c.y, p, r, true);
      conv2d_forward(ctx(), c.a, act, xp.view, wp.view, c.bias ? &bpart.view : nullptr, yp.view);
      save(yp, ya, false);
      // Backward data: half the parts accumulate onto the running sum, half overwrite a NaN buffer.
      const bool acc = coin(r);
      auto dxp = make_part<float>(c.x, in, r, true);
      if (acc) load(dxp, dxa);
      conv2d_backward_data(ctx(), c.a, dyp.view, wp.view, dxp.view, acc);
      save(dxp, dxa, !acc);
      auto dwp = make_part<float>(c.w, wbox, r, true), dbp = make_part<float>({c.y[1]}, bbox, r, true);
      if (acc) load(dwp, dwa), load(dbp, dba);
      conv2d_backward_weight(ctx(), c.a, xp.view, dyp.view, dwp.view, c.bias ? &dbp.view : nullptr, acc);
      save(dwp, dwa, !acc);
      if (c.bias) save(dbp, dba, !acc);
    }
    expect_close(ya.v, y.v, kPartTol, "y parts " + describe(c));
    expect_close(dxa.v, dx.v, kPartTol, "dx parts " + describe(c));
    expect_close(dwa.v, dw.v, kPartTol, "dw parts " + describe(c));
    if (c.bias) expect_close(dba.v, db.v, kPartTol, "db parts " + describe(c));
  }
}

TEST(NnConv, WeightGradientOfAnySubBox) {
  // dw may be any box of the weight: each box of a grid over all four dims, computed from the
  // whole x and dy, is that box of the whole gradient.
  Rng r(14);
  for (int t = 0; t < 12; ++t) {
    ConvCase c = random_conv(r, t % 3);
    auto x = random_tensor(r, c.x), dy = random_tensor(r, c.y);
    Tensor<float> dw(c.w), dwa(c.w, NAN);
    conv2d_backward_weight(ctx(), c.a, x.view(), dy.view(), dw.view(), nullptr, false);
    for (const Box& p : random_grid(r, c.w)) {
      auto dwp = make_part<float>(c.w, p, r, true);
      conv2d_backward_weight(ctx(), c.a, x.view(), dy.view(), dwp.view, nullptr, false);
      save(dwp, dwa, false);
    }
    expect_close(dwa.v, dw.v, kPartTol, "dw boxes " + describe(c));
  }
}

TEST(NnConv, LargerShapesAndChunks) {
  // A long im2col matrix (64 channels x 5x5 taps): built in chunks of a few output rows, parts of
  // an image (one image exceeds a chunk's budget). Against the reference.
  Rng r(15);
  ConvCase c;
  c.a = Conv2dAttrs{{5, 5}, {1, 1}, {2, 2}, {1, 1}, 1};
  c.x = {2, 64, 40, 40}, c.w = {2, 64, 5, 5}, c.y = {2, 2, 40, 40}, c.bias = true;
  auto x = random_tensor(r, c.x), w = random_tensor(r, c.w), b = random_tensor(r, {2}), dy = random_tensor(r, c.y);
  Tensor<float> y(c.y), dx(c.x), dw(c.w), db({2});
  View bv = b.view(), dbv = db.view();
  conv2d_forward(ctx(), c.a, Act::relu, x.view(), w.view(), &bv, y.view());
  expect_close(y.v, conv_forward_ref(c, Act::relu, x, w, &b), kTol, "large forward");
  conv2d_backward_data(ctx(), c.a, dy.view(), w.view(), dx.view(), false);
  conv2d_backward_weight(ctx(), c.a, x.view(), dy.view(), dw.view(), &dbv, false);
  std::vector<double> rdx(dx.v.size(), 0.0), rdw(dw.v.size(), 0.0), rdb(2, 0.0);
  conv_taps(c, [&](int64_t yi, int64_t xi, int64_t wi) {
    rdx[xi] += double(dy.v[yi]) * w.v[wi];
    rdw[wi] += double(dy.v[yi]) * x.v[xi];
  });
  for (size_t i = 0; i < dy.v.size(); ++i) rdb[(i / 1600) % 2] += dy.v[i];
  expect_close(dx.v, rdx, kTol, "large dx");
  expect_close(dw.v, rdw, kTol, "large dw");
  expect_close(db.v, rdb, kTol, "large db");
}

TEST(NnConv, SameConvolutionsMatchReference) {
  // Stride-1 convolutions that keep the image size (as in most CNNs) over dense tensors, whole or
  // in parts of whole rows, move the im2col matrix as flat runs per image; one input channel with
  // many outputs goes through GEMM rather than the direct path. Against the references, on one and
  // two threads; parts (dense whole rows, or scrambled boxes of a grid) against the whole.
  Rng r(17);
  struct Same {
    int64_t n, c, o, hw, k, d, groups;
  };
  const Same cases[] = {{3, 4, 6, 9, 3, 1, 1}, {2, 1, 16, 10, 3, 1, 1}, {2, 3, 5, 7, 5, 1, 1},
                        {2, 4, 4, 8, 3, 2, 2}, {5, 2, 3, 6, 3, 1, 1},   {9, 1, 8, 5, 3, 1, 1}};
  for (const Same& s : cases) {
    ConvCase c;
    const int64_t p = s.d * (s.k - 1) / 2;
    c.a = Conv2dAttrs{{s.k, s.k}, {1, 1}, {p, p}, {s.d, s.d}, s.groups};
    c.x = {s.n, s.c, s.hw, s.hw}, c.w = {s.o, s.c / s.groups, s.k, s.k}, c.y = {s.n, s.o, s.hw, s.hw};
    c.bias = true;
    const std::string what = describe(c);
    auto x = random_tensor(r, c.x), w = random_tensor(r, c.w), b = random_tensor(r, {s.o}), dy = random_tensor(r, c.y);
    std::vector<double> rdx(x.v.size(), 0.0), rdw(w.v.size(), 0.0), rdb(static_cast<size_t>(s.o), 0.0);
    conv_taps(c, [&](int64_t yi, int64_t xi, int64_t wi) {
      rdx[xi] += double(dy.v[yi]) * w.v[wi];
      rdw[wi] += double(dy.v[yi]) * x.v[xi];
    });
    for (size_t i = 0; i < dy.v.size(); ++i) rdb[(i / (s.hw * s.hw)) % s.o] += dy.v[i];
    const Act act = random_act(r);
    Tensor<float> y(c.y), dx(c.x), dw(c.w), db({s.o});
    for (int threads : {1, 2}) {
      auto cx = make_context({.threads = threads});
      const std::string on = what + " on " + std::to_string(threads) + " threads";
      Tensor<float> yt(c.y, NAN), dxt(c.x, NAN), dwt(c.w, NAN), dbt({s.o}, NAN);
      View bv = b.view(), dbv = dbt.view();
      conv2d_forward(*cx, c.a, act, x.view(), w.view(), &bv, yt.view());
      expect_close(yt.v, conv_forward_ref(c, act, x, w, &b), kTol, "y " + on);
      conv2d_backward_data(*cx, c.a, dy.view(), w.view(), dxt.view(), false);
      conv2d_backward_weight(*cx, c.a, x.view(), dy.view(), dwt.view(), &dbv, false);
      expect_close(dxt.v, rdx, kTol, "dx " + on);
      expect_close(dwt.v, rdw, kTol, "dw " + on);
      expect_close(dbt.v, rdb, kTol, "db " + on);
      if (threads == 1) y = yt, dx = dxt, dw = dwt, db = dbt;
      // Accumulating adds onto what is there.
      const auto dx0 = dxt.v, dw0 = dwt.v;
      conv2d_backward_data(*cx, c.a, dy.view(), w.view(), dxt.view(), true);
      conv2d_backward_weight(*cx, c.a, x.view(), dy.view(), dwt.view(), nullptr, true);
      expect_close(minus(dxt.v, dx0), rdx, kTol, "dx accumulated " + on);
      expect_close(minus(dwt.v, dw0), rdw, kTol, "dw accumulated " + on);
    }
    for (bool dense : {true, false}) {
      // Dense parts of whole rows (split along the batch and the channels), or scrambled parts of
      // any grid.
      std::vector<Box> grid;
      if (dense) {
        for (Span ns : random_split(r, s.n, 3))
          for (Span os : random_split(r, s.o, 3))
            grid.push_back(Box{{ns.lo, os.lo, 0, 0}, {ns.hi - ns.lo, os.hi - os.lo, s.hw, s.hw}});
      } else {
        grid = random_grid(r, c.y);
      }
      Tensor<float> ya(c.y, NAN), dxa(c.x, 0.f), dwa(c.w, 0.f), dba({s.o}, 0.f);
      for (const Box& pb : grid) {
        const Box in = conv_input_box(c, pb);
        const Box wbox{{pb.lo[1], 0, 0, 0}, {pb.size[1], c.w[1], c.w[2], c.w[3]}}, bbox{{pb.lo[1]}, {pb.size[1]}};
        auto xp = make_part<float>(c.x, in, r, !dense), wp = make_part<float>(c.w, wbox, r, !dense);
        auto bp = make_part<float>({s.o}, bbox, r, !dense), dyp = make_part<float>(c.y, pb, r, !dense);
        load(xp, x), load(wp, w), load(bp, b), load(dyp, dy);
        auto yp = make_part<float>(c.y, pb, r, !dense), dxp = make_part<float>(c.x, in, r, !dense);
        auto dwp = make_part<float>(c.w, wbox, r, !dense), dbp = make_part<float>({s.o}, bbox, r, !dense);
        conv2d_forward(ctx(), c.a, act, xp.view, wp.view, &bp.view, yp.view);
        conv2d_backward_data(ctx(), c.a, dyp.view, wp.view, dxp.view, false);
        conv2d_backward_weight(ctx(), c.a, xp.view, dyp.view, dwp.view, &dbp.view, false);
        save(yp, ya, false), save(dxp, dxa, true), save(dwp, dwa, true), save(dbp, dba, true);
      }
      const std::string parts = what + (dense ? " dense parts" : " scrambled parts");
      expect_close(ya.v, y.v, kPartTol, "y " + parts);
      expect_close(dxa.v, dx.v, kPartTol, "dx " + parts);
      expect_close(dwa.v, dw.v, kPartTol, "dw " + parts);
      expect_close(dba.v, db.v, kPartTol, "db " + parts);
    }
  }
}

TEST(NnConv, MissingInputThrows) {
  Rng r(16);
  ConvCase c;
  c.a = Conv2dAttrs{{3, 3}, {1, 1}, {1, 1}, {1, 1}, 1};
  c.x = {1, 2, 8, 8}, c.w = {3, 2, 3, 3}, c.y = {1, 3, 8, 8};
  auto x = random_tensor(r, c.x), w = random_tensor(r, c.w);
  // Output rows [2, 5) need input rows [1, 6); give it [2, 6).
  auto xp = part_of(x, Box{{0, 0, 2, 0}, {1, 2, 4, 8}}, r);
  auto yp = make_part<float>(c.y, Box{{0, 0, 2, 0}, {1, 3, 3, 8}}, r, false);
  EXPECT_THROW(conv2d_forward(ctx(), c.a, Act::none, xp.view, w.view(), nullptr, yp.view), Error);
  // A weight block that lacks output channel 2.
  auto wp = part_of(w, Box{{0, 0, 0, 0}, {2, 2, 3, 3}}, r);
  Tensor<float> y(c.y);
  EXPECT_THROW(conv2d_forward(ctx(), c.a, Act::none, x.view(), wp.view, nullptr, y.view()), Error);
}

// ---- pool2d ------------------------------------------------------------------------------------

/// PyTorch's output extent, by counting windows (window o starts at o * s - p in the padded input
/// of in + 2p): those that end inside the padded input; with ceil_mode also a last one cut short by
/// the padded end, but no last window that starts in the right padding.
int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil_mode) {
  const int64_t padded = in + 2 * p;
  if (padded < k) return 0;
  int64_t n = 0;
  while (n * s + k <= padded) ++n;
  if (ceil_mode) {
    if ((n - 1) * s + k < padded) ++n;
    if ((n - 1) * s >= in + p) --n;
  }
  return n;
}

struct PoolCase {
  Pool2dAttrs a;
  Shape x, y;
};

PoolCase random_pool(Rng& r, bool max) {
  while (true) {
    PoolCase c;
    c.a.max = max;
    c.a.count_include_pad = coin(r);
    const bool ceil_mode = coin(r);
    Shape x{rnd(r, 1, 3), rnd(r, 1, 4), rnd(r, 1, 12), rnd(r, 1, 12)};
    for (int i = 0; i < 2; ++i) {
      c.a.kernel[i] = rnd(r, 1, 4);
      c.a.stride[i] = rnd(r, 1, 3);
      c.a.padding[i] = rnd(r, 0, c.a.kernel[i] / 2);
    }
    const int64_t oh = pool_out(x[2], c.a.kernel[0], c.a.stride[0], c.a.padding[0], ceil_mode);
    const int64_t ow = pool_out(x[3], c.a.kernel[1], c.a.stride[1], c.a.padding[1], ceil_mode);
    if (oh < 1 || ow < 1) continue;
    c.x = x, c.y = {x[0], x[1], oh, ow};
    return c;
  }
}

/// Naive pooling: y (before the activation), and each output's argmax (flat x index) for max.
std::vector<double> pool_ref(const PoolCase& c, const Tensor<float>& x, std::vector<int64_t>* argmax,
                             std::vector<std::vector<std::pair<int64_t, double>>>* spread) {
  std::vector<double> y;
  for (int64_t n = 0; n < c.y[0]; ++n)
    for (int64_t ch = 0; ch < c.y[1]; ++ch)
      for (int64_t oh = 0; oh < c.y[2]; ++oh)
        for (int64_t ow = 0; ow < c.y[3]; ++ow) {
          const int64_t hs = oh * c.a.stride[0] - c.a.padding[0], ws = ow * c.a.stride[1] - c.a.padding[1];
          const int64_t he = std::min(hs + c.a.kernel[0], c.x[2] + c.a.padding[0]);
          const int64_t we = std::min(ws + c.a.kernel[1], c.x[3] + c.a.padding[1]);
          const int64_t pool_size = (he - hs) * (we - ws);
          double best = -INFINITY, sum = 0;
          int64_t best_i = -1, count = 0;
          std::vector<int64_t> members;
          for (int64_t ih = std::max<int64_t>(hs, 0); ih < std::min(he, c.x[2]); ++ih)
            for (int64_t iw = std::max<int64_t>(ws, 0); iw < std::min(we, c.x[3]); ++iw) {
              const int64_t xi = ((n * c.x[1] + ch) * c.x[2] + ih) * c.x[3] + iw;
              if (best_i < 0 || x.v[xi] > best) best = x.v[xi], best_i = xi;
              sum += x.v[xi], ++count;
              members.push_back(xi);
            }
          if (c.a.max) {
            y.push_back(best);
            if (argmax) argmax->push_back(best_i);
          } else {
            const double div = double(c.a.count_include_pad ? pool_size : count);
            y.push_back(sum / div);
            if (spread) {
              spread->emplace_back();
              for (int64_t m : members) spread->back().push_back({m, 1 / div});
            }
          }
        }
  return y;
}

std::string describe(const PoolCase& c) {
  return std::string(c.a.max ? "max" : "avg") + " pool x[" + std::to_string(c.x[0]) + "," + std::to_string(c.x[1]) +
         "," + std::to_string(c.x[2]) + "," + std::to_string(c.x[3]) + "] y " + std::to_string(c.y[2]) + "x" +
         std::to_string(c.y[3]) + " k" + std::to_string(c.a.kernel[0]) + "x" + std::to_string(c.a.kernel[1]) + " s" +
         std::to_string(c.a.stride[0]) + "," + std::to_string(c.a.stride[1]) + " p" + std::to_string(c.a.padding[0]) +
         "," + std::to_string(c.a.padding[1]) + (c.a.count_include_pad ? " incl" : " excl");
}

/// Max pooling inputs with many ties (few distinct values), so the first-maximum rule matters.
Tensor<float> tied_tensor(Rng& r, const Shape& s) {
  Tensor<float> t(s);
  for (float& v : t.v) v = static_cast<float>(rnd(r, 0, 3)) - 2.f;
  return t;
}

TEST(NnPool, MatchesReference) {
  Rng r(21);
  for (int t = 0; t < 60; ++t) {
    PoolCase c = random_pool(r, t % 2 == 0);
    Act act = random_act(r);
    auto x = c.a.max && coin(r) ? tied_tensor(r, c.x) : random_tensor(r, c.x);
    auto dy = random_tensor(r, c.y);
    Tensor<float> y(c.y, NAN);
    pool2d_forward(ctx(), c.a, act, x.view(), y.view());
    std::vector<int64_t> argmax;
    std::vector<std::vector<std::pair<int64_t, double>>> spread;
    std::vector<double> ref = pool_ref(c, x, &argmax, &spread);
    for (double& v : ref) v = ref_act(act, v);
    expect_close(y.v, ref, kTol, describe(c));

    std::vector<double> rdx(x.v.size(), 0.0);
    for (size_t i = 0; i < dy.v.size(); ++i) {
      if (c.a.max)
        rdx[argmax[i]] += dy.v[i];
      else
        for (auto [xi, wgt] : spread[i]) rdx[xi] += dy.v[i] * wgt;
    }
    const bool acc = coin(r);
    auto dx = acc ? random_tensor(r, c.x) : Tensor<float>(c.x, NAN);
    const auto dx0 = dx.v;
    pool2d_backward(ctx(), c.a, x.view(), y.view(), dy.view(), dx.view(), acc);
    expect_close(acc ? minus(dx.v, dx0) : dx.v, rdx, kTol, "dx " + describe(c));
  }
}

TEST(NnPool, PartsAssemble) {
  Rng r(22);
  for (int t = 0; t < 40; ++t) {
    PoolCase c = random_pool(r, t % 2 == 0);
    Act act = random_act(r);
    auto x = c.a.max ? tied_tensor(r, c.x) : random_tensor(r, c.x);
    auto dy = random_tensor(r, c.y);
    Tensor<float> y(c.y), dx(c.x);
    pool2d_forward(ctx(), c.a, act, x.view(), y.view());
    pool2d_backward(ctx(), c.a, x.view(), y.view(), dy.view(), dx.view(), false);
    Tensor<float> ya(c.y, NAN), dxa(c.x, 0.f);
    for (const Box& p : random_grid(r, c.y)) {
      Box in{{p.lo[0], p.lo[1]}, {p.size[0], p.size[1]}};
      for (int i = 0; i < 2; ++i) {
        const int64_t lo = std::clamp<int64_t>(p.lo[2 + i] * c.a.stride[i] - c.a.padding[i], 0, c.x[2 + i]);
        const int64_t hi = std::clamp<int64_t>(
            (p.lo[2 + i] + p.size[2 + i] - 1) * c.a.stride[i] - c.a.padding[i] + c.a.kernel[i], 0, c.x[2 + i]);
        in.lo.push_back(lo), in.size.push_back(hi - lo);
      }
      auto xp = part_of(x, in, r), dyp = part_of(dy, p, r);
      auto yp = make_part<float>(c.y, p, r, true);
      pool2d_forward(ctx(), c.a, act, xp.view, yp.view);
      save(yp, ya, false);
      const bool acc = coin(r);
      auto dxp = make_part<float>(c.x, in, r, true);
      if (acc) load(dxp, dxa);
      pool2d_backward(ctx(), c.a, xp.view, yp.view, dyp.view, dxp.view, acc);
      save(dxp, dxa, !acc);
    }
    expect_close(ya.v, y.v, kPartTol, "y parts " + describe(c));
    expect_close(dxa.v, dx.v, kPartTol, "dx parts " + describe(c));
  }
}

TEST(NnPool, TilingWindowsWithTiesAndNaNs) {
  // Max pooling whose windows tile the input (stride = kernel, 2x2 and 3x3, as in most CNNs) takes a
  // vectorized path: PyTorch's rules must hold there too, with ties (the first maximum gets the
  // gradient) and NaNs (the output is NaN; a NaN is a maximum, and a later NaN wins). Padding and
  // ceil_mode add partial windows around the tiled middle. Against a reference, exactly (no
  // rounding: each input gets at most one gradient), on one and two threads, whole and in parts.
  Rng r(24);
  for (int64_t k : {2, 3})
    for (int64_t pad : {int64_t{0}, int64_t{1}})
      for (bool ceil_mode : {false, true}) {
        PoolCase c;
        c.a = Pool2dAttrs{{k, k}, {k, k}, {pad, pad}, true, false};
        c.x = {2, 3, 11, 13};
        c.y = {2, 3, pool_out(11, k, k, pad, ceil_mode), pool_out(13, k, k, pad, ceil_mode)};
        const std::string what = describe(c) + (ceil_mode ? " ceil" : "");
        auto x = tied_tensor(r, c.x), dy = random_tensor(r, c.y), base = random_tensor(r, c.x);
        for (float& v : x.v)
          if (rnd(r, 0, 24) == 0) v = NAN;
        // The reference: per window, the first maximum (a later element wins when greater, or NaN).
        std::vector<float> ry, rdx = base.v;
        for (int64_t n = 0; n < c.y[0]; ++n)
          for (int64_t ch = 0; ch < c.y[1]; ++ch)
            for (int64_t oh = 0; oh < c.y[2]; ++oh)
              for (int64_t ow = 0; ow < c.y[3]; ++ow) {
                float best = -INFINITY;
                int64_t at = -1;
                bool nan = false;
                for (int64_t ih = std::max<int64_t>(oh * k - pad, 0); ih < std::min(oh * k - pad + k, c.x[2]); ++ih)
                  for (int64_t iw = std::max<int64_t>(ow * k - pad, 0); iw < std::min(ow * k - pad + k, c.x[3]); ++iw) {
                    const int64_t xi = ((n * c.x[1] + ch) * c.x[2] + ih) * c.x[3] + iw;
                    const float v = x.v[static_cast<size_t>(xi)];
                    nan = nan || std::isnan(v);
                    if (at < 0 || v > best || std::isnan(v)) best = v, at = xi;
                  }
                ry.push_back(nan ? NAN : best);
                rdx[static_cast<size_t>(at)] += dy.v[ry.size() - 1];
              }
        auto same = [](const std::vector<float>& got, const std::vector<float>& want) {
          if (got.size() != want.size()) return false;
          for (size_t i = 0; i < got.size(); ++i)
            if (!(got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i])))) return false;
          return true;
        };
        for (int threads : {1, 2}) {
          auto cx = make_context({.threads = threads});
          Tensor<float> y(c.y, 0.f), dx = base;
          pool2d_forward(*cx, c.a, Act::none, x.view(), y.view());
          pool2d_backward(*cx, c.a, x.view(), y.view(), dy.view(), dx.view(), true);
          EXPECT_TRUE(same(y.v, ry)) << "y " << what << " on " << threads << " threads";
          EXPECT_TRUE(same(dx.v, rdx)) << "dx " << what << " on " << threads << " threads";
        }
        for (bool dense : {true, false}) {
          Tensor<float> ya(c.y, 0.f), dxa = base;
          std::vector<Box> grid;
          if (dense) {
            for (Span ns : random_split(r, c.y[0], 2))
              for (Span cs : random_split(r, c.y[1], 3))
                grid.push_back(Box{{ns.lo, cs.lo, 0, 0}, {ns.hi - ns.lo, cs.hi - cs.lo, c.y[2], c.y[3]}});
          } else {
            grid = random_grid(r, c.y);
          }
          for (const Box& p : grid) {
            Box in{{p.lo[0], p.lo[1]}, {p.size[0], p.size[1]}};
            for (int i = 0; i < 2; ++i) {
              const int64_t lo = std::clamp<int64_t>(p.lo[2 + i] * k - pad, 0, c.x[2 + i]);
              const int64_t hi = std::clamp<int64_t>((p.lo[2 + i] + p.size[2 + i] - 1) * k - pad + k, 0, c.x[2 + i]);
              in.lo.push_back(lo), in.size.push_back(hi - lo);
            }
            auto xp = make_part<float>(c.x, in, r, !dense), dyp = make_part<float>(c.y, p, r, !dense);
            auto yp = make_part<float>(c.y, p, r, !dense), dxp = make_part<float>(c.x, in, r, !dense);
            load(xp, x), load(dyp, dy), load(dxp, dxa);
            pool2d_forward(ctx(), c.a, Act::none, xp.view, yp.view);
            pool2d_backward(ctx(), c.a, xp.view, yp.view, dyp.view, dxp.view, true);
            save(yp, ya, false), save(dxp, dxa, false);
          }
          EXPECT_TRUE(same(ya.v, ry)) << "y parts " << what << (dense ? " dense" : " scrambled");
          EXPECT_TRUE(same(dxa.v, rdx)) << "dx parts " << what << (dense ? " dense" : " scrambled");
        }
      }
}

// ---- linear ------------------------------------------------------------------------------------

/// A random linear: x [lead..., K], y [lead..., O] with rank 2..4.
void random_linear(Rng& r, Shape& xs, Shape& ys, Shape& ws) {
  const int rank = static_cast<int>(rnd(r, 2, 4));
  xs.clear();
  for (int d = 0; d < rank - 1; ++d) xs.push_back(rnd(r, 1, rank == 2 ? 9 : 4));
  ys = xs;
  const int64_t k = rnd(r, 1, 17), o = rnd(r, 1, 13);
  xs.push_back(k), ys.push_back(o);
  ws = {o, k};
}

std::vector<double> linear_ref(Act act, const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* b) {
  const int64_t k = w.shape[1], o = w.shape[0], rows = volume(x.shape) / k;
  std::vector<double> y(static_cast<size_t>(rows * o));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < o; ++j) {
      double s = b ? b->v[j] : 0.0;
      for (int64_t q = 0; q < k; ++q) s += double(x.v[i * k + q]) * w.v[j * k + q];
      y[i * o + j] = ref_act(act, s);
    }
  return y;
}

TEST(NnLinear, MatchesReference) {
  Rng r(31);
  for (int t = 0; t < 30; ++t) {
    Shape xs, ys, ws;
    random_linear(r, xs, ys, ws);
    const int64_t k = ws[1], o = ws[0], rows = volume(xs) / k;
    Act act = random_act(r);
    const bool bias = coin(r);
    auto x = random_tensor(r, xs), w = random_tensor(r, ws), b = random_tensor(r, {o}), dy = random_tensor(r, ys);
    Tensor<float> y(ys, NAN);
    View bv = b.view();
    linear_forward(ctx(), act, x.view(), w.view(), bias ? &bv : nullptr, y.view());
    expect_close(y.v, linear_ref(act, x, w, bias ? &b : nullptr), kTol, "linear forward");

    std::vector<double> rdx(x.v.size(), 0.0), rdw(w.v.size(), 0.0), rdb(static_cast<size_t>(o), 0.0);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < o; ++j) {
        const double g = dy.v[i * o + j];
        rdb[j] += g;
        for (int64_t q = 0; q < k; ++q) rdx[i * k + q] += g * w.v[j * k + q], rdw[j * k + q] += g * x.v[i * k + q];
      }
    const double fwd = dot(linear_ref(Act::none, x, w, nullptr), dy.v);
    EXPECT_NEAR(dot(rdx, x.v), fwd, 1e-9 * (1 + std::abs(fwd)));
    EXPECT_NEAR(dot(rdw, w.v), fwd, 1e-9 * (1 + std::abs(fwd)));
    const bool acc = coin(r);
    auto dx = acc ? random_tensor(r, xs) : Tensor<float>(xs, NAN);
    auto dw = acc ? random_tensor(r, ws) : Tensor<float>(ws, NAN);
    auto db = acc ? random_tensor(r, {o}) : Tensor<float>({o}, NAN);
    const auto dx0 = dx.v, dw0 = dw.v, db0 = db.v;
    View dbv = db.view();
    linear_backward_data(ctx(), dy.view(), w.view(), dx.view(), acc);
    linear_backward_weight(ctx(), x.view(), dy.view(), dw.view(), &dbv, acc);
    expect_close(acc ? minus(dx.v, dx0) : dx.v, rdx, kTol, "linear dx");
    expect_close(acc ? minus(dw.v, dw0) : dw.v, rdw, kTol, "linear dw");
    expect_close(acc ? minus(db.v, db0) : db.v, rdb, kTol, "linear db");
  }
}

TEST(NnLinear, PartsAssemble) {
  Rng r(32);
  for (int t = 0; t < 30; ++t) {
    Shape xs, ys, ws;
    random_linear(r, xs, ys, ws);
    const int last = static_cast<int>(ys.size()) - 1;
    const int64_t k = ws[1], o = ws[0];
    Act act = random_act(r);
    auto x = random_tensor(r, xs), w = random_tensor(r, ws), b = random_tensor(r, {o}), dy = random_tensor(r, ys);
    Tensor<float> y(ys), dx(xs), dw(ws), db({o});
    View bv = b.view(), dbv = db.view();
    linear_forward(ctx(), act, x.view(), w.view(), &bv, y.view());
    linear_backward_data(ctx(), dy.view(), w.view(), dx.view(), false);
    linear_backward_weight(ctx(), x.view(), dy.view(), dw.view(), &dbv, false);
    Tensor<float> ya(ys, NAN), dxa(xs, 0.f), dwa(ws, 0.f), dba({o}, 0.f);
    for (const Box& p : random_grid(r, ys)) {
      Box in = p;
      in.lo[last] = 0, in.size[last] = k;
      const Box wbox{{p.lo[last], 0}, {p.size[last], k}}, bbox{{p.lo[last]}, {p.size[last]}};
      auto xp = part_of(x, in, r), wp = part_of(w, wbox, r), bp = part_of(b, bbox, r), dyp = part_of(dy, p, r);
      auto yp = make_part<float>(ys, p, r, true);
      linear_forward(ctx(), act, xp.view, wp.view, &bp.view, yp.view);
      save(yp, ya, false);
      const bool acc = coin(r);
      auto dxp = make_part<float>(xs, in, r, true);
      auto dwp = make_part<float>(ws, wbox, r, true), dbp = make_part<float>({o}, bbox, r, true);
      if (acc) load(dxp, dxa), load(dwp, dwa), load(dbp, dba);
      linear_backward_data(ctx(), dyp.view, wp.view, dxp.view, acc);
      linear_backward_weight(ctx(), xp.view, dyp.view, dwp.view, &dbp.view, acc);
      save(dxp, dxa, !acc), save(dwp, dwa, !acc), save(dbp, dba, !acc);
    }
    expect_close(ya.v, y.v, kPartTol, "linear y parts");
    expect_close(dxa.v, dx.v, kPartTol, "linear dx parts");
    expect_close(dwa.v, dw.v, kPartTol, "linear dw parts");
    expect_close(dba.v, db.v, kPartTol, "linear db parts");
  }
}

TEST(NnLinear, MissingWeightRowsThrow) {
  Rng r(33);
  auto x = random_tensor(r, {4, 5}), w = random_tensor(r, {6, 5});
  auto wp = part_of(w, Box{{1, 0}, {3, 5}}, r);
  auto yp = make_part<float>({4, 6}, Box{{0, 0}, {4, 3}}, r, false);
  EXPECT_THROW(linear_forward(ctx(), Act::none, x.view(), wp.view, nullptr, yp.view), Error);
}

// ---- matmul ------------------------------------------------------------------------------------

struct MatmulCase {
  MatmulAttrs m;
  Shape a, b, y;
  int64_t M, N, K;
};

MatmulCase random_matmul(Rng& r) {
  MatmulCase c;
  c.m.transpose_a = coin(r), c.m.transpose_b = coin(r);
  const int R = static_cast<int>(rnd(r, 2, 4));
  int ra = R, rb = R;
  if (coin(r)) (coin(r) ? ra : rb) = static_cast<int>(rnd(r, 2, R));
  c.M = rnd(r, 1, 9), c.N = rnd(r, 1, 9), c.K = rnd(r, 1, 11);
  Shape lead;
  for (int d = 0; d < R - 2; ++d) lead.push_back(rnd(r, 1, 3));
  Shape la, lb;
  for (int d = 0; d < R - 2; ++d) {
    const bool has_a = d >= R - ra, has_b = d >= R - rb;
    int64_t ea = has_a && coin(r) ? 1 : lead[d], eb = has_b && coin(r) ? 1 : lead[d];
    if (!has_a) ea = 1;
    if (!has_b) eb = 1;
    if (std::max(ea, eb) != lead[d]) (has_a ? ea : eb) = lead[d];
    if (has_a) la.push_back(ea);
    if (has_b) lb.push_back(eb);
  }
  c.a = la, c.b = lb, c.y = lead;
  if (c.m.transpose_a)
    c.a.push_back(c.K), c.a.push_back(c.M);
  else
    c.a.push_back(c.M), c.a.push_back(c.K);
  if (c.m.transpose_b)
    c.b.push_back(c.N), c.b.push_back(c.K);
  else
    c.b.push_back(c.K), c.b.push_back(c.N);
  c.y.push_back(c.M), c.y.push_back(c.N);
  return c;
}

std::string describe(const MatmulCase& c) {
  return "matmul a" + shape_str(c.a) + (c.m.transpose_a ? "^T" : "") + " b" + shape_str(c.b) +
         (c.m.transpose_b ? "^T" : "") + " y" + shape_str(c.y);
}

/// Calls f(y index, a index, b index) for every term y[.., m, n] += a[.., m, k] b[.., k, n].
template <class F>
void matmul_terms(const MatmulCase& c, F&& f) {
  const int R = static_cast<int>(c.y.size()), ra = static_cast<int>(c.a.size()), rb = static_cast<int>(c.b.size());
  Box lead{Shape(static_cast<size_t>(R - 2), 0), Shape(c.y.begin(), c.y.end() - 2)};
  if (R == 2) lead = Box{{0}, {1}};
  for_each(lead, [&](const int64_t* g) {
    int64_t ya = 0, aa = 0, ba = 0;
    for (int d = 0; d < R - 2; ++d) ya = ya * c.y[d] + g[d];
    for (int d = 0; d < ra - 2; ++d) aa = aa * c.a[d] + (c.a[d] == 1 ? 0 : g[d + R - ra]);
    for (int d = 0; d < rb - 2; ++d) ba = ba * c.b[d] + (c.b[d] == 1 ? 0 : g[d + R - rb]);
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t n = 0; n < c.N; ++n)
        for (int64_t k = 0; k < c.K; ++k)
          f((ya * c.M + m) * c.N + n, aa * c.M * c.K + (c.m.transpose_a ? k * c.M + m : m * c.K + k),
            ba * c.K * c.N + (c.m.transpose_b ? n * c.K + k : k * c.N + n));
  });
}

TEST(NnMatmul, MatchesReference) {
  Rng r(41);
  for (int t = 0; t < 40; ++t) {
    MatmulCase c = random_matmul(r);
    auto a = random_tensor(r, c.a), b = random_tensor(r, c.b), dy = random_tensor(r, c.y);
    Tensor<float> y(c.y, NAN);
    matmul_forward(ctx(), c.m, a.view(), b.view(), y.view());
    std::vector<double> ry(y.v.size(), 0.0), rda(a.v.size(), 0.0), rdb(b.v.size(), 0.0);
    matmul_terms(c, [&](int64_t yi, int64_t ai, int64_t bi) {
      ry[yi] += double(a.v[ai]) * b.v[bi];
      rda[ai] += double(dy.v[yi]) * b.v[bi];
      rdb[bi] += double(dy.v[yi]) * a.v[ai];
    });
    expect_close(y.v, ry, kTol, describe(c));
    const bool acc = coin(r);
    auto da = acc ? random_tensor(r, c.a) : Tensor<float>(c.a, NAN);
    auto db = acc ? random_tensor(r, c.b) : Tensor<float>(c.b, NAN);
    const auto da0 = da.v, db0 = db.v;
    View dav = da.view(), dbv = db.view();
    matmul_backward(ctx(), c.m, a.view(), b.view(), dy.view(), &dav, &dbv, acc);
    expect_close(acc ? minus(da.v, da0) : da.v, rda, kTol, "da " + describe(c));
    expect_close(acc ? minus(db.v, db0) : db.v, rdb, kTol, "db " + describe(c));
  }
}

/// The box of operand i (0: a, 1: b) a part of y needs (the op table's matmul_input_box).
Box matmul_input_box(const MatmulCase& c, int i, const Box& part) {
  const Shape& in = i == 0 ? c.a : c.b;
  const int r = static_cast<int>(in.size()), rank = static_cast<int>(part.lo.size());
  const bool t = i == 0 ? c.m.transpose_a : c.m.transpose_b;
  Box box;
  for (int d = 0; d < r - 2; ++d) {
    const int pd = d + (rank - r);
    box.lo.push_back(in[d] == 1 ? 0 : part.lo[pd]);
    box.size.push_back(in[d] == 1 ? 1 : part.size[pd]);
  }
  const int kd = i == 0 ? rank - 2 : rank - 1;
  const int64_t whole_k = c.K;
  const bool keep_first = (i == 0) != t;
  box.lo.push_back(keep_first ? part.lo[kd] : 0), box.size.push_back(keep_first ? part.size[kd] : whole_k);
  box.lo.push_back(keep_first ? 0 : part.lo[kd]), box.size.push_back(keep_first ? whole_k : part.size[kd]);
  return box;
}

TEST(NnMatmul, PartsAssemble) {
  Rng r(42);
  for (int t = 0; t < 40; ++t) {
    MatmulCase c = random_matmul(r);
    auto a = random_tensor(r, c.a), b = random_tensor(r, c.b), dy = random_tensor(r, c.y);
    Tensor<float> y(c.y), da(c.a), db(c.b);
    View dav = da.view(), dbv = db.view();
    matmul_forward(ctx(), c.m, a.view(), b.view(), y.view());
    matmul_backward(ctx(), c.m, a.view(), b.view(), dy.view(), &dav, &dbv, false);
    Tensor<float> ya(c.y, NAN), daa(c.a, 0.f), dba(c.b, 0.f);
    for (const Box& p : random_grid(r, c.y)) {
      const Box abox = matmul_input_box(c, 0, p), bbox = matmul_input_box(c, 1, p);
      auto ap = part_of(a, abox, r), bp = part_of(b, bbox, r), dyp = part_of(dy, p, r);
      auto yp = make_part<float>(c.y, p, r, true);
      matmul_forward(ctx(), c.m, ap.view, bp.view, yp.view);
      save(yp, ya, false);
      const bool acc = coin(r);
      auto dap = make_part<float>(c.a, abox, r, true), dbp = make_part<float>(c.b, bbox, r, true);
      if (acc) load(dap, daa), load(dbp, dba);
      matmul_backward(ctx(), c.m, ap.view, bp.view, dyp.view, &dap.view, &dbp.view, acc);
      save(dap, daa, !acc), save(dbp, dba, !acc);
    }
    expect_close(ya.v, y.v, kPartTol, "y parts " + describe(c));
    expect_close(daa.v, da.v, kPartTol, "da parts " + describe(c));
    expect_close(dba.v, db.v, kPartTol, "db parts " + describe(c));
  }
}

// ---- embedding ---------------------------------------------------------------------------------

TEST(NnEmbedding, MatchesReferenceAndPartsAssemble) {
  Rng r(51);
  for (int t = 0; t < 30; ++t) {
    const int rank = static_cast<int>(rnd(r, 1, 3));
    Shape is;
    for (int d = 0; d < rank; ++d) is.push_back(rnd(r, 1, 6));
    const int64_t rows = rnd(r, 1, 9), dim = rnd(r, 1, 11);
    Shape ys = is;
    ys.push_back(dim);
    Tensor<int64_t> ids(is);
    for (int64_t& v : ids.v) v = rnd(r, 0, rows - 1);  // few rows: many repeated ids
    auto w = random_tensor(r, {rows, dim}), dy = random_tensor(r, ys);
    Tensor<float> y(ys, NAN), dw(Shape{rows, dim}, NAN);
    embedding_forward(ctx(), ids.view(), w.view(), y.view());
    embedding_backward_weight(ctx(), ids.view(), dy.view(), dw.view(), false);
    std::vector<double> ry(y.v.size()), rdw(dw.v.size(), 0.0);
    for (size_t q = 0; q < ids.v.size(); ++q)
      for (int64_t d = 0; d < dim; ++d) {
        ry[q * dim + d] = w.v[ids.v[q] * dim + d];
        rdw[ids.v[q] * dim + d] += dy.v[q * dim + d];
      }
    expect_close(y.v, ry, kTol, "embedding forward");
    expect_close(dw.v, rdw, kTol, "embedding dw");

    Tensor<float> ya(ys, NAN), dwa(Shape{rows, dim}, 0.f);
    for (const Box& p : random_grid(r, ys)) {
      Box ibox = p;
      ibox.lo.pop_back(), ibox.size.pop_back();
      const Box wbox{{0, p.lo[rank]}, {rows, p.size[rank]}};
      auto ip = part_of(ids, ibox, r);
      auto wp = part_of(w, wbox, r), dyp = part_of(dy, p, r);
      auto yp = make_part<float>(ys, p, r, true);
      embedding_forward(ctx(), ip.view, wp.view, yp.view);
      save(yp, ya, false);
      const bool acc = coin(r);
      auto dwp = make_part<float>({rows, dim}, wbox, r, true);
      if (acc) load(dwp, dwa);
      embedding_backward_weight(ctx(), ip.view, dyp.view, dwp.view, acc);
      save(dwp, dwa, !acc);
    }
    expect_close(ya.v, y.v, kPartTol, "embedding y parts");
    expect_close(dwa.v, dw.v, kPartTol, "embedding dw parts");
  }
}

TEST(NnEmbedding, BadIdThrowsNamingIt) {
  Rng r(52);
  Tensor<int64_t> ids({2, 3});
  ids.v = {0, 1, 2, 3, 4, 17};
  auto w = random_tensor(r, {5, 4}), dy = random_tensor(r, {2, 3, 4});
  Tensor<float> y({2, 3, 4}), dw({5, 4});
  for (int pass = 0; pass < 2; ++pass) {
    try {
      if (pass == 0)
        embedding_forward(ctx(), ids.view(), w.view(), y.view());
      else
        embedding_backward_weight(ctx(), ids.view(), dy.view(), dw.view(), false);
      ADD_FAILURE() << "no error for id 17";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("17"), std::string::npos) << e.what();
    }
  }
  ids.v[5] = -1;
  EXPECT_THROW(embedding_forward(ctx(), ids.view(), w.view(), y.view()), Error);
}

// ---- threading -----------------------------------------------------------------------------------

TEST(NnThreads, ParallelPathsMatchOneThread) {
  // Shapes big enough for every parallel path — group-parallel convolution, images in parallel,
  // GEMMs split by columns and by the contraction, batch-parallel matmul, direct depthwise — must
  // match one thread.
  Rng r(61);
  auto one = make_context({.threads = 1}), four = make_context({.threads = 4});
  auto both = [&](const std::function<void(Context&, bool)>& f, const std::vector<Tensor<float>*>& outs,
                  const std::string& what) {
    std::vector<std::vector<float>> first;
    f(*one, false);
    for (auto* t : outs) first.push_back(t->v);
    f(*four, true);
    for (size_t i = 0; i < outs.size(); ++i) expect_close(outs[i]->v, first[i], kPartTol, what);
  };
  // Group-parallel convolutions, and one input channel with many outputs (GEMM, not the direct
  // path): images in parallel.
  // {n, c, o, h = w, groups}:
  for (Shape cs : {Shape{2, 16, 32, 16, 1}, Shape{2, 16, 32, 16, 4}, Shape{2, 16, 32, 16, 16},
                   Shape{4, 1, 32, 28, 1}}) {
    const int64_t n = cs[0], ch = cs[1], o = cs[2], hw = cs[3], groups = cs[4];
    ConvCase c;
    c.a = Conv2dAttrs{{3, 3}, {1, 1}, {1, 1}, {1, 1}, groups};
    c.x = {n, ch, hw, hw}, c.w = {o, ch / groups, 3, 3}, c.y = {n, o, hw, hw};
    auto x = random_tensor(r, c.x), w = random_tensor(r, c.w), b = random_tensor(r, {o}), dy = random_tensor(r, c.y);
    Tensor<float> y(c.y), dx(c.x), dw(c.w), db({o});
    View bv = b.view(), dbv = db.view();
    both(
        [&](Context& cx, bool) {
          conv2d_forward(cx, c.a, Act::gelu, x.view(), w.view(), &bv, y.view());
          conv2d_backward_data(cx, c.a, dy.view(), w.view(), dx.view(), false);
          conv2d_backward_weight(cx, c.a, x.view(), dy.view(), dw.view(), &dbv, false);
        },
        {&y, &dx, &dw, &db}, describe(c));
  }
  {
    // Linear with few outputs and many rows: the weight gradient splits the contraction.
    auto x = random_tensor(r, {64, 64, 16}), w = random_tensor(r, {16, 16}), dy = random_tensor(r, {64, 64, 16});
    Tensor<float> y({64, 64, 16}), dx({64, 64, 16}), dw({16, 16}), db({16});
    View dbv = db.view();
    both(
        [&](Context& cx, bool) {
          linear_forward(cx, Act::relu, x.view(), w.view(), nullptr, y.view());
          linear_backward_data(cx, dy.view(), w.view(), dx.view(), false);
          linear_backward_weight(cx, x.view(), dy.view(), dw.view(), &dbv, false);
        },
        {&y, &dx, &dw, &db}, "linear");
  }
  for (Shape bs : {Shape{8, 16, 16}, Shape{1, 16, 16}}) {
    // Many small batched products (parallel over batches), and broadcast b (serial backward).
    auto a = random_tensor(r, {8, 16, 16}), b = random_tensor(r, bs), dy = random_tensor(r, {8, 16, 16});
    Tensor<float> y({8, 16, 16}), da({8, 16, 16}), db(bs);
    View dav = da.view(), dbv = db.view();
    both(
        [&](Context& cx, bool) {
          matmul_forward(cx, MatmulAttrs{false, true}, a.view(), b.view(), y.view());
          matmul_backward(cx, MatmulAttrs{false, true}, a.view(), b.view(), dy.view(), &dav, &dbv, false);
        },
        {&y, &da, &db}, "matmul");
  }
  {
    auto x = random_tensor(r, {4, 16, 24, 24}), dy = random_tensor(r, {4, 16, 12, 12});
    Tensor<float> y({4, 16, 12, 12}), dx({4, 16, 24, 24});
    for (bool max : {true, false}) {
      Pool2dAttrs pa{{3, 3}, {2, 2}, {1, 1}, max, false};
      both(
          [&](Context& cx, bool) {
            pool2d_forward(cx, pa, Act::none, x.view(), y.view());
            pool2d_backward(cx, pa, x.view(), y.view(), dy.view(), dx.view(), false);
          },
          {&y, &dx}, max ? "max pool" : "avg pool");
    }
  }
  {
    Tensor<int64_t> ids({64, 32});
    for (int64_t& v : ids.v) v = rnd(r, 0, 99);
    auto w = random_tensor(r, {100, 32}), dy = random_tensor(r, {64, 32, 32});
    Tensor<float> y({64, 32, 32}), dw({100, 32});
    both(
        [&](Context& cx, bool) {
          embedding_forward(cx, ids.view(), w.view(), y.view());
          embedding_backward_weight(cx, ids.view(), dy.view(), dw.view(), false);
        },
        {&y, &dw}, "embedding");
  }
}

}  // namespace
}  // namespace ffrt
