// pool2d (max and average) on the cpu: forward with a fused activation, and backward, on parts.
//
// Windows follow PyTorch exactly: max pooling ignores the padding and its backward routes each
// gradient to the first maximum of the window in row-major order (a NaN counts as a maximum);
// average pooling divides by the window's extent clipped to the padded input
// (count_include_pad) or by the number of real input elements in it. With ceil_mode the output's
// global extent already holds the extra window; nothing else changes. Max pooling whose whole
// windows tile a row (stride = kernel, 2x2 or 3x3) runs those windows through vectorized loops.
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "gemm.h"

namespace ffrt {

namespace {

using cpu::require;
using cpu::Span;

/// PyTorch's output extent of a pooling window, with or without ceil_mode.
int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil_mode) {
  int64_t span = in + 2 * p - k;
  if (span < 0) return 0;
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

/// One output position's window along one dim: [lo, hi) clipped to the input, and the extent of
/// the window clipped to the padded input (PyTorch's divisor with count_include_pad).
struct Window {
  int64_t lo, hi, padded;
};

/// The windows of outputs [o0, o1).
std::vector<Window> windows(int64_t o0, int64_t o1, int64_t k, int64_t s, int64_t p, int64_t in) {
  std::vector<Window> w;
  for (int64_t o = o0; o < o1; ++o) {
    const int64_t start = o * s - p, end = std::min(start + k, in + p);
    w.push_back({std::max<int64_t>(start, 0), std::min(end, in), end - start});
  }
  return w;
}

/// PyTorch's divisor of an average-pooling window.
int64_t avg_divisor(const Pool2dAttrs& a, const Window& wh, const Window& ww) {
  if (a.count_include_pad) return wh.padded * ww.padded;
  return std::max<int64_t>(wh.hi - wh.lo, 0) * std::max<int64_t>(ww.hi - ww.lo, 0);
}

/// The input range [lo, hi) that outputs [o0, o1) read, clipped to [0, in).
void window_range(int64_t o0, int64_t o1, int64_t k, int64_t s, int64_t p, int64_t in, int64_t& lo, int64_t& hi) {
  lo = std::clamp<int64_t>(o0 * s - p, 0, in);
  hi = std::clamp<int64_t>((o1 - 1) * s - p + k, 0, in);
}

/// The maximum of a window of x: `rows` x `len` elements from p (row pitch s2, step xs), NaN if
/// any is NaN (PyTorch's rule), without branches.
inline float window_max(const float* p, int64_t rows, int64_t len, int64_t s2, int64_t xs) {
  float v = -std::numeric_limits<float>::infinity();
  bool nan = false;
  for (int64_t a = 0; a < rows; ++a) {
    for (int64_t b = 0; b < len; ++b) {
      const float e = p[a * s2 + b * xs];
      v = e > v ? e : v;
      nan |= e != e;
    }
  }
  return nan ? std::numeric_limits<float>::quiet_NaN() : v;
}

/// The first maximum of the same window (PyTorch's rule: a later element wins only when it is
/// greater, or NaN): its row-major index a * len + b in the window.
inline int64_t window_argmax(const float* p, int64_t rows, int64_t len, int64_t s2, int64_t xs) {
  float best = -std::numeric_limits<float>::infinity();
  int64_t at = 0;
  for (int64_t a = 0; a < rows; ++a) {
    for (int64_t b = 0; b < len; ++b) {
      const float e = p[a * s2 + b * xs];
      const bool take = (e > best) | (e != e);
      best = take ? e : best;
      at = take ? a * len + b : at;
    }
  }
  return at;
}

/// Calls f(a, b) for the elements of a KH x KW window, row-major, unrolled (a and b are
/// std::integral_constant).
template <int KH, int KW, typename F>
inline void for_window(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) {
    (f(std::integral_constant<int, I / KW>{}, std::integral_constant<int, I % KW>{}), ...);
  }(std::make_integer_sequence<int, KH * KW>{});
}

/// Max pooling of m KH x KW windows that tile a row (unit steps, stride KW): out[o] = the maximum
/// of the window at p + o * KW (row pitch s2), NaN if any element is NaN.
template <int KH, int KW>
void max_tiles(const float* p, int64_t s2, int64_t m, float* out) {
#pragma omp simd
  for (int64_t o = 0; o < m; ++o) {
    float v = -std::numeric_limits<float>::infinity();
    bool nan = false;
    for_window<KH, KW>([&](auto a, auto b) {
      const float e = p[a * s2 + o * KW + b];
      v = e > v ? e : v;
      nan |= e != e;
    });
    out[o] = nan ? std::numeric_limits<float>::quiet_NaN() : v;
  }
}

/// The backward of max_tiles: every element of window o of dx (at d + o * KW, row pitch ds2) gets
/// g[o] added at the window's first maximum in x (as window_argmax), +0 elsewhere.
template <int KH, int KW>
void max_tiles_backward(const float* p, int64_t s2, const float* g, int64_t m, float* d, int64_t ds2) {
#pragma omp simd
  for (int64_t o = 0; o < m; ++o) {
    // The masks are floats (and `at` a float index) so that the loop vectorizes (with
    // -fno-trapping-math, see runtime/CMakeLists.txt).
    float best = -std::numeric_limits<float>::infinity(), at = 0.f;
    for_window<KH, KW>([&](auto a, auto b) {
      const float e = p[a * s2 + o * KW + b];
      const float take = (e > best ? 1.f : 0.f) + (e != e ? 1.f : 0.f);
      best = take != 0.f ? e : best;
      at = take != 0.f ? static_cast<float>(a * KW + b) : at;
    });
    const float v = g[o];
    for_window<KH, KW>([&](auto a, auto b) {
      d[a * ds2 + o * KW + b] += at == static_cast<float>(a * KW + b) ? v : 0.f;
    });
  }
}

/// The outputs [lo, hi) (global, from o0 for ws[0]) whose windows hold all k elements and lie in the
/// input range [in_lo, in_hi): a contiguous range, possibly empty.
Span full_windows(const std::vector<Window>& ws, int64_t o0, int64_t k, int64_t in_lo, int64_t in_hi) {
  auto ok = [&](const Window& w) { return w.hi - w.lo == k && w.lo >= in_lo && w.hi <= in_hi; };
  size_t a = 0;
  while (a < ws.size() && !ok(ws[a])) ++a;
  size_t b = a;
  while (b < ws.size() && ok(ws[b])) ++b;
  return {o0 + static_cast<int64_t>(a), o0 + static_cast<int64_t>(b)};
}

/// Calls f(KH, KW) with the window extents as compile-time constants for the common small windows
/// (std::integral_constant), 0 for the others.
template <typename F>
void with_window(int64_t kh, int64_t kw, F&& f) {
  using Two = std::integral_constant<int, 2>;
  using Three = std::integral_constant<int, 3>;
  using Any = std::integral_constant<int, 0>;
  if (kh == 2 && kw == 2) return f(Two{}, Two{});
  if (kh == 3 && kw == 3) return f(Three{}, Three{});
  f(Any{}, Any{});
}

struct Geom {
  int64_t H, W;
  int64_t kh, kw, sh, sw, ph, pw;
};

Geom geometry(const char* who, const Pool2dAttrs& a, const View& x_like, const View& y_like) {
  require(x_like.rank == 4 && y_like.rank == 4 && x_like.dtype == DType::f32 && y_like.dtype == DType::f32, who);
  Geom g;
  g.H = x_like.full[2], g.W = x_like.full[3];
  g.kh = a.kernel[0], g.kw = a.kernel[1], g.sh = a.stride[0], g.sw = a.stride[1];
  g.ph = a.padding[0], g.pw = a.padding[1];
  require(g.kh >= 1 && g.kw >= 1 && g.sh >= 1 && g.sw >= 1 && g.ph >= 0 && g.pw >= 0,
          "pool2d: invalid kernel, stride or padding");
  require(x_like.full[0] == y_like.full[0] && x_like.full[1] == y_like.full[1],
          "pool2d: input and output batch or channel extents differ");
  const int64_t oh = y_like.full[2], ow = y_like.full[3];
  require((oh == pool_out(g.H, g.kh, g.sh, g.ph, false) || oh == pool_out(g.H, g.kh, g.sh, g.ph, true)) &&
              (ow == pool_out(g.W, g.kw, g.sw, g.pw, false) || ow == pool_out(g.W, g.kw, g.sw, g.pw, true)),
          "pool2d: output extents do not match the input extents and attributes");
  return g;
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

}  // namespace

void pool2d_forward(Context& ctx, const Pool2dAttrs& a, Act act, const View& x, const View& y) {
  const Geom g = geometry("pool2d_forward: x and y must be 4-D f32 views", a, x, y);
  if (y.volume() == 0) return;
  require(holds_input(x, g, y.lo[0], y.hi(0), y.lo[1], y.hi(1), y.lo[2], y.hi(2), y.lo[3], y.hi(3)),
          "pool2d_forward: x does not hold the input box y's box needs");
  const std::vector<Window> whs = windows(y.lo[2], y.hi(2), g.kh, g.sh, g.ph, g.H);
  const std::vector<Window> wws = windows(y.lo[3], y.hi(3), g.kw, g.sw, g.pw, g.W);
  const int64_t s2 = x.stride[2], xs = x.stride[3], ys = y.stride[3];
  // The outputs whose windows are whole (a row's middle) take a loop of fixed-size windows.
  const Span full = full_windows(wws, y.lo[3], g.kw, 0, g.W);
  const int threads = cpu::threads_for(ctx, y.volume() * g.kh * g.kw, y.size[0] * y.size[1]);
  with_window(g.kh, g.kw, [&](auto kh, auto kw) {
    constexpr int KH = decltype(kh)::value, KW = decltype(kw)::value;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t n = y.lo[0]; n < y.hi(0); ++n) {
      for (int64_t c = y.lo[1]; c < y.hi(1); ++c) {
        const float* plane = x.f32() + (n - x.lo[0]) * x.stride[0] + (c - x.lo[1]) * x.stride[1];
        float* out = y.f32() + (n - y.lo[0]) * y.stride[0] + (c - y.lo[1]) * y.stride[1];
        for (int64_t oh = y.lo[2]; oh < y.hi(2); ++oh) {
          const Window& wh = whs[static_cast<size_t>(oh - y.lo[2])];
          const int64_t rows = wh.hi - wh.lo;
          const float* xrow = plane + (wh.lo - x.lo[2]) * s2;
          float* orow = out + (oh - y.lo[2]) * y.stride[2];
          auto one = [&](int64_t ow) {
            const Window& ww = wws[static_cast<size_t>(ow - y.lo[3])];
            const int64_t len = ww.hi - ww.lo;
            const float* p = xrow + (ww.lo - x.lo[3]) * xs;
            float v;
            if (a.max) {
              v = window_max(p, rows, len, s2, xs);
            } else {
              float sum = 0.f;
              for (int64_t r = 0; r < rows; ++r)
                for (int64_t k = 0; k < len; ++k) sum += p[r * s2 + k * xs];
              const int64_t div = avg_divisor(a, wh, ww);
              v = div > 0 ? sum / static_cast<float>(div) : 0.f;
            }
            orow[(ow - y.lo[3]) * ys] = act == Act::none ? v : cpu::apply_act(act, v);
          };
          if (!(a.max && KH && KW && rows == KH && xs == 1 && ys == 1 && g.sw == KW && full.size() > 0)) {
            for (int64_t ow = y.lo[3]; ow < y.hi(3); ++ow) one(ow);
            continue;
          }
          for (int64_t ow = y.lo[3]; ow < full.lo; ++ow) one(ow);
          const float* p0 = xrow + (wws[static_cast<size_t>(full.lo - y.lo[3])].lo - x.lo[3]);
          float* o0 = orow + (full.lo - y.lo[3]);
          const int64_t m = full.size();
          if constexpr (KH > 0 && KW > 0) max_tiles<KH, KW>(p0, s2, m, o0);
          if (act != Act::none) cpu::bias_act(act, 0.f, o0, m, o0, 1);
          for (int64_t ow = full.hi; ow < y.hi(3); ++ow) one(ow);
        }
      }
    }
  });
}

