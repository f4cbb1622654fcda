// Optimizer steps with torch.optim's semantics (SGD, Adam, AdamW; torch 1.13's single-tensor code
// path, operation by operation, so results agree to a few ulps).
#include <charconv>
#include <cmath>
#include <cstdint>

#include "loops.h"

namespace ffrt {
namespace {

using cpu::box_inside;
using cpu::require;

/// The double a user meant by a float hyper-parameter: the shortest decimal that rounds to `x`,
/// read as a double. PyTorch computes scalars such as 1 - beta2 or lr / (1 - beta1^t) in double
/// from the Python float the user wrote (0.999, not 0.999f = 0.99900001287); doing the same keeps
/// the moments within an ulp of PyTorch's instead of 1e-5 relative away.
double widen(float x) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
  if (ec != std::errc()) return x;
  double d = x;
  std::from_chars(buf, end, d);
  return d;
}

/// Checks that a state view covers w's box.
void check_operand(const View& w, const View& x, const char* what) {
  require(x.dtype == DType::f32 && x.rank == w.rank && box_inside(w, x) && (w.volume() == 0 || x.data), what);
}

/// Calls f(offsets) for every element of w's box (views[0]): the element's offset in each of the
/// views. Rows (the last dim) are spread over the context's threads.
template <int N, typename F>
void for_each_element(Context& ctx, const View* const (&views)[N], F&& f) {
  const View& w = *views[0];
  const int r = w.rank;
  const int64_t n = cpu::line_length(w);
  cpu::for_lines(ctx, w, [&](const int64_t* g) {
    int64_t base[N], step[N], offs[N];
    for (int i = 0; i < N; ++i) {
      base[i] = views[i]->offset_of(g);
      step[i] = r > 0 ? views[i]->stride[r - 1] : 0;
    }
    for (int64_t j = 0; j < n; ++j) {
      for (int i = 0; i < N; ++i) offs[i] = base[i] + j * step[i];
      f(static_cast<const int64_t*>(offs));
    }
  });
}

}  // namespace

void sgd_step(Context& ctx, const SgdAttrs& a, const View& w, const View& g, const View* buf, bool first) {
  require(w.dtype == DType::f32 && (w.volume() == 0 || w.data), "sgd_step: w must be an f32 view");
  check_operand(w, g, "sgd_step: g must be an f32 view covering w's box");
  require(!a.nesterov || (a.momentum > 0.f && a.dampening == 0.f),
          "sgd_step: Nesterov momentum needs a momentum and zero dampening (as torch.optim.SGD)");
  const float wd = a.weight_decay, momentum = a.momentum;
  // PyTorch's alphas: Python doubles cast to the tensor's float.
  const auto neg_lr = static_cast<float>(-widen(a.lr));
  const auto damp = static_cast<float>(1.0 - widen(a.dampening));
  float* W = w.f32();
  const float* G = g.f32();
  if (momentum == 0.f) {
    const View* views[2] = {&w, &g};
    for_each_element(ctx, views, [&](const int64_t* o) {
      float d = G[o[1]];
      if (wd != 0.f) d = d + wd * W[o[0]];
      W[o[0]] = W[o[0]] + neg_lr * d;
    });
    return;
  }
  require(buf != nullptr, "sgd_step: momentum needs a buffer");
  check_operand(w, *buf, "sgd_step: buf must be an f32 view covering w's box");
  float* B = buf->f32();
  const bool nesterov = a.nesterov;
  const View* views[3] = {&w, &g, buf};
  for_each_element(ctx, views, [&](const int64_t* o) {
    float d = G[o[1]];
    if (wd != 0.f) d = d + wd * W[o[0]];
    float b = first ? d : B[o[2]] * momentum + damp * d;
    B[o[2]] = b;
    d = nesterov ? d + momentum * b : b;
    W[o[0]] = W[o[0]] + neg_lr * d;
  });
}

void adam_step(Context& ctx, const AdamAttrs& a, const View& w, const View& g, const View& m, const View& v) {
  require(w.dtype == DType::f32 && (w.volume() == 0 || w.data), "adam_step: w must be an f32 view");
  check_operand(w, g, "adam_step: g must be an f32 view covering w's box");
  check_operand(w, m, "adam_step: m must be an f32 view covering w's box");
  check_operand(w, v, "adam_step: v must be an f32 view covering w's box");
  require(a.step >= 1, "adam_step: step counts from 1");
  const double lr = widen(a.lr), beta1 = widen(a.beta1), beta2 = widen(a.beta2), wd = widen(a.weight_decay);
  const auto step = static_cast<double>(a.step);
  const double bias_correction1 = 1.0 - std::pow(beta1, step);
  const double bias_correction2 = 1.0 - std::pow(beta2, step);
  // The scalars as PyTorch hands them to its float kernels.
  const float f_beta1 = a.beta1, f_beta2 = a.beta2, f_eps = a.eps, f_wd = a.weight_decay;
  const auto one_minus_beta1 = static_cast<float>(1.0 - beta1);
  const auto one_minus_beta2 = static_cast<float>(1.0 - beta2);
  const auto neg_step_size = static_cast<float>(-(lr / bias_correction1));
  const auto bc2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const auto decay = static_cast<float>(1.0 - lr * wd);
  const bool l2 = a.weight_decay != 0.f && !a.decoupled, shrink = a.weight_decay != 0.f && a.decoupled;
  float* W = w.f32();
  const float* G = g.f32();
  float* M = m.f32();
  float* V = v.f32();
  const View* views[4] = {&w, &g, &m, &v};
  for_each_element(ctx, views, [&](const int64_t* o) {
    float p = W[o[0]];
    float d = G[o[1]];
    if (l2) d = d + f_wd * p;
    if (shrink) p = p * decay;
    const float mt = M[o[2]] * f_beta1 + one_minus_beta1 * d;
    const float vt = V[o[3]] * f_beta2 + one_minus_beta2 * d * d;  // addcmul: value * t1 * t2
    M[o[2]] = mt;
    V[o[3]] = vt;
    const float denom = std::sqrt(vt) / bc2_sqrt + f_eps;
    W[o[0]] = p + neg_step_size * mt / denom;  // addcdiv: value * t1 / t2
  });
}

}  // namespace ffrt
