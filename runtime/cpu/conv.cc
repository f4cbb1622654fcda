// conv2d on the cpu: forward (with bias and a fused activation), backward-data and
// backward-weight, each on parts.
//
// Every call works on the boxes its views hold, in global coordinates (see kernels.h): the output
// box is computed exactly, padding is implicit wherever a window leaves the global tensor, and a
// backward call adds up only the contribution of dy's box. The general path lowers each group to
// GEMM over an im2col matrix, built for a chunk of output rows at a time: a chunk of whole images
// sized to stay in cache, the chunks spread over the threads (each single-threaded; the weight
// gradient summed per thread, then in thread order), or, when one image is too big, parts of an
// image one after the other, each parallel inside. A dense image plane is used in place as a GEMM
// operand, and stride-1 "same" convolutions move the im2col matrix as flat runs. Convolutions with
// one input channel per group and few outputs per group (depthwise) take a direct path instead,
// which needs no GEMM and no column buffer.
#include <algorithm>
#include <vector>

#include "gemm.h"

namespace ffrt {

namespace {

using cpu::require;
using cpu::Span;

/// The matrices of one chunk (im2col and the GEMM's other operand) hold at most about this many
/// floats, a core's share of L2 cache (unless one output row alone needs more): chunks are built
/// and multiplied while in cache.
constexpr int64_t kColBudget = int64_t{1} << 17;
/// A chunk of whole images covers at least this many output columns when the budget allows (the
/// GEMMs get too small below).
constexpr int64_t kMinChunkColumns = 256;

/// Convolutions with one input channel per group take a direct path when their groups have fewer
/// output channels than this; with more, the im2col matrix (shared by a group's outputs) and GEMM
/// are faster, e.g. for a first layer over one grayscale channel.
constexpr int64_t kGemmMinMultiplier = 8;

/// Floor division for a possibly negative numerator (d > 0).
int64_t floor_div(int64_t a, int64_t d) { return a >= 0 ? a / d : -((-a + d - 1) / d); }


/// One spatial dim of the window: kernel extent, stride, padding, dilation.
struct Win {
  int64_t k, s, p, d;
};

/// The outputs o in [o0, o1) whose tap at offset `off` (= i * dilation - padding) lands in [lo, hi),
/// i.e. with o * s + off in [lo, hi); a contiguous range, possibly empty.
Span outputs_hitting(int64_t o0, int64_t o1, int64_t s, int64_t off, int64_t lo, int64_t hi) {
  int64_t a = std::clamp(floor_div(lo - off + s - 1, s), o0, o1);
  int64_t b = std::clamp(floor_div(hi - 1 - off, s) + 1, a, o1);
  return {a, b};
}

/// The input range that outputs [o0, o1) read through taps [i0, i1), clamped to [0, in).
Span inputs_read(Span o, Span i, int64_t in, Win w) {
  if (o.size() == 0 || i.size() == 0) return {0, 0};
  int64_t lo = o.lo * w.s - w.p + i.lo * w.d, hi = (o.hi - 1) * w.s - w.p + (i.hi - 1) * w.d + 1;
  return {std::clamp<int64_t>(lo, 0, in), std::clamp<int64_t>(hi, 0, in)};
}

/// Whether v's box contains the box [lo, hi) (an empty box is contained anywhere).
bool holds(const View& v, std::initializer_list<Span> box) {
  int64_t lo[kMaxRank], size[kMaxRank];
  int d = 0;
  for (const Span& s : box) lo[d] = s.lo, size[d++] = s.size();
  return d == v.rank && cpu::box_holds(v, lo, size);
}

Span dim_span(const View& v, int d) { return {v.lo[d], v.hi(d)}; }
Span intersect(Span a, Span b) {
  const int64_t lo = std::max(a.lo, b.lo);
  return {lo, std::max(lo, std::min(a.hi, b.hi))};
}

/// The global shape of a convolution, checked against its attributes.
struct Geom {
  int64_t N, C, H, W, O, OH, OW, G, Cg, Og;
  Win wh, ww;
};

int64_t conv_out(int64_t in, Win w) {
  int64_t span = in + 2 * w.p - w.d * (w.k - 1) - 1;
  return span < 0 ? 0 : span / w.s + 1;
}

void check_view(const View& v, int rank, const char* what) { require(v.rank == rank && v.dtype == DType::f32, what); }

Geom geometry(const Conv2dAttrs& a, const int64_t* xfull, const int64_t* yfull, const int64_t* wfull) {
  Geom g;
  g.N = xfull[0], g.C = xfull[1], g.H = xfull[2], g.W = xfull[3];
  g.O = yfull[1], g.OH = yfull[2], g.OW = yfull[3];
  g.G = a.groups;
  g.wh = {a.kernel[0], a.stride[0], a.padding[0], a.dilation[0]};
  g.ww = {a.kernel[1], a.stride[1], a.padding[1], a.dilation[1]};
  for (const Win& w : {g.wh, g.ww})
    require(w.k >= 1 && w.s >= 1 && w.p >= 0 && w.d >= 1, "conv2d: invalid kernel, stride, padding or dilation");
  require(g.G >= 1 && g.C % g.G == 0 && g.O % g.G == 0, "conv2d: channels are not divisible by groups");
  g.Cg = g.C / g.G, g.Og = g.O / g.G;
  require(yfull[0] == g.N, "conv2d: input and output batch extents differ");
  require(g.OH == conv_out(g.H, g.wh) && g.OW == conv_out(g.W, g.ww),
          "conv2d: output extents do not match the input extents and attributes");
  require(wfull[0] == g.O && wfull[1] == g.Cg && wfull[2] == g.wh.k && wfull[3] == g.ww.k,
          "conv2d: weight extents are not [O, C/groups, kh, kw]");
  return g;
}

/// The output positions a chunk of the im2col matrix covers: (n, oh) rows q = (n - n0) * noh +
/// (oh - oh0), each with the output columns [ow0, ow0 + now).
struct Grid {
  int64_t n0, oh0, noh, ow0, now;
  int64_t n_of(int64_t q) const { return n0 + q / noh; }
  int64_t oh_of(int64_t q) const { return oh0 + q % noh; }
};

/// The rows of the im2col matrix: input channels [c0, c0 + nc) x kernel rows [i0, i0 + ni) x
/// kernel columns [j0, j0 + nj), row-major.
struct Taps {
  int64_t c0, nc, i0, ni, j0, nj;
  int64_t rows() const { return nc * ni * nj; }
};

/// How many (n, oh) rows one chunk takes, for matrices of `rows` rows per output column: whole
/// images (so that chunks touch disjoint images), as few as give kMinChunkColumns columns, as many
/// as the budget allows; part of one image when one image alone exceeds the budget (but never
/// fewer than kMinChunkColumns columns, for the GEMM's sake).
int64_t chunk_rows(int64_t rows, const Grid& grid, int64_t total) {
  const int64_t now = std::max<int64_t>(1, grid.now), min_rows = (kMinChunkColumns + now - 1) / now;
  const int64_t fit = std::max(kColBudget / std::max<int64_t>(1, rows * now), min_rows);
  if (fit < grid.noh) return std::min(fit, std::max<int64_t>(total, 1));
  const int64_t image_cols = std::max<int64_t>(1, grid.noh * now);
  const int64_t images = std::clamp<int64_t>((kMinChunkColumns + image_cols - 1) / image_cols, 1, fit / grid.noh);
  return std::clamp<int64_t>(images * grid.noh, 1, std::max<int64_t>(total, 1));
}

/// Runs body(inner, group) for the groups [g_lo, g_hi). With enough groups to occupy the threads,
/// the groups run in parallel, each body on one thread (`inner` a one-thread context); otherwise
/// one after the other, each body given ctx to parallelize inside. `work` estimates the total work.
template <class F>
void for_groups(Context& ctx, int64_t g_lo, int64_t g_hi, int64_t work, F&& body) {
  const int64_t n = g_hi - g_lo;
  if (ctx.threads > 1 && n > 1 && 2 * n >= ctx.threads && work >= cpu::kMinParallelWork) {
#pragma omp parallel num_threads(ctx.threads)
    {
      Context one;
      one.threads = 1;
#pragma omp for schedule(dynamic)
      for (int64_t gr = g_lo; gr < g_hi; ++gr) body(one, gr);
    }
  } else {
    for (int64_t gr = g_lo; gr < g_hi; ++gr) body(ctx, gr);
  }
}

/// The chunks of `total` (n, oh) rows, `step` rows each, and how they run: on `threads` threads
/// at once, each thread a contiguous run of chunks in order on its own (one-thread inner context),
/// when they may run concurrently (`independent`) and the work earns more than one thread;
/// otherwise one after the other on the calling thread, each parallel inside.
struct Chunks {
  int64_t total, step, count;
  int threads;
  Chunks(const Context& ctx, int64_t total_, int64_t step_, bool independent, int64_t work)
      : total(total_), step(step_), count((total_ + step_ - 1) / step_) {
    threads = independent && count > 1 ? cpu::threads_for(ctx, work, count) : 1;
  }
  /// Calls body(inner, t, q0, nq) for every chunk [q0, q0 + nq), t the thread in [0, threads).
  template <class F>
  void run(Context& ctx, F&& body) const {
    if (threads <= 1) {
      for (int64_t c = 0; c < count; ++c) body(ctx, 0, c * step, std::min(step, total - c * step));
      return;
    }
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      Context one;
      one.threads = 1;
      for (int64_t c = count * t / nt; c < count * (t + 1) / nt; ++c)
        body(one, t, c * step, std::min(step, total - c * step));
    }
  }
};

/// Per-thread scratch buffers of a chunked loop, allocated on first use.
struct Scratch {
  std::unique_ptr<float[]> a, b;
};

/// For each kernel column j, the outputs of [o0, o1) whose tap j lands in the input columns
/// [lo, hi).
std::vector<Span> column_taps(const Geom& g, int64_t o0, int64_t o1, int64_t lo, int64_t hi) {
  std::vector<Span> ok(static_cast<size_t>(g.ww.k));
  for (int64_t j = 0; j < g.ww.k; ++j)
    ok[static_cast<size_t>(j)] = outputs_hitting(o0, o1, g.ww.s, j * g.ww.d - g.ww.p, lo, hi);
  return ok;
}

/// Whether the chunk [q0, q0 + nq) moves between v (x, or dx) and the im2col matrix as flat runs,
/// image by image: unit strides (stride-1 windows), whole images, and v's box exactly the grid's
/// output columns in rows of that pitch (a "same" convolution over whole rows). A tap's block of
/// one image is then a single run of v's plane, shifted by the tap's offset, except for the
/// columns and rows that fall in the padding.
bool flat_chunk(const Geom& g, const View& v, const Grid& grid, int64_t q0, int64_t nq) {
  return g.wh.s == 1 && g.ww.s == 1 && v.stride[3] == 1 && v.stride[2] == grid.now && v.size[3] == grid.now &&
         v.lo[3] == grid.ow0 && grid.oh_of(q0) == grid.oh0 && nq % grid.noh == 0;
}

/// The flat run of one tap (input offsets di, dj) over an image block of the grid: the output
/// rows [a, b) (of the block, 0-based) whose input row oh + di lies in [rlo, rhi), the columns
/// `ok` (global) whose input column lies in v's range, and the run [start, end) in the block.
struct FlatRun {
  int64_t a, b, head, tail, start, end;
  FlatRun(const Grid& grid, int64_t di, int64_t rlo, int64_t rhi, Span ok) {
    a = std::clamp(rlo - di - grid.oh0, int64_t{0}, grid.noh);
    b = std::clamp(rhi - di - grid.oh0, a, grid.noh);
    head = ok.lo - grid.ow0, tail = ok.hi - grid.ow0;
    const bool any = a < b && ok.size() > 0;
    start = any ? a * grid.now + head : 0;
    end = any ? (b - 1) * grid.now + tail : 0;
  }
  /// Zeroes the columns outside `ok` of the rows [a, b) of a block (where the run wraps around).
  void zero_margins(float* block, int64_t now) const {
    // Column by column: a margin is a column or two (the padding), a strided loop (not a memset
    // call per row).
    for (int64_t k = 0; k < head; ++k)
      for (int64_t r = a; r < b; ++r) block[r * now + k] = 0.f;
    for (int64_t k = tail; k < now; ++k)
      for (int64_t r = a; r < b; ++r) block[r * now + k] = 0.f;
  }
};

/// im2col for a flat_chunk: per tap row and image, one copy of the run, zeros around it.
void im2col_flat(const Context& ctx, const Geom& g, const View& x, const Taps& t, const Grid& grid, int64_t q0,
                 int64_t nq, float* col) {
  const int64_t rows = t.rows(), cols = nq * grid.now, block = grid.noh * grid.now, images = nq / grid.noh;
  const int64_t n_first = grid.n_of(q0);
  const std::vector<Span> oks = column_taps(g, grid.ow0, grid.ow0 + grid.now, 0, g.W);
  const int threads = cpu::threads_for(ctx, rows * cols, rows);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = t.c0 + r / (t.ni * t.nj), i = t.i0 + (r / t.nj) % t.ni, j = t.j0 + r % t.nj;
    const int64_t di = i * g.wh.d - g.wh.p, dj = j * g.ww.d - g.ww.p;
    const FlatRun run(grid, di, 0, g.H, oks[static_cast<size_t>(j)]);
    for (int64_t m = 0; m < images; ++m) {
      float* dst = col + r * cols + m * block;
      const float* src = x.f32() + (n_first + m - x.lo[0]) * x.stride[0] + (c - x.lo[1]) * x.stride[1] +
                         (grid.oh0 + di - x.lo[2]) * x.stride[2] + (grid.ow0 + dj - x.lo[3]);
      std::fill(dst, dst + run.start, 0.f);
      std::copy(src + run.start, src + run.end, dst + run.start);
      std::fill(dst + run.end, dst + block, 0.f);
      run.zero_margins(dst, grid.now);
    }
  }
}

