// linear and matmul on cuBLAS: forward and backward on parts, as GEMMs.
//
// linear: y[..., o] = act(x[..., :] . w[o, :] + b[o]); all leading dims of x are rows. A part holds
// whole rows of x and the rows of w for its range of o; its backward-data result is partial over
// that range, its weight gradient partial over its rows. The forward adds the bias and ReLU in
// cuBLASLt's epilogue (not its GELU, a tanh approximation: the backend's GELU is exact), other
// activations in one pass after it.
// matmul: y = op(a) @ op(b) with NumPy broadcasting of the leading dims (a dim of global extent 1
// stretches). The leading indices of y's box run as strided-batched GEMMs, as many at once as the
// operands' strides allow. A gradient whose matrices each get one product is written in place
// (beta = 1 accumulates); one summed over broadcast dims, or whose box differs from what dy's box
// makes, adds the products one by one into a zeroed temporary that is then added to it.
//
// Boxes are read in place when their layout is one cuBLAS reads (unit steps along rows or columns,
// one pitch between them) and packed into dense temporaries otherwise. Without ctx.tf32 the
// GEMMs compute in strict fp32 (CUBLAS_COMPUTE_32F); with it, TF32 tensor cores may be used.
#include <algorithm>
#include <optional>
#include <vector>

#include "dnn.h"

