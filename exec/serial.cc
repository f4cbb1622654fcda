// The serial executor.
#include "exec/serial.h"

#include <algorithm>

#include "ffrt/philox.h"
#include "ir/op_table.h"
#include "passes/add_loss.h"
#include "passes/autodiff.h"

namespace ffc {

namespace {

ffrt::Init rt_init(Init i) {
  switch (i) {
    case Init::zeros: return ffrt::Init::zeros;
    case Init::ones: return ffrt::Init::ones;
    case Init::uniform_fan_in: return ffrt::Init::uniform_fan_in;
    case Init::normal: return ffrt::Init::normal;
  }
  return ffrt::Init::zeros;
}

}  // namespace

int64_t synthetic_classes(const Graph& g, const Op& input) {
  int64_t classes = 0;
  auto readers = g.consumers();
  for (int r : readers[input.outputs[0]]) {
    const Op& op = g.ops[r];
    int64_t c = 0;
    if (op.kind == OpKind::embedding) c = op.attr_int("num_embeddings");
    if (op.kind == OpKind::softmax_cross_entropy) c = g.type(op.inputs[0]).shape.back().value;
    if (c > 0) classes = classes ? std::min(classes, c) : c;
  }
  return classes ? classes : 2;
}

SerialTrainer::SerialTrainer(const Graph& g, const TrainOptions& opts)
    : g_(g), opts_(opts), ctx_(ffrt::make_context({opts.threads, 0})) {
  loss_op_ = find_loss(g_);
  FFC_CHECK(loss_op_ >= 0);
  values_.resize(g_.tensors.size());
  grads_.resize(g_.tensors.size());
  saved_.resize(g_.ops.size());
  stats_.resize(g_.ops.size());
  descs_ = op_descs(g_);
  op_params_.resize(g_.ops.size());
  for (size_t t = 0; t < g_.tensors.size(); ++t)
    values_[t] = HostTensor(rt_dtype(g_.type(t).dtype), bind_shape(g_.type(t).shape, opts_.batch));
  for (size_t i = 0; i < g_.ops.size(); ++i) {
    const Op& op = g_.ops[i];
    BoundOp bound = bind_op(g_, op, opts_.batch);
    for (const auto& s : op_saved_extents(bound)) saved_[i].emplace_back(ffrt::DType::f32, s);
    if (op.info().split_statistics) stats_[i] = HostTensor(ffrt::DType::f64, {2, bound.out[0][1]});
    std::vector<ParamSpec> specs = op_params(g_, op);
    for (size_t p = 0; p < specs.size(); ++p) {
      ParamSlot slot;
      slot.op = static_cast<int>(i);
      slot.index = static_cast<int>(p);
      slot.name = op.param_names.empty() ? fmt::format("{}.{}", op.name, specs[p].name) : op.param_names[p];
      slot.trainable = specs[p].trainable;
      slot.value = HostTensor(ffrt::DType::f32, bind_shape(specs[p].shape, opts_.batch));
      init_param_block(*ctx_, specs[p], slot.name, opts_.seed, slot.value.view());
      if (slot.trainable) slot.grad = HostTensor(ffrt::DType::f32, slot.value.shape);
      op_params_[i].push_back(static_cast<int>(params_.size()));
      params_.push_back(std::move(slot));
    }
  }
  compute_needs_grad();
}

SerialTrainer::~SerialTrainer() = default;

void SerialTrainer::set_input_grads(bool on) {
  input_grads_ = on;
  compute_needs_grad();
}

void SerialTrainer::compute_needs_grad() {
  needs_grad_ = autodiff(g_, input_grads_).needs_grad;
  for (size_t t = 0; t < needs_grad_.size(); ++t)
    if (needs_grad_[t] && grads_[t].bytes.empty()) grads_[t] = HostTensor(ffrt::DType::f32, values_[t].shape);
}

void fill_input(ffrt::Context& ctx, const Graph& g, const Op& op, int64_t step, int64_t batch, uint64_t seed,
                const InputSource& source, HostTensor& t) {
  if (source && source(op, step, t)) return;
  // Synthetic sample s of the stream is the same whatever the batch split: index it globally.
  std::vector<int64_t> lo(t.shape.size(), 0), full = t.shape;
  if (!lo.empty()) {
    lo[0] = step * batch;
    full[0] = lo[0] + t.shape[0];
  }
  int64_t classes = t.dtype == ffrt::DType::i64 ? synthetic_classes(g, op) : 0;
  ffrt::fill_synthetic(ctx, ffrt::key_of(op.name.c_str(), seed), classes, box_view(t, lo, full));
}

void init_param_block(ffrt::Context& ctx, const ParamSpec& spec, const std::string& name, uint64_t seed,
                      const ffrt::View& v) {
  ffrt::init_param(ctx, rt_init(spec.init), spec.fan_in, ffrt::key_of(name.c_str(), seed), v);
}

void optimizer_step(ffrt::Context& ctx, const TrainOptions& opts, int64_t step_count, bool first, const ffrt::View& w,
                    const ffrt::View& g, const ffrt::View* state1, const ffrt::View* state2) {
  if (opts.optimizer == OptimizerKind::sgd) {
    ffrt::SgdAttrs a;
    a.lr = opts.lr;
    a.momentum = opts.momentum;
    a.weight_decay = opts.weight_decay;
    a.nesterov = opts.nesterov;
    FFC_CHECK(a.momentum == 0.f || state1);
    ffrt::sgd_step(ctx, a, w, g, a.momentum != 0.f ? state1 : nullptr, first);
    return;
  }
  ffrt::AdamAttrs a;
  a.lr = opts.lr;
  a.beta1 = opts.beta1;
  a.beta2 = opts.beta2;
  a.eps = opts.eps;
  a.weight_decay = opts.weight_decay;
  a.decoupled = opts.optimizer == OptimizerKind::adamw;
  a.step = step_count;
  FFC_CHECK(state1 && state2);
  ffrt::adam_step(ctx, a, w, g, *state1, *state2);
}

void SerialTrainer::fill_inputs(int64_t step) {
  for (const Op& op : g_.ops)
    if (op.kind == OpKind::input) fill_input(*ctx_, g_, op, step, opts_.batch, opts_.seed, source_, values_[op.outputs[0]]);
}

OpViews SerialTrainer::views_for(int i, bool backward) {
  const Op& op = g_.ops[i];
  OpViews v;
  for (TensorId t : op.inputs) v.in.push_back(values_[t].view());
  for (TensorId t : op.outputs) v.out.push_back(values_[t].view());
  for (int p : op_params_[i]) v.params.push_back(params_[p].value.view());
  for (HostTensor& s : saved_[i]) v.saved.push_back(s.view());
  if (!stats_[i].bytes.empty()) v.stats = stats_[i].view();
  if (backward) {
    for (TensorId t : op.outputs) v.dout.push_back(grads_[t].view());
    for (TensorId t : op.inputs) v.din.push_back(needs_grad_[t] ? std::optional<ffrt::View>(grads_[t].view()) : std::nullopt);
    for (int p : op_params_[i])
      v.dparams.push_back(params_[p].trainable ? std::optional<ffrt::View>(params_[p].grad.view()) : std::nullopt);
  }
  return v;
}

float SerialTrainer::forward(int64_t step, bool training) {
  StepInfo info{opts_.seed, step, training};
  fill_inputs(step);
  for (size_t i = 0; i < g_.ops.size(); ++i) {
    OpViews v = views_for(static_cast<int>(i), false);
    ffrt::op_run_forward(*ctx_, descs_[i], info, v);
  }
  return values_[g_.ops[loss_op_].outputs[0]].f32()[0];
}

float SerialTrainer::forward_backward(int64_t step) {
  StepInfo info{opts_.seed, step, true};
  float value = forward(step, true);
  TensorId loss = g_.ops[loss_op_].outputs[0];

  for (size_t t = 0; t < grads_.size(); ++t)
    if (needs_grad_[t]) ffrt::fill(*ctx_, grads_[t].view(), 0.f);
  for (ParamSlot& p : params_)
    if (p.trainable) ffrt::fill(*ctx_, p.grad.view(), 0.f);
  FFC_CHECK(needs_grad_[loss] || params_.empty());
  if (!needs_grad_[loss]) return value;
  grads_[loss].f32()[0] = 1.f;

  for (int i = loss_op_; i >= 0; --i) {
    const Op& op = g_.ops[i];
    bool wanted = false;
    for (TensorId t : op.outputs) wanted = wanted || needs_grad_[t];
    if (!wanted || op.kind == OpKind::input) continue;
    OpViews v = views_for(i, true);
    ffrt::op_run_backward(*ctx_, descs_[i], info, v);
  }
  return value;
}

void SerialTrainer::update() {
  ++optimizer_steps_;
  for (ParamSlot& p : params_) {
    if (!p.trainable) continue;
    const bool momentum = opts_.optimizer == OptimizerKind::sgd && opts_.momentum != 0.f;
    const bool adam = opts_.optimizer != OptimizerKind::sgd;
    if ((momentum || adam) && p.buf1.bytes.empty()) p.buf1 = HostTensor(ffrt::DType::f32, p.value.shape);
    if (adam && p.buf2.bytes.empty()) p.buf2 = HostTensor(ffrt::DType::f32, p.value.shape);
    ffrt::View b1 = p.buf1.bytes.empty() ? ffrt::View{} : p.buf1.view();
    ffrt::View b2 = p.buf2.bytes.empty() ? ffrt::View{} : p.buf2.view();
    optimizer_step(*ctx_, opts_, optimizer_steps_, !p.has_history, p.value.view(), p.grad.view(),
                   p.buf1.bytes.empty() ? nullptr : &b1, p.buf2.bytes.empty() ? nullptr : &b2);
    p.has_history = true;
  }
}

float SerialTrainer::train_step(int64_t step) {
  float loss = forward_backward(step);
  update();
  return loss;
}

}  // namespace ffc
