// The serial executor.
#include "exec/serial.h"

#include <algorithm>

#include "ffrt/philox.h"
#include "ir/op_table.h"
#include "passes/add_loss.h"

namespace ffc {

namespace {

ffrt::DType rt_dtype(DType t) { return t == DType::i64 ? ffrt::DType::i64 : ffrt::DType::f32; }

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
  op_params_.resize(g_.ops.size());
  for (size_t t = 0; t < g_.tensors.size(); ++t)
    values_[t] = HostTensor(rt_dtype(g_.type(t).dtype), bind_shape(g_.type(t).shape, opts_.batch));
  for (size_t i = 0; i < g_.ops.size(); ++i) {
    const Op& op = g_.ops[i];
    for (const auto& s : saved_shapes(bind_op(g_, op, opts_.batch))) saved_[i].emplace_back(ffrt::DType::f32, s);
    std::vector<ParamSpec> specs = op_params(g_, op);
    for (size_t p = 0; p < specs.size(); ++p) {
      ParamSlot slot;
      slot.op = static_cast<int>(i);
      slot.index = static_cast<int>(p);
      slot.name = op.param_names.empty() ? fmt::format("{}.{}", op.name, specs[p].name) : op.param_names[p];
      slot.trainable = specs[p].trainable;
      slot.value = HostTensor(ffrt::DType::f32, bind_shape(specs[p].shape, opts_.batch));
      ffrt::init_param(*ctx_, rt_init(specs[p].init), specs[p].fan_in, ffrt::key_of(slot.name.c_str(), opts_.seed),
                       slot.value.view());
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
  size_t n = g_.tensors.size();
  // Forward: a tensor depends on something trainable (or on an input whose gradient is wanted).
  std::vector<bool> depends(n, false);
  for (size_t i = 0; i < g_.ops.size(); ++i) {
    const Op& op = g_.ops[i];
    bool d = op.kind == OpKind::input && input_grads_;
    for (int p : op_params_[i]) d = d || params_[p].trainable;
    for (TensorId t : op.inputs) d = d || depends[t];
    for (TensorId t : op.outputs) depends[t] = d && g_.type(t).dtype != DType::i64;
  }
  // Backward: the loss depends on it.
  std::vector<bool> reaches(n, false);
  reaches[g_.ops[loss_op_].outputs[0]] = true;
  for (int i = static_cast<int>(g_.ops.size()) - 1; i >= 0; --i) {
    const Op& op = g_.ops[i];
    bool r = false;
    for (TensorId t : op.outputs) r = r || reaches[t];
    if (r)
      for (TensorId t : op.inputs) reaches[t] = true;
  }
  needs_grad_.assign(n, false);
  for (size_t t = 0; t < n; ++t) {
    needs_grad_[t] = depends[t] && reaches[t];
    if (needs_grad_[t] && grads_[t].bytes.empty())
      grads_[t] = HostTensor(ffrt::DType::f32, values_[t].shape);
  }
}

void SerialTrainer::fill_inputs(int64_t step) {
  for (const Op& op : g_.ops) {
    if (op.kind != OpKind::input) continue;
    HostTensor& t = values_[op.outputs[0]];
    if (source_ && source_(op, step, t)) continue;
    // Synthetic sample s of the stream is the same whatever the batch split: index it globally.
    std::vector<int64_t> lo(t.shape.size(), 0), full = t.shape;
    if (!lo.empty()) {
      lo[0] = step * opts_.batch;
      full[0] = lo[0] + t.shape[0];
    }
    int64_t classes = t.dtype == ffrt::DType::i64 ? synthetic_classes(g_, op) : 0;
    ffrt::fill_synthetic(*ctx_, ffrt::key_of(op.name.c_str(), opts_.seed), classes, box_view(t, lo, full));
  }
}

OpViews SerialTrainer::views_for(int i, bool backward) {
  const Op& op = g_.ops[i];
  OpViews v;
  for (TensorId t : op.inputs) v.in.push_back(values_[t].view());
  for (TensorId t : op.outputs) v.out.push_back(values_[t].view());
  for (int p : op_params_[i]) v.params.push_back(params_[p].value.view());
  for (HostTensor& s : saved_[i]) v.saved.push_back(s.view());
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
    op_kernels(g_.ops[i].kind).forward(*ctx_, g_.ops[i], info, v);
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
    op_kernels(op.kind).backward(*ctx_, op, info, v);
  }
  return value;
}

void SerialTrainer::update() {
  ++optimizer_steps_;
  for (ParamSlot& p : params_) {
    if (!p.trainable) continue;
    ffrt::View w = p.value.view(), g = p.grad.view();
    if (opts_.optimizer == OptimizerKind::sgd) {
      ffrt::SgdAttrs a;
      a.lr = opts_.lr;
      a.momentum = opts_.momentum;
      a.weight_decay = opts_.weight_decay;
      a.nesterov = opts_.nesterov;
      if (a.momentum != 0.f && p.buf1.bytes.empty()) p.buf1 = HostTensor(ffrt::DType::f32, p.value.shape);
      ffrt::View buf = a.momentum != 0.f ? p.buf1.view() : ffrt::View{};
      ffrt::sgd_step(*ctx_, a, w, g, a.momentum != 0.f ? &buf : nullptr, !p.has_history);
    } else {
      ffrt::AdamAttrs a;
      a.lr = opts_.lr;
      a.beta1 = opts_.beta1;
      a.beta2 = opts_.beta2;
      a.eps = opts_.eps;
      a.weight_decay = opts_.weight_decay;
      a.decoupled = opts_.optimizer == OptimizerKind::adamw;
      a.step = optimizer_steps_;
      if (p.buf1.bytes.empty()) {
        p.buf1 = HostTensor(ffrt::DType::f32, p.value.shape);
        p.buf2 = HostTensor(ffrt::DType::f32, p.value.shape);
      }
      ffrt::adam_step(*ctx_, a, w, g, p.buf1.view(), p.buf2.view());
    }
    p.has_history = true;
  }
}

float SerialTrainer::train_step(int64_t step) {
  float loss = forward_backward(step);
  update();
  return loss;
}

}  // namespace ffc