/// col2im_add for a flat_chunk: per image, channel and tap, one add of the run (its margins
/// zeroed in `col` first, which is scratch).
void col2im_flat(const Context& ctx, const Geom& g, float* col, const Taps& t, const Grid& grid, int64_t q0, int64_t nq,
                 const View& dx) {
  const int64_t cols = nq * grid.now, block = grid.noh * grid.now, images = nq / grid.noh;
  const int64_t n_first = grid.n_of(q0);
  const std::vector<Span> oks = column_taps(g, grid.ow0, grid.ow0 + grid.now, dx.lo[3], dx.hi(3));
  const int threads = cpu::threads_for(ctx, cols * t.rows(), images * t.nc);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t m = 0; m < images; ++m) {
    for (int64_t cc = 0; cc < t.nc; ++cc) {
      const int64_t c = t.c0 + cc;
      float* plane = dx.f32() + (n_first + m - dx.lo[0]) * dx.stride[0] + (c - dx.lo[1]) * dx.stride[1];
      for (int64_t i = t.i0; i < t.i0 + t.ni; ++i) {
        const int64_t di = i * g.wh.d - g.wh.p;
        for (int64_t j = t.j0; j < t.j0 + t.nj; ++j) {
          const int64_t dj = j * g.ww.d - g.ww.p;
          const FlatRun run(grid, di, dx.lo[2], dx.hi(2), oks[static_cast<size_t>(j)]);
          float* src = col + ((cc * t.ni + (i - t.i0)) * t.nj + (j - t.j0)) * cols + m * block;
          float* dst = plane + (grid.oh0 + di - dx.lo[2]) * dx.stride[2] + (grid.ow0 + dj - dx.lo[3]);
          run.zero_margins(src, grid.now);
#pragma omp simd
          for (int64_t k = run.start; k < run.end; ++k) dst[k] += src[k];
        }
      }
    }
  }
}

