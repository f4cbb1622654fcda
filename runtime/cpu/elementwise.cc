// cpu backend: element-wise kernels — activations, binary arithmetic with NumPy broadcasting, and
// dropout with a Philox mask keyed by the global element index.
//
// Every kernel walks the box of the view it writes, line by line along the last dim, and reads its
// operands through strides mapped onto that box (stride 0 along a broadcast dim), so a whole tensor
// and any part of a split op are computed by the same code, element for element. Dims that every
// operand steps through as one are merged first, so dense tensors are one long line, split over
// the threads. Gradients of broadcast operands sum dy over the part's box only: the caller reduces
// the parts' partial sums.
#include <algorithm>
#include <cmath>

#include "ffrt/philox.h"
#include "loops.h"

namespace ffrt {

namespace {

using namespace cpu;  // the shared loops and checks (loops.h)

/// An operand read over the box of a result: its buffer at the box's first element and its strides
/// along the result's dims (0 along a dim it is broadcast along or lacks).
struct Operand {
  float* p = nullptr;
  int64_t st[kMaxRank] = {};
  int rank = 0;

  /// The element at global coordinates g of the result's box `box`.
  float* at(const View& box, const int64_t* g) const {
    int64_t off = 0;
    for (int d = 0; d < rank; ++d) off += (g[d] - box.lo[d]) * st[d];
    return p + off;
  }
  /// The stride along the result's last dim.
  int64_t step() const { return rank > 0 ? st[rank - 1] : 0; }
};

/// `v` mapped onto the result box `box` (which must not be empty). With `broadcast`, v's dims align
/// with the last v.rank dims of the result and a dim of global extent 1 stretches; without, v has
/// the result's rank and extents. Throws `what` unless v's box holds everything the result's box reads.
Operand map_operand(const View& v, const View& box, bool broadcast, const char* what) {
  require(v.dtype == DType::f32, "element-wise kernels take f32 views");
  require(broadcast ? v.rank <= box.rank : v.rank == box.rank, what);
  Operand o;
  o.rank = box.rank;
  const int off = box.rank - v.rank;
  int64_t pos = 0;
  for (int i = 0; i < v.rank; ++i) {
    const int d = i + off;
    if (broadcast && v.full[i] == 1) {
      require(v.lo[i] <= 0 && v.hi(i) >= 1, what);
      pos -= v.lo[i] * v.stride[i];
    } else {
      require(v.full[i] == box.full[d] && box.lo[d] >= v.lo[i] && box.hi(d) <= v.hi(i), what);
      pos += (box.lo[d] - v.lo[i]) * v.stride[i];
      o.st[d] = v.stride[i];
    }
  }
  o.p = v.f32() + pos;
  return o;
}

/// The written view itself as an operand.
Operand self(const View& v) {
  require(v.dtype == DType::f32, "element-wise kernels take f32 views");
  Operand o;
  o.rank = v.rank;
  o.p = v.f32();
  for (int d = 0; d < v.rank; ++d) o.st[d] = v.stride[d];
  return o;
}

/// `box` with its adjacent dims merged wherever every operand in `ops` steps through them as
/// through one dim (the stride of the outer is the inner's times its extent), and dims of extent 1
/// dropped; the operands' strides are rewritten to match. The result's coordinates are relative to
/// `box` (lo 0), so dense operands are walked in one long line.
View collapse(const View& box, std::initializer_list<Operand*> ops) {
  View c;
  c.dtype = box.dtype;
  for (int d = 0; d < box.rank; ++d) {
    const int64_t e = box.size[d];
    if (e == 1) continue;
    const int k = c.rank - 1;
    bool merge = k >= 0;
    for (const Operand* o : ops) merge = merge && o->st[k] == o->st[d] * e;
    if (merge) {
      c.size[k] *= e, c.full[k] = c.size[k];
      for (Operand* o : ops) o->st[k] = o->st[d];
    } else {
      c.size[c.rank] = c.full[c.rank] = e;
      for (Operand* o : ops) o->st[c.rank] = o->st[d];
      ++c.rank;
    }
  }
  for (Operand* o : ops) o->rank = c.rank;
  return c;
}

/// The gradient of one operand of a binary op over the box of `grad`: sign * sum of dy (times
/// `other`, for mul) over the dims of dy's box the operand was broadcast along or lacks.
void operand_grad(Context& ctx, const View& grad, const View& dy, const View* other, float sign, bool accumulate,
                  const char* name) {
  require(grad.rank <= dy.rank, "binary_backward: a gradient has a higher rank than dy");
  if (grad.volume() == 0) return;
  const int r = dy.rank, off = r - grad.rank;
  // U: the region of dy read; V: the gradient's elements, in dy's coordinates (size 1 along the
  // summed dims); the summed dims, their extents and strides.
  View U = dy, V = dy;
  int nred = 0, red[kMaxRank];
  for (int d = 0; d < r; ++d) {
    const int i = d - off;
    if (i < 0 || grad.full[i] == 1) {
      red[nred++] = d;
      V.size[d] = 1;
    } else {
      U.lo[d] = V.lo[d] = grad.lo[i];
      U.size[d] = V.size[d] = grad.size[i];
    }
  }
  const Operand g = map_operand(grad, V, true, name);
  const Operand y = map_operand(dy, U, false, "binary_backward: dy does not hold the gradient's box");
  const Operand o =
      other ? map_operand(*other, U, true, "binary_backward: an operand does not hold dy's box") : Operand{};
  int64_t ext[kMaxRank], sy[kMaxRank], so[kMaxRank], total = 1;
  for (int k = 0; k < nred; ++k) {
    ext[k] = U.size[red[k]], sy[k] = y.st[red[k]], so[k] = o.st[red[k]];
    total *= ext[k];
  }
  const int64_t n = line_length(V);
  for_lines(V, threads_for(ctx, U.volume(), V.volume() / n), [&](const int64_t* gl) {
    float* gp = g.at(V, gl);
    const float* yp = y.at(U, gl);
    const float* op = other ? o.at(U, gl) : nullptr;
    // A chunk of the line at a time: sum over the broadcast dims (an odometer) into doubles, the
    // line's elements innermost.
    constexpr int64_t kChunk = 256;
    double acc[kChunk];
    for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
      const int64_t m = std::min(kChunk, n - i0);
      std::fill(acc, acc + m, 0.0);
      int64_t cnt[kMaxRank] = {}, py = i0 * y.step(), po = i0 * o.step();
      for (int64_t j = 0; j < total; ++j) {
        if (other) {
          for (int64_t i = 0; i < m; ++i) acc[i] += static_cast<double>(yp[py + i * y.step()]) * op[po + i * o.step()];
        } else {
          for (int64_t i = 0; i < m; ++i) acc[i] += yp[py + i * y.step()];
        }
        for (int k = nred - 1; k >= 0; --k) {
          py += sy[k], po += so[k];
          if (++cnt[k] < ext[k]) break;
          py -= ext[k] * sy[k], po -= ext[k] * so[k], cnt[k] = 0;
        }
      }
      for (int64_t i = 0; i < m; ++i) store(gp + (i0 + i) * g.step(), sign * static_cast<float>(acc[i]), accumulate);
    }
  });
}

/// The row-major pitches of a tensor's global extents.
void pitches(const View& v, int64_t* pitch) {
  int64_t p = 1;
  for (int d = v.rank - 1; d >= 0; --d) pitch[d] = p, p *= v.full[d];
}

/// Applies dropout's mask to src over the box of dst: dst = src * (keep ? 1/(1-rate) : 0), keep iff
/// uniform01(philox(global index, key)[0]) >= rate.
void apply_dropout(Context& ctx, float rate, uint64_t key, const View& src, const View& dst, bool accumulate,
                   const char* what) {
  require(rate >= 0.f && rate < 1.f, "dropout: rate must be in [0, 1)");
  if (dst.volume() == 0) return;
  const Operand s = map_operand(src, dst, false, what), t = self(dst);
  int64_t pitch[kMaxRank];
  pitches(dst, pitch);
  const float keep_scale = 1.f / (1.f - rate);
  const int64_t n = line_length(dst);
  for_lines(dst, threads_for(ctx, dst.volume() * 8, dst.volume() / n), [&](const int64_t* g) {
    const float* sp = s.at(dst, g);
    float* tp = t.at(dst, g);
    uint64_t index = 0;
    for (int d = 0; d < dst.rank; ++d) index += static_cast<uint64_t>(g[d] * pitch[d]);
    for (int64_t i = 0; i < n; ++i) {
      const bool keep = uniform01(philox4x32(index + i, key).v[0]) >= rate;
      store(tp + i * t.step(), sp[i * s.step()] * (keep ? keep_scale : 0.f), accumulate);
    }
  });
}

}  // namespace

