// Equivalence checking.
#include "exec/verify.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include "exec/emulator.h"
#include "ir/op_table.h"

namespace ffc {

void Worst::see(double d, const std::string& w) {
  if (d > diff || (std::isnan(d) && !std::isnan(diff))) {
    diff = d;
    where = w;
  }
}

namespace {

double max_abs(const HostTensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, static_cast<double>(std::abs(t.f32()[i])));
  return m;
}

/// max |part - serial| over the part's box, relative to `scale`.
double compare(ffrt::Context& ctx, const ffrt::View& part, HostTensor& serial, double scale) {
  std::vector<int64_t> lo(part.lo, part.lo + part.rank), size(part.size, part.size + part.rank),
      full(part.full, part.full + part.rank);
  HostTensor a(ffrt::DType::f32, size), b(ffrt::DType::f32, size);
  ffrt::copy_box(ctx, part, box_view(a, lo, full), false);
  ffrt::copy_box(ctx, serial.view(), box_view(b, lo, full), false);
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double d = std::abs(static_cast<double>(a.f32()[i]) - b.f32()[i]);
    if (std::isnan(d)) return d;
    m = std::max(m, d);
  }
  return m / std::max(scale, 1e-30);
}

ParamSlot& serial_slot(SerialTrainer& serial, const ParamInfo& info) {
  for (ParamSlot& p : serial.params())
    if (p.op == info.op && p.index == info.index) return p;
  FFC_INTERNAL_ERROR("no serial parameter {}", info.name);
}

}  // namespace

std::string VerifyReport::summary(double tolerance, double grad_tolerance) const {
  std::string s = tolerance == grad_tolerance
                      ? fmt::format("largest relative difference (tolerance {:g}):\n", tolerance)
                      : fmt::format("largest relative difference (tolerance {:g}; gradients and weights {:g}):\n",
                                    tolerance, grad_tolerance);
  auto line = [&](const char* what, const Worst& w) {
    s += fmt::format("  {:<12} {:.3g}{}{}\n", what, w.diff, w.where.empty() ? "" : " at ", w.where);
  };
  line("loss", loss);
  line("activations", activations);
  line("gradients", gradients);
  line("weights", weights);
  if (!ok && !first_difference.empty()) s += fmt::format("first difference: {}\n", first_difference);
  s += ok ? "PASS\n" : "FAIL\n";
  return s;
}

VerifyReport verify_equivalence(const Graph& graph, const Program& prog, const VerifyOptions& opts) {
  VerifyReport rep;
  SerialTrainer serial(graph, opts.train);
  Emulator emu(graph, prog, opts.train);
  if (opts.source) {
    serial.set_input_source(opts.source);
    emu.set_input_source(opts.source);
  }
  auto ctx = ffrt::make_context({1, 0});
  std::vector<double> scale(graph.tensors.size(), -1);
  std::vector<double> grad_scale(prog.params.size(), 0);
  int64_t step = 0;
  emu.set_hook([&](int rank, const Instr& in, bool before) {
    if (!before && in.kind == InstrKind::forward && !graph.ops[in.op].info().partial_output) {
      const Op& op = graph.ops[in.op];
      for (size_t j = 0; j < in.out.size(); ++j) {
        const TensorId tid = op.outputs[j];
        if (graph.type(tid).dtype != DType::f32) continue;
        HostTensor& ref = serial.tensor(tid);
        if (scale[tid] < 0) scale[tid] = max_abs(ref);
        double d = compare(*ctx, emu.view(rank, in.out[j]), ref, scale[tid]);
        std::string where = fmt::format("op '{}' part {} (rank {}): tensor '{}' at step {}", op.name, in.part, rank,
                                        graph.tensors[tid].name, step + 1);
        rep.activations.see(d, where);
        if (rep.first_difference.empty() && !(d <= opts.tolerance)) rep.first_difference = where;
      }
    }
    if (before && in.kind == InstrKind::update) {
      const ParamInfo& info = prog.params[in.param];
      double d = compare(*ctx, emu.view(rank, in.grad), serial_slot(serial, info).grad, grad_scale[in.param]);
      std::string where = fmt::format("gradient of '{}' on rank {} at step {}", info.name, rank, step + 1);
      rep.gradients.see(d, where);
      if (rep.first_difference.empty() && !(d <= opts.grad_tolerance)) rep.first_difference = where;
    }
  });

  for (int64_t k = 0; k < opts.steps; ++k) {
    step = k;
    std::fill(scale.begin(), scale.end(), -1);
    float ls = serial.forward_backward(k);
    // A gradient's difference is relative to the larger of its own scale and 1/1000 of the largest
    // gradient's: a gradient that is zero in exact arithmetic (the key bias of attention, a bias
    // before batch norm) is rounding noise, whose relative error means nothing.
    double largest = 0;
    for (size_t p = 0; p < prog.params.size(); ++p) {
      ParamSlot& slot = serial_slot(serial, prog.params[p]);
      grad_scale[p] = slot.trainable ? max_abs(slot.grad) : 0;
      largest = std::max(largest, grad_scale[p]);
    }
    for (double& sc : grad_scale) sc = std::max(sc, 1e-3 * largest);
    float lp = emu.run_step(k);
    serial.update();
    rep.losses.emplace_back(ls, lp);
    double dl = std::abs(static_cast<double>(ls) - lp) / std::max(std::abs(static_cast<double>(ls)), 1e-30);
    rep.loss.see(dl, fmt::format("the loss at step {}", k + 1));
    if (opts.print_steps) std::printf("step %lld: loss serial %.6f partitioned %.6f\n", static_cast<long long>(k + 1), ls, lp);
    for (size_t p = 0; p < prog.params.size(); ++p) {
      const ParamInfo& info = prog.params[p];
      float replica_diff = 0;
      HostTensor w = emu.gather_param(static_cast<int>(p), &replica_diff);
      ParamSlot& slot = serial_slot(serial, info);
      double d = compare(*ctx, w.view(), slot.value, max_abs(slot.value));
      std::string where = fmt::format("'{}' after step {}", info.name, k + 1);
      rep.weights.see(d, where);
      if (rep.first_difference.empty() && !(d <= opts.grad_tolerance)) rep.first_difference = where;
      if (replica_diff != 0.f)
        rep.weights.see(std::numeric_limits<double>::infinity(),
                        fmt::format("replicas of '{}' differ by {} after step {}", info.name, replica_diff, k + 1));
      if (opts.resync) emu.scatter_param(static_cast<int>(p), slot.value);
    }
  }
  rep.ok = rep.loss.diff <= opts.tolerance && rep.activations.diff <= opts.tolerance &&
           rep.gradients.diff <= opts.grad_tolerance && rep.weights.diff <= opts.grad_tolerance;
  for (size_t p = 0; p < prog.params.size(); ++p) rep.final_weights.push_back(emu.gather_param(static_cast<int>(p)));
  return rep;
}

}  // namespace ffc