/// col[r][qq * now + (ow - ow0)] = x at (n, c, oh*s - p + i*d, ow*s - p + j*d) for the taps (c, i, j)
/// of row r and the chunk rows q0 + qq; zero where that lies in the padding.
void im2col(const Context& ctx, const Geom& g, const View& x, const Taps& t, const Grid& grid, int64_t q0,
            int64_t nq, float* col) {
  if (flat_chunk(g, x, grid, q0, nq)) return im2col_flat(ctx, g, x, t, grid, q0, nq, col);
  const int64_t rows = t.rows(), cols = nq * grid.now, xs = x.stride[3], now = grid.now;
  const std::vector<Span> oks = column_taps(g, grid.ow0, grid.ow0 + now, 0, g.W);
  const int threads = cpu::threads_for(ctx, rows * cols, rows);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = t.c0 + r / (t.ni * t.nj), i = t.i0 + (r / t.nj) % t.ni, j = t.j0 + r % t.nj;
    const Span ok = oks[static_cast<size_t>(j)];
    const int64_t step = g.ww.s * xs, head = ok.lo - grid.ow0, len = ok.size();
    const float* xc = x.f32() + (c - x.lo[1]) * x.stride[1] + (ok.lo * g.ww.s + j * g.ww.d - g.ww.p - x.lo[3]) * xs;
    float* dst = col + r * cols;
    int64_t n = grid.n_of(q0), oh = grid.oh_of(q0);
    for (int64_t qq = 0; qq < nq; ++qq, dst += now) {
      const int64_t ih = oh * g.wh.s - g.wh.p + i * g.wh.d;
      if (ih < 0 || ih >= g.H || len == 0) {
        std::fill(dst, dst + now, 0.f);
      } else {
        const float* src = xc + (n - x.lo[0]) * x.stride[0] + (ih - x.lo[2]) * x.stride[2];
        std::fill(dst, dst + head, 0.f);
        if (step == 1)
          std::copy(src, src + len, dst + head);
        else
          for (int64_t k = 0; k < len; ++k) dst[head + k] = src[k * step];
        std::fill(dst + head + len, dst + now, 0.f);
      }
      if (++oh == grid.oh0 + grid.noh) oh = grid.oh0, ++n;
    }
  }
}