namespace ffrt {

namespace {

using cuda::box_holds;
using cuda::require;
using cuda::Temp;

/// The workspace cuBLASLt may use.
constexpr size_t kLtWorkspace = size_t{32} << 20;

// ---- matrices --------------------------------------------------------------------------------------

/// A matrix operand: element (r, c) at p[r * ld + c], or at p[c * ld + r] when `t` (stored
/// column-major); consecutive matrices of a batch are `step` elements apart.
struct Mat {
  float* p = nullptr;
  int64_t ld = 1;
  bool t = false;
  int64_t step = 0;
};

/// The layout of a rows x cols matrix with row pitch rs and column step cs, if cuBLAS reads it:
/// unit column steps (row-major) or, with allow_t, unit row steps (column-major), and a pitch that
/// does not overlap the rows (columns).
bool layout(int64_t rs, int64_t cs, int64_t rows, int64_t cols, bool allow_t, Mat& m) {
  if ((cols == 1 || cs == 1) && (rows == 1 || rs >= cols)) {
    m.ld = rows == 1 ? std::max<int64_t>(cols, 1) : rs;
    m.t = false;
    return true;
  }
  if (allow_t && (rows == 1 || rs == 1) && (cols == 1 || cs >= rows)) {
    m.ld = cols == 1 ? std::max<int64_t>(rows, 1) : cs;
    m.t = true;
    return true;
  }
  return false;
}

/// The box [lo, lo + size) of v as a matrix, rows its leading dims flattened and columns its last
/// dim, when the leading dims are one pitch apart and layout() allows; false otherwise.
bool mat_of(const View& v, const int64_t* lo, const int64_t* size, bool allow_t, Mat& m) {
  const int r = v.rank;
  int64_t rows = 1, rs = 1, span = -1;
  for (int d = r - 2; d >= 0; --d) {
    rows *= size[d];
    if (size[d] == 1) continue;
    if (span >= 0 && v.stride[d] != span) return false;
    if (span < 0) rs = v.stride[d];
    span = v.stride[d] * size[d];
  }
  if (!layout(rs, v.stride[r - 1], rows, size[r - 1], allow_t, m)) return false;
  m.p = v.f32() + v.offset_of(lo);
  return true;
}

int64_t rows_of(const int64_t* size, int rank) {
  int64_t rows = 1;
  for (int d = 0; d < rank - 1; ++d) rows *= size[d];
  return rows;
}

/// A GEMM input: the box of v as a matrix, in place or packed into a dense temporary kept in
/// `keep`.
Mat input_mat(Context& ctx, const View& v, const int64_t* lo, const int64_t* size, std::vector<Temp>& keep) {
  Mat m;
  if (mat_of(v, lo, size, true, m)) return m;
  keep.emplace_back(ctx, v, lo, size);
  copy_box(ctx, v, keep.back().view, false);
  m.p = keep.back().view.f32();
  m.ld = std::max<int64_t>(size[v.rank - 1], 1);
  return m;
}

/// A GEMM output over v's whole box: row-major in place, or a zero-filled dense temporary that
/// store() copies (or adds) into v.
struct OutMat {
  Mat m;
  std::optional<Temp> tmp;
  OutMat(Context& ctx, const View& v) {
    if (mat_of(v, v.lo, v.size, false, m)) return;
    tmp.emplace(ctx, v, v.lo, v.size);
    m.p = tmp->view.f32();
    m.ld = std::max<int64_t>(v.size[v.rank - 1], 1);
  }
  void store(Context& ctx, const View& v, bool accumulate) const {
    if (tmp) copy_box(ctx, tmp->view, v, accumulate);
  }
};

// ---- GEMM ----------------------------------------------------------------------------------------

cublasComputeType_t compute_type(const Context& ctx) {
  return ctx.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

/// A row-major GEMM C = op(A) op(B) as cuBLAS (column-major) computes it: C^T = op(B)^T op(A)^T, so
/// C' (m x n, column-major) = op1(first) op2(second) with C' = C^T, first = B and second = A. A
/// column-major C is computed as its transpose.
struct ColMajor {
  cublasOperation_t op1, op2;
  int64_t m, n, k;
  Mat first, second, c;
};

ColMajor col_major(int64_t m, int64_t n, int64_t k, Mat a, bool ta, Mat b, bool tb, Mat c) {
  if (c.t) {
    c.t = false;
    return col_major(n, m, k, b, !tb, a, !ta, c);
  }
  // A row-major matrix is, to cuBLAS, its transpose stored column-major.
  return {tb != b.t ? CUBLAS_OP_T : CUBLAS_OP_N, ta != a.t ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, b, a, c};
}

/// C = op(A) op(B) + beta C for `batch` products (m x n, contraction k > 0), each operand's
/// matrices Mat::step elements apart.
void gemm(Context& ctx, int64_t m, int64_t n, int64_t k, Mat a, bool ta, Mat b, bool tb, float beta, Mat c,
          int64_t batch = 1) {
  if (m == 0 || n == 0 || batch == 0) return;
  const ColMajor g = col_major(m, n, k, a, ta, b, tb, c);
  const float one = 1.f;
  if (batch == 1) {
    FFRT_CUBLAS(&ctx, cublasGemmEx_64(ctx.cublas, g.op1, g.op2, g.m, g.n, g.k, &one, g.first.p, CUDA_R_32F,
                                      g.first.ld, g.second.p, CUDA_R_32F, g.second.ld, &beta, g.c.p, CUDA_R_32F,
                                      g.c.ld, compute_type(ctx), CUBLAS_GEMM_DEFAULT));
    return;
  }
  FFRT_CUBLAS(&ctx, cublasGemmStridedBatchedEx_64(ctx.cublas, g.op1, g.op2, g.m, g.n, g.k, &one, g.first.p, CUDA_R_32F,
                                                  g.first.ld, g.first.step, g.second.p, CUDA_R_32F, g.second.ld,
                                                  g.second.step, &beta, g.c.p, CUDA_R_32F, g.c.ld, g.c.step, batch,
                                                  compute_type(ctx), CUBLAS_GEMM_DEFAULT));
}

// ---- cuBLASLt with a bias and ReLU epilogue ----------------------------------------------------------

/// A cuBLASLt matmul for one shape, layout, alignment and epilogue, with the algorithm its
/// heuristic picked (`ok` false: none, use gemm()).
struct LtPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t first = nullptr, second = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
  bool ok = false;
  LtPlan() = default;
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (second) cublasLtMatrixLayoutDestroy(second);
    if (first) cublasLtMatrixLayoutDestroy(first);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

struct LtPreference {
  cublasLtMatmulPreference_t p = nullptr;
  LtPreference() { FFRT_CUBLAS(nullptr, cublasLtMatmulPreferenceCreate(&p)); }
  ~LtPreference() { cublasLtMatmulPreferenceDestroy(p); }
  LtPreference(const LtPreference&) = delete;
  LtPreference& operator=(const LtPreference&) = delete;
  void set(cublasLtMatmulPreferenceAttributes_t attr, uint64_t v) {
    FFRT_CUBLAS(nullptr, cublasLtMatmulPreferenceSetAttribute(p, attr, &v, sizeof(v)));
  }
  void set32(cublasLtMatmulPreferenceAttributes_t attr, uint32_t v) {
    FFRT_CUBLAS(nullptr, cublasLtMatmulPreferenceSetAttribute(p, attr, &v, sizeof(v)));
  }
};

/// C = op(A) op(B) (+ bias per column of the row-major C, then ReLU) through cuBLASLt; false when
/// its heuristic finds no algorithm (nothing ran).
bool lt_gemm(Context& ctx, int64_t m, int64_t n, int64_t k, Mat a, bool ta, Mat b, bool tb, Mat c, const float* bias,
             bool relu) {
  const ColMajor g = col_major(m, n, k, a, ta, b, tb, c);
  // The bias runs along the row-major C's columns: the rows of C' (cuBLASLt's bias vector).
  const cublasLtEpilogue_t epilogue = bias ? (relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS)
                                           : (relu ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_DEFAULT);
  const int al1 = cuda::alignment(g.first.p), al2 = cuda::alignment(g.second.p), alc = cuda::alignment(g.c.p);
  cuda::Key key("lt");
  key << g.op1 << g.op2 << g.m << g.n << g.k << g.first.ld << g.second.ld << g.c.ld << epilogue << (ctx.tf32 ? 1 : 0)
      << al1 << al2 << alc << (bias ? std::min(cuda::alignment(bias), 16) : 0);
  LtPlan& p = cuda::cached<LtPlan>(ctx, key, [&](LtPlan& p) {
    FFRT_CUBLAS(&ctx, cublasLtMatmulDescCreate(&p.op, compute_type(ctx), CUDA_R_32F));
    const int32_t op1 = g.op1, op2 = g.op2;
    const uint32_t epi = epilogue;
    FFRT_CUBLAS(&ctx, cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &op1, sizeof(op1)));
    FFRT_CUBLAS(&ctx, cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &op2, sizeof(op2)));
    FFRT_CUBLAS(&ctx, cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (bias)
      FFRT_CUBLAS(&ctx, cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    const bool n1 = g.op1 == CUBLAS_OP_N, n2 = g.op2 == CUBLAS_OP_N;
    FFRT_CUBLAS(&ctx, cublasLtMatrixLayoutCreate(&p.first, CUDA_R_32F, static_cast<uint64_t>(n1 ? g.m : g.k),
                                                 static_cast<uint64_t>(n1 ? g.k : g.m), g.first.ld));
    FFRT_CUBLAS(&ctx, cublasLtMatrixLayoutCreate(&p.second, CUDA_R_32F, static_cast<uint64_t>(n2 ? g.k : g.n),
                                                 static_cast<uint64_t>(n2 ? g.n : g.k), g.second.ld));
    FFRT_CUBLAS(&ctx, cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, static_cast<uint64_t>(g.m),
                                                 static_cast<uint64_t>(g.n), g.c.ld));
    LtPreference pref;
    pref.set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, kLtWorkspace);
    pref.set32(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, static_cast<uint32_t>(al1));
    pref.set32(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, static_cast<uint32_t>(al2));
    pref.set32(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, static_cast<uint32_t>(alc));
    pref.set32(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, static_cast<uint32_t>(alc));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(ctx.lt, p.op, p.first, p.second, p.c, p.c, pref.p, 1, &result, &found);
    p.ok = st == CUBLAS_STATUS_SUCCESS && found > 0;
    p.algo = result.algo;
    p.workspace = result.workspaceSize;
  });
  if (!p.ok) return false;
  if (bias)
    FFRT_CUBLAS(&ctx, cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  void* ws = p.workspace ? ctx.workspace(p.workspace) : nullptr;
  const float one = 1.f, zero = 0.f;
  FFRT_CUBLAS(&ctx, cublasLtMatmul(ctx.lt, p.op, &one, g.first.p, p.first, g.second.p, p.second, &zero, g.c.p, p.c,
                                   g.c.p, p.c, &p.algo, ws, p.workspace, ctx.stream));
  return true;
}

// ---- column sums (the bias gradient) -------------------------------------------------------------

/// partial[chunk * cols + c] = the sum in double of column c of the rows x cols matrix m over the
/// rows of chunk blockIdx.y (`per_chunk` rows each). Blocks of 32 columns x 8 row lanes.
__global__ void column_partials(Mat m, int64_t rows, int64_t cols, int64_t per_chunk, double* partial) {
  __shared__ double lanes[8][33];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * per_chunk, r1 = min(rows, r0 + per_chunk);
  double s = 0.0;
  if (c < cols) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) s += m.t ? m.p[c * m.ld + r] : m.p[r * m.ld + c];
  }
  lanes[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    double t = 0.0;
    for (int k = 0; k < 8; ++k) t += lanes[k][threadIdx.x];
    partial[blockIdx.y * cols + c] = t;
  }
}

