// linear and matmul on the cpu: forward and backward on parts, as GEMMs over OpenBLAS.
//
// linear: y[..., o] = act(x[..., :] . w[o, :] + b[o]); all leading dims of x are rows. A part holds
// whole rows of x and the rows of w for its range of o; its backward-data result is partial over
// that range, its weight gradient partial over its rows.
// matmul: y = op(a) @ op(b) with NumPy broadcasting of the leading dims (a dim of global extent 1
// stretches); one GEMM per leading index of y's box. Backward sums over the broadcast dims and over
// the part's share of the contraction's other side.
#include <algorithm>
#include <vector>

#include "gemm.h"

namespace ffrt {

namespace {

using cpu::require;
using cpu::box_holds;


/// Element (r, c) of a matrix.
float at(const cpu::Mat& m, int64_t r, int64_t c) { return m.t ? m.p[c * m.ld + r] : m.p[r * m.ld + c]; }

/// out[c] (=, or += with accumulate) the column sums of a rows x cols matrix, summed in double.
void column_sums(Context& ctx, const cpu::Mat& m, int64_t rows, int64_t cols, const View& out, bool accumulate) {
  constexpr int64_t kBlock = 16;
  const int64_t blocks = (cols + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(ctx.threads) schedule(static) if (rows * cols >= cpu::kMinParallelWork)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kBlock, c1 = std::min(cols, c0 + kBlock);
    double s[kBlock] = {};
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c1; ++c) s[c - c0] += at(m, r, c);
    for (int64_t c = c0; c < c1; ++c)
      cpu::store(out.f32() + c * out.stride[0], static_cast<float>(s[c - c0]), accumulate);
  }
}

/// Checks the views of a linear op: x-like [..., K] and y-like [..., O] of equal rank with equal
/// leading extents, w [O, K].
void check_linear(const char* who, const View& x, const View& w, const View& y) {
  require(x.rank >= 2 && x.rank == y.rank && w.rank == 2 && x.dtype == DType::f32 && y.dtype == DType::f32 &&
              w.dtype == DType::f32,
          who);
  const int r = x.rank;
  for (int d = 0; d < r - 1; ++d) require(x.full[d] == y.full[d], "linear: x and y differ in a leading extent");
  require(w.full[0] == y.full[r - 1] && w.full[1] == x.full[r - 1], "linear: w's extents are not [out, in]");
}

}  // namespace

// ---- linear ------------------------------------------------------------------------------------

void linear_forward(Context& ctx, Act act, const View& x, const View& w, const View* b, const View& y) {
  check_linear("linear_forward: x, y (rank >= 2, equal) and w (rank 2) must be f32 views", x, w, y);
  const int r = y.rank;
  const int64_t K = x.full[r - 1], o0 = y.lo[r - 1], no = y.size[r - 1];
  int64_t xlo[kMaxRank], xsize[kMaxRank];
  for (int d = 0; d < r; ++d) xlo[d] = y.lo[d], xsize[d] = y.size[d];
  xlo[r - 1] = 0, xsize[r - 1] = K;
  const int64_t wlo[2] = {o0, 0}, wsize[2] = {no, K};
  require(box_holds(x, xlo, xsize), "linear_forward: x does not hold whole rows of y's box");
  require(box_holds(w, wlo, wsize), "linear_forward: w does not hold the rows of y's range of outputs");
  if (b) {
    require(b->rank == 1 && b->dtype == DType::f32 && b->full[0] == y.full[r - 1], "linear_forward: bad bias view");
    require(box_holds(*b, &o0, &no), "linear_forward: b does not hold y's range of outputs");
  }
  if (y.volume() == 0) return;
  cpu::BoxMat X = cpu::box_mat(ctx, x, xlo, xsize, true, true);
  cpu::BoxMat W = cpu::box_mat(ctx, w, wlo, wsize, true, true);
  cpu::BoxMat Y = cpu::box_mat(ctx, y, y.lo, y.size, false, false);
  cpu::gemm(ctx, Y.rows, no, K, 1.f, X.m, false, W.m, true, 0.f, Y.m);
  if (b || act != Act::none) {
    const float* bias = b ? b->f32() + (o0 - b->lo[0]) * b->stride[0] : nullptr;
    const int64_t bs = b ? b->stride[0] : 0;
#pragma omp parallel for num_threads(ctx.threads) schedule(static) if (Y.rows * no >= cpu::kMinParallelWork)
    for (int64_t i = 0; i < Y.rows; ++i) {
      float* row = Y.m.p + i * Y.m.ld;
      if (bias)
        for (int64_t j = 0; j < no; ++j) row[j] += bias[j * bs];
      cpu::bias_act(act, 0.f, row, no, row, 1);
    }
  }
  cpu::write_back(ctx, Y, y, y.lo, y.size, false);
}