/// The transpose of im2col, restricted to dx's box: adds each element of `col` to the input
/// position it was taken from, where that position lies in dx's box. The grid's images and the
/// taps' channels must lie in dx's box. May overwrite `col` (scratch).
void col2im_add(const Context& ctx, const Geom& g, float* col, const Taps& t, const Grid& grid, int64_t q0, int64_t nq,
                const View& dx) {
  if (flat_chunk(g, dx, grid, q0, nq)) return col2im_flat(ctx, g, col, t, grid, q0, nq, dx);
  const int64_t cols = nq * grid.now, xs = dx.stride[3];
  const int64_t n_first = grid.n_of(q0), nn = grid.n_of(q0 + nq - 1) - n_first + 1;
  const std::vector<Span> oks = column_taps(g, grid.ow0, grid.ow0 + grid.now, dx.lo[3], dx.hi(3));
  const int threads = cpu::threads_for(ctx, cols * t.rows(), nn * t.nc);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t a = 0; a < nn; ++a) {
    for (int64_t cc = 0; cc < t.nc; ++cc) {
      const int64_t n = n_first + a, c = t.c0 + cc;
      const int64_t qa = std::max(q0, (n - grid.n0) * grid.noh), qb = std::min(q0 + nq, (n - grid.n0 + 1) * grid.noh);
      float* plane = dx.f32() + (n - dx.lo[0]) * dx.stride[0] + (c - dx.lo[1]) * dx.stride[1];
      for (int64_t i = t.i0; i < t.i0 + t.ni; ++i) {
        for (int64_t j = t.j0; j < t.j0 + t.nj; ++j) {
          const int64_t off = j * g.ww.d - g.ww.p;
          const Span ok = oks[static_cast<size_t>(j)];
          if (ok.size() == 0) continue;
          const float* row = col + ((cc * t.ni + (i - t.i0)) * t.nj + (j - t.j0)) * cols;
          for (int64_t q = qa; q < qb; ++q) {
            const int64_t ih = grid.oh_of(q) * g.wh.s - g.wh.p + i * g.wh.d;
            if (ih < dx.lo[2] || ih >= dx.hi(2)) continue;
            const float* src = row + (q - q0) * grid.now + (ok.lo - grid.ow0);
            float* dst = plane + (ih - dx.lo[2]) * dx.stride[2] + (ok.lo * g.ww.s + off - dx.lo[3]) * xs;
            const int64_t step = g.ww.s * xs;
            if (step == 1)
              for (int64_t k = 0; k < ok.size(); ++k) dst[k] += src[k];
            else
              for (int64_t k = 0; k < ok.size(); ++k) dst[k * step] += src[k];
          }
        }
      }
    }
  }
}

/// Whether the chunk [q0, q0 + nq) of the grid over v's box (an [N, O, H, W] box whose (oh, ow)
/// range the grid covers) is one image whose (oh, ow) plane is dense in v: then v's rows of that
/// image are a matrix [O][nq * now] of row pitch v.stride[1], used in place.
bool plane_in_place(const View& v, const Grid& grid, int64_t q0, int64_t nq) {
  return nq == grid.noh && grid.oh_of(q0) == grid.oh0 && grid.oh0 == v.lo[2] && grid.ow0 == v.lo[3] &&
         v.stride[3] == 1 && v.stride[2] == grid.now && v.stride[1] >= nq * grid.now;
}

/// v at (n, o0, oh0, ow0) for the image n of the chunk starting at row q0.
float* plane_at(const View& v, const Grid& grid, int64_t q0, int64_t o0) {
  return v.f32() + (grid.n_of(q0) - v.lo[0]) * v.stride[0] + (o0 - v.lo[1]) * v.stride[1];
}

/// out[o - o0][qq * now + (ow - ow0)] = v at (n, o, oh, ow) for the chunk rows q0 + qq.
void gather_rows(const Context& ctx, const View& v, int64_t o0, int64_t no, const Grid& grid, int64_t q0, int64_t nq,
                 float* out) {
  const int64_t cols = nq * grid.now, vs = v.stride[3];
  const int threads = cpu::threads_for(ctx, no * cols, no * nq);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t o = 0; o < no; ++o) {
    for (int64_t qq = 0; qq < nq; ++qq) {
      const int64_t q = q0 + qq;
      const float* src = v.f32() + (grid.n_of(q) - v.lo[0]) * v.stride[0] + (o0 + o - v.lo[1]) * v.stride[1] +
                         (grid.oh_of(q) - v.lo[2]) * v.stride[2] + (grid.ow0 - v.lo[3]) * vs;
      float* dst = out + o * cols + qq * grid.now;
      if (vs == 1)
        std::copy(src, src + grid.now, dst);
      else
        for (int64_t k = 0; k < grid.now; ++k) dst[k] = src[k * vs];
    }
  }
}

/// The chunk's rows of dy as a matrix [no][nq * now]: in place when plane_in_place, else gathered
/// into `buf`.
cpu::Mat dy_rows(const Context& ctx, const View& dy, int64_t o0, int64_t no, const Grid& grid, int64_t q0, int64_t nq,
                 float* buf) {
  if (plane_in_place(dy, grid, q0, nq)) return {plane_at(dy, grid, q0, o0), dy.stride[1], false};
  gather_rows(ctx, dy, o0, no, grid, q0, nq, buf);
  return {buf, nq * grid.now, false};
}

/// The bias of output channel o (0 without bias).
float bias_at(const View* b, int64_t o) { return b ? b->f32()[(o - b->lo[0]) * b->stride[0]] : 0.f; }

