// pool2d (max and average) on the device: forward with a fused activation, and backward, on parts.
//
// Windows follow PyTorch exactly, as the cpu backend does: max pooling ignores the padding and
// routes each gradient to the first maximum of its window in row-major order (a NaN counts as a
// maximum); average pooling divides by the window's extent clipped to the padded input
// (count_include_pad) or by the number of real input elements in it. These are the backend's own
// kernels rather than cuDNN's, whose max-pooling backward may route ties elsewhere. The backward
// gathers: one thread per element of dx's box sums, in output order, the gradients of the outputs
// of dy's box whose windows hold it (max pooling first finds each window's maximum), so it needs
// no atomics and gives the same result on every run.
//
// When a backward covers whole planes (dy's box spans every output row and column, dx's box every
// input row and column a window reads), one block handles a few planes in shared memory instead:
// it reads each input plane and dy plane once, finds each window's maximum once, and writes dx
// once — the general kernels' argmax pass goes through global memory (AlexNet's second max-pool
// backward on an H200: 0.52 ms that way, 0.39 ms in planes). The forward takes planes only where
// windows overlap much (stride-1 average pools); elsewhere the general kernel measured faster.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <optional>

#include "dnn.h"

namespace ffrt {

namespace {

using cuda::require;

/// PyTorch's output extent of a pooling window, with or without ceil_mode.
int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil_mode) {
  int64_t span = in + 2 * p - k;
  if (span < 0) return 0;
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

/// The global shape of a pooling and its attributes, as kernel arguments.
struct Geom {
  int64_t H, W, kh, kw, sh, sw, ph, pw;
  bool count_include_pad;
};

Geom geometry(const char* who, const Pool2dAttrs& a, const View& x_like, const View& y_like) {
  require(x_like.rank == 4 && y_like.rank == 4 && x_like.dtype == DType::f32 && y_like.dtype == DType::f32, who);
  Geom g;
  g.H = x_like.full[2], g.W = x_like.full[3];
  g.kh = a.kernel[0], g.kw = a.kernel[1], g.sh = a.stride[0], g.sw = a.stride[1];
  g.ph = a.padding[0], g.pw = a.padding[1];
  g.count_include_pad = a.count_include_pad;
  require(g.kh >= 1 && g.kw >= 1 && g.sh >= 1 && g.sw >= 1 && g.ph >= 0 && g.pw >= 0,
          "pool2d: invalid kernel, stride or padding");
  require(x_like.full[0] == y_like.full[0] && x_like.full[1] == y_like.full[1],
          "pool2d: input and output batch or channel extents differ");
  const int64_t oh = y_like.full[2], ow = y_like.full[3];
  require((oh == pool_out(g.H, g.kh, g.sh, g.ph, false) || oh == pool_out(g.H, g.kh, g.sh, g.ph, true)) &&
              (ow == pool_out(g.W, g.kw, g.sw, g.pw, false) || ow == pool_out(g.W, g.kw, g.sw, g.pw, true)),
          "pool2d: output extents do not match the input extents and attributes");
  require(g.H * g.W < INT_MAX, "pool2d: an input plane exceeds 2^31 elements");
  return g;
}

/// The input range [lo, hi) that outputs [o0, o1) read, clipped to [0, in).
void window_range(int64_t o0, int64_t o1, int64_t k, int64_t s, int64_t p, int64_t in, int64_t& lo, int64_t& hi) {
  lo = std::clamp<int64_t>(o0 * s - p, 0, in);
  hi = std::clamp<int64_t>((o1 - 1) * s - p + k, 0, in);
}

/// Whether x holds images [n0, n1), channels [c0, c1) and the input rows and columns that the
/// output box [oh0, oh1) x [ow0, ow1) reads.
bool holds_input(const View& x, const Geom& g, int64_t n0, int64_t n1, int64_t c0, int64_t c1, int64_t oh0, int64_t oh1,
                 int64_t ow0, int64_t ow1) {
  if (n1 <= n0 || c1 <= c0 || oh1 <= oh0 || ow1 <= ow0) return true;
  int64_t h0, h1, w0, w1;
  window_range(oh0, oh1, g.kh, g.sh, g.ph, g.H, h0, h1);
  window_range(ow0, ow1, g.kw, g.sw, g.pw, g.W, w0, w1);
  if (h1 <= h0 || w1 <= w0) return true;
  return n0 >= x.lo[0] && n1 <= x.hi(0) && c0 >= x.lo[1] && c1 <= x.hi(1) && h0 >= x.lo[2] && h1 <= x.hi(2) &&
         w0 >= x.lo[3] && w1 <= x.hi(3);
}

// ---- device side ---------------------------------------------------------------------------------

/// Division by a divisor fixed at launch: a multiply-high and a shift for 32-bit numerators below
/// 2^31 (the usual magic-number method), plain division for 64-bit ones.
template <typename I>
struct Divider {
  I d;
  explicit Divider(I d_ = 1) : d(d_) {}
  __device__ I div(I n) const { return n / d; }
};

template <>
struct Divider<uint32_t> {
  uint32_t d, magic, shift;
  explicit Divider(uint32_t d_ = 1) : d(d_) {
    for (shift = 0; shift < 32; ++shift)
      if ((uint64_t{1} << shift) >= d) break;
    magic = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }
  __device__ uint32_t div(uint32_t n) const { return (__umulhi(n, magic) + n) >> shift; }
};

/// The geometry as the kernels use it: coordinates fit in 32 bits (an input plane has fewer than
/// 2^31 elements).
struct Dims {
  int H, W, kh, kw, sh, sw, ph, pw;
  bool count_include_pad;
  Divider<uint32_t> by_sh, by_sw;  ///< division by the strides
};

Dims dims_of(const Geom& g) {
  return {static_cast<int>(g.H),
          static_cast<int>(g.W),
          static_cast<int>(g.kh),
          static_cast<int>(g.kw),
          static_cast<int>(g.sh),
          static_cast<int>(g.sw),
          static_cast<int>(g.ph),
          static_cast<int>(g.pw),
          g.count_include_pad,
          Divider<uint32_t>(static_cast<uint32_t>(g.sh)),
          Divider<uint32_t>(static_cast<uint32_t>(g.sw))};
}

/// A 4-D box for the kernels: element (n, c, h, w), in global coordinates, at
/// p[(n - lo[0]) * s[0] + ... + (w - lo[3]) * s[3]], offsets of type I.
template <typename I>
struct Box {
  float* p;
  I s[4];
  int lo[4], n[4];
  Divider<I> by[4];  ///< division by n[d]
  __device__ float& at(int a, int b, int c, int d) const {
    return p[static_cast<I>(a - lo[0]) * s[0] + static_cast<I>(b - lo[1]) * s[1] + static_cast<I>(c - lo[2]) * s[2] +
             static_cast<I>(d - lo[3]) * s[3]];
  }
  /// The global coordinates of the i-th element (row-major).
  __device__ void coords(I i, int* g) const {
    for (int d = 3; d > 0; --d) {
      const I q = by[d].div(i);
      g[d] = lo[d] + static_cast<int>(i - q * static_cast<I>(n[d]));
      i = q;
    }
    g[0] = lo[0] + static_cast<int>(i);
  }
};

template <typename I>
Box<I> box_of(const View& v) {
  Box<I> b;
  b.p = v.f32();
  for (int d = 0; d < 4; ++d) {
    b.s[d] = static_cast<I>(v.stride[d]);
    b.lo[d] = static_cast<int>(v.lo[d]);
    b.n[d] = static_cast<int>(v.size[d]);
    b.by[d] = Divider<I>(static_cast<I>(std::max<int64_t>(v.size[d], 1)));
  }
  return b;
}

/// Whether a view's elements and offsets fit 32-bit indices.
bool small(const View& v) {
  int64_t span = 1;
  for (int d = 0; d < v.rank; ++d) span += (v.size[d] - 1) * v.stride[d];
  return span < (int64_t{1} << 31) && v.volume() < (int64_t{1} << 31);
}

/// Whether v's box spans the last two dims whole (extents h, w).
bool whole_planes(const View& v, int64_t h, int64_t w) {
  return v.lo[2] == 0 && v.size[2] == h && v.lo[3] == 0 && v.size[3] == w;
}

/// The window of output o along one dim: [lo, hi) clipped to the input, and its extent clipped to
/// the padded input (PyTorch's divisor with count_include_pad).
struct Window {
  int lo, hi, padded;
};

__device__ inline Window window_of(int o, int k, int s, int p, int in) {
  const int start = o * s - p, end = min(start + k, in + p);
  return {max(start, 0), min(end, in), end - start};
}

/// PyTorch's divisor of an average-pooling window.
__device__ inline int avg_divisor(const Dims& g, const Window& wh, const Window& ww) {
  if (g.count_include_pad) return wh.padded * ww.padded;
  return max(wh.hi - wh.lo, 0) * max(ww.hi - ww.lo, 0);
}

/// The outputs [first, last] of [o0, o1) whose windows (start o * s - p, extent k) hold input i.
__device__ inline void outputs_over(int i, int k, int s, const Divider<uint32_t>& by_s, int p, int o0, int o1,
                                    int& first, int& last) {
  const int a = i + p - k + 1;  // the first output's window must reach i
  first = max(o0, a <= 0 ? 0 : static_cast<int>(by_s.div(static_cast<uint32_t>(a + s - 1))));
  last = min(o1 - 1, static_cast<int>(by_s.div(static_cast<uint32_t>(i + p))));
}

#define POOL_LOOP(I, i, n)                                                        \
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<I>(gridDim.x) * blockDim.x)

/// y = act(pool(x)) over y's box.
template <Act A, bool Max, typename I>
__global__ void forward_kernel(Box<I> x, Box<I> y, Dims g) {
  const I total = static_cast<I>(y.n[0]) * y.n[1] * y.n[2] * y.n[3];
  POOL_LOOP(I, i, total) {
    int o[4];
    y.coords(i, o);
    const Window wh = window_of(o[2], g.kh, g.sh, g.ph, g.H), ww = window_of(o[3], g.kw, g.sw, g.pw, g.W);
    float v;
    if (Max) {
      v = -INFINITY;
      bool nan = false;
      for (int h = wh.lo; h < wh.hi; ++h) {
        const float* row = &x.at(o[0], o[1], h, ww.lo);
        for (int w = 0; w < ww.hi - ww.lo; ++w) {
          const float e = row[static_cast<I>(w) * x.s[3]];
          v = e > v ? e : v;
          nan |= e != e;
        }
      }
      if (nan) v = NAN;
    } else {
      float sum = 0.f;
      for (int h = wh.lo; h < wh.hi; ++h) {
        const float* row = &x.at(o[0], o[1], h, ww.lo);
        for (int w = 0; w < ww.hi - ww.lo; ++w) sum += row[static_cast<I>(w) * x.s[3]];
      }
      const int div = avg_divisor(g, wh, ww);
      v = div > 0 ? sum / static_cast<float>(div) : 0.f;
    }
    y.at(o[0], o[1], o[2], o[3]) = cuda::act_value<A>(v);
  }
}

/// arg[i] = h * W + w of the first maximum of the window of the i-th output of `box` (output
/// coordinates; p unused), -1 for an empty window.
template <typename I>
__global__ void argmax_kernel(Box<I> x, Box<I> box, Dims g, int32_t* arg) {
  const I total = static_cast<I>(box.n[0]) * box.n[1] * box.n[2] * box.n[3];
  POOL_LOOP(I, i, total) {
    int o[4];
    box.coords(i, o);
    const Window wh = window_of(o[2], g.kh, g.sh, g.ph, g.H), ww = window_of(o[3], g.kw, g.sw, g.pw, g.W);
    // As the cpu backend: the window's first element unless a later one is greater, or NaN.
    float best = -INFINITY;
    int where = wh.lo < wh.hi && ww.lo < ww.hi ? wh.lo * g.W + ww.lo : -1;
    for (int h = wh.lo; h < wh.hi; ++h) {
      const float* row = &x.at(o[0], o[1], h, ww.lo);
      for (int w = 0; w < ww.hi - ww.lo; ++w) {
        const float e = row[static_cast<I>(w) * x.s[3]];
        if (e > best || e != e) {
          best = e;
          where = h * g.W + ww.lo + w;
        }
      }
    }
    arg[i] = where;
  }
}

/// dx (=, or += with accumulate) over dx's box: the gradients of the outputs of dy's box whose
/// windows hold each element, over images [n0, n1) and channels [c0, c1). Max pooling reads the
/// window maxima `arg` (argmax_kernel over those images and channels of dy's box).
template <bool Max, typename I>
__global__ void backward_kernel(Box<I> dy, Box<I> dx, Dims g, const int32_t* arg, int n0, int n1, int c0, int c1,
                                bool accumulate) {
  const I total = static_cast<I>(dx.n[0]) * dx.n[1] * dx.n[2] * dx.n[3];
  POOL_LOOP(I, i, total) {
    int e[4];
    dx.coords(i, e);
    float acc = 0.f;
    if (e[0] >= n0 && e[0] < n1 && e[1] >= c0 && e[1] < c1) {
      int h0, h1, w0, w1;
      outputs_over(e[2], g.kh, g.sh, g.by_sh, g.ph, dy.lo[2], dy.lo[2] + dy.n[2], h0, h1);
      outputs_over(e[3], g.kw, g.sw, g.by_sw, g.pw, dy.lo[3], dy.lo[3] + dy.n[3], w0, w1);
      const I plane = static_cast<I>(e[0] - n0) * (c1 - c0) + (e[1] - c0);
      const int self = e[2] * g.W + e[3];
      for (int oh = h0; oh <= h1; ++oh) {
        const I arow = (plane * dy.n[2] + (oh - dy.lo[2])) * dy.n[3] - dy.lo[3];
        for (int ow = w0; ow <= w1; ++ow) {
          if (Max) {
            if (arg[arow + ow] == self) acc += dy.at(e[0], e[1], oh, ow);
          } else {
            const Window wh = window_of(oh, g.kh, g.sh, g.ph, g.H), ww = window_of(ow, g.kw, g.sw, g.pw, g.W);
            const int div = avg_divisor(g, wh, ww);
            if (div > 0) acc += dy.at(e[0], e[1], oh, ow) / static_cast<float>(div);
          }
        }
      }
    }
    float& out = dx.at(e[0], e[1], e[2], e[3]);
    out = accumulate ? out + acc : acc;
  }
}

#undef POOL_LOOP

// ---- whole planes in shared memory ---------------------------------------------------------------

/// A call over whole planes: images [n0, n0 + planes / nc) x channels [c0, c0 + nc), each plane's
/// windows reading input rows [0, hr) and columns [0, wr). The backward writes dx's rows [0, dh)
/// and columns [0, dw) (dh >= hr, dw >= wr: the rest of the box is in no window). A block takes
/// `per_block` whole planes, or, for planes too big for its shared memory (bands > 1), one band
/// of `band` dx rows of one plane with the outputs whose windows hold them and their input rows.
/// A block stages at most in_cap input elements and out_cap outputs per plane.
struct Planes {
  int n0, c0, planes, per_block, hr, wr, OH, OW, dh, dw, band, bands, in_cap, out_cap;
  Divider<uint32_t> by_nc, by_in, by_in_w, by_out, by_out_w, by_plane, by_w;
};

/// Shared memory budget of one block of several planes or of a band, and the most a single plane
/// may need to be one block's.
constexpr size_t kPlaneBlockBytes = 16 << 10, kBandBytes = 32 << 10, kPlaneMaxBytes = 48 << 10;

/// The rows of band j: dx rows [h0, h1), the outputs [o0, o1) whose windows hold them, and the
/// input rows [x0, x1) those windows read (rows from hr on are in no window).
struct BandRows {
  int h0, h1, o0, o1, x0, x1;
};

__host__ __device__ inline BandRows band_rows(int j, int band, int dh, int hr, int OH, int k, int s, int p) {
  BandRows b;
  b.h0 = j * band;
  b.h1 = dh < b.h0 + band ? dh : b.h0 + band;
  const int last = (b.h1 < hr ? b.h1 : hr) - 1;
  b.o0 = b.o1 = b.x0 = b.x1 = 0;
  if (last < b.h0) return b;
  const int a = b.h0 + p - k + 1;  // the first output's window must reach h0
  b.o0 = a <= 0 ? 0 : (a + s - 1) / s;
  b.o1 = (last + p) / s + 1;
  if (b.o1 > OH) b.o1 = OH;
  if (b.o1 <= b.o0) {
    b.o0 = b.o1 = 0;
    return b;
  }
  b.x0 = b.o0 * s - p > 0 ? b.o0 * s - p : 0;
  b.x1 = (b.o1 - 1) * s - p + k < hr ? (b.o1 - 1) * s - p + k : hr;
  return b;
}

/// The planes of images [n0, n1) x channels [c0, c1), outputs oh x ow, dx's box [0, dh) x
/// [0, dw), `per_plane_floats` of shared memory for a plane's (or band's) input and output
/// elements; with `bands`, planes too big for a block are cut into bands of rows. nullopt when
/// that does not fit either, or dx's box misses part of the windows.
std::optional<Planes> planes_of(const Geom& g, int64_t n0, int64_t n1, int64_t c0, int64_t c1, int64_t oh, int64_t ow,
                                int64_t dh, int64_t dw, int64_t (*per_plane_floats)(int64_t in, int64_t out),
                                bool bands) {
  int64_t h0, hr, w0, wr;
  window_range(0, oh, g.kh, g.sh, g.ph, g.H, h0, hr);
  window_range(0, ow, g.kw, g.sw, g.pw, g.W, w0, wr);
  const int64_t planes = (n1 - n0) * (c1 - c0);
  if (planes >= INT_MAX || oh * ow == 0 || dh < hr || dw < wr || dh * dw >= INT_MAX) return std::nullopt;
  Planes p;
  p.n0 = static_cast<int>(n0), p.c0 = static_cast<int>(c0), p.planes = static_cast<int>(planes);
  p.hr = static_cast<int>(hr), p.wr = static_cast<int>(wr), p.OH = static_cast<int>(oh), p.OW = static_cast<int>(ow);
  p.dh = static_cast<int>(dh), p.dw = static_cast<int>(dw);
  // The largest staging of bands of `band` rows, in elements and bytes.
  const auto caps = [&](int band, int& in_cap, int& out_cap) {
    in_cap = out_cap = 0;
    for (int j = 0; j * band < p.dh; ++j) {
      const BandRows b = band_rows(j, band, p.dh, p.hr, p.OH, static_cast<int>(g.kh), static_cast<int>(g.sh),
                                   static_cast<int>(g.ph));
      in_cap = std::max(in_cap, (b.x1 - b.x0) * p.wr);
      out_cap = std::max(out_cap, (b.o1 - b.o0) * p.OW);
    }
    return static_cast<size_t>(per_plane_floats(in_cap, out_cap)) * 4;
  };
  p.band = p.dh;
  size_t bytes = caps(p.band, p.in_cap, p.out_cap);
  if (bytes > kPlaneMaxBytes) {
    if (!bands) return std::nullopt;
    while (bytes > kBandBytes && p.band > 1) bytes = caps(p.band = (p.band + 1) / 2, p.in_cap, p.out_cap);
    if (bytes > kBandBytes) return std::nullopt;
  }
  p.bands = (p.dh + p.band - 1) / p.band;
  if (static_cast<int64_t>(p.planes) * p.bands >= INT_MAX) return std::nullopt;
  p.per_block = p.bands > 1 ? 1 : static_cast<int>(std::clamp<size_t>(kPlaneBlockBytes / std::max<size_t>(bytes, 1), 1, 64));
  p.by_nc = Divider<uint32_t>(static_cast<uint32_t>(c1 - c0));
  p.by_in = Divider<uint32_t>(static_cast<uint32_t>(std::max(p.in_cap, 1)));
  p.by_in_w = Divider<uint32_t>(static_cast<uint32_t>(std::max<int64_t>(wr, 1)));
  p.by_out = Divider<uint32_t>(static_cast<uint32_t>(std::max(p.out_cap, 1)));
  p.by_out_w = Divider<uint32_t>(static_cast<uint32_t>(ow));
  p.by_plane = Divider<uint32_t>(static_cast<uint32_t>(std::max<int64_t>(dh * dw, 1)));
  p.by_w = Divider<uint32_t>(static_cast<uint32_t>(std::max<int64_t>(dw, 1)));
  return p;
}

/// Block bytes of shared memory and blocks for a call over `p`, `per_plane_floats` a plane's.
size_t plane_block_bytes(const Planes& p, int64_t per_plane_floats) {
  return static_cast<size_t>(p.per_block) * static_cast<size_t>(per_plane_floats) * 4;
}
unsigned plane_blocks(const Planes& p) {
  return p.bands > 1 ? static_cast<unsigned>(p.planes * p.bands)
                     : static_cast<unsigned>((p.planes + p.per_block - 1) / p.per_block);
}

/// The block's first plane, and the plane count it takes (np) and its rows.
struct BlockWork {
  int first, np;
  BandRows rows;
};

__device__ inline BlockWork block_work(const Planes& p, const Dims& g) {
  BlockWork w;
  const int b = static_cast<int>(blockIdx.x);
  const int j = p.bands > 1 ? b % p.bands : 0;
  w.first = p.bands > 1 ? b / p.bands : b * p.per_block;
  w.np = p.bands > 1 ? 1 : min(p.per_block, p.planes - w.first);
  w.rows = band_rows(j, p.band, p.dh, p.hr, p.OH, g.kh, g.sh, g.ph);
  return w;
}

/// The global image and channel of plane `first + q`.
__device__ inline void plane_nc(const Planes& p, int first, int q, int& n, int& c) {
  const uint32_t global = static_cast<uint32_t>(first + q);
  const uint32_t image = p.by_nc.div(global);
  n = p.n0 + static_cast<int>(image);
  c = p.c0 + static_cast<int>(global - image * p.by_nc.d);
}

/// dst[i] = src(i) for i in [0, n), by the block's threads with several loads in flight each
/// (one at a time, the loads' latency bounds the copy far below the memory's bandwidth).
template <typename F>
__device__ inline void stage(int n, float* dst, F&& src) {
  constexpr int kInFlight = 4;
  for (int i0 = threadIdx.x; i0 < n; i0 += kInFlight * blockDim.x) {
    float v[kInFlight] = {};
#pragma unroll
    for (int k = 0; k < kInFlight; ++k) {
      const int i = i0 + k * static_cast<int>(blockDim.x);
      if (i < n) v[k] = src(i);
    }
#pragma unroll
    for (int k = 0; k < kInFlight; ++k) {
      const int i = i0 + k * static_cast<int>(blockDim.x);
      if (i < n) dst[i] = v[k];
    }
  }
}

/// Copies the input rows [x0, x1) x columns [0, wr) of the block's `np` planes into xs, in_cap
/// elements apart.
__device__ inline void load_input(const Planes& p, const Box<uint32_t>& x, const BlockWork& bw, float* xs) {
  const int rows = bw.rows.x1 - bw.rows.x0;
  // With several planes a block stages whole ones (rows * wr == in_cap), else i < in_cap: q = 0.
  stage(bw.np * rows * p.wr, xs, [&](int i) {
    const int q = static_cast<int>(p.by_in.div(i)), r = i - q * p.in_cap;
    const int h = static_cast<int>(p.by_in_w.div(r)), w = r - h * p.wr;
    int n, c;
    plane_nc(p, bw.first, q, n, c);
    return x.at(n, c, bw.rows.x0 + h, w);
  });
}

/// y = act(pool(x)) over whole planes, x staged in shared memory.
template <Act A, bool Max>
__global__ void plane_forward_kernel(Box<uint32_t> x, Box<uint32_t> y, Dims g, Planes p) {
  extern __shared__ float xs[];
  const BlockWork bw = block_work(p, g);  // whole planes: rows [0, hr), outputs [0, OH)
  load_input(p, x, bw, xs);
  __syncthreads();
  for (int i = threadIdx.x; i < bw.np * p.out_cap; i += blockDim.x) {
    const int q = static_cast<int>(p.by_out.div(i)), r = i - q * p.out_cap;
    const int oh = static_cast<int>(p.by_out_w.div(r)), ow = r - oh * p.OW;
    const Window wh = window_of(oh, g.kh, g.sh, g.ph, g.H), ww = window_of(ow, g.kw, g.sw, g.pw, g.W);
    const float* plane = xs + q * p.in_cap;
    float v;
    if (Max) {
      v = -INFINITY;
      bool nan = false;
      for (int h = wh.lo; h < wh.hi; ++h)
        for (int w = ww.lo; w < ww.hi; ++w) {
          const float e = plane[h * p.wr + w];
          v = e > v ? e : v;
          nan |= e != e;
        }
      if (nan) v = NAN;
    } else {
      float sum = 0.f;
      for (int h = wh.lo; h < wh.hi; ++h)
        for (int w = ww.lo; w < ww.hi; ++w) sum += plane[h * p.wr + w];
      const int div = avg_divisor(g, wh, ww);
      v = div > 0 ? sum / static_cast<float>(div) : 0.f;
    }
    int n, c;
    plane_nc(p, bw.first, q, n, c);
    y.at(n, c, oh, ow) = cuda::act_value<A>(v);
  }
}

/// dx (=, or += with accumulate) over whole planes or a band of rows: dy (and, for max pooling,
/// x and each window's first maximum, found once) staged in shared memory, each element gathering
/// as backward_kernel.
template <bool Max>
__global__ void plane_backward_kernel(Box<uint32_t> x, Box<uint32_t> dy, Box<uint32_t> dx, Dims g, Planes p,
                                      bool accumulate) {
  extern __shared__ float smem[];
  const BlockWork bw = block_work(p, g);
  const BandRows& rows = bw.rows;
  float* dys = smem;
  float* xs = dys + p.per_block * p.out_cap;
  int* arg = reinterpret_cast<int*>(xs + p.per_block * p.in_cap);
  // Staged elements of a plane sit out_cap (in_cap) apart; with several planes a block stages
  // whole ones (outs == out_cap), else i < out_cap and q = 0.
  const int outs = (rows.o1 - rows.o0) * p.OW;
  // Average pooling stages each gradient divided by its window's divisor: each element then sums
  // up to k x k of them without recomputing windows (the same quotients, in the same order).
  stage(bw.np * outs, dys, [&](int i) {
    const int q = static_cast<int>(p.by_out.div(i)), r = i - q * p.out_cap;
    const int oh = rows.o0 + static_cast<int>(p.by_out_w.div(r)), ow = r - (oh - rows.o0) * p.OW;
    int n, c;
    plane_nc(p, bw.first, q, n, c);
    const float v = dy.at(n, c, oh, ow);
    if (Max) return v;
    const int div = avg_divisor(g, window_of(oh, g.kh, g.sh, g.ph, g.H), window_of(ow, g.kw, g.sw, g.pw, g.W));
    return div > 0 ? v / static_cast<float>(div) : 0.f;
  });
  if (Max) {
    load_input(p, x, bw, xs);
    __syncthreads();
    for (int i = threadIdx.x; i < bw.np * outs; i += blockDim.x) {
      const int q = static_cast<int>(p.by_out.div(i)), r = i - q * p.out_cap;
      const int oh = rows.o0 + static_cast<int>(p.by_out_w.div(r)), ow = r - (oh - rows.o0) * p.OW;
      const Window wh = window_of(oh, g.kh, g.sh, g.ph, g.H), ww = window_of(ow, g.kw, g.sw, g.pw, g.W);
      const float* staged = xs + q * p.in_cap - rows.x0 * p.wr;  // indexed by global row
      // As argmax_kernel, in staged coordinates (h - x0) * wr + w.
      float best = -INFINITY;
      int where = wh.lo < wh.hi && ww.lo < ww.hi ? (wh.lo - rows.x0) * p.wr + ww.lo : -1;
      for (int h = wh.lo; h < wh.hi; ++h)
        for (int w = ww.lo; w < ww.hi; ++w) {
          const float e = staged[h * p.wr + w];
          if (e > best || e != e) {
            best = e;
            where = (h - rows.x0) * p.wr + w;
          }
        }
      arg[i] = where;
    }
  }
  __syncthreads();
  const int hw = p.dh * p.dw, elems = (rows.h1 - rows.h0) * p.dw;
  for (int i = threadIdx.x; i < bw.np * elems; i += blockDim.x) {
    const int q = static_cast<int>(p.by_plane.div(i)), r = i - q * hw;
    const int h = rows.h0 + static_cast<int>(p.by_w.div(r)), w = r - (h - rows.h0) * p.dw;
    float acc = 0.f;
    // Max pooling: an element outside [0, hr) x [0, wr) is in no window.
    if (!Max || (h < p.hr && w < p.wr)) {
      int h0, h1, w0, w1;
      outputs_over(h, g.kh, g.sh, g.by_sh, g.ph, 0, p.OH, h0, h1);
      outputs_over(w, g.kw, g.sw, g.by_sw, g.pw, 0, p.OW, w0, w1);
      const int self = (h - rows.x0) * p.wr + w;
      for (int oh = h0; oh <= h1; ++oh)
        for (int ow = w0; ow <= w1; ++ow) {
          const int o = q * p.out_cap + (oh - rows.o0) * p.OW + ow;
          if (!Max || arg[o] == self) acc += dys[o];
        }
    }
    int n, c;
    plane_nc(p, bw.first, q, n, c);
    float& o = dx.at(n, c, h, w);
    o = accumulate ? o + acc : acc;
  }
}

/// Floats of shared memory a plane needs: forward, the input; backward, dy, and for max pooling
/// the input and the windows' maxima.
int64_t forward_plane_floats(int64_t in, int64_t) { return in; }
int64_t max_backward_plane_floats(int64_t in, int64_t out) { return in + 2 * out; }
int64_t avg_backward_plane_floats(int64_t, int64_t out) { return out; }

/// Calls launch(I{}) with 32-bit indices when every view fits them, else 64-bit, and checks the
/// launch.
template <typename F>
void with_index(Context& ctx, std::initializer_list<const View*> views, F&& launch) {
  bool fits = true;
  for (const View* v : views) fits = fits && small(*v);
  if (fits)
    launch(uint32_t{});
  else
    launch(int64_t{});
  FFRT_LAUNCHED(&ctx);
}

}  // namespace