/// out[c * os] (=, or += with accumulate) the sum over chunks of partial[chunk * n + c], rounded
/// to float.
__global__ void finish_sums(const double* partial, int64_t chunks, int64_t n, float* out, int64_t os,
                            bool accumulate) {
  FFRT_GRID_LOOP(c, n) {
    double s = 0.0;
    for (int64_t k = 0; k < chunks; ++k) s += partial[k * n + c];
    const float v = static_cast<float>(s);
    out[c * os] = accumulate ? out[c * os] + v : v;
  }
}

/// out (=, or +=) the column sums of a rows x cols matrix (rows > 0), summed in double.
void column_sums(Context& ctx, const Mat& m, int64_t rows, int64_t cols, const View& out, bool accumulate) {
  const int64_t col_blocks = (cols + 31) / 32;
  const int64_t want = std::clamp<int64_t>((rows + 255) / 256, 1, std::max<int64_t>(1, 2048 / col_blocks));
  const int64_t per_chunk = (rows + want - 1) / want, chunks = (rows + per_chunk - 1) / per_chunk;
  auto partial = allocate(ctx, static_cast<size_t>(chunks * cols) * sizeof(double));
  double* part = reinterpret_cast<double*>(partial.get());
  column_partials<<<dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(chunks)), dim3(32, 8), 0,
                    ctx.stream>>>(m, rows, cols, per_chunk, part);
  FFRT_LAUNCHED(&ctx);
  finish_sums<<<cuda::blocks_for(cols), cuda::kThreads, 0, ctx.stream>>>(part, chunks, cols, out.f32(),
                                                                          out.stride[0], accumulate);
  FFRT_LAUNCHED(&ctx);
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
  const int64_t rows = rows_of(y.size, r);
  OutMat Y(ctx, y);
  const float* bias = b ? b->f32() + (o0 - b->lo[0]) * b->stride[0] : nullptr;
  const int64_t bias_step = b ? b->stride[0] : 0;
  // cuBLASLt adds a unit-step bias and applies ReLU after it; what it does not, one pass does.
  const bool lt_bias = bias && (bias_step == 1 || no == 1);
  bool lt_done = false;
  if (K == 0) {
    if (!Y.tmp) fill(ctx, y, 0.f);
  } else {
    std::vector<Temp> keep;
    const Mat X = input_mat(ctx, x, xlo, xsize, keep);
    const Mat W = input_mat(ctx, w, wlo, wsize, keep);
    if ((!bias || lt_bias) && (bias || act == Act::relu))
      lt_done = lt_gemm(ctx, rows, no, K, X, false, W, true, Y.m, bias, act == Act::relu);
    if (!lt_done) gemm(ctx, rows, no, K, X, false, W, true, 0.f, Y.m);
  }
  cuda::bias_act(ctx, lt_done && act == Act::relu ? Act::none : act, {Y.m.p, {1, 1, rows, no}, {0, 0, Y.m.ld, 1}},
                 lt_done ? nullptr : bias, bias_step, 3);
  Y.store(ctx, y, false);
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
    if (!accumulate) fill(ctx, dx, 0.f);
    return;
  }
  std::vector<Temp> keep;
  const Mat DY = input_mat(ctx, dy, ylo, ysize, keep);
  const Mat W = input_mat(ctx, w, wlo, wsize, keep);
  const OutMat DX(ctx, dx);
  gemm(ctx, rows_of(dx.size, r), dx.size[r - 1], no, DY, false, W, false, accumulate && !DX.tmp ? 1.f : 0.f, DX.m);
  DX.store(ctx, dx, accumulate);
}

