// GEMM for the cpu kernels, and the glue around it.
//
// gemm() calls OpenBLAS's cblas_sgemm single-threaded from each of ctx.threads OpenMP threads, on
// tiles of C (or on shares of a long contraction), so BLAS and the kernels' own OpenMP loops share
// one pool of threads instead of two spinning against each other. box_mat() turns a box of a View
// into a matrix operand, borrowing the view's memory when its layout is one BLAS can read (one unit
// stride, the other a row pitch) and packing the box into scratch memory otherwise.
#pragma once

#include <cstdint>
#include <memory>

#include "loops.h"

namespace ffrt::cpu {

/// Uninitialized scratch memory of `n` floats.
inline std::unique_ptr<float[]> scratch(int64_t n) {
  return std::make_unique_for_overwrite<float[]>(static_cast<size_t>(n > 0 ? n : 1));
}

/// A matrix in memory: element (r, c) is p[r * ld + c], or p[c * ld + r] when `t` (stored
/// column-major, i.e. what is stored row-major is its transpose).
struct Mat {
  float* p = nullptr;
  int64_t ld = 1;
  bool t = false;
};

/// C = alpha * op(A) op(B) + beta * C with op(A) m x k, op(B) k x n, C m x n; op(X) is X^T when the
/// corresponding flag is set. Any of A, B, C may be stored transposed (Mat::t). With k == 0, C is
/// scaled by beta (zeroed when beta is 0). Large products are split over ctx.threads OpenMP
/// threads, each calling single-threaded OpenBLAS; inside a parallel region it runs on the caller.
void gemm(Context& ctx, int64_t m, int64_t n, int64_t k, float alpha, Mat a, bool trans_a, Mat b, bool trans_b,
          float beta, Mat c);

/// Copies the box [lo, lo + size) (global coordinates, inside v's box) of v, row-major and dense,
/// into `out`.
void pack_box(Context& ctx, const View& v, const int64_t* lo, const int64_t* size, float* out);
/// Stores the dense row-major `in` into the box [lo, lo + size) of v (adds with `accumulate`).
void unpack_box(Context& ctx, const float* in, const View& v, const int64_t* lo, const int64_t* size, bool accumulate);
/// Zeroes the whole box of v.
void zero_box(Context& ctx, const View& v);

/// A box of a view as a matrix operand: rows are the box's leading dims (flattened row-major),
/// columns its last dim. `m` borrows the view's memory when the layout allows; otherwise `m` points
/// at `packed`, a dense copy (`load`) or uninitialized memory to be stored back with write_back().
struct BoxMat {
  Mat m;
  int64_t rows = 0, cols = 0;
  std::unique_ptr<float[]> packed;  ///< null when borrowed
};
/// The box [lo, lo + size) of v (inside v's box) as a rows x cols matrix. With `allow_t`, a layout
/// whose rows are unit-stride is borrowed as a transposed matrix (fine for inputs of gemm()).
BoxMat box_mat(Context& ctx, const View& v, const int64_t* lo, const int64_t* size, bool load, bool allow_t);
/// Writes a packed BoxMat back to its box (a no-op for a borrowed one, which was written in place).
void write_back(Context& ctx, const BoxMat& bm, const View& v, const int64_t* lo, const int64_t* size, bool accumulate);

}  // namespace ffrt::cpu
