// Backend cases: element-wise kernels — activations (each kind), binary arithmetic with NumPy
// broadcasting (each op, gradients summed over broadcast dims on parts), clip and dropout.
#include <algorithm>
#include <cmath>

#include "backend_cases.h"

namespace ffrt::cases {

namespace {

using L = Layout;

constexpr Act kActs[] = {Act::none, Act::relu, Act::sigmoid, Act::tanh, Act::gelu};

/// act(x) in double, rounded: the activation's output fed to backward cases.
HostArray host_act(Act a, const HostArray& x) {
  HostArray y(DType::f32, x.shape);
  for (int64_t k = 0; k < x.numel(); ++k) {
    const double v = x.f32()[k];
    double r = v;
    if (a == Act::relu) r = v > 0 ? v : 0;
    if (a == Act::sigmoid) r = 1 / (1 + std::exp(-v));
    if (a == Act::tanh) r = std::tanh(v);
    if (a == Act::gelu) r = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
    y.f32()[k] = static_cast<float>(r);
  }
  return y;
}

const char* op_name(Binary op) { return op == Binary::add ? "add" : op == Binary::sub ? "sub" : "mul"; }

/// The box of a broadcast operand of extents `s` that the box `y` of the result reads: dims aligned
/// from the right, [0, 1) where the operand's extent is 1.
Box operand_box(const Shape& s, const Box& y) {
  const size_t off = y.lo.size() - s.size();
  Box b = whole(s);
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] != 1) b.lo[i] = y.lo[i + off], b.size[i] = y.size[i + off];
  return b;
}

/// y = a (op) b over the box `yb` of the result (extents `ys`); operands hold what it reads.
void binary_fwd_case(Case& c, Binary op, const Shape& as, const Shape& bs, const Shape& ys, const Box& yb, L l) {
  const HostArray a = c.uniform(as), b = c.uniform(bs);
  const View av = c.in(a, operand_box(as, yb), l), bv = c.in(b, operand_box(bs, yb), l);
  binary_forward(c.ctx, op, av, bv, c.out("y", ys, yb, l));
}

/// Gradients of both operands (or one: a null box skips the other) from the box `yb` of dy.
void binary_bwd_case(Case& c, Binary op, const Shape& as, const Shape& bs, const Shape& ys, const Box& yb,
                     const Box* da_box, const Box* db_box, bool accumulate, L l) {
  const HostArray a = c.uniform(as), b = c.uniform(bs), dy = c.uniform(ys);
  const HostArray da0 = c.uniform(as), db0 = c.uniform(bs);
  const View av = c.in(a, operand_box(as, yb), l), bv = c.in(b, operand_box(bs, yb), l);
  const View dyv = c.in(dy, yb, l);
  auto grad = [&](const char* name, const HostArray& init, const Box* box) {
    return accumulate ? c.inout(name, init, *box, l) : c.out(name, init.shape, *box, l);
  };
  const View da = da_box ? grad("da", da0, da_box) : none(), db = db_box ? grad("db", db0, db_box) : none();
  binary_backward(c.ctx, op, av, bv, dyv, da_box ? &da : nullptr, db_box ? &db : nullptr, accumulate);
}

}  // namespace

