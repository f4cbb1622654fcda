// cpu backend: layout kernels — copy or accumulate between boxes of one tensor (pack, unpack,
// local slices), copy between tensors by global row-major element index (reshape, flat), fill and
// scale.
//
// These move elements without arithmetic beyond the optional add, over strided views (any layout,
// e.g. a permuted one), f32 or i64, and f64 (batch-norm statistics) but for scale, which is f32 only.
// The loops walk the destination's box line by line along its last dim, split over threads when
// large.
#include <algorithm>
#include <atomic>
#include <string>

#include "loops.h"

namespace ffrt {

namespace {

using namespace cpu;  // the shared loops and checks (loops.h)

/// A rank-0 view as a rank-1 view of one element (so that every box has a last dim).
View with_last_dim(const View& v) {
  if (v.rank > 0) return v;
  View r = v;
  r.rank = 1;
  r.lo[0] = 0, r.size[0] = 1, r.stride[0] = 1, r.full[0] = 1;
  return r;
}

/// dst[i * ds] (+)= src[i * ss] for i < n.
template <typename T>
inline void move_line(const T* src, int64_t ss, T* dst, int64_t ds, int64_t n, bool accumulate) {
  if (accumulate) {
    for (int64_t i = 0; i < n; ++i) dst[i * ds] += src[i * ss];
  } else if (ss == 1 && ds == 1) {
    std::copy(src, src + n, dst);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i * ds] = src[i * ss];
  }
}

template <typename T>
void copy_box_as(Context& ctx, const View& src, const View& dst, const View& box, bool accumulate) {
  const int last = box.rank - 1;
  const int64_t n = box.size[last], ss = src.stride[last], ds = dst.stride[last];
  for_lines(ctx, box, [&](const int64_t* g) {
    move_line(static_cast<const T*>(src.data) + src.offset_of(g), ss, static_cast<T*>(dst.data) + dst.offset_of(g), ds,
              n, accumulate);
  });
}

/// Element i of dst's tensor gets element i of src's tensor, over the elements of dst's box that
/// src's box holds.
template <typename T>
void reshape_copy_as(Context& ctx, const View& src, const View& dst, bool accumulate) {
  const int sl = src.rank - 1, dl = dst.rank - 1;
  int64_t pitch[kMaxRank];  // dst's row-major pitches
  for (int64_t d = dl, p = 1; d >= 0; --d) pitch[d] = p, p *= dst.full[d];
  for_lines(ctx, dst, [&](const int64_t* g) {
    int64_t flat = 0;
    for (int d = 0; d <= dl; ++d) flat += g[d] * pitch[d];
    int64_t s[kMaxRank];  // src's global coordinates of element `flat`
    for (int d = sl; d >= 0; --d) s[d] = flat % src.full[d], flat /= src.full[d];
    T* out = static_cast<T*>(dst.data) + dst.offset_of(g);
    // Copy the line in segments that run along src's last dim, each clipped to src's box.
    for (int64_t done = 0, n = dst.size[dl]; done < n;) {
      const int64_t len = std::min(n - done, src.full[sl] - s[sl]);
      bool rows = true;
      for (int d = 0; d < sl; ++d) rows = rows && s[d] >= src.lo[d] && s[d] < src.hi(d);
      const int64_t lo = std::max(s[sl], src.lo[sl]), hi = std::min(s[sl] + len, src.hi(sl));
      if (rows && lo < hi) {
        int64_t at[kMaxRank];
        std::copy(s, s + sl + 1, at);
        at[sl] = lo;
        move_line(static_cast<const T*>(src.data) + src.offset_of(at), src.stride[sl],
                  out + (done + lo - s[sl]) * dst.stride[dl], dst.stride[dl], hi - lo, accumulate);
      }
      done += len;
      s[sl] += len;
      for (int d = sl; d > 0 && s[d] == src.full[d]; --d) s[d] = 0, ++s[d - 1];
    }
  });
}

/// Whether v's box is its whole tensor, stored densely row-major.
bool whole_dense(const View& v) {
  for (int d = 0; d < v.rank; ++d)
    if (v.lo[d] != 0 || v.size[d] != v.full[d]) return false;
  return v.contiguous();
}

/// dst (+)= src over n dense elements, split over threads when large.
template <typename T>
void move_flat(Context& ctx, const View& src, const View& dst, int64_t n, bool accumulate) {
  const T* s = static_cast<const T*>(src.data);
  T* d = static_cast<T*>(dst.data);
  for_range(ctx, n, n,
            [&](int64_t begin, int64_t end) { move_line(s + begin, 1, d + begin, 1, end - begin, accumulate); });
}

template <typename T>
void fill_as(Context& ctx, const View& v, T value) {
  if (v.contiguous()) {  // one dense run
    T* p = static_cast<T*>(v.data);
    for_range(ctx, v.volume(), v.volume(), [&](int64_t begin, int64_t end) { std::fill(p + begin, p + end, value); });
    return;
  }
  const int last = v.rank - 1;
  const int64_t n = v.size[last], st = v.stride[last];
  for_lines(ctx, v, [&](const int64_t* g) {
    T* p = static_cast<T*>(v.data) + v.offset_of(g);
    for (int64_t i = 0; i < n; ++i) p[i * st] = value;
  });
}

/// Calls f(T{}) with T the element type of `dtype` (float, int64_t or double).
template <typename F>
void dispatch(DType dtype, const char* what, F&& f) {
  switch (dtype) {
    case DType::f32: return f(float{});
    case DType::i64: return f(int64_t{});
    case DType::f64: return f(double{});
  }
  throw Error(std::string(what) + ": unknown dtype");
}

}  // namespace