/// The weights of output channels [o0, o0 + no) and input channels [c0, c0 + nc) of their group,
/// packed [no][nc * kh * kw].
std::unique_ptr<float[]> pack_weight(Context& ctx, const Geom& g, const View& w, int64_t o0, int64_t no, int64_t c0,
                                     int64_t nc) {
  auto buf = cpu::scratch(no * nc * g.wh.k * g.ww.k);
  const int64_t lo[4] = {o0, c0, 0, 0}, size[4] = {no, nc, g.wh.k, g.ww.k};
  cpu::pack_box(ctx, w, lo, size, buf.get());
  return buf;
}

// ---- direct paths for one input channel per group --------------------------------------------

/// dst[k * ds] += a * src[k * ss] for k in [0, n) (unit steps vectorize).
inline void axpy(int64_t n, float a, const float* src, int64_t ss, float* dst, int64_t ds) {
  if (ss == 1 && ds == 1) {
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) dst[k] += a * src[k];
  } else {
    for (int64_t k = 0; k < n; ++k) dst[k * ds] += a * src[k * ss];
  }
}

/// sum_k a[k * as] * b[k * bs] for k in [0, n).
inline float dot(int64_t n, const float* a, int64_t as, const float* b, int64_t bs) {
  float s = 0.f;
  if (as == 1 && bs == 1) {
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < n; ++k) s += a[k] * b[k];
  } else {
    for (int64_t k = 0; k < n; ++k) s += a[k * as] * b[k * bs];
  }
  return s;
}

void forward_direct(Context& ctx, const Geom& g, Act act, const View& x, const View& w, const View* b, const View& y) {
  const int64_t kk = g.wh.k * g.ww.k, nn = y.size[0], no = y.size[1];
  auto wk = pack_weight(ctx, g, w, y.lo[1], no, 0, 1);
  const int64_t ow0 = y.lo[3], now = y.size[3];
  const std::vector<Span> ok = column_taps(g, ow0, y.hi(3), 0, g.W);
  const int64_t work = nn * no * y.size[2] * now * kk;
#pragma omp parallel num_threads(ctx.threads) if (work >= cpu::kMinParallelWork)
  {
    std::vector<float> acc(static_cast<size_t>(now));
#pragma omp for collapse(2) schedule(static)
    for (int64_t a = 0; a < nn; ++a) {
      for (int64_t oo = 0; oo < no; ++oo) {
        const int64_t n = y.lo[0] + a, o = y.lo[1] + oo, c = o / g.Og;
        const float* xp = x.f32() + (n - x.lo[0]) * x.stride[0] + (c - x.lo[1]) * x.stride[1];
        const float* wp = wk.get() + oo * kk;
        for (int64_t oh = y.lo[2]; oh < y.hi(2); ++oh) {
          std::fill(acc.begin(), acc.end(), 0.f);
          for (int64_t i = 0; i < g.wh.k; ++i) {
            const int64_t ih = oh * g.wh.s - g.wh.p + i * g.wh.d;
            if (ih < 0 || ih >= g.H) continue;
            const float* xr = xp + (ih - x.lo[2]) * x.stride[2];
            for (int64_t j = 0; j < g.ww.k; ++j) {
              const Span s = ok[static_cast<size_t>(j)];
              if (s.size() == 0) continue;
              const int64_t iw = s.lo * g.ww.s + j * g.ww.d - g.ww.p;
              axpy(s.size(), wp[i * g.ww.k + j], xr + (iw - x.lo[3]) * x.stride[3], g.ww.s * x.stride[3],
                   acc.data() + (s.lo - ow0), 1);
            }
          }
          float* yr = y.f32() + a * y.stride[0] + oo * y.stride[1] + (oh - y.lo[2]) * y.stride[2];
          cpu::bias_act(act, bias_at(b, o), acc.data(), now, yr, y.stride[3]);
        }
      }
    }
  }
}

/// dx over the images `ns` and channels `cs` (inside dx's box) from dy's box; dx already zeroed or
/// holding what to accumulate onto.
void backward_data_direct(Context& ctx, const Geom& g, const View& dy, const View& w, const View& dx, Span ns,
                          Span cs) {
  const int64_t kk = g.wh.k * g.ww.k;
  auto wk = pack_weight(ctx, g, w, dy.lo[1], dy.size[1], 0, 1);
  const std::vector<Span> ok = column_taps(g, dy.lo[3], dy.hi(3), dx.lo[3], dx.hi(3));
  const int64_t work = dy.volume() * kk;
#pragma omp parallel for collapse(2) num_threads(ctx.threads) schedule(static) if (work >= cpu::kMinParallelWork)
  for (int64_t n = ns.lo; n < ns.hi; ++n) {
    for (int64_t c = cs.lo; c < cs.hi; ++c) {
      const Span os = intersect({c * g.Og, (c + 1) * g.Og}, dim_span(dy, 1));
      float* dxp = dx.f32() + (n - dx.lo[0]) * dx.stride[0] + (c - dx.lo[1]) * dx.stride[1];
      for (int64_t o = os.lo; o < os.hi; ++o) {
        const float* dyp = dy.f32() + (n - dy.lo[0]) * dy.stride[0] + (o - dy.lo[1]) * dy.stride[1];
        const float* wp = wk.get() + (o - dy.lo[1]) * kk;
        for (int64_t oh = dy.lo[2]; oh < dy.hi(2); ++oh) {
          const float* dyr = dyp + (oh - dy.lo[2]) * dy.stride[2];
          for (int64_t i = 0; i < g.wh.k; ++i) {
            const int64_t ih = oh * g.wh.s - g.wh.p + i * g.wh.d;
            if (ih < dx.lo[2] || ih >= dx.hi(2)) continue;
            float* dxr = dxp + (ih - dx.lo[2]) * dx.stride[2];
            for (int64_t j = 0; j < g.ww.k; ++j) {
              const Span s = ok[static_cast<size_t>(j)];
              if (s.size() == 0) continue;
              const int64_t iw = s.lo * g.ww.s + j * g.ww.d - g.ww.p;
              axpy(s.size(), wp[i * g.ww.k + j], dyr + (s.lo - dy.lo[3]) * dy.stride[3], dy.stride[3],
                   dxr + (iw - dx.lo[3]) * dx.stride[3], g.ww.s * dx.stride[3]);
            }
          }
        }
      }
    }
  }
}