void linear_backward_data(Context& ctx, const View& dy, const View& w, const View& dx, bool accumulate) {
  check_linear("linear_backward_data: dx, dy (rank >= 2, equal) and w (rank 2) must be f32 views", dx, w, dy);
  const int r = dx.rank;
  const int64_t o0 = dy.lo[r - 1], no = dy.size[r - 1];
  int64_t ylo[kMaxRank], ysize[kMaxRank];
  for (int d = 0; d < r; ++d) ylo[d] = dx.lo[d], ysize[d] = dx.size[d];
  ylo[r - 1] = o0, ysize[r - 1] = no;
  const int64_t wlo[2] = {o0, dx.lo[r - 1]}, wsize[2] = {no, dx.size[r - 1]};
  require(no == 0 || box_holds(dy, ylo, ysize), "linear_backward_data: dy does not hold the rows of dx's box");
  require(box_holds(w, wlo, wsize), "linear_backward_data: w does not hold dy's outputs x dx's inputs");
  if (dx.volume() == 0) return;
  if (no == 0) {
    if (!accumulate) cpu::zero_box(ctx, dx);
    return;
  }
  cpu::BoxMat DX = cpu::box_mat(ctx, dx, dx.lo, dx.size, false, false);
  cpu::BoxMat DY = cpu::box_mat(ctx, dy, ylo, ysize, true, true);
  cpu::BoxMat W = cpu::box_mat(ctx, w, wlo, wsize, true, true);
  const float beta = accumulate && !DX.packed ? 1.f : 0.f;
  cpu::gemm(ctx, DX.rows, DX.cols, no, 1.f, DY.m, false, W.m, false, beta, DX.m);
  cpu::write_back(ctx, DX, dx, dx.lo, dx.size, accumulate);
}

void linear_backward_weight(Context& ctx, const View& x, const View& dy, const View& dw, const View* db,
                            bool accumulate) {
  check_linear("linear_backward_weight: x, dy (rank >= 2, equal) and dw (rank 2) must be f32 views", x, dw, dy);
  const int r = dy.rank;
  int64_t ylo[kMaxRank], ysize[kMaxRank], xlo[kMaxRank], xsize[kMaxRank];
  for (int d = 0; d < r; ++d) ylo[d] = xlo[d] = dy.lo[d], ysize[d] = xsize[d] = dy.size[d];
  int64_t rows = 1;
  for (int d = 0; d < r - 1; ++d) rows *= dy.size[d];
  if (db) {
    require(db->rank == 1 && db->dtype == DType::f32 && db->full[0] == dy.full[r - 1],
            "linear_backward_weight: bad bias gradient view");
    require(db->size[0] == 0 || (db->lo[0] >= dy.lo[r - 1] && db->hi(0) <= dy.hi(r - 1)),
            "linear_backward_weight: dy does not hold db's range of outputs");
    if (db->size[0] > 0) {
      if (rows == 0) {
        if (!accumulate) cpu::zero_box(ctx, *db);
      } else {
        ylo[r - 1] = db->lo[0], ysize[r - 1] = db->size[0];
        cpu::BoxMat DY = cpu::box_mat(ctx, dy, ylo, ysize, true, true);
        column_sums(ctx, DY.m, rows, DY.cols, *db, accumulate);
      }
    }
  }
  require(dw.size[0] == 0 || (dw.lo[0] >= dy.lo[r - 1] && dw.hi(0) <= dy.hi(r - 1)),
          "linear_backward_weight: dy does not hold dw's range of outputs");
  ylo[r - 1] = dw.lo[0], ysize[r - 1] = dw.size[0];
  xlo[r - 1] = dw.lo[1], xsize[r - 1] = dw.size[1];
  require(box_holds(x, xlo, xsize), "linear_backward_weight: x does not hold dy's rows x dw's inputs");
  if (dw.volume() == 0) return;
  cpu::BoxMat DW = cpu::box_mat(ctx, dw, dw.lo, dw.size, false, false);
  const float beta = accumulate && !DW.packed ? 1.f : 0.f;
  if (rows == 0) {
    cpu::gemm(ctx, DW.rows, DW.cols, 0, 1.f, {}, true, {}, false, beta, DW.m);
  } else {
    cpu::BoxMat DY = cpu::box_mat(ctx, dy, ylo, ysize, true, true);
    cpu::BoxMat X = cpu::box_mat(ctx, x, xlo, xsize, true, true);
    cpu::gemm(ctx, DW.rows, DW.cols, rows, 1.f, DY.m, true, X.m, false, beta, DW.m);
  }
  cpu::write_back(ctx, DW, dw, dw.lo, dw.size, accumulate);
}