void pool2d_forward(Context& ctx, const Pool2dAttrs& a, Act act, const View& x, const View& y) {
  const Geom g = geometry("pool2d_forward: x and y must be 4-D f32 views", a, x, y);
  if (y.volume() == 0) return;
  require(holds_input(x, g, y.lo[0], y.hi(0), y.lo[1], y.hi(1), y.lo[2], y.hi(2), y.lo[3], y.hi(3)),
          "pool2d_forward: x does not hold the input box y's box needs");
  const Dims d = dims_of(g);
  // Whole planes in shared memory pay where windows overlap much (each input read by 4 or more):
  // on an H200, Inception-v3's 3x3 stride-1 average pools took 0.31 ms that way against 0.42 in
  // the general kernel; 3x3 stride-2 max pools (2.25 reads each) 0.18 against 0.16.
  const bool overlapping = g.kh * g.kw >= 4 * g.sh * g.sw;
  if (overlapping && whole_planes(y, y.full[2], y.full[3]) && small(x) && small(y)) {
    if (const auto p = planes_of(g, y.lo[0], y.hi(0), y.lo[1], y.hi(1), y.full[2], y.full[3], g.H, g.W,
                                 forward_plane_floats, false);
        p && p->out_cap == p->OH * p->OW) {
      const size_t bytes = plane_block_bytes(*p, forward_plane_floats(p->in_cap, p->out_cap));
      cuda::with_act(act, [&](auto actc) {
        constexpr Act A = decltype(actc)::value;
        if (a.max)
          plane_forward_kernel<A, true><<<plane_blocks(*p), cuda::kThreads, bytes, ctx.stream>>>(
              box_of<uint32_t>(x), box_of<uint32_t>(y), d, *p);
        else
          plane_forward_kernel<A, false><<<plane_blocks(*p), cuda::kThreads, bytes, ctx.stream>>>(
              box_of<uint32_t>(x), box_of<uint32_t>(y), d, *p);
      });
      FFRT_LAUNCHED(&ctx);
      return;
    }
  }
  const unsigned blocks = cuda::blocks_for(y.volume());
  cuda::with_act(act, [&](auto actc) {
    constexpr Act A = decltype(actc)::value;
    with_index(ctx, {&x, &y}, [&](auto idx) {
      using I = decltype(idx);
      if (a.max)
        forward_kernel<A, true, I><<<blocks, cuda::kThreads, 0, ctx.stream>>>(box_of<I>(x), box_of<I>(y), d);
      else
        forward_kernel<A, false, I><<<blocks, cuda::kThreads, 0, ctx.stream>>>(box_of<I>(x), box_of<I>(y), d);
    });
  });
}

