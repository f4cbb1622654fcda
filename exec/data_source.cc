// Feeding a model's inputs from a data set.
#include "exec/data_source.h"

#include "ir/op_table.h"
#include "passes/add_loss.h"

namespace ffc {

DataInputs find_data_inputs(const Graph& g) {
  DataInputs d;
  int loss = find_loss(g);
  if (loss >= 0) {
    int producer = g.tensors[g.ops[loss].inputs[1]].producer;
    if (g.ops[producer].kind == OpKind::input) d.labels = producer;
  }
  std::vector<std::string> others;
  for (size_t i = 0; i < g.ops.size(); ++i) {
    if (g.ops[i].kind != OpKind::input || static_cast<int>(i) == d.labels) continue;
    if (d.data < 0) d.data = static_cast<int>(i);
    others.push_back(g.ops[i].name);
  }
  if (others.size() > 1)
    throw UserError({g.name, 0, 0}, fmt::format("a data set feeds one input, but the model has {} ({})", others.size(),
                                                fmt::join(others, ", ")));
  return d;
}

namespace {

std::string sample_shape_str(const std::vector<int64_t>& s) { return ffrt::shape_str(s); }

void check_fits(const Graph& g, const Op& input, ffrt::DType have, const std::vector<int64_t>& sample,
                const std::string& what, const std::string& where) {
  const TensorType& t = g.type(input.outputs[0]);
  if (t.shape.empty() || !t.shape[0].batch)
    throw UserError({where, 0, 0}, fmt::format("input '{}' has no batch dim N to feed samples into", input.name));
  std::vector<int64_t> want;
  for (size_t d = 1; d < t.shape.size(); ++d) want.push_back(t.shape[d].value);
  ffrt::DType want_type = t.dtype == DType::i64 ? ffrt::DType::i64 : ffrt::DType::f32;
  if (want != sample || want_type != have)
    throw UserError({where, 0, 0}, fmt::format("the data set's {} are {} {} per sample, but input '{}' takes {} {}", what,
                                               ffrt::dtype_name(have), sample_shape_str(sample), input.name,
                                               ffrt::dtype_name(want_type), sample_shape_str(want)));
}

}  // namespace

InputSource dataset_source(const Graph& g, std::shared_ptr<ffrt::Dataset> data, int64_t batch,
                           const std::string& where) {
  DataInputs in = find_data_inputs(g);
  if (in.data < 0) throw UserError({where, 0, 0}, "the model has no input for the data set's samples");
  check_fits(g, g.ops[in.data], data->input_dtype(), data->input_shape(), "inputs", where);
  if (in.labels >= 0) check_fits(g, g.ops[in.labels], data->label_dtype(), data->label_shape(), "labels", where);
  std::string data_name = g.ops[in.data].name, label_name = in.labels >= 0 ? g.ops[in.labels].name : "";
  return [data, batch, data_name, label_name](const Op& op, int64_t step, HostTensor& t) {
    if (op.name == data_name) {
      data->batch(step, batch, 0, batch, t.bytes.data(), nullptr);
      return true;
    }
    if (op.name == label_name) {
      data->batch(step, batch, 0, batch, nullptr, t.bytes.data());
      return true;
    }
    return false;
  };
}

}  // namespace ffc