void linear_backward_weight(Context& ctx, const View& x, const View& dy, const View& dw, const View* db,
                            bool accumulate) {
  check_linear("linear_backward_weight: x, dy (rank >= 2, equal) and dw (rank 2) must be f32 views", x, dw, dy);
  const int r = dy.rank;
  int64_t ylo[kMaxRank], ysize[kMaxRank], xlo[kMaxRank], xsize[kMaxRank];
  for (int d = 0; d < r; ++d) ylo[d] = xlo[d] = dy.lo[d], ysize[d] = xsize[d] = dy.size[d];
  const int64_t rows = rows_of(dy.size, r);
  std::vector<Temp> keep;
  if (db) {
    require(db->rank == 1 && db->dtype == DType::f32 && db->full[0] == dy.full[r - 1],
            "linear_backward_weight: bad bias gradient view");
    require(db->size[0] == 0 || (db->lo[0] >= dy.lo[r - 1] && db->hi(0) <= dy.hi(r - 1)),
            "linear_backward_weight: dy does not hold db's range of outputs");
    if (db->size[0] > 0) {
      if (rows == 0) {
        if (!accumulate) fill(ctx, *db, 0.f);
      } else {
        ylo[r - 1] = db->lo[0], ysize[r - 1] = db->size[0];
        column_sums(ctx, input_mat(ctx, dy, ylo, ysize, keep), rows, db->size[0], *db, accumulate);
      }
    }
  }
  require(dw.size[0] == 0 || (dw.lo[0] >= dy.lo[r - 1] && dw.hi(0) <= dy.hi(r - 1)),
          "linear_backward_weight: dy does not hold dw's range of outputs");
  ylo[r - 1] = dw.lo[0], ysize[r - 1] = dw.size[0];
  xlo[r - 1] = dw.lo[1], xsize[r - 1] = dw.size[1];
  require(box_holds(x, xlo, xsize), "linear_backward_weight: x does not hold dy's rows x dw's inputs");
  if (dw.volume() == 0) return;
  if (rows == 0) {
    if (!accumulate) fill(ctx, dw, 0.f);
    return;
  }
  const Mat DY = input_mat(ctx, dy, ylo, ysize, keep);
  const Mat X = input_mat(ctx, x, xlo, xsize, keep);
  const OutMat DW(ctx, dw);
  // dW [o x k] (+)= dY^T [o x rows] @ X [rows x k]
  gemm(ctx, dw.size[0], dw.size[1], rows, DY, true, X, false, accumulate && !DW.tmp ? 1.f : 0.f, DW.m);
  DW.store(ctx, dw, accumulate);
}