void pool2d_backward(Context& ctx, const Pool2dAttrs& a, const View& x, const View&, const View& dy, const View& dx,
                     bool accumulate) {
  const Geom g = geometry("pool2d_backward: dx and dy must be 4-D f32 views", a, dx, dy);
  if (dx.volume() == 0) return;
  const int64_t n0 = std::max(dy.lo[0], dx.lo[0]), n1 = std::min(dy.hi(0), dx.hi(0));
  const int64_t c0 = std::max(dy.lo[1], dx.lo[1]), c1 = std::min(dy.hi(1), dx.hi(1));
  if (n1 <= n0 || c1 <= c0 || dy.volume() == 0) {
    if (!accumulate) fill(ctx, dx, 0.f);
    return;
  }
  const Dims d = dims_of(g);
  if (a.max) {
    require(x.rank == 4 && x.dtype == DType::f32 && x.full[2] == g.H && x.full[3] == g.W,
            "pool2d_backward: x must be a 4-D f32 view of the pooling's input");
    require(holds_input(x, g, n0, n1, c0, c1, dy.lo[2], dy.hi(2), dy.lo[3], dy.hi(3)),
            "pool2d_backward: x does not hold the input box dy's box needs");
  }
  // dy's box whole planes, dx's box their images and channels from the first row and column on.
  if (whole_planes(dy, dy.full[2], dy.full[3]) && dx.lo[2] == 0 && dx.lo[3] == 0 && dx.lo[0] == n0 &&
      dx.hi(0) == n1 && dx.lo[1] == c0 && dx.hi(1) == c1 && small(dy) && small(dx) && (!a.max || small(x))) {
    const auto floats = a.max ? max_backward_plane_floats : avg_backward_plane_floats;
    if (const auto p = planes_of(g, n0, n1, c0, c1, dy.full[2], dy.full[3], dx.size[2], dx.size[3], floats, true)) {
      const size_t bytes = plane_block_bytes(*p, floats(p->in_cap, p->out_cap));
      // Average pooling reads no x (its view may be empty): dy stands in for it.
      const Box<uint32_t> xb = box_of<uint32_t>(a.max ? x : dy);
      if (a.max)
        plane_backward_kernel<true><<<plane_blocks(*p), cuda::kThreads, bytes, ctx.stream>>>(
            xb, box_of<uint32_t>(dy), box_of<uint32_t>(dx), d, *p, accumulate);
      else
        plane_backward_kernel<false><<<plane_blocks(*p), cuda::kThreads, bytes, ctx.stream>>>(
            xb, box_of<uint32_t>(dy), box_of<uint32_t>(dx), d, *p, accumulate);
      FFRT_LAUNCHED(&ctx);
      return;
    }
  }
  std::shared_ptr<std::byte> arg_mem;
  int32_t* arg = nullptr;
  if (a.max) {
    // The maxima of the windows of dy's box, over the images and channels dx shares with it.
    View box = dy;
    box.lo[0] = n0, box.size[0] = n1 - n0, box.lo[1] = c0, box.size[1] = c1 - c0;
    arg_mem = allocate(ctx, static_cast<size_t>(box.volume()) * sizeof(int32_t), false);  // argmax_kernel writes all
    arg = reinterpret_cast<int32_t*>(arg_mem.get());
    with_index(ctx, {&x, &box}, [&](auto idx) {
      using I = decltype(idx);
      argmax_kernel<I><<<cuda::blocks_for(box.volume()), cuda::kThreads, 0, ctx.stream>>>(box_of<I>(x),
                                                                                           box_of<I>(box), d, arg);
    });
  }
  const int in0 = static_cast<int>(n0), in1 = static_cast<int>(n1), ic0 = static_cast<int>(c0),
            ic1 = static_cast<int>(c1);
  const unsigned blocks = cuda::blocks_for(dx.volume());
  with_index(ctx, {&dy, &dx}, [&](auto idx) {
    using I = decltype(idx);
    if (a.max)
      backward_kernel<true, I><<<blocks, cuda::kThreads, 0, ctx.stream>>>(box_of<I>(dy), box_of<I>(dx), d, arg, in0,
                                                                          in1, ic0, ic1, accumulate);
    else
      backward_kernel<false, I><<<blocks, cuda::kThreads, 0, ctx.stream>>>(box_of<I>(dy), box_of<I>(dx), d, arg, in0,
                                                                           in1, ic0, ic1, accumulate);
  });
}

}  // namespace ffrt
