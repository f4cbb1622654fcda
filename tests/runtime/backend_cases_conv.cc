// Backend cases: conv2d (forward with bias and each fused activation, backward data and weight) and
// pool2d (max and average, forward and backward), over stride, padding, dilation, groups, ceil
// mode and count_include_pad variants, on whole tensors and on parts: halo boxes at the borders
// and inside, channel and row splits, accumulating partial sums, and two large convolutions.
#include <algorithm>
#include <cmath>

#include "backend_cases.h"

namespace ffrt::cases {

namespace {

using L = Layout;

Conv2dAttrs conv_attrs(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh = 1,
                       int64_t dw = 1, int64_t groups = 1) {
  Conv2dAttrs a;
  a.kernel[0] = kh, a.kernel[1] = kw, a.stride[0] = sh, a.stride[1] = sw;
  a.padding[0] = ph, a.padding[1] = pw, a.dilation[0] = dh, a.dilation[1] = dw;
  a.groups = groups;
  return a;
}

/// A convolution's global shapes.
struct ConvGeom {
  std::string name;
  Shape x;
  int64_t O;
  Conv2dAttrs a;

  int64_t Cg() const { return x[1] / a.groups; }
  int64_t Og() const { return O / a.groups; }
  int64_t out(int i) const {
    return (x[2 + i] + 2 * a.padding[i] - a.dilation[i] * (a.kernel[i] - 1) - 1) / a.stride[i] + 1;
  }
  Shape y() const { return {x[0], O, out(0), out(1)}; }
  Shape w() const { return {O, Cg(), a.kernel[0], a.kernel[1]}; }
  /// Weights of the scale PyTorch initializes them to, so that activations stay O(1).
  float bound() const { return 1.f / std::sqrt(static_cast<float>(Cg() * a.kernel[0] * a.kernel[1])); }
  /// The rows of w for the output channels of `yb`.
  Box w_box(const Box& yb) const { return Box{{yb.lo[1], 0, 0, 0}, {yb.size[1], Cg(), a.kernel[0], a.kernel[1]}}; }
  /// The input box that the (non-empty) box `yb` of the output reads: its images, the channels of
  /// its groups, the rows and columns its windows touch inside the tensor.
  Box in_box(const Box& yb) const {
    const int64_t g0 = yb.lo[1] / Og(), g1 = (yb.lo[1] + yb.size[1] - 1) / Og() + 1;
    Box b{{yb.lo[0], g0 * Cg(), 0, 0}, {yb.size[0], (g1 - g0) * Cg(), 0, 0}};
    for (int i = 0; i < 2; ++i) {
      const int64_t o0 = yb.lo[2 + i], o1 = o0 + yb.size[2 + i], n = x[2 + i];
      const int64_t lo = std::clamp<int64_t>(o0 * a.stride[i] - a.padding[i], 0, n);
      const int64_t hi =
          std::clamp<int64_t>((o1 - 1) * a.stride[i] - a.padding[i] + (a.kernel[i] - 1) * a.dilation[i] + 1, 0, n);
      b.lo[2 + i] = lo, b.size[2 + i] = hi - lo;
    }
    return b;
  }
};

const ConvGeom& conv(const std::string& name);

std::vector<ConvGeom> conv_geoms() {
  return {
      {"3x3", {2, 8, 14, 14}, 16, conv_attrs(3, 3, 1, 1, 1, 1)},
      {"3x3_s2", {2, 6, 15, 13}, 10, conv_attrs(3, 3, 2, 2, 1, 1)},
      {"3x3_d2", {2, 4, 16, 16}, 8, conv_attrs(3, 3, 1, 1, 2, 2, 2, 2)},
      {"1x5_s1x2", {2, 5, 9, 17}, 7, conv_attrs(1, 5, 1, 2, 0, 2)},
      {"1x1", {4, 32, 7, 7}, 64, conv_attrs(1, 1, 1, 1, 0, 0)},
      {"1x1_s2_grouped2", {2, 8, 9, 9}, 12, conv_attrs(1, 1, 2, 2, 0, 0, 1, 1, 2)},
      {"5x5_valid", {2, 3, 20, 20}, 8, conv_attrs(5, 5, 1, 1, 0, 0)},
      {"7x7_s2_p3", {2, 3, 32, 32}, 16, conv_attrs(7, 7, 2, 2, 3, 3)},
      {"3x2_s2x1_p2x0_d1x2", {3, 5, 10, 9}, 6, conv_attrs(3, 2, 2, 1, 2, 0, 1, 2)},
      {"grouped4", {2, 16, 10, 10}, 24, conv_attrs(3, 3, 1, 1, 1, 1, 1, 1, 4)},
      {"depthwise", {2, 12, 11, 11}, 12, conv_attrs(3, 3, 1, 1, 1, 1, 1, 1, 12)},
      {"depthwise_x2_s2", {2, 12, 11, 11}, 24, conv_attrs(3, 3, 2, 2, 1, 1, 1, 1, 12)},
      // Large enough for tensor-core and algorithm-search paths.
      {"big_3x3_64", {8, 64, 28, 28}, 64, conv_attrs(3, 3, 1, 1, 1, 1)},
      {"big_3x3_s2_128", {8, 64, 28, 28}, 128, conv_attrs(3, 3, 2, 2, 1, 1)},
  };
}

const ConvGeom& conv(const std::string& name) {
  static const std::vector<ConvGeom> geoms = conv_geoms();
  for (const ConvGeom& g : geoms)
    if (g.name == name) return g;
  throw std::logic_error("no convolution " + name);
}

/// y over the box `yb`; x holds the halo box y's box reads (`halo`) or all of x.
void conv_fwd(Case& c, const ConvGeom& g, Act act, bool bias, const Box& yb, bool halo, L l) {
  const HostArray x = c.uniform(g.x), w = c.uniform(g.w(), -g.bound(), g.bound()), b = c.uniform({g.O});
  const View xv = c.in(x, halo ? g.in_box(yb) : whole(g.x), l), wv = c.in(w, g.w_box(yb), l);
  const View bv = bias ? c.in(b, range(yb.lo[1], yb.size[1]), l) : none();
  conv2d_forward(c.ctx, g.a, act, xv, wv, bias ? &bv : nullptr, c.out("y", g.y(), yb, l));
}

/// dx over the box `dxb`: the contribution of dy's box `dyb`.
void conv_bwd_data(Case& c, const ConvGeom& g, const Box& dyb, const Box& dxb, bool accumulate, L l) {
  const HostArray dy = c.uniform(g.y()), w = c.uniform(g.w(), -g.bound(), g.bound()), dx = c.uniform(g.x);
  const View dyv = c.in(dy, dyb, l), wv = c.in(w, g.w_box(dyb), l);
  conv2d_backward_data(c.ctx, g.a, dyv, wv, accumulate ? c.inout("dx", dx, dxb, l) : c.out("dx", g.x, dxb, l),
                       accumulate);
}

/// dw over `dwb` (and db over `dbb`, when given) from dy's box `dyb` and x's box `xb`.
void conv_bwd_weight(Case& c, const ConvGeom& g, const Box& dyb, const Box& xb, const Box& dwb, const Box* dbb,
                     bool accumulate, L l) {
  const HostArray x = c.uniform(g.x), dy = c.uniform(g.y()), dw = c.uniform(g.w()), db = c.uniform({g.O});
  const View xv = c.in(x, xb, l), dyv = c.in(dy, dyb, l);
  const View dwv = accumulate ? c.inout("dw", dw, dwb, l) : c.out("dw", g.w(), dwb, l);
  const View dbv = !dbb ? none() : accumulate ? c.inout("db", db, *dbb, l) : c.out("db", {g.O}, *dbb, l);
  conv2d_backward_weight(c.ctx, g.a, xv, dyv, dwv, dbb ? &dbv : nullptr, accumulate);
}

void add_conv_cases(Registry& r) {
  for (const ConvGeom& g : conv_geoms()) {
    const bool big = g.name.rfind("big", 0) == 0;
    const Box all_y = whole(g.y()), all_w = whole(g.w()), all_b = whole({g.O});
    r.add("conv2d_fwd/" + g.name + "/whole",
          [=](Case& c) { conv_fwd(c, g, big ? Act::relu : Act::none, true, all_y, false, L::dense); });
    r.add("conv2d_bwd_data/" + g.name + "/whole",
          [=](Case& c) { conv_bwd_data(c, g, all_y, whole(g.x), false, L::dense); });
    r.add("conv2d_bwd_weight/" + g.name + "/whole",
          [=](Case& c) { conv_bwd_weight(c, g, all_y, whole(g.x), all_w, &all_b, false, L::dense); });
  }

  // Fused activations, each kind, and layouts.
  for (Act act : {Act::relu, Act::sigmoid, Act::tanh, Act::gelu}) {
    r.add(std::string("conv2d_fwd/3x3/act_") + act_name(act), [act](Case& c) {
      const ConvGeom& g = conv("3x3");
      conv_fwd(c, g, act, true, whole(g.y()), false, L::dense);
    });
  }
  r.add("conv2d_fwd/3x3/whole_shifted", [](Case& c) {
    const ConvGeom& g = conv("3x3");
    conv_fwd(c, g, Act::none, true, whole(g.y()), false, L::shifted);
  });
  r.add("conv2d_fwd/3x3/whole_scrambled", [](Case& c) {
    const ConvGeom& g = conv("3x3");
    conv_fwd(c, g, Act::gelu, true, whole(g.y()), false, L::scrambled);
  });

  // Forward parts: y's box from its halo box of x.
  struct Part {
    const char* geom;
    const char* name;
    Box y;
  };
  const Part fwd_parts[] = {
      {"3x3", "inside", {{1, 4, 5, 3}, {1, 8, 6, 6}}},
      {"3x3", "top_left", {{0, 0, 0, 0}, {2, 16, 5, 7}}},
      {"3x3_s2", "bottom_right", {{0, 3, 5, 4}, {2, 5, 3, 3}}},
      {"3x3_d2", "rows", {{0, 0, 3, 0}, {2, 8, 9, 16}}},
      {"7x7_s2_p3", "cols", {{1, 2, 0, 6}, {1, 9, 16, 7}}},
      {"3x2_s2x1_p2x0_d1x2", "inside", {{1, 1, 1, 2}, {2, 4, 4, 3}}},
      {"grouped4", "across_groups", {{0, 5, 2, 0}, {2, 9, 6, 10}}},
      {"depthwise", "channels_rows", {{1, 3, 0, 0}, {1, 6, 6, 11}}},
      {"depthwise_x2_s2", "across_groups", {{0, 5, 1, 1}, {2, 14, 4, 4}}},
      {"1x1_s2_grouped2", "channels", {{0, 3, 0, 2}, {2, 6, 5, 3}}},
  };
  for (const Part& p : fwd_parts) {
    r.add(std::string("conv2d_fwd/") + p.geom + "/part_" + p.name,
          [p](Case& c) { conv_fwd(c, conv(p.geom), Act::none, true, p.y, true, L::scrambled); });
  }
  r.add("conv2d_fwd/3x3/part_relu_no_bias_x_whole", [](Case& c) {
    conv_fwd(c, conv("3x3"), Act::relu, false, Box{{0, 8, 7, 0}, {2, 8, 7, 14}}, false, L::padded);
  });
  r.add("conv2d_fwd/big_3x3_64/part_rows", [](Case& c) {
    conv_fwd(c, conv("big_3x3_64"), Act::none, true, Box{{0, 0, 14, 0}, {8, 64, 14, 28}}, true, L::padded);
  });

  // Backward data on parts: dx over a halo box, an inner box, a channel range; dy's channels a
  // range (a partial sum over output channels).
  struct DataPart {
    const char* geom;
    const char* name;
    Box dy;
    bool halo;  // dx is dy's halo box; else `dx`
    Box dx;
    bool accumulate;
  };
  const DataPart data_parts[] = {
      {"3x3", "halo_accumulate", {{0, 0, 4, 0}, {2, 16, 5, 14}}, true, {}, true},
      {"3x3", "dx_inside", {{0, 0, 0, 0}, {2, 16, 14, 14}}, false, {{0, 2, 3, 3}, {2, 4, 8, 8}}, false},
      {"3x3_s2", "out_channels_accumulate", {{0, 2, 0, 0}, {2, 5, 8, 7}}, false, {{0, 0, 0, 0}, {2, 6, 15, 13}}, true},
      {"3x3_d2", "halo", {{1, 0, 6, 5}, {1, 8, 5, 6}}, true, {}, false},
      {"7x7_s2_p3", "halo_border", {{0, 0, 0, 8}, {2, 16, 6, 8}}, true, {}, true},
      {"3x2_s2x1_p2x0_d1x2", "halo", {{0, 0, 2, 0}, {3, 6, 3, 7}}, true, {}, false},
      {"grouped4", "dx_channels", {{0, 0, 0, 0}, {2, 24, 10, 10}}, false, {{0, 2, 0, 0}, {2, 7, 10, 10}}, false},
      {"grouped4", "halo_across_groups", {{1, 5, 3, 3}, {1, 9, 4, 4}}, true, {}, true},
      {"depthwise", "halo", {{1, 3, 2, 0}, {1, 6, 5, 11}}, true, {}, true},
      {"depthwise_x2_s2", "halo", {{0, 6, 0, 2}, {2, 12, 3, 4}}, true, {}, false},
      {"1x1", "rows_accumulate", {{1, 0, 2, 0}, {3, 64, 3, 7}}, true, {}, true},
      {"big_3x3_64", "halo_rows", {{0, 0, 0, 0}, {8, 64, 14, 28}}, true, {}, false},
  };
  for (const DataPart& p : data_parts) {
    r.add(std::string("conv2d_bwd_data/") + p.geom + "/part_" + p.name, [p](Case& c) {
      const ConvGeom& g = conv(p.geom);
      conv_bwd_data(c, g, p.dy, p.halo ? g.in_box(p.dy) : p.dx, p.accumulate, L::scrambled);
    });
  }

  // Backward weight on parts: dy a batch, row or channel range (partial sums), dw a box of the
  // weight (output channels, input channels, kernel taps), db its channels.
  struct WeightPart {
    const char* geom;
    const char* name;
    Box dy;
    bool halo;  // x is dy's halo box; else all of x
    Box dw;
    bool bias, accumulate;
  };
  const WeightPart weight_parts[] = {
      {"3x3", "batch_accumulate", {{1, 0, 0, 0}, {1, 16, 14, 14}}, true, {{0, 0, 0, 0}, {16, 8, 3, 3}}, true, true},
      {"3x3", "rows_accumulate", {{0, 0, 0, 0}, {2, 16, 7, 14}}, true, {{0, 0, 0, 0}, {16, 8, 3, 3}}, true, true},
      {"3x3", "in_channels", {{0, 0, 0, 0}, {2, 8, 14, 14}}, false, {{0, 2, 0, 0}, {8, 4, 3, 3}}, false, false},
      {"3x3", "kernel_taps", {{0, 0, 0, 0}, {2, 16, 14, 14}}, false, {{0, 0, 0, 1}, {16, 8, 2, 2}}, false, false},
      {"3x3_s2", "out_channels", {{0, 3, 0, 0}, {2, 5, 8, 7}}, true, {{3, 0, 0, 0}, {5, 6, 3, 3}}, true, false},
      {"1x5_s1x2", "rows_cols", {{0, 0, 3, 2}, {2, 7, 4, 5}}, true, {{0, 0, 0, 0}, {7, 5, 1, 5}}, true, true},
      {"7x7_s2_p3", "batch", {{1, 0, 0, 0}, {1, 16, 16, 16}}, true, {{0, 0, 0, 0}, {16, 3, 7, 7}}, true, false},
      {"grouped4",
       "out_channels_across_groups",
       {{0, 6, 0, 0}, {2, 12, 10, 10}},
       true,
       {{6, 0, 0, 0}, {12, 4, 3, 3}},
       true,
       true},
      {"depthwise", "channels", {{0, 3, 0, 0}, {2, 6, 11, 11}}, true, {{3, 0, 0, 0}, {6, 1, 3, 3}}, true, false},
      {"depthwise_x2_s2",
       "rows_accumulate",
       {{0, 0, 2, 0}, {2, 24, 3, 6}},
       true,
       {{0, 0, 0, 0}, {24, 1, 3, 3}},
       true,
       true},
      {"1x1", "batch_channels", {{2, 16, 0, 0}, {2, 32, 7, 7}}, true, {{16, 0, 0, 0}, {32, 32, 1, 1}}, true, false},
      {"big_3x3_64",
       "batch_accumulate",
       {{4, 0, 0, 0}, {4, 64, 28, 28}},
       true,
       {{0, 0, 0, 0}, {64, 64, 3, 3}},
       true,
       true},
  };
  for (const WeightPart& p : weight_parts) {
    r.add(std::string("conv2d_bwd_weight/") + p.geom + "/part_" + p.name, [p](Case& c) {
      const ConvGeom& g = conv(p.geom);
      const Box db = range(p.dw.lo[0], p.dw.size[0]);
      conv_bwd_weight(c, g, p.dy, p.halo ? g.in_box(p.dy) : whole(g.x), p.dw, p.bias ? &db : nullptr, p.accumulate,
                      L::scrambled);
    });
  }

  // Empty boxes: nothing to compute, but an overwritten gradient is zeroed.
  r.add("conv2d_fwd/3x3/empty_rows", [](Case& c) {
    const ConvGeom& g = conv("3x3");
    conv_fwd(c, g, Act::none, true, Box{{0, 0, 5, 0}, {2, 16, 0, 14}}, false, L::padded);
  });
  r.add("conv2d_bwd_data/3x3/empty_dy_zeroes_dx", [](Case& c) {
    const ConvGeom& g = conv("3x3");
    conv_bwd_data(c, g, Box{{0, 0, 5, 0}, {2, 16, 0, 14}}, Box{{0, 0, 2, 0}, {2, 8, 9, 14}}, false, L::padded);
  });
  r.add("conv2d_bwd_weight/3x3/empty_dy_zeroes_dw_db", [](Case& c) {
    const ConvGeom& g = conv("3x3");
    const Box db = whole({16});
    conv_bwd_weight(c, g, Box{{1, 0, 0, 0}, {0, 16, 14, 14}}, whole(g.x), whole(g.w()), &db, false, L::padded);
  });
  r.add("conv2d_bwd_weight/3x3/empty_dw_db_only", [](Case& c) {
    const ConvGeom& g = conv("3x3");
    const Box db = range(4, 8);
    conv_bwd_weight(c, g, whole(g.y()), whole(g.x), Box{{4, 0, 0, 0}, {0, 8, 3, 3}}, &db, false, L::padded);
  });
}

// ---- pooling --------------------------------------------------------------------------------------

Pool2dAttrs pool_attrs(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw, bool max,
                       bool count_include_pad = true) {
  Pool2dAttrs a;
  a.kernel[0] = kh, a.kernel[1] = kw, a.stride[0] = sh, a.stride[1] = sw, a.padding[0] = ph, a.padding[1] = pw;
  a.max = max;
  a.count_include_pad = count_include_pad;
  return a;
}

/// A pooling's global shapes.
struct PoolGeom {
  std::string name;
  Shape x;
  Pool2dAttrs a;
  bool ceil_mode = false;

