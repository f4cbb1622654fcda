// Op table: normalizations — batch_norm, layer_norm, softmax, log_softmax.
//
// batch_norm may split every dim: parts that share a channel block reduce their partial
// statistics (forward and backward) so that every part normalizes with the whole batch's.
#include "ir/ops/families.h"
#include "ir/ops/helpers.h"

namespace ffc::ops {

namespace {

std::vector<TensorType> batch_norm_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  expect_rank(op, in, 0, 2, 4);
  expect_float(op, in, 0);
  if (in[0].rank() == 3) fail(op, "input must be [N,C] or [N,C,H,W], got {}", in[0].str());
  fixed_dim(op, in, 0, 1, "the channel count");
  if (op.attr_float("eps") <= 0) fail(op, "eps must be positive, got {}", op.attr_float("eps"));
  double m = op.attr_float("momentum");
  if (!(m >= 0 && m <= 1)) fail(op, "momentum must be in [0, 1], got {}", m);
  return {in[0]};
}

std::vector<ParamSpec> batch_norm_params(const Op& op, std::span<const TensorType> in) {
  Shape c{in[0].shape[1]};
  std::vector<ParamSpec> p;
  if (op.attr_bool("affine")) {
    p.push_back({"weight", c, Init::ones, 1});
    p.push_back({"bias", c, Init::zeros, 1});
  }
  p.push_back({"running_mean", c, Init::zeros, 1, false});
  p.push_back({"running_var", c, Init::ones, 1, false});
  return p;
}

Box channel_param_box(const BoundOp&, int, const Box& part) { return Box{{part.r[1]}}; }

// batch_norm saves the mean and inverse standard deviation of its channels, then the
// pre-activation when its activation's backward needs it.
std::vector<Box> batch_norm_saved(const BoundOp& op, const Box& part) {
  std::vector<Box> s{Box{{part.r[1]}}, Box{{part.r[1]}}};
  for (Box& b : pre_activation_saved(op, part)) s.push_back(std::move(b));
  return s;
}

// layer_norm saves the mean and inverse standard deviation of each row (every dim but the last).
std::vector<Box> layer_norm_saved(const BoundOp&, const Box& part) {
  Box rows = part;
  rows.r.pop_back();
  return {rows, rows};
}

std::vector<TensorType> layer_norm_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  expect_rank(op, in, 0, 1, 6);
  expect_float(op, in, 0);
  fixed_dim(op, in, 0, in[0].rank() - 1, "the normalized dim");
  if (op.attr_float("eps") <= 0) fail(op, "eps must be positive, got {}", op.attr_float("eps"));
  return {in[0]};
}

std::vector<ParamSpec> layer_norm_params(const Op& op, std::span<const TensorType> in) {
  if (!op.attr_bool("affine")) return {};
  Shape d{in[0].shape.back()};
  return {{"weight", d, Init::ones, 1}, {"bias", d, Init::zeros, 1}};
}

std::vector<TensorType> softmax_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  expect_float(op, in, 0);
  if (in[0].rank() < 1) fail(op, "input must have at least one dim");
  normalize_axis(op, op.attr_int("axis"), in[0].rank());
  return {in[0]};
}

std::vector<bool> softmax_splittable(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  std::vector<bool> s(in[0].rank(), true);
  s[normalize_axis(op, op.attr_int("axis"), in[0].rank())] = false;
  return s;
}

}  // namespace

const OpInfo& norm_batch_norm() {
  static const OpInfo info{
      .kind = OpKind::batch_norm,
      .name = "batch_norm",
      .attrs = {{"eps", AttrKind::Float, AttrValue{1e-5}},
                {"momentum", AttrKind::Float, AttrValue{0.1}},
                {"affine", AttrKind::Bool, AttrValue{true}},
                {"activation", AttrKind::Enum, AttrValue{std::string("none")}, activation_names()}},
      .infer = batch_norm_infer,
      .params = batch_norm_params,
      .input_box = same_box,
      .param_box = channel_param_box,
      .saved = batch_norm_saved,
      .split_statistics = true,
  };
  return info;
}

const OpInfo& norm_layer_norm() {
  static const OpInfo info{
      .kind = OpKind::layer_norm,
      .name = "layer_norm",
      .attrs = {{"eps", AttrKind::Float, AttrValue{1e-5}}, {"affine", AttrKind::Bool, AttrValue{true}}},
      .infer = layer_norm_infer,
      .params = layer_norm_params,
      .splittable = all_but_last,
      .input_box = same_box,
      .saved = layer_norm_saved,
  };
  return info;
}

const OpInfo& norm_softmax() {
  static const OpInfo info{
      .kind = OpKind::softmax,
      .name = "softmax",
      .attrs = {{"axis", AttrKind::Int, AttrValue{int64_t{-1}}}},
      .infer = softmax_infer,
      .splittable = softmax_splittable,
      .input_box = same_box,
  };
  return info;
}

// log_softmax: log(softmax(x)) along `axis`, computed without forming softmax(x).
const OpInfo& norm_log_softmax() {
  static const OpInfo info{
      .kind = OpKind::log_softmax,
      .name = "log_softmax",
      .attrs = {{"axis", AttrKind::Int, AttrValue{int64_t{-1}}}},
      .infer = softmax_infer,
      .splittable = softmax_splittable,
      .input_box = same_box,
  };
  return info;
}

}  // namespace ffc::ops