void add_elementwise_cases(Registry& r) {
  const Shape s3{8, 16, 33};
  const Box x_part{{1, 2, 0}, {6, 12, 33}}, y_part{{2, 3, 5}, {4, 10, 20}};
  for (Act act : kActs) {
    const std::string n = act_name(act);
    r.add("activation_fwd/" + n + "/whole",
          [=](Case& c) { activation_forward(c.ctx, act, c.in(c.uniform(s3, -4.f, 4.f)), c.out("y", s3)); });
    r.add("activation_fwd/" + n + "/part", [=](Case& c) {
      activation_forward(c.ctx, act, c.in(c.uniform(s3, -4.f, 4.f), x_part, L::scrambled),
                         c.out("y", s3, y_part, L::padded));
    });
    r.add("activation_bwd/" + n + "/whole", [=](Case& c) {
      const HostArray x = c.uniform(s3, -4.f, 4.f), y = host_act(act, x), dy = c.uniform(s3);
      activation_backward(c.ctx, act, c.in(x), c.in(y), c.in(dy), c.out("dx", s3), false);
    });
    // The operand the activation does not need is an empty view.
    r.add("activation_bwd/" + n + "/part_accumulate", [=](Case& c) {
      const HostArray x = c.uniform(s3, -4.f, 4.f), y = host_act(act, x), dy = c.uniform(s3), dx = c.uniform(s3);
      const bool needs_x = act == Act::gelu, needs_y = act != Act::gelu && act != Act::none;
      const View xv = needs_x ? c.in(x, x_part, L::scrambled) : none();
      const View yv = needs_y ? c.in(y, x_part, L::padded) : none();
      activation_backward(c.ctx, act, xv, yv, c.in(dy, x_part, L::scrambled), c.inout("dx", dx, y_part, L::padded),
                          true);
    });
  }
  r.add("activation_fwd/relu/large_shifted", [](Case& c) {
    activation_forward(c.ctx, Act::relu, c.in(c.uniform({100003}), L::shifted), c.out("y", {100003}, L::shifted));
  });
  r.add("activation_fwd/gelu/large_odd_rows", [](Case& c) {
    activation_forward(c.ctx, Act::gelu, c.in(c.uniform({64, 1031}, -4.f, 4.f)), c.out("y", {64, 1031}));
  });
  r.add("activation_bwd/gelu/large_shifted", [](Case& c) {
    const Shape s{100003};
    const HostArray x = c.uniform(s, -4.f, 4.f), dy = c.uniform(s);
    activation_backward(c.ctx, Act::gelu, c.in(x, L::shifted), none(), c.in(dy), c.out("dx", s, L::shifted), false);
  });
  r.add("activation_bwd/sigmoid/large_dense", [](Case& c) {
    const Shape s{64, 1031};
    const HostArray x = c.uniform(s, -4.f, 4.f), y = host_act(Act::sigmoid, x), dy = c.uniform(s), dx = c.uniform(s);
    activation_backward(c.ctx, Act::sigmoid, c.in(x), c.in(y), c.in(dy), c.inout("dx", dx), true);
  });

  // Binary ops: same shapes, broadcasting both ways, parts.
  const Shape ba{8, 1, 12, 10}, bb{7, 1, 10}, by{8, 7, 12, 10};
  const Box by_part{{2, 1, 3, 0}, {4, 5, 6, 10}};
  for (Binary op : {Binary::add, Binary::sub, Binary::mul}) {
    const std::string n = op_name(op);
    const Shape same{16, 40, 9};
    r.add("binary_fwd/" + n + "/same_shape",
          [=](Case& c) { binary_fwd_case(c, op, same, same, same, whole(same), L::dense); });
    r.add("binary_fwd/" + n + "/broadcast", [=](Case& c) { binary_fwd_case(c, op, ba, bb, by, whole(by), L::dense); });
    r.add("binary_fwd/" + n + "/broadcast_part",
          [=](Case& c) { binary_fwd_case(c, op, ba, bb, by, by_part, L::scrambled); });
    r.add("binary_bwd/" + n + "/same_shape", [=](Case& c) {
      const Box w = whole(same);
      binary_bwd_case(c, op, same, same, same, w, &w, &w, false, L::dense);
    });
    // Both gradients over a part of dy (a residual connection's, partitioned), in scrambled
    // layouts, added to what they hold: the cuda backend's one-pass path for add and sub.
    r.add("binary_bwd/" + n + "/same_shape_part_accumulate", [=](Case& c) {
      const Box p{{3, 5, 1}, {10, 30, 7}};
      binary_bwd_case(c, op, same, same, same, p, &p, &p, true, L::scrambled);
    });
    r.add("binary_bwd/" + n + "/broadcast", [=](Case& c) {
      const Box wa = whole(ba), wb = whole(bb);
      binary_bwd_case(c, op, ba, bb, by, whole(by), &wa, &wb, false, L::dense);
    });
    // Partial sums over dy's box along the dims each operand was broadcast along.
    r.add("binary_bwd/" + n + "/broadcast_part_accumulate", [=](Case& c) {
      const Box da = operand_box(ba, by_part), db = operand_box(bb, by_part);
      binary_bwd_case(c, op, ba, bb, by, by_part, &da, &db, true, L::scrambled);
    });
  }
  const Shape nchw{4, 16, 7, 7}, chan{16, 1, 1};
  r.add("binary_fwd/add/bias_channels",
        [=](Case& c) { binary_fwd_case(c, Binary::add, nchw, chan, nchw, whole(nchw), L::dense); });
  r.add("binary_fwd/mul/scalar", [](Case& c) {
    binary_fwd_case(c, Binary::mul, {32, 50}, {1}, {32, 50}, whole({32, 50}), L::padded);
  });
  r.add("binary_fwd/add/large_dense", [](Case& c) {
    binary_fwd_case(c, Binary::add, {256, 1000}, {256, 1000}, {256, 1000}, whole({256, 1000}), L::dense);
  });
  r.add("binary_fwd/sub/row_vector_shifted", [](Case& c) {
    binary_fwd_case(c, Binary::sub, {6, 20, 30}, {30}, {6, 20, 30}, whole({6, 20, 30}), L::shifted);
  });
  r.add("binary_bwd/add/bias_channels_db_only", [=](Case& c) {
    const Box db = whole(chan);
    binary_bwd_case(c, Binary::add, nchw, chan, nchw, whole(nchw), nullptr, &db, false, L::dense);
  });
  r.add("binary_bwd/add/bias_channels_part", [=](Case& c) {
    const Box y{{1, 4, 0, 2}, {2, 9, 7, 5}}, db{{4, 0, 0}, {9, 1, 1}};
    binary_bwd_case(c, Binary::add, nchw, chan, nchw, y, nullptr, &db, true, L::scrambled);
  });
  r.add("binary_bwd/mul/da_inside_dy_part", [=](Case& c) {
    const Box da{{1, 0, 2, 3}, {5, 1, 8, 6}};
    binary_bwd_case(c, Binary::mul, ba, bb, by, whole(by), &da, nullptr, false, L::padded);
  });
  r.add("binary_bwd/mul/scalar", [](Case& c) {
    const Box da = whole({32, 50}), db = whole({1});
    binary_bwd_case(c, Binary::mul, {32, 50}, {1}, {32, 50}, whole({32, 50}), &da, &db, false, L::dense);
  });
  r.add("binary_bwd/sub/row_vector", [](Case& c) {
    const Box db = whole({30});
    binary_bwd_case(c, Binary::sub, {6, 20, 30}, {30}, {6, 20, 30}, whole({6, 20, 30}), nullptr, &db, false, L::dense);
  });
  r.add("binary_bwd/mul/large_dense", [](Case& c) {
    const Shape s{256, 1000};
    const Box w = whole(s), db = whole({1000});
    binary_bwd_case(c, Binary::mul, s, {1000}, s, w, &w, &db, false, L::dense);
  });

  // clip (ReLU6, hardtanh).
  const Shape cs{16, 100};
  const Box cx{{2, 10}, {12, 80}}, cy{{3, 20}, {10, 50}};
  r.add("clip_fwd/relu6_whole",
        [=](Case& c) { clip_forward(c.ctx, 0.f, 6.f, c.in(c.uniform(cs, -8.f, 8.f)), c.out("y", cs)); });
  r.add("clip_fwd/hardtanh_part", [=](Case& c) {
    clip_forward(c.ctx, -0.5f, 0.5f, c.in(c.uniform(cs), cx, L::scrambled), c.out("y", cs, cy, L::padded));
  });
  r.add("clip_bwd/relu6_whole", [=](Case& c) {
    clip_backward(c.ctx, 0.f, 6.f, c.in(c.uniform(cs, -8.f, 8.f)), c.in(c.uniform(cs)), c.out("dx", cs), false);
  });
  r.add("clip_bwd/hardtanh_part_accumulate", [=](Case& c) {
    const HostArray x = c.uniform(cs), dy = c.uniform(cs), dx = c.uniform(cs);
    clip_backward(c.ctx, -0.5f, 0.5f, c.in(x, cx, L::padded), c.in(dy, cx, L::scrambled),
                  c.inout("dx", dx, cy, L::scrambled), true);
  });

  // dropout: the mask keyed by the global element index.
  const Shape ds{16, 1000};
  const Box dx_part{{2, 50}, {12, 900}}, dy_part{{3, 100}, {10, 800}};
  r.add("dropout_fwd/whole", [=](Case& c) { dropout_forward(c.ctx, 0.3f, 1234, c.in(c.uniform(ds)), c.out("y", ds)); });
  r.add("dropout_fwd/part", [=](Case& c) {
    dropout_forward(c.ctx, 0.5f, 77, c.in(c.uniform(ds), dx_part, L::scrambled), c.out("y", ds, dy_part, L::padded));
  });
  r.add("dropout_fwd/rate0",
        [](Case& c) { dropout_forward(c.ctx, 0.f, 5, c.in(c.uniform({100})), c.out("y", {100})); });
  r.add("dropout_fwd/index_above_4g", [](Case& c) {
    const Shape full{70000, 70000};
    const Box b{{69990, 69000}, {5, 600}};
    dropout_forward(c.ctx, 0.1f, 0xdeadbeefcafef00dULL, c.in(c.uniform(b.size), full, b, L::padded),
                    c.out("y", full, b, L::scrambled));
  });
  r.add("dropout_bwd/whole",
        [=](Case& c) { dropout_backward(c.ctx, 0.3f, 1234, c.in(c.uniform(ds)), c.out("dx", ds), false); });
  r.add("dropout_bwd/part_accumulate", [=](Case& c) {
    const HostArray dy = c.uniform(ds), dx = c.uniform(ds);
    dropout_backward(c.ctx, 0.5f, 77, c.in(dy, dx_part, L::padded), c.inout("dx", dx, dy_part, L::scrambled), true);
  });
}

}  // namespace ffrt::cases