void activation_forward(Context& ctx, Act act, const View& x, const View& y) {
  if (y.volume() == 0) return;
  Operand xs = map_operand(x, y, false, "activation_forward: x does not hold y's box"), ys = self(y);
  const View box = collapse(y, {&xs, &ys});
  const int64_t sx = xs.step(), sy = ys.step();
  with_act(act, [&](auto A) {
    for_segments(ctx, box, box.volume(), [&](const int64_t* g, int64_t n) {
      const float* xp = xs.at(box, g);
      float* yp = ys.at(box, g);
      if (sx == 1 && sy == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) yp[i] = act_value<decltype(A)::value>(xp[i]);
      } else {
        for (int64_t i = 0; i < n; ++i) yp[i * sy] = act_value<decltype(A)::value>(xp[i * sx]);
      }
    });
  });
}

void activation_backward(Context& ctx, Act act, const View& x, const View& y, const View& dy, const View& dx,
                         bool accumulate) {
  if (dx.volume() == 0) return;
  const bool needs_x = act == Act::gelu, needs_y = act == Act::relu || act == Act::sigmoid || act == Act::tanh;
  // The unused one of x and y reads a zero through stride 0.
  static const float zero = 0.f;
  Operand xs = needs_x ? map_operand(x, dx, false, "activation_backward: x does not hold dx's box") : Operand{};
  Operand ys = needs_y ? map_operand(y, dx, false, "activation_backward: y does not hold dx's box") : Operand{};
  if (!needs_x) xs.p = const_cast<float*>(&zero);
  if (!needs_y) ys.p = const_cast<float*>(&zero);
  Operand dys = map_operand(dy, dx, false, "activation_backward: dy does not hold dx's box"), dxs = self(dx);
  const View box = collapse(dx, {&xs, &ys, &dys, &dxs});
  const int64_t sx = xs.step(), sy = ys.step(), sd = dys.step(), so = dxs.step();
  with_act(act, [&](auto A) {
    constexpr Act a = decltype(A)::value;
    for_segments(ctx, box, box.volume(), [&](const int64_t* g, int64_t n) {
      const float* xp = xs.at(box, g);
      const float* yp = ys.at(box, g);
      const float* dyp = dys.at(box, g);
      float* dxp = dxs.at(box, g);
      if (sd == 1 && so == 1 && (sx == 1 || !needs_x) && (sy == 1 || !needs_y)) {
        // Dense: x or y (whichever is read) steps by one, the other reads the zero.
        constexpr int64_t ux = a == Act::gelu ? 1 : 0, uy = a == Act::gelu || a == Act::none ? 0 : 1;
        if (accumulate) {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) dxp[i] += dyp[i] * act_derivative<a>(xp[i * ux], yp[i * uy]);
        } else {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) dxp[i] = dyp[i] * act_derivative<a>(xp[i * ux], yp[i * uy]);
        }
      } else {
        for (int64_t i = 0; i < n; ++i)
          store(dxp + i * so, dyp[i * sd] * act_derivative<a>(xp[i * sx], yp[i * sy]), accumulate);
      }
    });
  });
}