  /// PyTorch's output extent (the last window must start inside the input or its left padding).
  int64_t out(int i) const {
    const int64_t k = a.kernel[i], s = a.stride[i], p = a.padding[i], span = x[2 + i] + 2 * p - k;
    int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= x[2 + i] + p) --o;
    return o;
  }
  Shape y() const { return {x[0], x[1], out(0), out(1)}; }
  /// The input box the windows of the (non-empty) box `yb` touch inside the tensor.
  Box in_box(const Box& yb) const {
    Box b = yb;
    for (int i = 0; i < 2; ++i) {
      const int64_t o0 = yb.lo[2 + i], o1 = o0 + yb.size[2 + i], n = x[2 + i];
      const int64_t lo = std::clamp<int64_t>(o0 * a.stride[i] - a.padding[i], 0, n);
      const int64_t hi = std::clamp<int64_t>((o1 - 1) * a.stride[i] - a.padding[i] + a.kernel[i], 0, n);
      b.lo[2 + i] = lo, b.size[2 + i] = hi - lo;
    }
    return b;
  }
};

std::vector<PoolGeom> pool_geoms() {
  return {
      {"max_2x2", {4, 8, 16, 16}, pool_attrs(2, 2, 2, 2, 0, 0, true)},
      {"max_3x3_s2_p1", {2, 8, 15, 15}, pool_attrs(3, 3, 2, 2, 1, 1, true)},
      {"max_2x2_ceil", {2, 4, 15, 13}, pool_attrs(2, 2, 2, 2, 0, 0, true), true},
      {"max_3x2_s1x2_p1x0", {2, 3, 10, 12}, pool_attrs(3, 2, 1, 2, 1, 0, true)},
      {"avg_2x2", {4, 8, 16, 16}, pool_attrs(2, 2, 2, 2, 0, 0, false)},
      {"avg_3x3_p1_include_pad", {2, 6, 13, 11}, pool_attrs(3, 3, 1, 1, 1, 1, false, true)},
      {"avg_3x3_p1_exclude_pad", {2, 6, 13, 11}, pool_attrs(3, 3, 1, 1, 1, 1, false, false)},
      {"avg_3x3_s2_p1_ceil_exclude_pad", {2, 4, 14, 12}, pool_attrs(3, 3, 2, 2, 1, 1, false, false), true},
      {"avg_3x3_s2_p1_ceil_include_pad", {2, 4, 14, 12}, pool_attrs(3, 3, 2, 2, 1, 1, false, true), true},
      {"avg_global_7x7", {4, 64, 7, 7}, pool_attrs(7, 7, 7, 7, 0, 0, false)},
      {"big_max_3x3_s2_p1", {8, 64, 28, 28}, pool_attrs(3, 3, 2, 2, 1, 1, true)},
      // AlexNet's first pooling: a plane needs more shared memory than the cuda backend gives a
      // block of several, and the windows never read the last row and column.
      {"alexnet_max_3x3_s2", {4, 16, 56, 56}, pool_attrs(3, 3, 2, 2, 0, 0, true)},
      // Planes bigger than a block's shared memory: the cuda backward cuts them into bands of rows.
      {"band_max_3x3_s2_p1", {2, 4, 120, 118}, pool_attrs(3, 3, 2, 2, 1, 1, true)},
      {"band_avg_3x3_p1", {2, 4, 150, 140}, pool_attrs(3, 3, 1, 1, 1, 1, false, false)},
  };
}

const PoolGeom& pool(const std::string& name) {
  static const std::vector<PoolGeom> geoms = pool_geoms();
  for (const PoolGeom& g : geoms)
    if (g.name == name) return g;
  throw std::logic_error("no pooling " + name);
}

void pool_fwd(Case& c, const PoolGeom& g, Act act, const Box& yb, bool halo, L l) {
  const HostArray x = c.uniform(g.x);
  pool2d_forward(c.ctx, g.a, act, c.in(x, halo ? g.in_box(yb) : whole(g.x), l), c.out("y", g.y(), yb, l));
}

/// dx over `dxb` from dy's box `dyb`. x (dy's halo box) and y (the forward over dy's box, with
/// `act` fused) are passed when `with_xy`, else empty views (average pooling needs neither).
/// With `ties`, x takes five values only, so windows hold several maxima.
void pool_bwd(Case& c, const PoolGeom& g, Act act, const Box& dyb, const Box& dxb, bool accumulate, bool with_xy, L l,
              bool ties = false) {
  HostArray x = c.uniform(g.x);
  if (ties)
    for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = std::round(x.f32()[i] * 2.f) / 2.f;
  const HostArray dy = c.uniform(g.y()), dx = c.uniform(g.x);
  View xv = none(), yv = none();
  if (with_xy) {
    xv = c.in(x, g.in_box(dyb), l);
    yv = c.out("y", g.y(), dyb, l);
    pool2d_forward(c.ctx, g.a, act, xv, yv);
  }
  const View dxv = accumulate ? c.inout("dx", dx, dxb, l) : c.out("dx", g.x, dxb, l);
  pool2d_backward(c.ctx, g.a, xv, yv, c.in(dy, dyb, l), dxv, accumulate);
}

void add_pool_cases(Registry& r) {
  for (const PoolGeom& g : pool_geoms()) {
    r.add("pool2d_fwd/" + g.name + "/whole",
          [=](Case& c) { pool_fwd(c, g, Act::none, whole(g.y()), false, L::dense); });
    r.add("pool2d_bwd/" + g.name + "/whole",
          [=](Case& c) { pool_bwd(c, g, Act::none, whole(g.y()), whole(g.x), false, true, L::dense); });
  }
  for (Act act : {Act::relu, Act::sigmoid, Act::tanh, Act::gelu}) {
    for (const char* geom : {"max_2x2", "avg_3x3_p1_exclude_pad"}) {
      r.add(std::string("pool2d_fwd/") + geom + "/act_" + act_name(act), [=](Case& c) {
        const PoolGeom& g = pool(geom);
        pool_fwd(c, g, act, whole(g.y()), false, L::dense);
      });
    }
  }

  struct Part {
    const char* geom;
    const char* name;
    Box y;
  };
  const Part fwd_parts[] = {
      {"max_3x3_s2_p1", "inside", {{1, 2, 2, 3}, {1, 4, 3, 4}}},
      {"max_3x3_s2_p1", "top_left", {{0, 0, 0, 0}, {2, 8, 3, 3}}},
      {"max_2x2_ceil", "last_windows", {{0, 0, 5, 4}, {2, 4, 3, 3}}},
      {"max_3x2_s1x2_p1x0", "rows", {{0, 1, 4, 0}, {2, 2, 6, 6}}},
      {"avg_3x3_p1_exclude_pad", "bottom_right", {{1, 2, 8, 6}, {1, 4, 5, 5}}},
      {"avg_3x3_p1_include_pad", "top_left", {{0, 0, 0, 0}, {2, 6, 4, 4}}},
      {"avg_3x3_s2_p1_ceil_exclude_pad", "last_windows", {{0, 1, 4, 3}, {2, 3, 4, 4}}},
      {"big_max_3x3_s2_p1", "rows", {{0, 0, 7, 0}, {8, 64, 7, 14}}},
  };
  for (const Part& p : fwd_parts) {
    r.add(std::string("pool2d_fwd/") + p.geom + "/part_" + p.name,
          [p](Case& c) { pool_fwd(c, pool(p.geom), Act::none, p.y, true, L::scrambled); });
  }

  struct BwdPart {
    const char* geom;
    const char* name;
    Box dy;
    bool halo;  // dx is dy's halo box; else `dx`
    Box dx;
    bool accumulate;
  };
  const BwdPart bwd_parts[] = {
      {"max_3x3_s2_p1", "halo_accumulate", {{1, 2, 2, 3}, {1, 4, 3, 4}}, true, {}, true},
      {"max_3x3_s2_p1", "top_left", {{0, 0, 0, 0}, {2, 8, 3, 3}}, true, {}, false},
      {"max_2x2", "dx_inside", {{0, 0, 0, 0}, {4, 8, 8, 8}}, false, {{0, 2, 3, 3}, {4, 4, 8, 9}}, false},
      {"max_2x2_ceil", "last_windows_accumulate", {{0, 0, 5, 4}, {2, 4, 3, 3}}, true, {}, true},
      {"max_3x2_s1x2_p1x0", "halo", {{0, 1, 4, 0}, {2, 2, 6, 6}}, true, {}, false},
      {"avg_3x3_p1_include_pad", "halo_accumulate", {{0, 1, 3, 2}, {2, 4, 6, 5}}, true, {}, true},
      {"avg_3x3_p1_exclude_pad",
       "dx_channels",
       {{0, 1, 0, 0}, {2, 3, 13, 11}},
       false,
       {{0, 2, 0, 0}, {2, 3, 13, 11}},
       false},
      {"avg_3x3_s2_p1_ceil_exclude_pad", "last_windows", {{0, 1, 4, 3}, {2, 3, 4, 4}}, true, {}, false},
      {"avg_global_7x7", "channels_accumulate", {{1, 10, 0, 0}, {2, 40, 1, 1}}, true, {}, true},
      {"big_max_3x3_s2_p1", "halo_rows", {{0, 0, 7, 0}, {8, 64, 7, 14}}, true, {}, false},
  };
  for (const BwdPart& p : bwd_parts) {
    r.add(std::string("pool2d_bwd/") + p.geom + "/part_" + p.name, [p](Case& c) {
      const PoolGeom& g = pool(p.geom);
      pool_bwd(c, g, Act::none, p.dy, p.halo ? g.in_box(p.dy) : p.dx, p.accumulate, g.a.max, L::scrambled);
    });
  }
  // Whole planes (the cuda backend's shared-memory path for the backward): accumulating, over some
  // channels of some images, and with ties (the first maximum in row-major order takes the
  // gradient).
  for (const char* geom :
       {"max_3x3_s2_p1", "avg_3x3_p1_exclude_pad", "alexnet_max_3x3_s2", "band_max_3x3_s2_p1", "band_avg_3x3_p1"}) {
    r.add(std::string("pool2d_bwd/") + geom + "/whole_accumulate", [=](Case& c) {
      const PoolGeom& g = pool(geom);
      pool_bwd(c, g, Act::none, whole(g.y()), whole(g.x), true, g.a.max, L::scrambled);
    });
    r.add(std::string("pool2d_bwd/") + geom + "/planes_channels", [=](Case& c) {
      const PoolGeom& g = pool(geom);
      const Shape y = g.y();
      const Box dy{{1, 1, 0, 0}, {1, 3, y[2], y[3]}};
      pool_bwd(c, g, Act::none, dy, g.in_box(dy), false, g.a.max, L::scrambled);
    });
    r.add(std::string("pool2d_fwd/") + geom + "/planes_channels", [=](Case& c) {
      const PoolGeom& g = pool(geom);
      const Shape y = g.y();
      pool_fwd(c, g, Act::relu, {{1, 1, 0, 0}, {1, 3, y[2], y[3]}}, true, L::scrambled);
    });
  }
  for (const char* geom : {"max_3x3_s2_p1", "max_2x2_ceil", "alexnet_max_3x3_s2", "band_max_3x3_s2_p1"}) {
    r.add(std::string("pool2d_bwd/") + geom + "/ties", [=](Case& c) {
      const PoolGeom& g = pool(geom);
      pool_bwd(c, g, Act::none, whole(g.y()), whole(g.x), false, true, L::dense, true);
    });
  }
  // Max pooling routes to the maximum of x even when y holds act(max).
  r.add("pool2d_bwd/max_3x3_s2_p1/after_fused_relu", [](Case& c) {
    const PoolGeom& g = pool("max_3x3_s2_p1");
    pool_bwd(c, g, Act::relu, whole(g.y()), whole(g.x), false, true, L::dense);
  });
  r.add("pool2d_bwd/max_2x2/after_fused_tanh_part", [](Case& c) {
    const PoolGeom& g = pool("max_2x2");
    const Box dy{{1, 0, 2, 0}, {2, 8, 4, 8}};
    pool_bwd(c, g, Act::tanh, dy, g.in_box(dy), true, true, L::padded);
  });
}

}  // namespace

void add_conv_pool_cases(Registry& r) {
  add_conv_cases(r);
  add_pool_cases(r);
}

}  // namespace ffrt::cases