void backward_weight_direct(Context& ctx, const Geom& g, const View& x, const View& dy, const View& dw,
                            bool accumulate) {
  const int64_t ni = dw.size[2], nj = dw.size[3];
  const std::vector<Span> ok = column_taps(g, dy.lo[3], dy.hi(3), 0, g.W);
  const int64_t work = dw.size[0] * dy.size[0] * dy.size[2] * dy.size[3] * ni * nj;
#pragma omp parallel num_threads(ctx.threads) if (work >= cpu::kMinParallelWork)
  {
    std::vector<double> acc(static_cast<size_t>(ni * nj));
#pragma omp for schedule(static)
    for (int64_t o = dw.lo[0]; o < dw.hi(0); ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const int64_t c = o / g.Og;
      for (int64_t n = dy.lo[0]; n < dy.hi(0); ++n) {
        const float* xp = x.f32() + (n - x.lo[0]) * x.stride[0] + (c - x.lo[1]) * x.stride[1];
        const float* dyp = dy.f32() + (n - dy.lo[0]) * dy.stride[0] + (o - dy.lo[1]) * dy.stride[1];
        for (int64_t oh = dy.lo[2]; oh < dy.hi(2); ++oh) {
          const float* dyr = dyp + (oh - dy.lo[2]) * dy.stride[2];
          for (int64_t i = dw.lo[2]; i < dw.hi(2); ++i) {
            const int64_t ih = oh * g.wh.s - g.wh.p + i * g.wh.d;
            if (ih < 0 || ih >= g.H) continue;
            const float* xr = xp + (ih - x.lo[2]) * x.stride[2];
            for (int64_t j = dw.lo[3]; j < dw.hi(3); ++j) {
              const Span s = ok[static_cast<size_t>(j)];
              if (s.size() == 0) continue;
              const int64_t iw = s.lo * g.ww.s + j * g.ww.d - g.ww.p;
              acc[static_cast<size_t>((i - dw.lo[2]) * nj + (j - dw.lo[3]))] +=
                  dot(s.size(), dyr + (s.lo - dy.lo[3]) * dy.stride[3], dy.stride[3], xr + (iw - x.lo[3]) * x.stride[3],
                      g.ww.s * x.stride[3]);
            }
          }
        }
      }
      float* dwp = dw.f32() + (o - dw.lo[0]) * dw.stride[0];
      for (int64_t i = 0; i < ni; ++i) {
        for (int64_t j = 0; j < nj; ++j) {
          const float v = static_cast<float>(acc[static_cast<size_t>(i * nj + j)]);
          cpu::store(dwp + i * dw.stride[2] + j * dw.stride[3], v, accumulate);
        }
      }
    }
  }
}


/// Whether a convolution takes the direct path (see kGemmMinMultiplier).
bool direct_path(const Geom& g) { return g.Cg == 1 && g.Og < kGemmMinMultiplier; }

}  // namespace

void conv2d_forward(Context& ctx, const Conv2dAttrs& a, Act act, const View& x, const View& w, const View* b,
                    const View& y) {
  check_view(x, 4, "conv2d_forward: x must be a 4-D f32 view");
  check_view(w, 4, "conv2d_forward: w must be a 4-D f32 view");
  check_view(y, 4, "conv2d_forward: y must be a 4-D f32 view");
  const Geom g = geometry(a, x.full, y.full, w.full);
  if (y.volume() == 0) return;
  const int64_t g_lo = y.lo[1] / g.Og, g_hi = (y.hi(1) - 1) / g.Og + 1;
  require(holds(x, {dim_span(y, 0),
                    {g_lo * g.Cg, g_hi * g.Cg},
                    inputs_read(dim_span(y, 2), {0, g.wh.k}, g.H, g.wh),
                    inputs_read(dim_span(y, 3), {0, g.ww.k}, g.W, g.ww)}),
          "conv2d_forward: x does not hold the input box y's box needs");
  require(holds(w, {dim_span(y, 1), {0, g.Cg}, {0, g.wh.k}, {0, g.ww.k}}),
          "conv2d_forward: w does not hold the output channels of y's box");
  if (b) {
    check_view(*b, 1, "conv2d_forward: b must be a 1-D f32 view");
    require(b->full[0] == g.O && holds(*b, {dim_span(y, 1)}), "conv2d_forward: b does not hold y's channels");
  }
  if (direct_path(g)) return forward_direct(ctx, g, act, x, w, b, y);

  const Grid grid{y.lo[0], y.lo[2], y.size[2], y.lo[3], y.size[3]};
  const int64_t total = y.size[0] * y.size[2];
  for_groups(ctx, g_lo, g_hi, y.volume() * g.Cg * g.wh.k * g.ww.k, [&](Context& gctx, int64_t gr) {
    const Span os = intersect(dim_span(y, 1), {gr * g.Og, (gr + 1) * g.Og});
    const int64_t no = os.size();
    const Taps t{gr * g.Cg, g.Cg, 0, g.wh.k, 0, g.ww.k};
    const int64_t kdim = t.rows();
    auto wk = pack_weight(gctx, g, w, os.lo, no, 0, g.Cg);
    const Chunks chunks(gctx, total, chunk_rows(kdim + no, grid, total), true, no * total * grid.now * kdim);
    std::vector<Scratch> scratch(static_cast<size_t>(chunks.threads));
    chunks.run(gctx, [&](Context& cctx, int th, int64_t q0, int64_t nq) {
      Scratch& s = scratch[static_cast<size_t>(th)];
      const int64_t cols = nq * grid.now;
      if (!s.a) s.a = cpu::scratch(kdim * chunks.step * grid.now);
      im2col(cctx, g, x, t, grid, q0, nq, s.a.get());
      if (plane_in_place(y, grid, q0, nq)) {
        // Straight into y's image, then bias and activation in place.
        float* out = plane_at(y, grid, q0, os.lo);
        const int64_t ld = y.stride[1];
        cpu::gemm(cctx, no, cols, kdim, 1.f, {wk.get(), kdim}, false, {s.a.get(), cols}, false, 0.f, {out, ld});
        if (b || act != Act::none) {
          for (int64_t oo = 0; oo < no; ++oo)
            cpu::bias_act(act, bias_at(b, os.lo + oo), out + oo * ld, cols, out + oo * ld, 1);
        }
        return;
      }
      if (!s.b) s.b = cpu::scratch(no * chunks.step * grid.now);
      cpu::gemm(cctx, no, cols, kdim, 1.f, {wk.get(), kdim}, false, {s.a.get(), cols}, false, 0.f, {s.b.get(), cols});
      const int threads = cpu::threads_for(cctx, no * cols, no * nq);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static) if (threads > 1)
      for (int64_t oo = 0; oo < no; ++oo) {
        for (int64_t qq = 0; qq < nq; ++qq) {
          const int64_t o = os.lo + oo, q = q0 + qq;
          const float* src = s.b.get() + oo * cols + qq * grid.now;
          float* dst = y.f32() + (grid.n_of(q) - y.lo[0]) * y.stride[0] + (o - y.lo[1]) * y.stride[1] +
                       (grid.oh_of(q) - y.lo[2]) * y.stride[2];
          cpu::bias_act(act, bias_at(b, o), src, grid.now, dst, y.stride[3]);
        }
      }
    });
  });
}