// ---- matmul ------------------------------------------------------------------------------------

namespace {

/// The shapes of a matmul: y [..., M, N] = op(a) [..., M, K] @ op(b) [..., K, N], where a is stored
/// [..., K, M] when transposed and b [..., N, K].
struct MatmulShape {
  int R, ra, rb;
  int64_t M, N, K;
  bool ta, tb;
  int64_t batches(const View& v) const {  // leading index count of a box of y
    int64_t n = 1;
    for (int d = 0; d < R - 2; ++d) n *= v.size[d];
    return n;
  }
};

MatmulShape matmul_shape(const MatmulAttrs& m, const View& a, const View& b, const View& y) {
  require(a.dtype == DType::f32 && b.dtype == DType::f32 && y.dtype == DType::f32, "matmul: views must be f32");
  MatmulShape s{y.rank, a.rank, b.rank, 0, 0, 0, m.transpose_a, m.transpose_b};
  require(s.ra >= 2 && s.rb >= 2 && s.R == std::max(s.ra, s.rb), "matmul: bad operand or output ranks");
  s.M = y.full[s.R - 2], s.N = y.full[s.R - 1];
  s.K = a.full[s.ra - (s.ta ? 2 : 1)];
  require(a.full[s.ra - (s.ta ? 1 : 2)] == s.M && b.full[s.rb - (s.tb ? 2 : 1)] == s.N &&
              b.full[s.rb - (s.tb ? 1 : 2)] == s.K,
          "matmul: operand extents do not match the output's");
  for (int i = 0; i < s.R - 2; ++i) {
    const int ia = i - (s.R - s.ra), ib = i - (s.R - s.rb);
    const int64_t da = ia >= 0 ? a.full[ia] : 1, db = ib >= 0 ? b.full[ib] : 1;
    require((da == y.full[i] || da == 1) && (db == y.full[i] || db == 1) && y.full[i] == std::max(da, db),
            "matmul: leading dims do not broadcast to the output's");
  }
  return s;
}

/// The q-th leading index (row-major) of y's box, in global coordinates.
void leading_index(const View& y, int R, int64_t q, int64_t* idx) {
  for (int d = R - 3; d >= 0; --d) {
    idx[d] = y.lo[d] + q % y.size[d];
    q /= y.size[d];
  }
}

/// An operand's box for the leading index `yidx` of y (broadcast dims map to 0) and the given
/// ranges of its last two (stored) dims.
void operand_box(const View& v, int R, const int64_t* yidx, int64_t r0, int64_t nr, int64_t c0, int64_t nc, int64_t* lo,
                 int64_t* size) {
  const int r = v.rank;
  for (int d = 0; d < r - 2; ++d) {
    lo[d] = v.full[d] == 1 ? 0 : yidx[d + (R - r)];
    size[d] = 1;
  }
  lo[r - 2] = r0, size[r - 2] = nr, lo[r - 1] = c0, size[r - 1] = nc;
}

/// The box of an operand that all of y's box needs: its leading dims y's ranges (or [0, 1) where
/// the operand broadcasts), its last two (stored) dims the given ranges.
void needed_box(const View& v, const View& y, int64_t r0, int64_t nr, int64_t c0, int64_t nc, int64_t* lo,
                int64_t* size) {
  const int r = v.rank, R = y.rank;
  for (int d = 0; d < r - 2; ++d) {
    const bool bcast = v.full[d] == 1;
    lo[d] = bcast ? 0 : y.lo[d + (R - r)];
    size[d] = bcast ? 1 : y.size[d + (R - r)];
  }
  lo[r - 2] = r0, size[r - 2] = nr, lo[r - 1] = c0, size[r - 1] = nc;
}

/// Whether the GEMMs of `batches` leading indices, `per` multiply-adds each, should run in
/// parallel, one thread each: when there are enough of them, or they are too small to split.
bool batch_parallel(const Context& ctx, int64_t batches, int64_t per) {
  return batches > 1 && (batches >= ctx.threads || per < (int64_t{1} << 18)) && batches * per >= cpu::kMinParallelWork;
}

/// Whether distinct leading indices of y's box map to distinct matrices of the operand v (no
/// broadcasting within the box), so their gradients can be accumulated concurrently.
bool distinct_batches(const MatmulShape& s, const View& v, const View& y) {
  for (int i = 0; i < s.R - 2; ++i) {
    const int iv = i - (s.R - v.rank);
    if (y.size[i] > 1 && (iv < 0 || v.full[iv] == 1)) return false;
  }
  return true;
}

/// Where the per-batch GEMMs of an operand's gradient `dv` write. Directly into dv's box when each of
/// its matrices gets exactly one product covering it (`direct`); otherwise into a zeroed dense
/// buffer over the box, stored (or added) to dv at the end.
struct GradTarget {
  const View& dv;
  bool direct, accumulate;
  std::vector<float> buf;
  int64_t stride[kMaxRank] = {};