// ---- matmul ------------------------------------------------------------------------------------

namespace {

/// The shapes of a matmul: y [..., M, N] = op(a) [..., M, K] @ op(b) [..., K, N], where a is stored
/// [..., K, M] when transposed and b [..., N, K].
struct MatmulShape {
  int R, ra, rb;
  int64_t M, N, K;
  bool ta, tb;
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

int64_t batches_of(const View& y, int R) {
  int64_t n = 1;
  for (int d = 0; d < R - 2; ++d) n *= y.size[d];
  return n;
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

/// Whether distinct leading indices of y's box map to distinct matrices of the operand v (no
/// broadcasting within the box).
bool distinct_batches(const MatmulShape& s, const View& v, const View& y) {
  for (int i = 0; i < s.R - 2; ++i) {
    const int iv = i - (s.R - v.rank);
    if (y.size[i] > 1 && (iv < 0 || v.full[iv] == 1)) return false;
  }
  return true;
}

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

/// One operand of the GEMMs over y's leading indices: a view (the operand itself, or a dense copy
/// of the box the GEMMs need) and the corner and extents of its matrices' stored box; `m` is its
/// matrix layout (pointer and step set per run of batches).
struct Operand {
  View v;
  int64_t r0, nr, c0, nc;
  Mat m;
  std::optional<Temp> tmp;

  /// An input operand: in place when cuBLAS reads its matrices' layout, else packed (the box the
  /// GEMMs over y's box need). An output operand (`out`) must be in place: false when it is not.
  bool set(Context& ctx, const View& view, const View& y, int64_t r0_, int64_t nr_, int64_t c0_, int64_t nc_,
           bool out) {
    v = view, r0 = r0_, nr = nr_, c0 = c0_, nc = nc_;
    const int r = v.rank;
    if (layout(v.stride[r - 2], v.stride[r - 1], nr, nc, true, m)) return true;
    if (out) return false;
    int64_t lo[kMaxRank], size[kMaxRank];
    needed_box(v, y, r0, nr, c0, nc, lo, size);
    tmp.emplace(ctx, v, lo, size);
    copy_box(ctx, v, tmp->view, false);
    v = tmp->view;
    return layout(v.stride[r - 2], v.stride[r - 1], nr, nc, true, m);
  }
  /// Element stride between the matrices of consecutive indices along y's leading dim i.
  int64_t step(int R, int i) const {
    const int iv = i - (R - v.rank);
    return iv < 0 || v.full[iv] == 1 ? 0 : v.stride[iv];
  }
  /// The matrix at y's leading coordinates `yc`.
  Mat at(int R, const int64_t* yc) const {
    const int r = v.rank;
    int64_t off = (r0 - v.lo[r - 2]) * v.stride[r - 2] + (c0 - v.lo[r - 1]) * v.stride[r - 1];
    for (int d = 0; d < r - 2; ++d) off += ((v.full[d] == 1 ? 0 : yc[d + (R - r)]) - v.lo[d]) * v.stride[d];
    Mat out = m;
    out.p = v.f32() + off;
    return out;
  }
};

/// Calls f(count, a, b, c) for runs of the leading indices of y's box (rank R): count the run's
/// length, and the three operands' matrices at its first index with their steps along it. A run is
/// as many innermost leading dims as are one stride apart in every operand, so that it is one
/// strided-batched GEMM.
template <class F>
void for_runs(const View& y, int R, const Operand& a, const Operand& b, const Operand& c, F&& f) {
  const int L = R - 2;
  const Operand* ops[3] = {&a, &b, &c};
  int split = L, prev = -1;
  for (int d = L - 1; d >= 0; --d) {
    if (y.size[d] != 1) {
      bool joins = true;
      for (const Operand* o : ops) joins = joins && (prev < 0 || o->step(R, d) == o->step(R, prev) * y.size[prev]);
      if (!joins) break;
      prev = d;
    }
    split = d;
  }
  int64_t count = 1, steps[3] = {0, 0, 0};
  for (int d = split; d < L; ++d) count *= y.size[d];
  // The innermost dim of the run with more than one index sets the steps.
  for (int d = L - 1; d >= split; --d) {
    if (y.size[d] == 1) continue;
    for (int j = 0; j < 3; ++j) steps[j] = ops[j]->step(R, d);
    break;
  }
  int64_t outer = 1;
  for (int d = 0; d < split; ++d) outer *= y.size[d];
  int64_t yc[kMaxRank] = {};
  for (int64_t q = 0; q < outer; ++q) {
    int64_t rem = q;
    for (int d = L - 1; d >= 0; --d) {
      if (d >= split) {
        yc[d] = y.lo[d];
        continue;
      }
      yc[d] = y.lo[d] + rem % y.size[d];
      rem /= y.size[d];
    }
    Mat ma = a.at(R, yc), mb = b.at(R, yc), mc = c.at(R, yc);
    ma.step = steps[0], mb.step = steps[1], mc.step = steps[2];
    f(count, ma, mb, mc);
  }
}

/// The gradient dv of one operand: per leading index of dy's box, the product P = op(lhs) op(rhs)
/// (rows x cols, contraction k) goes to dv's matrix there, into its stored box [r0, r0 + nr) x
/// [c0, c0 + nc) (P transposed when `t`, the operand's transpose flag). With `direct` every matrix
/// of dv's box gets one product covering it, written in place (beta = 1 accumulates); otherwise
/// the products are added one by one into a zeroed temporary over dv's box, summing those that
/// share a matrix (broadcasting), and the temporary is stored (or added) into dv.
void grad_products(Context& ctx, int R, const View& dy, const View& dv, const Operand& lhs, bool lhs_t,
                   const Operand& rhs, bool rhs_t, int64_t rows, int64_t cols, int64_t k, int64_t r0, int64_t nr,
                   int64_t c0, int64_t nc, bool t, bool direct, bool accumulate) {
  Operand C;
  if (direct && C.set(ctx, dv, dy, r0, nr, c0, nc, true)) {
    for_runs(dy, R, lhs, rhs, C, [&](int64_t count, Mat ml, Mat mr, Mat mc) {
      mc.t = mc.t != t;
      gemm(ctx, rows, cols, k, ml, lhs_t, mr, rhs_t, accumulate ? 1.f : 0.f, mc, count);
    });
    return;
  }
  const Temp tmp(ctx, dv, dv.lo, dv.size);
  C.set(ctx, tmp.view, dy, r0, nr, c0, nc, true);
  const int64_t batches = batches_of(dy, R);
  for (int64_t q = 0; q < batches; ++q) {
    int64_t yidx[kMaxRank], clo[kMaxRank], csz[kMaxRank];
    leading_index(dy, R, q, yidx);
    operand_box(dv, R, yidx, r0, nr, c0, nc, clo, csz);
    if (!leading_in(dv, clo)) continue;
    Mat mc = C.at(R, yidx);
    mc.t = mc.t != t;
    gemm(ctx, rows, cols, k, lhs.at(R, yidx), lhs_t, rhs.at(R, yidx), rhs_t, 1.f, mc);
  }
  copy_box(ctx, tmp.view, dv, accumulate);
}

/// Checks that v holds its stored box [r0, r0 + nr) x [c0, c0 + nc) for every leading index of dy's
/// box whose matrix of dv (stored box [dr0, ..) x [dc0, ..)) lies in dv's box.
void check_operand(const View& dy, const View& dv, int64_t dr0, int64_t dc0, const View& v, int64_t r0, int64_t nr,
                   int64_t c0, int64_t nc, const char* what) {
  const int R = dy.rank;
  const int64_t batches = batches_of(dy, R);
  for (int64_t q = 0; q < batches; ++q) {
    int64_t yidx[kMaxRank], lo[kMaxRank], size[kMaxRank];
    leading_index(dy, R, q, yidx);
    operand_box(dv, R, yidx, dr0, 1, dc0, 1, lo, size);
    if (!leading_in(dv, lo)) continue;
    operand_box(v, R, yidx, r0, nr, c0, nc, lo, size);
    require(box_holds(v, lo, size), what);
  }
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
  if (s.K == 0) {
    fill(ctx, y, 0.f);
    return;
  }
  Operand A, B, Y;
  A.set(ctx, a, y, s.ta ? 0 : m0, s.ta ? s.K : nm, s.ta ? m0 : 0, s.ta ? nm : s.K, false);
  B.set(ctx, b, y, s.tb ? n0 : 0, s.tb ? nn : s.K, s.tb ? 0 : n0, s.tb ? s.K : nn, false);
  std::optional<Temp> out;
  if (!Y.set(ctx, y, y, m0, nm, n0, nn, true)) {
    out.emplace(ctx, y, y.lo, y.size);
    Y.set(ctx, out->view, y, m0, nm, n0, nn, true);
  }
  for_runs(y, R, A, B, Y, [&](int64_t count, Mat ma, Mat mb, Mat mc) {
    gemm(ctx, nm, nn, s.K, ma, s.ta, mb, s.tb, 0.f, mc, count);
  });
  if (out) copy_box(ctx, out->view, y, false);
}

void matmul_backward(Context& ctx, const MatmulAttrs& m, const View& a, const View& b, const View& dy, const View* da,
                     const View* db, bool accumulate) {
  const MatmulShape s = matmul_shape(m, a, b, dy);
  const int R = s.R;
  const int64_t m0 = dy.lo[R - 2], nm = dy.size[R - 2], n0 = dy.lo[R - 1], nn = dy.size[R - 1];

  if (da) {
    require(da->rank == s.ra && da->dtype == DType::f32, "matmul_backward: da must be an f32 view like a");
    for (int d = 0; d < s.ra; ++d) require(da->full[d] == a.full[d], "matmul_backward: da's extents are not a's");
    // da's ranges of m and k, in op(a)'s terms, and its stored box.
    const int rm = s.ta ? s.ra - 1 : s.ra - 2, rk = s.ta ? s.ra - 2 : s.ra - 1;
    const int64_t am0 = std::max(m0, da->lo[rm]), am1 = std::min(m0 + nm, da->hi(rm));
    const int64_t k0 = da->lo[rk], nk = da->size[rk];
    if (am1 > am0 && nk > 0 && nn > 0) {
      const int64_t r0 = s.ta ? k0 : am0, nr = s.ta ? nk : am1 - am0, c0 = s.ta ? am0 : k0, nc = s.ta ? am1 - am0 : nk;
      const int64_t br0 = s.tb ? n0 : k0, bnr = s.tb ? nn : nk, bc0 = s.tb ? k0 : n0, bnc = s.tb ? nk : nn;
      check_operand(dy, *da, r0, c0, b, br0, bnr, bc0, bnc, "matmul_backward: b does not hold what da's box needs");
      Operand DY, B;
      DY.set(ctx, dy, dy, am0, am1 - am0, n0, nn, false);
      B.set(ctx, b, dy, br0, bnr, bc0, bnc, false);
      // dOpA [m x k] (+)= dY [m x n] @ op(b)^T [n x k]
      grad_products(ctx, R, dy, *da, DY, false, B, !s.tb, am1 - am0, nk, nn, r0, nr, c0, nc, s.ta,
                    direct_target(s, a, *da, dy, rm, am0, am1), accumulate);
    } else if (!accumulate && da->volume() > 0) {
      fill(ctx, *da, 0.f);
    }
  }

  if (db) {
    require(db->rank == s.rb && db->dtype == DType::f32, "matmul_backward: db must be an f32 view like b");
    for (int d = 0; d < s.rb; ++d) require(db->full[d] == b.full[d], "matmul_backward: db's extents are not b's");
    const int rn = s.tb ? s.rb - 2 : s.rb - 1, rk = s.tb ? s.rb - 1 : s.rb - 2;
    const int64_t bn0 = std::max(n0, db->lo[rn]), bn1 = std::min(n0 + nn, db->hi(rn));
    const int64_t k0 = db->lo[rk], nk = db->size[rk];
    if (bn1 > bn0 && nk > 0 && nm > 0) {
      const int64_t r0 = s.tb ? bn0 : k0, nr = s.tb ? bn1 - bn0 : nk, c0 = s.tb ? k0 : bn0, nc = s.tb ? nk : bn1 - bn0;
      const int64_t ar0 = s.ta ? k0 : m0, anr = s.ta ? nk : nm, ac0 = s.ta ? m0 : k0, anc = s.ta ? nm : nk;
      check_operand(dy, *db, r0, c0, a, ar0, anr, ac0, anc, "matmul_backward: a does not hold what db's box needs");
      Operand A, DY;
      A.set(ctx, a, dy, ar0, anr, ac0, anc, false);
      DY.set(ctx, dy, dy, m0, nm, bn0, bn1 - bn0, false);
      // dOpB [k x n] (+)= op(a)^T [k x m] @ dY [m x n]
      grad_products(ctx, R, dy, *db, A, !s.ta, DY, false, nk, bn1 - bn0, nm, r0, nr, c0, nc, s.tb,
                    direct_target(s, b, *db, dy, rn, bn0, bn1), accumulate);
    } else if (!accumulate && db->volume() > 0) {
      fill(ctx, *db, 0.f);
    }
  }
}

}  // namespace ffrt