void binary_forward(Context& ctx, Binary op, const View& a, const View& b, const View& y) {
  if (y.volume() == 0) return;
  Operand as = map_operand(a, y, true, "binary_forward: a does not hold what y's box needs");
  Operand bs = map_operand(b, y, true, "binary_forward: b does not hold what y's box needs");
  Operand ys = self(y);
  const View box = collapse(y, {&as, &bs, &ys});
  const int64_t sa = as.step(), sb = bs.step(), sy = ys.step();
  for_segments(ctx, box, box.volume(), [&](const int64_t* g, int64_t n) {
    const float *ap = as.at(box, g), *bp = bs.at(box, g);
    float* yp = ys.at(box, g);
    switch (op) {
      case Binary::add:
        for (int64_t i = 0; i < n; ++i) yp[i * sy] = ap[i * sa] + bp[i * sb];
        break;
      case Binary::sub:
        for (int64_t i = 0; i < n; ++i) yp[i * sy] = ap[i * sa] - bp[i * sb];
        break;
      case Binary::mul:
        for (int64_t i = 0; i < n; ++i) yp[i * sy] = ap[i * sa] * bp[i * sb];
        break;
    }
  });
}

void binary_backward(Context& ctx, Binary op, const View& a, const View& b, const View& dy, const View* da,
                     const View* db, bool accumulate) {
  const bool mul = op == Binary::mul;
  if (da) operand_grad(ctx, *da, dy, mul ? &b : nullptr, 1.f, accumulate, "binary_backward: da does not fit dy");
  if (db) {
    operand_grad(ctx, *db, dy, mul ? &a : nullptr, op == Binary::sub ? -1.f : 1.f, accumulate,
                 "binary_backward: db does not fit dy");
  }
}

void dropout_forward(Context& ctx, float rate, uint64_t key, const View& x, const View& y) {
  apply_dropout(ctx, rate, key, x, y, false, "dropout_forward: x does not hold y's box");
}

void dropout_backward(Context& ctx, float rate, uint64_t key, const View& dy, const View& dx, bool accumulate) {
  apply_dropout(ctx, rate, key, dy, dx, accumulate, "dropout_backward: dy does not hold dx's box");
}

}  // namespace ffrt