  GradTarget(Context&, const View& v, bool direct_, bool accumulate_)
      : dv(v), direct(direct_), accumulate(accumulate_) {
    if (direct) return;
    buf.assign(static_cast<size_t>(v.volume()), 0.f);
    int64_t s = 1;
    for (int d = v.rank - 1; d >= 0; --d) stride[d] = s, s *= v.size[d];
  }
  /// Calls product(C, beta) for the matrix of dv's box at corner `lo` (extents `size`); C's rows
  /// are dim rank-2 of dv, or dim rank-1 when `t`.
  template <class F>
  void gemm(Context& ctx, const int64_t* lo, const int64_t* size, bool t, F&& product) {
    if (direct) {
      cpu::BoxMat C = cpu::box_mat(ctx, dv, lo, size, false, false);
      product(cpu::Mat{C.m.p, C.m.ld, t}, accumulate && !C.packed ? 1.f : 0.f);
      cpu::write_back(ctx, C, dv, lo, size, accumulate);
      return;
    }
    int64_t off = 0;
    for (int d = 0; d < dv.rank; ++d) off += (lo[d] - dv.lo[d]) * stride[d];
    product(cpu::Mat{buf.data() + off, std::max<int64_t>(dv.size[dv.rank - 1], 1), t}, 1.f);
  }
  void finish(Context& ctx) {
    if (!direct) cpu::unpack_box(ctx, buf.data(), dv, dv.lo, dv.size, accumulate);
  }
};

/// Whether the gradient dv of operand v can be written directly: dy's leading indices map one to
/// one onto dv's matrices, and dv's range of the kept dim `rk` (m for a, n for b) is exactly
/// [k0, k1), the part of dy's range it overlaps.
bool direct_target(const MatmulShape& s, const View& v, const View& dv, const View& dy, int rk, int64_t k0,
                   int64_t k1) {
  if (!distinct_batches(s, v, dy) || dv.lo[rk] != k0 || dv.hi(rk) != k1) return false;
  for (int d = 0; d < v.rank - 2; ++d) {
    const int i = d + (s.R - v.rank);
    const bool bcast = v.full[d] == 1;
    if (dv.lo[d] != (bcast ? 0 : dy.lo[i]) || dv.size[d] != (bcast ? 1 : dy.size[i])) return false;
  }
  return true;
}

/// Whether the leading index of `lo` lies in v's box.
bool leading_in(const View& v, const int64_t* lo) {
  for (int d = 0; d < v.rank - 2; ++d)
    if (lo[d] < v.lo[d] || lo[d] >= v.hi(d)) return false;
  return true;
}

}  // namespace