void conv2d_backward_data(Context& ctx, const Conv2dAttrs& a, const View& dy, const View& w, const View& dx,
                          bool accumulate) {
  check_view(dy, 4, "conv2d_backward_data: dy must be a 4-D f32 view");
  check_view(w, 4, "conv2d_backward_data: w must be a 4-D f32 view");
  check_view(dx, 4, "conv2d_backward_data: dx must be a 4-D f32 view");
  const Geom g = geometry(a, dx.full, dy.full, w.full);
  require(holds(w, {dim_span(dy, 1), {0, g.Cg}, {0, g.wh.k}, {0, g.ww.k}}),
          "conv2d_backward_data: w does not hold the output channels of dy's box");
  if (!accumulate) cpu::zero_box(ctx, dx);
  const Span ns = intersect(dim_span(dy, 0), dim_span(dx, 0));
  if (dy.volume() == 0 || dx.volume() == 0 || ns.size() == 0) return;
  const int64_t g_lo = dy.lo[1] / g.Og, g_hi = (dy.hi(1) - 1) / g.Og + 1;
  if (direct_path(g)) {
    const Span cs = intersect(dim_span(dx, 1), {g_lo, g_hi});
    return backward_data_direct(ctx, g, dy, w, dx, ns, cs);
  }

  const Grid grid{ns.lo, dy.lo[2], dy.size[2], dy.lo[3], dy.size[3]};
  const int64_t total = ns.size() * dy.size[2];
  for_groups(ctx, g_lo, g_hi, dy.volume() * g.Cg * g.wh.k * g.ww.k, [&](Context& gctx, int64_t gr) {
    const Span os = intersect(dim_span(dy, 1), {gr * g.Og, (gr + 1) * g.Og});
    const Span cs = intersect(dim_span(dx, 1), {gr * g.Cg, (gr + 1) * g.Cg});
    if (cs.size() == 0) return;
    const int64_t no = os.size();
    const Taps t{cs.lo, cs.size(), 0, g.wh.k, 0, g.ww.k};
    const int64_t kdim = t.rows();
    auto wk = pack_weight(gctx, g, w, os.lo, no, cs.lo - gr * g.Cg, cs.size());
    const int64_t step = chunk_rows(kdim + no, grid, total);
    // Chunks of whole images add into disjoint images of dx and may run at once; parts of one
    // image share its rows (the windows overlap), so those run one after the other.
    const Chunks chunks(gctx, total, step, step % grid.noh == 0, no * total * grid.now * kdim);
    std::vector<Scratch> scratch(static_cast<size_t>(chunks.threads));
    chunks.run(gctx, [&](Context& cctx, int th, int64_t q0, int64_t nq) {
      Scratch& s = scratch[static_cast<size_t>(th)];
      const int64_t cols = nq * grid.now;
      if (!s.a) s.a = cpu::scratch(kdim * step * grid.now);
      if (!s.b && !plane_in_place(dy, grid, q0, nq)) s.b = cpu::scratch(no * step * grid.now);
      const cpu::Mat dyg = dy_rows(cctx, dy, os.lo, no, grid, q0, nq, s.b.get());
      // col[kdim x cols] = Wg^T [kdim x no] @ dYg [no x cols]
      cpu::gemm(cctx, kdim, cols, no, 1.f, {wk.get(), kdim}, true, dyg, false, 0.f, {s.a.get(), cols});
      col2im_add(cctx, g, s.a.get(), t, grid, q0, nq, dx);
    });
  });
}

