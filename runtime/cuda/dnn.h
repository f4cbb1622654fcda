// What the cuda backend's heavy kernel files (conv.cu, pool.cu, linear.cu) share: per-shape plans
// cached in the context, dense temporaries over boxes, and the epilogue that adds a bias and applies
// an activation in place (the activations themselves are in common.cuh).
#pragma once

#include <cuda_runtime.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "common.cuh"

namespace ffrt::cuda {

/// The largest power of two, up to 256, dividing the address: algorithms chosen for one alignment
/// may not run at a smaller one, so plans are keyed by it.
inline int alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int al = 1;
  while (al < 256 && a % (2 * static_cast<uintptr_t>(al)) == 0) al *= 2;
  return al;
}

/// A cache key built from integers.
class Key {
 public:
  explicit Key(const char* kind) : s_(kind) {}
  Key& operator<<(int64_t v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof(buf), v);
    s_.push_back(',');
    s_.append(buf, r.ptr);
    return *this;
  }
  const std::string& str() const { return s_; }

 private:
  std::string s_;
};

/// The context's plan of type T for `key`, default-constructed and set up by init(T&) on first use
/// (a plan whose init throws is not kept).
template <class T, class F>
T& cached(Context& ctx, const Key& key, F&& init) {
  auto it = ctx.plans.find(key.str());
  if (it != ctx.plans.end()) return *static_cast<T*>(it->second.get());
  auto plan = std::make_shared<T>();
  init(*plan);
  ctx.plans.emplace(key.str(), plan);
  return *plan;
}

/// A zero-filled dense temporary holding the box [lo, lo + size) of the global tensor `like`
/// belongs to (extents `like.full`); `view` addresses it in global coordinates.
struct Temp {
  std::shared_ptr<std::byte> mem;
  View view;
  Temp(Context& ctx, const View& like, const int64_t* lo, const int64_t* size) {
    view = make_view(nullptr, DType::f32, like.rank, like.full, lo, size);
    mem = allocate(ctx, static_cast<size_t>(view.volume() > 0 ? view.volume() : 1) * sizeof(float));
    view.data = mem.get();
  }
};

// ---- the bias-and-activation epilogue -------------------------------------------------------------

/// A 4-D strided block of floats: extents n, element strides s.
struct Block4 {
  float* p;
  int64_t n[4], s[4];
};

/// p[i] = act(p[i] + bias[c * bs]) over a Block4, c the coordinate along dim `bd` (bias null: no
/// bias). V elements per thread along dim 3 (V > 1: dim 3 unit-stride, every V-group aligned).
template <Act A, int V, typename I>
__global__ void bias_act_kernel(Block4 b, const float* bias, int64_t bs, int bd) {
  const I n3 = static_cast<I>(b.n[3] / V), n2 = static_cast<I>(b.n[2]), n1 = static_cast<I>(b.n[1]);
  const I total = static_cast<I>(b.n[0]) * n1 * n2 * n3;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<I>(gridDim.x) * blockDim.x) {
    I t = i;
    const I i3 = (t % n3) * V;
    t /= n3;
    const I i2 = t % n2;
    t /= n2;
    const I i1 = t % n1, i0 = t / n1;
    float* q = b.p + i0 * b.s[0] + i1 * b.s[1] + i2 * b.s[2] + i3 * b.s[3];
    const I c = bd == 0 ? i0 : bd == 1 ? i1 : bd == 2 ? i2 : i3;
    if constexpr (V == 4) {
      float4 v = *reinterpret_cast<float4*>(q);
      float add[4] = {0.f, 0.f, 0.f, 0.f};
      if (bias) {
        for (int k = 0; k < 4; ++k) add[k] = bias[(c + (bd == 3 ? k : 0)) * bs];
      }
      v.x = act_value<A>(v.x + add[0]);
      v.y = act_value<A>(v.y + add[1]);
      v.z = act_value<A>(v.z + add[2]);
      v.w = act_value<A>(v.w + add[3]);
      *reinterpret_cast<float4*>(q) = v;
    } else {
      *q = act_value<A>(*q + (bias ? bias[c * bs] : 0.f));
    }
  }
}

/// b = act(b + bias) in place (bias along dim bd, element stride bs; null: none), on ctx.stream.
inline void bias_act(Context& ctx, Act act, Block4 b, const float* bias, int64_t bs, int bd) {
  if (act == Act::none && !bias) return;
  // Merge dims 2 and 3 when they are one run (a dense image plane), unless the bias runs along them.
  if (bd < 2 && b.s[2] == b.n[3] * b.s[3]) {
    b.n[3] *= b.n[2];
    b.n[2] = 1;
  }
  const int64_t total = b.n[0] * b.n[1] * b.n[2] * b.n[3];
  if (total == 0) return;
  bool vec = b.s[3] == 1 && b.n[3] % 4 == 0 && alignment(b.p) >= 16;
  for (int d = 0; d < 3; ++d) vec = vec && (b.n[d] == 1 || b.s[d] % 4 == 0);
  with_act(act, [&](auto a) {
    constexpr Act A = decltype(a)::value;
    auto launch = [&](auto v, auto idx) {
      constexpr int V = decltype(v)::value;
      using I = decltype(idx);
      bias_act_kernel<A, V, I><<<blocks_for(total / V), kThreads, 0, ctx.stream>>>(b, bias, bs, bd);
    };
    const bool small = total < (int64_t{1} << 31);
    if (vec && small) launch(std::integral_constant<int, 4>{}, uint32_t{});
    else if (vec) launch(std::integral_constant<int, 4>{}, int64_t{});
    else if (small) launch(std::integral_constant<int, 1>{}, uint32_t{});
    else launch(std::integral_constant<int, 1>{}, int64_t{});
  });
  FFRT_LAUNCHED(&ctx);
}

}  // namespace ffrt::cuda