void matmul_forward(Context& ctx, const MatmulAttrs& m, const View& a, const View& b, const View& y) {
  const MatmulShape s = matmul_shape(m, a, b, y);
  if (y.volume() == 0) return;
  const int R = s.R;
  const int64_t m0 = y.lo[R - 2], nm = y.size[R - 2], n0 = y.lo[R - 1], nn = y.size[R - 1];
  {
    int64_t lo[kMaxRank], sz[kMaxRank];
    if (s.ta)
      needed_box(a, y, 0, s.K, m0, nm, lo, sz);
    else
      needed_box(a, y, m0, nm, 0, s.K, lo, sz);
    require(box_holds(a, lo, sz), "matmul_forward: a does not hold the rows and batches y's box needs");
    if (s.tb)
      needed_box(b, y, n0, nn, 0, s.K, lo, sz);
    else
      needed_box(b, y, 0, s.K, n0, nn, lo, sz);
    require(box_holds(b, lo, sz), "matmul_forward: b does not hold the columns and batches y's box needs");
  }
  // One GEMM per leading index; many small ones run in parallel, each on one thread.
  const int64_t batches = s.batches(y);
  const bool parallel = batch_parallel(ctx, batches, nm * nn * s.K);
#pragma omp parallel for num_threads(ctx.threads) schedule(static) if (parallel)
  for (int64_t q = 0; q < batches; ++q) {
    int64_t yidx[kMaxRank], alo[kMaxRank], asz[kMaxRank], blo[kMaxRank], bsz[kMaxRank], ylo[kMaxRank], ysz[kMaxRank];
    leading_index(y, R, q, yidx);
    if (s.ta)
      operand_box(a, R, yidx, 0, s.K, m0, nm, alo, asz);
    else
      operand_box(a, R, yidx, m0, nm, 0, s.K, alo, asz);
    if (s.tb)
      operand_box(b, R, yidx, n0, nn, 0, s.K, blo, bsz);
    else
      operand_box(b, R, yidx, 0, s.K, n0, nn, blo, bsz);
    operand_box(y, R, yidx, m0, nm, n0, nn, ylo, ysz);
    cpu::BoxMat A = cpu::box_mat(ctx, a, alo, asz, true, true);
    cpu::BoxMat B = cpu::box_mat(ctx, b, blo, bsz, true, true);
    cpu::BoxMat Y = cpu::box_mat(ctx, y, ylo, ysz, false, false);
    cpu::gemm(ctx, nm, nn, s.K, 1.f, A.m, s.ta, B.m, s.tb, 0.f, Y.m);
    cpu::write_back(ctx, Y, y, ylo, ysz, false);
  }
}

