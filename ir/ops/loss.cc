// Op table: losses. A loss is split like its per-sample input, not like its scalar output: each
// part computes a partial sum over its samples, divided by the global count, and the parts' sums
// are reduced into the loss.
#include "ir/ops/families.h"
#include "ir/ops/helpers.h"

namespace ffc::ops {

namespace {

std::vector<TensorType> sce_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  expect_float(op, in, 0);
  expect_dtype(op, in, 1, DType::i64);
  if (in[0].rank() < 2) fail(op, "logits must have a class dim after the batch, got {}", in[0].str());
  Shape want(in[0].shape.begin(), in[0].shape.end() - 1);
  if (in[1].shape != want)
    fail(op, "labels {} must have the logits' shape without the class dim, {}", in[1].str(), shape_str(want));
  fixed_dim(op, in, 0, in[0].rank() - 1, "the class count");
  return {TensorType{DType::f32, {}}};
}

std::vector<TensorType> mse_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  expect_float(op, in, 0);
  expect_float(op, in, 1);
  if (in[0] != in[1]) fail(op, "prediction {} and target {} must have the same type", in[0].str(), in[1].str());
  return {TensorType{in[0].dtype, {}}};
}

Shape labels_shape(const Op&, std::span<const TensorType> in, std::span<const TensorType>) { return in[1].shape; }
Shape prediction_shape(const Op&, std::span<const TensorType> in, std::span<const TensorType>) { return in[0].shape; }

// A part's loss is a partial sum: the box of the scalar.
Box scalar_box(const BoundOp&, int, const Box&) { return Box{}; }

Box sce_input_box(const BoundOp& b, int i, const Box& part) {
  if (i == 1) return part;
  Box box = part;
  box.r.push_back({0, b.in[0].back()});
  return box;
}

}  // namespace

const OpInfo& loss_softmax_cross_entropy() {
  static const OpInfo info{
      .kind = OpKind::softmax_cross_entropy,
      .name = "softmax_cross_entropy",
      .min_inputs = 2,
      .max_inputs = 2,
      .attrs = {},
      .infer = sce_infer,
      .parallel_shape = labels_shape,
      .input_box = sce_input_box,
      .output_box = scalar_box,
      .partial_output = true,
      .scores_predictions = true,
  };
  return info;
}

const OpInfo& loss_mse_loss() {
  static const OpInfo info{
      .kind = OpKind::mse_loss,
      .name = "mse_loss",
      .min_inputs = 2,
      .max_inputs = 2,
      .attrs = {},
      .infer = mse_infer,
      .parallel_shape = prediction_shape,
      .input_box = same_box,
      .output_box = scalar_box,
      .partial_output = true,
  };
  return info;
}

}  // namespace ffc::ops