void conv2d_backward_weight(Context& ctx, const Conv2dAttrs& a, const View& x, const View& dy, const View& dw,
                            const View* db, bool accumulate) {
  check_view(x, 4, "conv2d_backward_weight: x must be a 4-D f32 view");
  check_view(dy, 4, "conv2d_backward_weight: dy must be a 4-D f32 view");
  check_view(dw, 4, "conv2d_backward_weight: dw must be a 4-D f32 view");
  const Geom g = geometry(a, x.full, dy.full, dw.full);
  require(dw.size[0] == 0 || (dw.lo[0] >= dy.lo[1] && dw.hi(0) <= dy.hi(1)),
          "conv2d_backward_weight: dy does not hold the output channels of dw's box");
  if (db) {
    check_view(*db, 1, "conv2d_backward_weight: db must be a 1-D f32 view");
    require(db->full[0] == g.O, "conv2d_backward_weight: db's extent is not the output channel count");
    require(db->size[0] == 0 || (db->lo[0] >= dy.lo[1] && db->hi(0) <= dy.hi(1)),
            "conv2d_backward_weight: dy does not hold the output channels of db's box");
  }

  // Bias: the sum of dy over its images and positions, per channel: a float sum per row, the rows
  // added in double in order. Each thread takes a range of channels and walks dy image by image
  // (memory order), four rows side by side.
  if (db && db->size[0] > 0) {
    const int64_t rows = dy.size[2], len = dy.size[3], s2 = dy.stride[2], s3 = dy.stride[3], nb = db->size[0];
    const int threads = cpu::threads_for(ctx, nb * dy.size[0] * rows * len, nb);
    std::vector<double> sums(static_cast<size_t>(nb), 0.0);
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t o0 = db->lo[0] + nb * t / nt, o1 = db->lo[0] + nb * (t + 1) / nt;
      for (int64_t n = dy.lo[0]; n < dy.hi(0); ++n) {
        for (int64_t o = o0; o < o1; ++o) {
          const int64_t lo[4] = {n, o, dy.lo[2], dy.lo[3]};
          const float* plane = dy.f32() + dy.offset_of(lo);
          double& s = sums[static_cast<size_t>(o - db->lo[0])];
          int64_t r = 0;
          for (; r + 4 <= rows; r += 4) {
            const float *p0 = plane + r * s2, *p1 = p0 + s2, *p2 = p1 + s2, *p3 = p2 + s2;
            float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
            for (int64_t k = 0; k < len; ++k) a0 += p0[k * s3], a1 += p1[k * s3], a2 += p2[k * s3], a3 += p3[k * s3];
            s += a0, s += a1, s += a2, s += a3;
          }
          for (; r < rows; ++r) {
            float sum = 0.f;
            for (int64_t k = 0; k < len; ++k) sum += plane[r * s2 + k * s3];
            s += sum;
          }
        }
      }
    }
    for (int64_t o = 0; o < nb; ++o)
      cpu::store(db->f32() + o * db->stride[0], static_cast<float>(sums[static_cast<size_t>(o)]), accumulate);
  }

  if (dw.volume() == 0) return;
  if (dy.size[0] == 0 || dy.size[2] == 0 || dy.size[3] == 0) {
    if (!accumulate) cpu::zero_box(ctx, dw);
    return;
  }
  const int64_t g_lo = dw.lo[0] / g.Og, g_hi = (dw.hi(0) - 1) / g.Og + 1;
  require(holds(x, {dim_span(dy, 0),
                    {g_lo * g.Cg + dw.lo[1], (g_hi - 1) * g.Cg + dw.hi(1)},
                    inputs_read(dim_span(dy, 2), dim_span(dw, 2), g.H, g.wh),
                    inputs_read(dim_span(dy, 3), dim_span(dw, 3), g.W, g.ww)}),
          "conv2d_backward_weight: x does not hold the input box dy's box needs");
  if (direct_path(g)) return backward_weight_direct(ctx, g, x, dy, dw, accumulate);

  const Grid grid{dy.lo[0], dy.lo[2], dy.size[2], dy.lo[3], dy.size[3]};
  const int64_t total = dy.size[0] * dy.size[2];
  const int64_t work = dy.size[0] * dy.size[2] * dy.size[3] * dw.volume();
  for_groups(ctx, g_lo, g_hi, work, [&](Context& gctx, int64_t gr) {
    const Span os = intersect(dim_span(dw, 0), {gr * g.Og, (gr + 1) * g.Og});
    const int64_t no = os.size();
    const Taps t{gr * g.Cg + dw.lo[1], dw.size[1], dw.lo[2], dw.size[2], dw.lo[3], dw.size[3]};
    const int64_t kdim = t.rows();
    const int64_t step = chunk_rows(kdim + no, grid, total);
    const Chunks chunks(gctx, total, step, true, no * kdim * total * grid.now);
    // Each thread sums the products of its chunks into a dW of its own; those are added in thread
    // order.
    const auto nt = static_cast<size_t>(chunks.threads);
    std::vector<Scratch> scratch(nt);
    std::vector<char> started(nt, 0);
    auto dwg = cpu::scratch(chunks.threads * no * kdim);
    chunks.run(gctx, [&](Context& cctx, int th, int64_t q0, int64_t nq) {
      Scratch& s = scratch[static_cast<size_t>(th)];
      const int64_t cols = nq * grid.now;
      if (!s.a) s.a = cpu::scratch(kdim * step * grid.now);
      if (!s.b && !plane_in_place(dy, grid, q0, nq)) s.b = cpu::scratch(no * step * grid.now);
      im2col(cctx, g, x, t, grid, q0, nq, s.a.get());
      const cpu::Mat dyg = dy_rows(cctx, dy, os.lo, no, grid, q0, nq, s.b.get());
      // dWg[no x kdim] (+)= dYg [no x cols] @ col^T [cols x kdim]
      char& first = started[static_cast<size_t>(th)];
      cpu::gemm(cctx, no, kdim, cols, 1.f, dyg, false, {s.a.get(), cols}, true, first ? 1.f : 0.f,
                {dwg.get() + th * no * kdim, kdim});
      first = 1;
    });
    float* sum = dwg.get();
    for (size_t th = 1; th < nt; ++th) {
      if (!started[th]) continue;
      const float* part = dwg.get() + th * no * kdim;
      for (int64_t i = 0; i < no * kdim; ++i) sum[i] += part[i];
    }
    const int64_t lo[4] = {os.lo, dw.lo[1], dw.lo[2], dw.lo[3]}, size[4] = {no, dw.size[1], dw.size[2], dw.size[3]};
    cpu::unpack_box(gctx, sum, dw, lo, size, accumulate);
  });
}

}  // namespace ffrt
