// FLOPs and bytes of kernel instructions, one function per op family of the op table.
//
// A part's FLOPs follow from its operand boxes: a convolution's output part times the window of
// its weight block, a GEMM's output part times the contraction extent of its input box. A backward
// does the forward's contraction once per gradient it produces (the input's, the weight's), as the
// cuDNN and cuBLAS calls of the cuda backend do.
#include "sim/flops.h"

#include <algorithm>
#include <string_view>
#include <variant>

#include "ir/diag.h"
#include "ir/op_table.h"

namespace ffc {

namespace {

double vol(const Operand& o) { return o.present() ? static_cast<double>(o.box.volume()) : 0.0; }
double out_vol(const Instr& in) { return in.out.empty() ? 0.0 : vol(in.out[0]); }
double in_vol(const Instr& in) { return in.in.empty() ? 0.0 : vol(in.in[0]); }
bool has(const std::vector<Operand>& v, size_t i) { return i < v.size() && v[i].present(); }
int count(const std::vector<Operand>& v) {
  int n = 0;
  for (const Operand& o : v) n += o.present();
  return n;
}
bool backward(const Instr& in) { return in.kind == InstrKind::backward || in.kind == InstrKind::backward_stats; }

/// 1 when the op fuses an activation (`activation=relu` on conv2d, linear, pool2d, batch_norm).
double activation(const Op& op) {
  for (size_t i = 0; i < op.info().attrs.size(); ++i)
    if (op.info().attrs[i].name == "activation") return std::get<std::string>(op.attrs[i]) != "none" ? 1.0 : 0.0;
  return 0.0;
}

// ---- per family: FLOPs of one instruction --------------------------------------------------

double flops_io(const Op&, const Instr&) { return 0; }

double flops_nn(const Op& op, const Instr& in) {
  const double out = out_vol(in), act = activation(op) * out;
  double f = 0;  // the forward contraction
  switch (op.kind) {
    case OpKind::conv2d: {
      // Each output element sums (C/g)·kh·kw products: the weight block's extent past out_channels.
      const Box& w = in.params.at(0).box;
      f = 2 * out * static_cast<double>(w.r[1].size() * w.r[2].size() * w.r[3].size());
      break;
    }
    case OpKind::linear: f = 2 * out * static_cast<double>(in.in.at(0).box.r.back().size()); break;
    case OpKind::matmul: {
      const Box& a = in.in.at(0).box;
      const int k_dim = a.rank() - (op.attr_bool("transpose_a") ? 2 : 1);
      f = 2 * out * static_cast<double>(a.r[k_dim].size());
      break;
    }
    case OpKind::pool2d: {
      const auto& k = op.attr_ints("kernel");
      return out * static_cast<double>(k[0] * k[1]) + act;
    }
    case OpKind::embedding: return backward(in) ? out : 0.0;  // a gather; the backward adds rows
    default: FFC_INTERNAL_ERROR("flops_nn: {} is not of the nn family", op.describe());
  }
  if (!backward(in)) return f + (has(in.params, 1) ? out : 0.0) + act;
  double b = act;  // the activation's backward, then one contraction per gradient produced
  for (size_t i = 0; i < in.din.size(); ++i) b += has(in.din, i) ? f : 0.0;
  if (has(in.dparams, 0)) b += f;
  if (has(in.dparams, 1)) b += out;  // the bias gradient: a sum over the part's rows
  return b;
}

double flops_elementwise(const Op& op, const Instr& in) {
  double per = 1;  // operations per element: relu, add, sub, mul, scale
  switch (op.kind) {
    case OpKind::sigmoid:
    case OpKind::tanh: per = 4; break;
    case OpKind::gelu: per = 10; break;
    case OpKind::clip: per = 2; break;
    case OpKind::dropout: per = 4; break;  // the counter-based mask, then a multiply
    default: break;
  }
  return (backward(in) ? per + 1 : per) * out_vol(in);
}

double flops_norm(const Op& op, const Instr& in) {
  const double x = in_vol(in), act = activation(op) * x;
  switch (op.kind) {
    case OpKind::batch_norm:
      switch (in.kind) {
        case InstrKind::forward_stats: return 2 * x;       // Σx, Σx²
        case InstrKind::forward: return 4 * x + act;        // (x - mean)·istd·γ + β
        case InstrKind::backward_stats: return 4 * x + act;  // Σdy, Σdy·x̂
        default: return 4 * x;
      }
    case OpKind::layer_norm: return (backward(in) ? 12 : 8) * x;
    default: return (backward(in) ? 4 : 5) * x;  // softmax, log_softmax: max, exp, sum, divide
  }
}

double flops_layout(const Op&, const Instr&) { return 0; }  // copies only: bytes, no arithmetic

double flops_loss(const Op& op, const Instr& in) {
  const double x = in_vol(in);  // the logits (or predictions) of the part
  if (op.kind == OpKind::softmax_cross_entropy) return (backward(in) ? 3 : 5) * x;
  return (backward(in) ? 2 : 3) * x;
}

using FlopsFn = double (*)(const Op&, const Instr&);
constexpr FlopsFn kFlops[] = {
#define FFC_SIM_FLOPS(id, family) flops_##family,
    FFC_OPS(FFC_SIM_FLOPS)
#undef FFC_SIM_FLOPS
};

}  // namespace

double operand_bytes(const RankProgram& r, const Operand& o) {
  if (!o.present()) return 0;
  return static_cast<double>(o.box.volume()) * dtype_bytes(r.buffers[o.buffer].dtype);
}

int64_t run_offset(const Box& outer, const Box& inner) {
  if (inner.rank() != outer.rank()) return -1;
  // Row-major, innermost dim first: a run while every dim inside the first one `inner` cuts short
  // is whole (dims of extent 1 may sit anywhere).
  int64_t offset = 0, stride = 1, expect = 1;
  bool run = true;
  for (int d = outer.rank() - 1; d >= 0; --d) {
    if (inner.r[d].lo < outer.r[d].lo || inner.r[d].hi > outer.r[d].hi) return -1;
    offset += (inner.r[d].lo - outer.r[d].lo) * stride;
    if (inner.r[d].size() != 1 && stride != expect) run = false;
    expect *= inner.r[d].size();
    stride *= outer.r[d].size();
  }
  return run ? offset : -1;
}

bool is_contiguous(const RankProgram& r, const Operand& o) {
  return !o.present() || o.box.empty() || run_offset(r.buffers[o.buffer].box, o.box) >= 0;
}

KernelWork kernel_work(const Graph& g, const RankProgram& r, const Instr& in) {
  FFC_CHECK(is_kernel(in.kind));
  const Op& op = g.ops.at(in.op);
  KernelWork w;
  w.flops = kFlops[static_cast<int>(op.kind)](op, in);
  w.contraction = op.kind == OpKind::conv2d || op.kind == OpKind::linear || op.kind == OpKind::matmul;
  auto add = [&](const std::vector<Operand>& v, double times) {
    for (const Operand& o : v) w.bytes += times * operand_bytes(r, o);
  };
  add(in.in, 1);
  add(in.out, 1);
  add(in.params, 1);
  add(in.saved, 1);
  add(in.dout, 1);
  add(in.din, 2);  // gradients accumulate: read, add, write
  add(in.dparams, 2);
  w.bytes += operand_bytes(r, in.stats);
  if (in.kind == InstrKind::backward) w.launches = std::max(1, count(in.din) + count(in.dparams));
  return w;
}

}  // namespace ffc