void matmul_backward(Context& ctx, const MatmulAttrs& m, const View& a, const View& b, const View& dy, const View* da,
                     const View* db, bool accumulate) {
  const MatmulShape s = matmul_shape(m, a, b, dy);
  const int R = s.R;
  const int64_t m0 = dy.lo[R - 2], nm = dy.size[R - 2], n0 = dy.lo[R - 1], nn = dy.size[R - 1];
  const int64_t batches = s.batches(dy);

  if (da) {
    require(da->rank == s.ra && da->dtype == DType::f32, "matmul_backward: da must be an f32 view like a");
    for (int d = 0; d < s.ra; ++d) require(da->full[d] == a.full[d], "matmul_backward: da's extents are not a's");
    // da's ranges of m and k, in op(a)'s terms.
    const int rm = s.ta ? s.ra - 1 : s.ra - 2, rk = s.ta ? s.ra - 2 : s.ra - 1;
    const int64_t am0 = std::max(m0, da->lo[rm]), am1 = std::min(m0 + nm, da->hi(rm));
    const int64_t k0 = da->lo[rk], nk = da->size[rk];
    // The boxes of batch q: C in da, the operand b and dy; false when q adds nothing to da's box.
    auto boxes = [&](int64_t q, int64_t* clo, int64_t* csz, int64_t* olo, int64_t* osz, int64_t* ylo, int64_t* ysz) {
      int64_t yidx[kMaxRank];
      leading_index(dy, R, q, yidx);
      if (s.ta)
        operand_box(*da, R, yidx, k0, nk, am0, am1 - am0, clo, csz);
      else
        operand_box(*da, R, yidx, am0, am1 - am0, k0, nk, clo, csz);
      if (!leading_in(*da, clo)) return false;
      if (s.tb)
        operand_box(b, R, yidx, n0, nn, k0, nk, olo, osz);
      else
        operand_box(b, R, yidx, k0, nk, n0, nn, olo, osz);
      operand_box(dy, R, yidx, am0, am1 - am0, n0, nn, ylo, ysz);
      return true;
    };
    GradTarget target(ctx, *da, direct_target(s, a, *da, dy, rm, am0, am1), accumulate);
    if (target.direct || (am1 > am0 && nk > 0 && nn > 0 && da->volume() > 0)) {
      int64_t clo[kMaxRank], csz[kMaxRank], olo[kMaxRank], osz[kMaxRank], ylo[kMaxRank], ysz[kMaxRank];
      for (int64_t q = 0; q < batches; ++q)
        if (boxes(q, clo, csz, olo, osz, ylo, ysz))
          require(box_holds(b, olo, osz), "matmul_backward: b does not hold what da's box needs");
      const bool parallel = distinct_batches(s, a, dy) && batch_parallel(ctx, batches, (am1 - am0) * nk * nn);
#pragma omp parallel for num_threads(ctx.threads) schedule(static) if (parallel)
      for (int64_t q = 0; q < batches; ++q) {
        int64_t clo[kMaxRank], csz[kMaxRank], olo[kMaxRank], osz[kMaxRank], ylo[kMaxRank], ysz[kMaxRank];
        if (!boxes(q, clo, csz, olo, osz, ylo, ysz)) continue;
        // dOpA [m x k] += dY [m x n] @ op(b)^T [n x k]
        cpu::BoxMat B = cpu::box_mat(ctx, b, olo, osz, true, true);
        cpu::BoxMat DY = cpu::box_mat(ctx, dy, ylo, ysz, true, true);
        target.gemm(ctx, clo, csz, s.ta, [&](cpu::Mat C, float beta) {
          cpu::gemm(ctx, am1 - am0, nk, nn, 1.f, DY.m, false, B.m, !s.tb, beta, C);
        });
      }
    }
    target.finish(ctx);
  }

  if (db) {
    require(db->rank == s.rb && db->dtype == DType::f32, "matmul_backward: db must be an f32 view like b");
    for (int d = 0; d < s.rb; ++d) require(db->full[d] == b.full[d], "matmul_backward: db's extents are not b's");
    const int rn = s.tb ? s.rb - 2 : s.rb - 1, rk = s.tb ? s.rb - 1 : s.rb - 2;
    const int64_t bn0 = std::max(n0, db->lo[rn]), bn1 = std::min(n0 + nn, db->hi(rn));
    const int64_t k0 = db->lo[rk], nk = db->size[rk];
    auto boxes = [&](int64_t q, int64_t* clo, int64_t* csz, int64_t* olo, int64_t* osz, int64_t* ylo, int64_t* ysz) {
      int64_t yidx[kMaxRank];
      leading_index(dy, R, q, yidx);
      if (s.tb)
        operand_box(*db, R, yidx, bn0, bn1 - bn0, k0, nk, clo, csz);
      else
        operand_box(*db, R, yidx, k0, nk, bn0, bn1 - bn0, clo, csz);
      if (!leading_in(*db, clo)) return false;
      if (s.ta)
        operand_box(a, R, yidx, k0, nk, m0, nm, olo, osz);
      else
        operand_box(a, R, yidx, m0, nm, k0, nk, olo, osz);
      operand_box(dy, R, yidx, m0, nm, bn0, bn1 - bn0, ylo, ysz);
      return true;
    };
    GradTarget target(ctx, *db, direct_target(s, b, *db, dy, rn, bn0, bn1), accumulate);
    if (target.direct || (bn1 > bn0 && nk > 0 && nm > 0 && db->volume() > 0)) {
      int64_t clo[kMaxRank], csz[kMaxRank], olo[kMaxRank], osz[kMaxRank], ylo[kMaxRank], ysz[kMaxRank];
      for (int64_t q = 0; q < batches; ++q)
        if (boxes(q, clo, csz, olo, osz, ylo, ysz))
          require(box_holds(a, olo, osz), "matmul_backward: a does not hold what db's box needs");
      const bool parallel = distinct_batches(s, b, dy) && batch_parallel(ctx, batches, nk * (bn1 - bn0) * nm);
#pragma omp parallel for num_threads(ctx.threads) schedule(static) if (parallel)
      for (int64_t q = 0; q < batches; ++q) {
        int64_t clo[kMaxRank], csz[kMaxRank], olo[kMaxRank], osz[kMaxRank], ylo[kMaxRank], ysz[kMaxRank];
        if (!boxes(q, clo, csz, olo, osz, ylo, ysz)) continue;
        // dOpB [k x n] += op(a)^T [k x m] @ dY [m x n]
        cpu::BoxMat A = cpu::box_mat(ctx, a, olo, osz, true, true);
        cpu::BoxMat DY = cpu::box_mat(ctx, dy, ylo, ysz, true, true);
        target.gemm(ctx, clo, csz, s.tb, [&](cpu::Mat C, float beta) {
          cpu::gemm(ctx, nk, bn1 - bn0, nm, 1.f, A.m, !s.ta, DY.m, false, beta, C);
        });
      }
    }
    target.finish(ctx);
  }
}

}  // namespace ffrt
