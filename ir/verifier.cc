// The Graph IR verifier.
#include "ir/verifier.h"

#include <set>

#include "ir/op_table.h"
#include "ir/ops/helpers.h"

namespace ffc {

namespace {

bool attr_matches(const AttrValue& v, const AttrSpec& spec) {
  switch (spec.kind) {
    case AttrKind::Int: return std::holds_alternative<int64_t>(v);
    case AttrKind::Float: return std::holds_alternative<double>(v);
    case AttrKind::Bool: return std::holds_alternative<bool>(v);
    case AttrKind::String: return std::holds_alternative<std::string>(v);
    case AttrKind::Enum: {
      if (!std::holds_alternative<std::string>(v)) return false;
      for (std::string_view e : spec.enum_values)
        if (e == std::get<std::string>(v)) return true;
      return false;
    }
    case AttrKind::Ints:
      return std::holds_alternative<std::vector<int64_t>>(v) &&
             (spec.length == 0 || std::get<std::vector<int64_t>>(v).size() == static_cast<size_t>(spec.length));
    case AttrKind::Dims: return std::holds_alternative<Shape>(v);
  }
  return false;
}

}  // namespace

void verify_graph(const Graph& g) {
  std::set<std::string, std::less<>> op_names, tensor_names;
  std::vector<bool> defined(g.tensors.size(), false);
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const Op& op = g.ops[i];
    const OpInfo& info = op.info();
    if (op.name.empty()) ops::fail(op, "has an empty name");
    if (!op_names.insert(op.name).second) ops::fail(op, "the name '{}' is used by an earlier op", op.name);
    int n = static_cast<int>(op.inputs.size());
    if (n < info.min_inputs || (info.max_inputs >= 0 && n > info.max_inputs)) {
      if (info.min_inputs == info.max_inputs) ops::fail(op, "takes {} inputs, got {}", info.min_inputs, n);
      if (info.max_inputs < 0) ops::fail(op, "takes at least {} inputs, got {}", info.min_inputs, n);
      ops::fail(op, "takes {} to {} inputs, got {}", info.min_inputs, info.max_inputs, n);
    }
    for (TensorId t : op.inputs) {
      if (t < 0 || t >= static_cast<TensorId>(g.tensors.size())) ops::fail(op, "reads a tensor that does not exist");
      if (!defined[t]) ops::fail(op, "reads '{}' before it is defined", g.tensors[t].name);
    }
    if (op.attrs.size() != info.attrs.size()) ops::fail(op, "has {} attribute values for {} attributes", op.attrs.size(), info.attrs.size());
    for (size_t a = 0; a < info.attrs.size(); ++a)
      if (!attr_matches(op.attrs[a], info.attrs[a]))
        ops::fail(op, "attribute '{}' has a value of the wrong kind", info.attrs[a].name);
    if (static_cast<int>(op.outputs.size()) != op_num_outputs(op))
      ops::fail(op, "has {} outputs, its kind and attributes give {}", op.outputs.size(), op_num_outputs(op));
    std::vector<TensorType> declared;
    for (TensorId t : op.outputs) {
      const Tensor& tensor = g.tensors.at(t);
      if (tensor.producer != static_cast<int>(i)) ops::fail(op, "output '{}' names another producer", tensor.name);
      if (!tensor_names.insert(tensor.name).second) ops::fail(op, "output '{}' is defined twice", tensor.name);
      defined[t] = true;
      declared.push_back(tensor.type);
    }
    std::vector<TensorType> inferred = info.infer(op, g.input_types(op), declared);
    for (size_t o = 0; o < inferred.size(); ++o)
      if (inferred[o] != declared[o])
        ops::fail(op, "output {} has type {}, but its inputs give {}", o, declared[o].str(), inferred[o].str());
    if (!op.param_names.empty() && op.param_names.size() != op_params(g, op).size())
      ops::fail(op, "names {} parameters, it has {}", op.param_names.size(), op_params(g, op).size());
  }
}

}  // namespace ffc
