// GEMM over OpenBLAS and the packing of view boxes into matrix operands (see gemm.h).
#include "gemm.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

namespace ffrt::cpu {

namespace {

/// A leading dimension cblas accepts for a stored matrix of `rows` x `cols`: any value is fine when
/// there is at most one row, but cblas still checks ld >= cols.
int64_t fix_ld(int64_t ld, int64_t rows, int64_t cols) {
  if (rows <= 1) return std::max<int64_t>({ld, cols, 1});
  require(ld >= cols, "gemm: a matrix's row pitch is smaller than its row");
  return ld;
}

/// GEMMs of fewer multiply-adds run on the calling thread.
constexpr int64_t kMinParallelGemm = int64_t{1} << 18;
/// The narrowest slice of C a thread takes.
constexpr int64_t kMinGemmSlice = 32;
/// The shortest share of the contraction a thread takes, when the contraction is split.
constexpr int64_t kMinGemmDepth = 256;
/// The contraction is split only for C of at most this many elements (each thread holds a copy).
constexpr int64_t kMaxSplitK = int64_t{1} << 20;

bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

/// Offset in elements of the box corner `lo` inside v's buffer.
int64_t corner(const View& v, const int64_t* lo) {
  int64_t off = 0;
  for (int d = 0; d < v.rank; ++d) off += (lo[d] - v.lo[d]) * v.stride[d];
  return off;
}

/// Offset of the q-th row (row-major over the box's leading dims) from the box corner.
int64_t row_offset(const View& v, const int64_t* size, int64_t q) {
  int64_t off = 0;
  for (int d = v.rank - 2; d >= 0; --d) {
    off += (q % size[d]) * v.stride[d];
    q /= size[d];
  }
  return off;
}

}  // namespace

void gemm(Context& ctx, int64_t m, int64_t n, int64_t k, float alpha, Mat a, bool trans_a, Mat b, bool trans_b,
          float beta, Mat c) {
  if (m <= 0 || n <= 0) return;
  if (c.t) {
    // C^T = op(B)^T op(A)^T, with C^T stored row-major.
    gemm(ctx, n, m, k, alpha, b, !trans_b, a, !trans_a, beta, Mat{c.p, c.ld, false});
    return;
  }
  const int64_t ldc = fix_ld(c.ld, m, n);
  if (k <= 0) {
    for (int64_t i = 0; i < m; ++i) {
      float* row = c.p + i * ldc;
      if (beta == 0.f)
        std::fill(row, row + n, 0.f);
      else
        for (int64_t j = 0; j < n; ++j) row[j] *= beta;
    }
    return;
  }
  const bool ea = trans_a != a.t, eb = trans_b != b.t;  // effective transposes of the stored matrices
  const int64_t lda = ea ? fix_ld(a.ld, k, m) : fix_ld(a.ld, m, k);
  const int64_t ldb = eb ? fix_ld(b.ld, n, k) : fix_ld(b.ld, k, n);
  require(fits_int(m) && fits_int(n) && fits_int(k) && fits_int(lda) && fits_int(ldb) && fits_int(ldc),
          "gemm: a matrix is too large for 32-bit BLAS indices");
  // OpenBLAS runs single-threaded; the threads are OpenMP's, the same as every other kernel's, so
  // two thread pools never spin against each other.
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  auto call = [&](int64_t mm, int64_t nn, int64_t kk, const float* ap, const float* bp, float bt, float* cp,
                  int64_t ld) {
    cblas_sgemm(CblasRowMajor, ea ? CblasTrans : CblasNoTrans, eb ? CblasTrans : CblasNoTrans, static_cast<int>(mm),
                static_cast<int>(nn), static_cast<int>(kk), alpha, ap, static_cast<int>(lda), bp, static_cast<int>(ldb),
                bt, cp, static_cast<int>(ld));
  };
  const int threads = omp_in_parallel() || m * n * k < kMinParallelGemm ? 1 : ctx.threads;
  // Split C into a grid of pm x pn tiles, one per thread, as square as the threads allow...
  int pm = 1, pn = 1;
  for (int tm = 1; tm <= threads; ++tm) {
    if (tm > 1 && m / tm < kMinGemmSlice) break;
    for (int tn = 1; tm * tn <= threads; ++tn) {
      if (tn > 1 && n / tn < kMinGemmSlice) break;
      const int64_t best = std::min(m / pm, n / pn), cand = std::min(m / tm, n / tn);
      if (tm * tn > pm * pn || (tm * tn == pm * pn && cand > best)) pm = tm, pn = tn;
    }
  }
  // ... or, when C is too small for that and the contraction is long, split the contraction into
  // partial products summed afterwards (in a fixed order).
  const int kparts = static_cast<int>(std::clamp<int64_t>(k / kMinGemmDepth, 1, threads));
  if (kparts > 2 * pm * pn && m * n <= kMaxSplitK) {
    std::vector<float> partial(static_cast<size_t>(kparts * m * n));
#pragma omp parallel for num_threads(kparts) schedule(static)
    for (int p = 0; p < kparts; ++p) {
      const int64_t lo = k * p / kparts, len = k * (p + 1) / kparts - lo;
      call(m, n, len, ea ? a.p + lo * lda : a.p + lo, eb ? b.p + lo : b.p + lo * ldb, 0.f, partial.data() + p * m * n,
           n);
    }
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && m * n * kparts >= kMinParallelWork)
    for (int64_t i = 0; i < m; ++i) {
      float* row = c.p + i * ldc;
      for (int64_t j = 0; j < n; ++j) {
        float s = beta == 0.f ? 0.f : beta * row[j];
        for (int p = 0; p < kparts; ++p) s += partial[static_cast<size_t>((p * m + i) * n + j)];
        row[j] = s;
      }
    }
    return;
  }
  if (pm * pn == 1) return call(m, n, k, a.p, b.p, beta, c.p, ldc);
  // Tile bounds; column bounds on multiples of 16 floats.
  auto bound = [](int64_t e, int t, int p, int64_t align) { return p == t ? e : (e * p / t) / align * align; };
#pragma omp parallel for num_threads(pm* pn) schedule(static)
  for (int p = 0; p < pm * pn; ++p) {
    const int im = p / pn, in = p % pn;
    const int64_t i0 = bound(m, pm, im, 1), i1 = bound(m, pm, im + 1, 1);
    const int64_t j0 = bound(n, pn, in, 16), j1 = bound(n, pn, in + 1, 16);
    call(i1 - i0, j1 - j0, k, ea ? a.p + i0 : a.p + i0 * lda, eb ? b.p + j0 * ldb : b.p + j0, beta, c.p + i0 * ldc + j0,
         ldc);
  }
}