void pool2d_backward(Context& ctx, const Pool2dAttrs& a, const View& x, const View&, const View& dy, const View& dx,
                     bool accumulate) {
  const Geom g = geometry("pool2d_backward: dx and dy must be 4-D f32 views", a, dx, dy);
  if (!accumulate) cpu::zero_box(ctx, dx);
  const int64_t n0 = std::max(dy.lo[0], dx.lo[0]), n1 = std::min(dy.hi(0), dx.hi(0));
  const int64_t c0 = std::max(dy.lo[1], dx.lo[1]), c1 = std::min(dy.hi(1), dx.hi(1));
  if (n1 <= n0 || c1 <= c0 || dy.volume() == 0 || dx.volume() == 0) return;
  if (a.max) {
    require(x.rank == 4 && x.dtype == DType::f32 && x.full[2] == g.H && x.full[3] == g.W,
            "pool2d_backward: x must be a 4-D f32 view of the pooling's input");
    require(holds_input(x, g, n0, n1, c0, c1, dy.lo[2], dy.hi(2), dy.lo[3], dy.hi(3)),
            "pool2d_backward: x does not hold the input box dy's box needs");
  }
  const std::vector<Window> whs = windows(dy.lo[2], dy.hi(2), g.kh, g.sh, g.ph, g.H);
  const std::vector<Window> wws = windows(dy.lo[3], dy.hi(3), g.kw, g.sw, g.pw, g.W);
  const int64_t s2 = a.max ? x.stride[2] : 0, xs = a.max ? x.stride[3] : 0, ds2 = dx.stride[2], ds = dx.stride[3];
  const int64_t gs = dy.stride[3];
  // Whole windows inside dx's box that tile the row (stride = kernel along w), unit steps: a loop
  // that adds to every element of each window (d at its first maximum, +0 at the others).
  const Span full = full_windows(wws, dy.lo[3], g.kw, dx.lo[3], dx.hi(3));
  const bool rows_fast = a.max && g.sw == g.kw && xs == 1 && ds == 1 && gs == 1 && full.size() > 0;
  const int threads = cpu::threads_for(ctx, dy.volume() * g.kh * g.kw, (n1 - n0) * (c1 - c0));
  with_window(g.kh, g.kw, [&](auto kh, auto kw) {
    constexpr int KH = decltype(kh)::value, KW = decltype(kw)::value;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t c = c0; c < c1; ++c) {
        const float* grad = dy.f32() + (n - dy.lo[0]) * dy.stride[0] + (c - dy.lo[1]) * dy.stride[1];
        float* out = dx.f32() + (n - dx.lo[0]) * dx.stride[0] + (c - dx.lo[1]) * dx.stride[1];
        const float* plane = a.max ? x.f32() + (n - x.lo[0]) * x.stride[0] + (c - x.lo[1]) * x.stride[1] : nullptr;
        for (int64_t oh = dy.lo[2]; oh < dy.hi(2); ++oh) {
          const Window& wh = whs[static_cast<size_t>(oh - dy.lo[2])];
          const int64_t rows = wh.hi - wh.lo;
          const float* grow = grad + (oh - dy.lo[2]) * dy.stride[2];
          const float* xrow = a.max ? plane + (wh.lo - x.lo[2]) * s2 : nullptr;
          auto one = [&](int64_t ow) {
            const Window& ww = wws[static_cast<size_t>(ow - dy.lo[3])];
            const int64_t len = ww.hi - ww.lo;
            const float d = grow[(ow - dy.lo[3]) * gs];
            if (a.max) {
              if (rows <= 0 || len <= 0) return;
              // The window's first maximum.
              const int64_t at = window_argmax(xrow + (ww.lo - x.lo[3]) * xs, rows, len, s2, xs);
              const int64_t ih = wh.lo + at / len, iw = ww.lo + at % len;
              if (ih >= dx.lo[2] && ih < dx.hi(2) && iw >= dx.lo[3] && iw < dx.hi(3))
                out[(ih - dx.lo[2]) * ds2 + (iw - dx.lo[3]) * ds] += d;
              return;
            }
            const int64_t div = avg_divisor(a, wh, ww);
            if (div <= 0) return;
            const float share = d / static_cast<float>(div);
            for (int64_t ih = std::max(wh.lo, dx.lo[2]); ih < std::min(wh.hi, dx.hi(2)); ++ih) {
              float* row = out + (ih - dx.lo[2]) * ds2;
              for (int64_t iw = std::max(ww.lo, dx.lo[3]); iw < std::min(ww.hi, dx.hi(3)); ++iw)
                row[(iw - dx.lo[3]) * ds] += share;
            }
          };
          if (!(KH && KW && rows_fast && rows == KH && wh.lo >= dx.lo[2] && wh.hi <= dx.hi(2))) {
            for (int64_t ow = dy.lo[3]; ow < dy.hi(3); ++ow) one(ow);
            continue;
          }
          for (int64_t ow = dy.lo[3]; ow < full.lo; ++ow) one(ow);
          const int64_t first = wws[static_cast<size_t>(full.lo - dy.lo[3])].lo, m = full.size();
          const float* p0 = xrow + (first - x.lo[3]);
          float* d0 = out + (wh.lo - dx.lo[2]) * ds2 + (first - dx.lo[3]);
          const float* g0 = grow + (full.lo - dy.lo[3]);
          if constexpr (KH > 0 && KW > 0) max_tiles_backward<KH, KW>(p0, s2, g0, m, d0, ds2);
          for (int64_t ow = full.hi; ow < dy.hi(3); ++ow) one(ow);
        }
      }
    }
  });
}

}  // namespace ffrt
