// Backend cases: contractions — linear (forward with bias and each fused activation, backward data
// and weight), matmul (transposes, batches, broadcast leading dims) and embedding, on whole tensors
// and on parts (row and output ranges, partial sums over rows or outputs, accumulation), plus a
// large linear layer.
#include <algorithm>
#include <cmath>

#include "backend_cases.h"

namespace ffrt::cases {

namespace {

using L = Layout;

/// `b` with its last dim set to [lo, lo + n).
Box with_last(Box b, int64_t lo, int64_t n) { return with_dim(std::move(b), static_cast<int>(b.lo.size()) - 1, lo, n); }

Shape with_last_extent(Shape s, int64_t n) {
  s.back() = n;
  return s;
}

// ---- linear ----------------------------------------------------------------------------------------

/// y [..., O] over `yb` from x [..., K] (`xs`), w [O, K] and b [O].
void linear_fwd(Case& c, const Shape& xs, int64_t O, Act act, bool bias, const Box& yb, L l) {
  const int64_t K = xs.back(), o0 = yb.lo.back(), no = yb.size.back();
  const float bound = 1.f / std::sqrt(static_cast<float>(K));
  const HostArray x = c.uniform(xs), w = c.uniform({O, K}, -bound, bound), b = c.uniform({O}, -bound, bound);
  const View xv = c.in(x, with_last(yb, 0, K), l), wv = c.in(w, Box{{o0, 0}, {no, K}}, l);
  const View bv = bias ? c.in(b, range(o0, no), l) : none();
  linear_forward(c.ctx, act, xv, wv, bias ? &bv : nullptr, c.out("y", with_last_extent(xs, O), yb, l));
}

/// dx over `dxb` from dy's outputs [o0, o0 + no) (a partial sum unless all of them).
void linear_bwd_data(Case& c, const Shape& xs, int64_t O, const Box& dxb, int64_t o0, int64_t no, bool accumulate,
                     L l) {
  const int64_t K = xs.back();
  const HostArray dy = c.uniform(with_last_extent(xs, O)), w = c.uniform({O, K}), dx = c.uniform(xs);
  const View dyv = c.in(dy, with_last(dxb, o0, no), l);
  const View wv = c.in(w, Box{{o0, dxb.lo.back()}, {no, dxb.size.back()}}, l);
  linear_backward_data(c.ctx, dyv, wv, accumulate ? c.inout("dx", dx, dxb, l) : c.out("dx", xs, dxb, l), accumulate);
}

/// dw over `dwb` (and db over `dbb`) from dy's box `dyb` (a partial sum over its rows).
void linear_bwd_weight(Case& c, const Shape& xs, int64_t O, const Box& dyb, const Box& dwb, const Box* dbb,
                       bool accumulate, L l) {
  const int64_t K = xs.back();
  const HostArray x = c.uniform(xs), dy = c.uniform(with_last_extent(xs, O)), dw = c.uniform({O, K}),
                  db = c.uniform({O});
  const View xv = c.in(x, with_last(dyb, dwb.lo[1], dwb.size[1]), l), dyv = c.in(dy, dyb, l);
  const View dwv = accumulate ? c.inout("dw", dw, dwb, l) : c.out("dw", {O, K}, dwb, l);
  const View dbv = !dbb ? none() : accumulate ? c.inout("db", db, *dbb, l) : c.out("db", {O}, *dbb, l);
  linear_backward_weight(c.ctx, xv, dyv, dwv, dbb ? &dbv : nullptr, accumulate);
}

void add_linear_cases(Registry& r) {
  const Shape x2{64, 96}, x3{4, 10, 24}, xbig{256, 1024};
  const int64_t o2 = 80, o3 = 36, obig = 2048;
  auto y_of = [](const Shape& xs, int64_t O) { return whole(with_last_extent(xs, O)); };

  r.add("linear_fwd/2d/whole", [=](Case& c) { linear_fwd(c, x2, o2, Act::none, true, y_of(x2, o2), L::dense); });
  r.add("linear_fwd/2d/whole_shifted",
        [=](Case& c) { linear_fwd(c, x2, o2, Act::none, true, y_of(x2, o2), L::shifted); });
  for (Act act : {Act::relu, Act::sigmoid, Act::tanh, Act::gelu}) {
    r.add(std::string("linear_fwd/2d/act_") + act_name(act), [=](Case& c) {
      linear_fwd(c, {32, 48}, 40, act, true, whole({32, 40}), L::dense);
    });
  }
  r.add("linear_fwd/3d/whole", [=](Case& c) { linear_fwd(c, x3, o3, Act::none, true, y_of(x3, o3), L::dense); });
  r.add("linear_fwd/odd_no_bias", [](Case& c) {
    linear_fwd(c, {37, 129}, 65, Act::none, false, whole({37, 65}), L::dense);
  });
  r.add("linear_fwd/2d/part", [=](Case& c) {
    linear_fwd(c, x2, o2, Act::gelu, true, Box{{8, 16}, {32, 40}}, L::scrambled);
  });
  r.add("linear_fwd/3d/part", [=](Case& c) {
    linear_fwd(c, x3, o3, Act::relu, true, Box{{1, 2, 5}, {2, 7, 25}}, L::scrambled);
  });
  r.add("linear_fwd/big/whole",
        [=](Case& c) { linear_fwd(c, xbig, obig, Act::relu, true, y_of(xbig, obig), L::dense); });
  r.add("linear_fwd/big/part_outputs", [=](Case& c) {
    linear_fwd(c, xbig, obig, Act::none, true, Box{{0, 512}, {256, 1024}}, L::padded);
  });

  r.add("linear_bwd_data/2d/whole", [=](Case& c) { linear_bwd_data(c, x2, o2, whole(x2), 0, o2, false, L::dense); });
  r.add("linear_bwd_data/2d/part_outputs_accumulate", [=](Case& c) {
    linear_bwd_data(c, x2, o2, Box{{8, 10}, {32, 80}}, 20, 40, true, L::scrambled);
  });
  r.add("linear_bwd_data/3d/whole", [=](Case& c) { linear_bwd_data(c, x3, o3, whole(x3), 0, o3, false, L::dense); });
  r.add("linear_bwd_data/3d/part", [=](Case& c) {
    linear_bwd_data(c, x3, o3, Box{{1, 3, 0}, {3, 6, 24}}, 0, o3, false, L::scrambled);
  });
  r.add("linear_bwd_data/big/whole",
        [=](Case& c) { linear_bwd_data(c, xbig, obig, whole(xbig), 0, obig, false, L::dense); });
  r.add("linear_bwd_data/empty_outputs_zeroes_dx", [=](Case& c) {
    linear_bwd_data(c, x2, o2, Box{{8, 0}, {16, 96}}, 30, 0, false, L::padded);
  });

  const Box db2 = whole({o2}), db3 = whole({o3}), dbbig = whole({obig});
  r.add("linear_bwd_weight/2d/whole", [=](Case& c) {
    linear_bwd_weight(c, x2, o2, y_of(x2, o2), whole({o2, 96}), &db2, false, L::dense);
  });
  r.add("linear_bwd_weight/2d/rows_accumulate", [=](Case& c) {
    linear_bwd_weight(c, x2, o2, Box{{16, 0}, {32, 80}}, whole({o2, 96}), &db2, true, L::scrambled);
  });
  r.add("linear_bwd_weight/2d/dw_part", [=](Case& c) {
    const Box db = range(20, 40);
    linear_bwd_weight(c, x2, o2, Box{{0, 20}, {64, 40}}, Box{{20, 10}, {40, 80}}, &db, false, L::scrambled);
  });
  r.add("linear_bwd_weight/2d/no_db", [=](Case& c) {
    linear_bwd_weight(c, x2, o2, y_of(x2, o2), whole({o2, 96}), nullptr, false, L::padded);
  });
  r.add("linear_bwd_weight/3d/whole", [=](Case& c) {
    linear_bwd_weight(c, x3, o3, y_of(x3, o3), whole({o3, 24}), &db3, false, L::dense);
  });
  r.add("linear_bwd_weight/3d/part_accumulate", [=](Case& c) {
    linear_bwd_weight(c, x3, o3, Box{{1, 0, 0}, {2, 10, 36}}, whole({o3, 24}), &db3, true, L::scrambled);
  });
  r.add("linear_bwd_weight/big/whole", [=](Case& c) {
    linear_bwd_weight(c, xbig, obig, y_of(xbig, obig), whole({obig, 1024}), &dbbig, false, L::dense);
  });
  r.add("linear_bwd_weight/empty_rows_zeroes_dw_db", [=](Case& c) {
    linear_bwd_weight(c, x2, o2, Box{{10, 0}, {0, 80}}, whole({o2, 96}), &db2, false, L::padded);
  });
}

// ---- matmul ----------------------------------------------------------------------------------------

/// y [..., M, N] = op(a) @ op(b), leading dims broadcast.
struct MatGeom {
  std::string name;
  Shape a, b;
  MatmulAttrs t;