void copy_box(Context& ctx, const View& src_in, const View& dst_in, bool accumulate) {
  require(src_in.dtype == dst_in.dtype, "copy_box: src and dst differ in type");
  require(src_in.rank == dst_in.rank, "copy_box: src and dst differ in rank");
  for (int d = 0; d < src_in.rank; ++d)
    require(src_in.full[d] == dst_in.full[d], "copy_box: src and dst differ in shape");
  const View src = with_last_dim(src_in), dst = with_last_dim(dst_in);
  View box = dst;  // the intersection of the two boxes
  for (int d = 0; d < box.rank; ++d) {
    box.lo[d] = std::max(src.lo[d], dst.lo[d]);
    box.size[d] = std::max<int64_t>(0, std::min(src.hi(d), dst.hi(d)) - box.lo[d]);
  }
  if (box.volume() == 0) return;
  dispatch(dst.dtype, "copy_box",
           [&](auto t) { copy_box_as<decltype(t)>(ctx, src, dst, box, accumulate); });
}

void reshape_copy(Context& ctx, const View& src_in, const View& dst_in, bool accumulate) {
  require(src_in.dtype == dst_in.dtype, "reshape_copy: src and dst differ in type");
  const View src = with_last_dim(src_in), dst = with_last_dim(dst_in);
  int64_t ns = 1, nd = 1;
  for (int d = 0; d < src.rank; ++d) ns *= src.full[d];
  for (int d = 0; d < dst.rank; ++d) nd *= dst.full[d];
  require(ns == nd, "reshape_copy: src and dst tensors differ in element count");
  if (dst.volume() == 0) return;
  if (whole_dense(src) && whole_dense(dst)) {  // element i is element i: one flat run
    dispatch(dst.dtype, "reshape_copy", [&](auto t) { move_flat<decltype(t)>(ctx, src, dst, nd, accumulate); });
    return;
  }
  dispatch(dst.dtype, "reshape_copy", [&](auto t) { reshape_copy_as<decltype(t)>(ctx, src, dst, accumulate); });
}

void fill(Context& ctx, const View& v, float value) {
  const View w = with_last_dim(v);
  dispatch(w.dtype, "fill", [&](auto t) { fill_as<decltype(t)>(ctx, w, static_cast<decltype(t)>(value)); });
}

void scale(Context& ctx, const View& v, float factor) {
  require(v.dtype == DType::f32, "scale: v must be an f32 view");
  const View w = with_last_dim(v);
  const int last = w.rank - 1;
  const int64_t n = w.size[last], st = w.stride[last];
  for_lines(ctx, w, [&](const int64_t* g) {
    float* p = w.f32() + w.offset_of(g);
    for (int64_t i = 0; i < n; ++i) p[i * st] *= factor;
  });
}

}  // namespace ffrt