void pack_box(Context& ctx, const View& v, const int64_t* lo, const int64_t* size, float* out) {
  require(v.rank >= 1, "pack_box: a view of rank 0");
  int r = v.rank;
  int64_t inner = size[r - 1], outer = 1;
  for (int d = 0; d < r - 1; ++d) outer *= size[d];
  if (inner <= 0 || outer <= 0) return;
  const float* base = v.f32() + corner(v, lo);
  int64_t is = v.stride[r - 1];
  const int threads = threads_for(ctx, outer * inner, outer);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t q = 0; q < outer; ++q) {
    const float* src = base + row_offset(v, size, q);
    float* dst = out + q * inner;
    if (is == 1)
      std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(inner));
    else
      for (int64_t i = 0; i < inner; ++i) dst[i] = src[i * is];
  }
}

void unpack_box(Context& ctx, const float* in, const View& v, const int64_t* lo, const int64_t* size, bool accumulate) {
  require(v.rank >= 1, "unpack_box: a view of rank 0");
  int r = v.rank;
  int64_t inner = size[r - 1], outer = 1;
  for (int d = 0; d < r - 1; ++d) outer *= size[d];
  if (inner <= 0 || outer <= 0) return;
  float* base = v.f32() + corner(v, lo);
  int64_t is = v.stride[r - 1];
  const int threads = threads_for(ctx, outer * inner, outer);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t q = 0; q < outer; ++q) {
    float* dst = base + row_offset(v, size, q);
    const float* src = in + q * inner;
    if (accumulate)
      for (int64_t i = 0; i < inner; ++i) dst[i * is] += src[i];
    else if (is == 1)
      std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(inner));
    else
      for (int64_t i = 0; i < inner; ++i) dst[i * is] = src[i];
  }
}

void zero_box(Context& ctx, const View& v) {
  if (v.rank == 0) {
    *v.f32() = 0.f;
    return;
  }
  int r = v.rank;
  int64_t inner = v.size[r - 1], outer = 1;
  for (int d = 0; d < r - 1; ++d) outer *= v.size[d];
  if (inner <= 0 || outer <= 0) return;
  int64_t is = v.stride[r - 1];
  const int threads = threads_for(ctx, outer * inner, outer);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t q = 0; q < outer; ++q) {
    float* dst = v.f32() + row_offset(v, v.size, q);
    for (int64_t i = 0; i < inner; ++i) dst[i * is] = 0.f;
  }
}

BoxMat box_mat(Context& ctx, const View& v, const int64_t* lo, const int64_t* size, bool load, bool allow_t) {
  require(v.rank >= 1, "box_mat: a view of rank 0");
  int r = v.rank;
  BoxMat bm;
  bm.cols = size[r - 1];
  bm.rows = 1;
  for (int d = 0; d < r - 1; ++d) bm.rows *= size[d];
  // Do the leading dims collapse into one row dim of uniform stride `rs`?
  bool collapses = true;
  int64_t rs = 0, expect = -1;
  for (int d = r - 2; d >= 0; --d) {
    if (size[d] == 1) continue;
    if (expect < 0)
      rs = v.stride[d];
    else if (v.stride[d] != expect)
      collapses = false;
    expect = v.stride[d] * size[d];
  }
  float* p = v.f32() + corner(v, lo);
  int64_t cs = v.stride[r - 1];
  if (bm.rows * bm.cols > 0 && collapses) {
    if ((bm.cols == 1 || cs == 1) && (bm.rows == 1 || rs >= bm.cols)) {
      bm.m = Mat{p, bm.rows == 1 ? std::max<int64_t>(bm.cols, 1) : rs, false};
      return bm;
    }
    if (allow_t && (bm.rows == 1 || rs == 1) && (bm.cols == 1 || cs >= bm.rows)) {
      bm.m = Mat{p, bm.cols == 1 ? std::max<int64_t>(bm.rows, 1) : cs, true};
      return bm;
    }
  }
  bm.packed = scratch(bm.rows * bm.cols);
  bm.m = Mat{bm.packed.get(), std::max<int64_t>(bm.cols, 1), false};
  if (load) pack_box(ctx, v, lo, size, bm.packed.get());
  return bm;
}

void write_back(Context& ctx, const BoxMat& bm, const View& v, const int64_t* lo, const int64_t* size,
                bool accumulate) {
  if (bm.packed) unpack_box(ctx, bm.packed.get(), v, lo, size, accumulate);
}

}  // namespace ffrt::cpu