  Shape y() const {
    const size_t ra = a.size(), rb = b.size(), R = std::max(ra, rb);
    Shape s(R);
    for (size_t i = 0; i + 2 < R; ++i) {
      const int64_t da = i + ra >= R ? a[i + ra - R] : 1, db = i + rb >= R ? b[i + rb - R] : 1;
      s[i] = std::max(da, db);
    }
    s[R - 2] = t.transpose_a ? a[ra - 1] : a[ra - 2];
    s[R - 1] = t.transpose_b ? b[rb - 2] : b[rb - 1];
    return s;
  }
  /// The box of operand `v` (extents `vs`, transposed or not) that y's box `yb` reads: y's leading
  /// ranges ([0, 1) where v broadcasts), y's rows (a) or columns (b) and all of K.
  static Box needed(const Shape& vs, bool transposed, bool is_a, const Box& yb) {
    const size_t r = vs.size(), R = yb.lo.size();
    Box box = whole(vs);
    for (size_t d = 0; d + 2 < r; ++d)
      if (vs[d] != 1) box.lo[d] = yb.lo[d + R - r], box.size[d] = yb.size[d + R - r];
    // The dim of v that runs along y's rows (a) or columns (b).
    const size_t kept = is_a ? (transposed ? r - 1 : r - 2) : (transposed ? r - 2 : r - 1);
    box.lo[kept] = yb.lo[is_a ? R - 2 : R - 1], box.size[kept] = yb.size[is_a ? R - 2 : R - 1];
    return box;
  }
};

std::vector<MatGeom> mat_geoms() {
  return {
      {"2d", {33, 47}, {47, 29}, {}},
      {"ta", {47, 33}, {47, 29}, {.transpose_a = true}},
      {"tb", {33, 47}, {29, 47}, {.transpose_b = true}},
      {"ta_tb", {47, 33}, {29, 47}, {.transpose_a = true, .transpose_b = true}},
      {"batched", {4, 16, 24}, {4, 24, 20}, {}},
      {"bcast", {2, 1, 12, 16}, {3, 16, 10}, {}},
      {"rank_mix", {5, 8, 12}, {12, 7}, {}},
      {"attn_tb", {8, 64, 32}, {8, 64, 32}, {.transpose_b = true}},
      {"big_batched_tb", {8, 256, 128}, {8, 256, 128}, {.transpose_b = true}},
  };
}

const MatGeom& mat(const std::string& name) {
  static const std::vector<MatGeom> geoms = mat_geoms();
  for (const MatGeom& g : geoms)
    if (g.name == name) return g;
  throw std::logic_error("no matmul " + name);
}

void matmul_fwd(Case& c, const MatGeom& g, const Box& yb, L l) {
  const HostArray a = c.uniform(g.a), b = c.uniform(g.b);
  const View av = c.in(a, MatGeom::needed(g.a, g.t.transpose_a, true, yb), l);
  const View bv = c.in(b, MatGeom::needed(g.b, g.t.transpose_b, false, yb), l);
  matmul_forward(c.ctx, g.t, av, bv, c.out("y", g.y(), yb, l));
}

/// da over `dab` and db over `dbb` (either null) from dy's box `dyb`; a and b whole.
void matmul_bwd(Case& c, const MatGeom& g, const Box& dyb, const Box* dab, const Box* dbb, bool accumulate, L l) {
  const HostArray a = c.uniform(g.a), b = c.uniform(g.b), dy = c.uniform(g.y());
  const HostArray da0 = c.uniform(g.a), db0 = c.uniform(g.b);
  const View av = c.in(a, l), bv = c.in(b, l), dyv = c.in(dy, dyb, l);
  auto grad = [&](const char* name, const HostArray& init, const Box& box) {
    return accumulate ? c.inout(name, init, box, l) : c.out(name, init.shape, box, l);
  };
  const View da = dab ? grad("da", da0, *dab) : none(), db = dbb ? grad("db", db0, *dbb) : none();
  matmul_backward(c.ctx, g.t, av, bv, dyv, dab ? &da : nullptr, dbb ? &db : nullptr, accumulate);
}

void add_matmul_cases(Registry& r) {
  for (const MatGeom& g : mat_geoms()) {
    r.add("matmul_fwd/" + g.name + "/whole", [=](Case& c) { matmul_fwd(c, g, whole(g.y()), L::dense); });
    r.add("matmul_bwd/" + g.name + "/whole", [=](Case& c) {
      const Box da = whole(g.a), db = whole(g.b);
      matmul_bwd(c, g, whole(g.y()), &da, &db, false, L::dense);
    });
  }
  r.add("matmul_fwd/batched/part", [](Case& c) {
    matmul_fwd(c, mat("batched"), Box{{1, 4, 5}, {2, 8, 10}}, L::scrambled);
  });
  r.add("matmul_fwd/bcast/part", [](Case& c) {
    matmul_fwd(c, mat("bcast"), Box{{1, 1, 3, 2}, {1, 2, 6, 7}}, L::scrambled);
  });
  r.add("matmul_fwd/ta_tb/part", [](Case& c) { matmul_fwd(c, mat("ta_tb"), Box{{5, 3}, {20, 20}}, L::padded); });
  r.add("matmul_fwd/rank_mix/part_shifted", [](Case& c) {
    matmul_fwd(c, mat("rank_mix"), Box{{1, 0, 0}, {3, 8, 7}}, L::shifted);
  });

  r.add("matmul_bwd/batched/part_accumulate", [](Case& c) {
    const Box da{{1, 4, 0}, {2, 8, 24}}, db{{1, 0, 5}, {2, 24, 10}};
    matmul_bwd(c, mat("batched"), Box{{1, 4, 5}, {2, 8, 10}}, &da, &db, true, L::scrambled);
  });
  r.add("matmul_bwd/bcast/db_summed_over_batch", [](Case& c) {
    const MatGeom& g = mat("bcast");
    const Box db = whole(g.b);
    matmul_bwd(c, g, whole(g.y()), nullptr, &db, false, L::padded);
  });
  r.add("matmul_bwd/bcast/part_accumulate", [](Case& c) {
    const Box da{{1, 0, 3, 0}, {1, 1, 6, 16}}, db{{1, 0, 2}, {2, 16, 7}};
    matmul_bwd(c, mat("bcast"), Box{{1, 1, 3, 2}, {1, 2, 6, 7}}, &da, &db, true, L::scrambled);
  });
  r.add("matmul_bwd/rank_mix/db_only", [](Case& c) {
    const MatGeom& g = mat("rank_mix");
    const Box db = whole(g.b);
    matmul_bwd(c, g, whole(g.y()), nullptr, &db, false, L::dense);
  });
  r.add("matmul_bwd/ta/da_k_part", [](Case& c) {
    const MatGeom& g = mat("ta");
    const Box da{{10, 0}, {20, 33}};
    matmul_bwd(c, g, whole(g.y()), &da, nullptr, false, L::scrambled);
  });
  // da's rows beyond dy's rows get no contribution: zero when overwriting.
  r.add("matmul_bwd/tb/da_beyond_dy_rows", [](Case& c) {
    const MatGeom& g = mat("tb");
    const Box da = whole(g.a);
    matmul_bwd(c, g, Box{{10, 0}, {15, 29}}, &da, nullptr, false, L::padded);
  });
  r.add("matmul_bwd/attn_tb/part_accumulate", [](Case& c) {
    const Box da{{2, 0, 0}, {4, 64, 32}}, db{{2, 16, 0}, {4, 32, 32}};
    matmul_bwd(c, mat("attn_tb"), Box{{2, 0, 16}, {4, 64, 32}}, &da, &db, true, L::scrambled);
  });
}

// ---- embedding -------------------------------------------------------------------------------------

/// y over `yb` from the ids of y's leading box and w's columns of y's last range.
void embedding_fwd(Case& c, const Shape& ids_shape, int64_t rows, int64_t dim, const Box& yb, L l) {
  const HostArray ids = c.ids(ids_shape, rows), w = c.uniform({rows, dim});
  Box ib{Shape(yb.lo.begin(), yb.lo.end() - 1), Shape(yb.size.begin(), yb.size.end() - 1)};
  Shape ys = ids_shape;
  ys.push_back(dim);
  const View iv = c.in(ids, ib, l), wv = c.in(w, Box{{0, yb.lo.back()}, {rows, yb.size.back()}}, l);
  embedding_forward(c.ctx, iv, wv, c.out("y", ys, yb, l));
}

/// dw over `dwb` from dy's box `dyb` (a partial sum over its rows).
void embedding_bwd(Case& c, const Shape& ids_shape, int64_t rows, int64_t dim, int64_t classes, const Box& dyb,
                   const Box& dwb, bool accumulate, L l) {
  const HostArray ids = c.ids(ids_shape, classes), dw = c.uniform({rows, dim});
  Shape ys = ids_shape;
  ys.push_back(dim);
  const HostArray dy = c.uniform(ys);
  Box ib{Shape(dyb.lo.begin(), dyb.lo.end() - 1), Shape(dyb.size.begin(), dyb.size.end() - 1)};
  const View dwv = accumulate ? c.inout("dw", dw, dwb, l) : c.out("dw", {rows, dim}, dwb, l);
  embedding_backward_weight(c.ctx, c.in(ids, ib, l), c.in(dy, dyb, l), dwv, accumulate);
}

void add_embedding_cases(Registry& r) {
  r.add("embedding_fwd/whole", [](Case& c) { embedding_fwd(c, {8, 20}, 100, 32, whole({8, 20, 32}), L::dense); });
  r.add("embedding_fwd/3d_ids", [](Case& c) { embedding_fwd(c, {2, 4, 6}, 50, 16, whole({2, 4, 6, 16}), L::dense); });
  r.add("embedding_fwd/part", [](Case& c) {
    embedding_fwd(c, {8, 20}, 100, 32, Box{{2, 5, 8}, {4, 10, 16}}, L::scrambled);
  });
  r.add("embedding_fwd/large", [](Case& c) { embedding_fwd(c, {32, 128}, 5000, 64, whole({32, 128, 64}), L::dense); });
  r.add("embedding_bwd/whole", [](Case& c) {
    embedding_bwd(c, {8, 20}, 100, 32, 100, whole({8, 20, 32}), whole({100, 32}), false, L::dense);
  });
  r.add("embedding_bwd/part_accumulate", [](Case& c) {
    embedding_bwd(c, {8, 20}, 100, 32, 100, Box{{2, 5, 0}, {4, 10, 32}}, Box{{20, 8}, {50, 16}}, true, L::scrambled);
  });
  // Many rows share few ids (an atomic scatter's worst case).
  r.add("embedding_bwd/duplicate_ids", [](Case& c) {
    embedding_bwd(c, {64, 32}, 10, 64, 5, whole({64, 32, 64}), whole({10, 64}), false, L::dense);
  });
}

}  // namespace

void add_contraction_cases(Registry& r) {
  add_linear_cases(r);
  add_matmul_cases(r);
  add_embedding_cases(r);
}

}  // namespace ffrt::cases
