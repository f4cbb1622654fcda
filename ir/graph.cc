// The Graph IR: construction and lookups.
#include "ir/graph.h"

#include "ir/op_table.h"

namespace ffc {

const OpInfo& Op::info() const { return op_info(kind); }

int Op::attr_index(std::string_view n) const {
  const auto& specs = info().attrs;
  for (size_t i = 0; i < specs.size(); ++i)
    if (specs[i].name == n) return static_cast<int>(i);
  FFC_INTERNAL_ERROR("{} has no attribute '{}'", describe(), n);
}

int64_t Op::attr_int(std::string_view n) const { return std::get<int64_t>(attrs[attr_index(n)]); }
double Op::attr_float(std::string_view n) const { return std::get<double>(attrs[attr_index(n)]); }
bool Op::attr_bool(std::string_view n) const { return std::get<bool>(attrs[attr_index(n)]); }
const std::string& Op::attr_str(std::string_view n) const {
  return std::get<std::string>(attrs[attr_index(n)]);
}
const std::vector<int64_t>& Op::attr_ints(std::string_view n) const {
  return std::get<std::vector<int64_t>>(attrs[attr_index(n)]);
}
const Shape& Op::attr_dims(std::string_view n) const { return std::get<Shape>(attrs[attr_index(n)]); }

std::string Op::describe() const { return fmt::format("op '{}' ({})", name, info().name); }

int Graph::add_op(std::string op_name, OpKind kind, std::vector<TensorId> inputs,
                  std::vector<AttrValue> attrs, SourceLoc loc) {
  const OpInfo& info = op_info(kind);
  FFC_CHECK(!op_index_.count(op_name));
  FFC_CHECK(attrs.size() <= info.attrs.size());
  for (size_t i = attrs.size(); i < info.attrs.size(); ++i) {
    FFC_CHECK(info.attrs[i].default_value.has_value());
    attrs.push_back(*info.attrs[i].default_value);
  }
  int index = static_cast<int>(ops.size());
  Op op;
  op.name = op_name;
  op.kind = kind;
  op.inputs = std::move(inputs);
  op.attrs = std::move(attrs);
  op.loc = std::move(loc);
  int num_outputs = op_num_outputs(op);
  for (int i = 0; i < num_outputs; ++i) {
    Tensor t;
    t.name = num_outputs == 1 ? op_name : fmt::format("{}:{}", op_name, i);
    t.producer = index;
    t.index = i;
    FFC_CHECK(!tensor_index_.count(t.name));
    tensor_index_[t.name] = static_cast<TensorId>(tensors.size());
    op.outputs.push_back(static_cast<TensorId>(tensors.size()));
    tensors.push_back(std::move(t));
  }
  op_index_[op_name] = index;
  ops.push_back(std::move(op));
  return index;
}

int Graph::find_op(std::string_view n) const {
  auto it = op_index_.find(n);
  return it == op_index_.end() ? -1 : it->second;
}

TensorId Graph::find_tensor(std::string_view n) const {
  auto it = tensor_index_.find(n);
  if (it != tensor_index_.end()) return it->second;
  // `op:0` names the only output of a single-output op.
  if (n.size() > 2 && n.substr(n.size() - 2) == ":0") {
    int op = find_op(n.substr(0, n.size() - 2));
    if (op >= 0 && ops[op].outputs.size() == 1) return ops[op].outputs[0];
  }
  return -1;
}

std::vector<TensorType> Graph::input_types(const Op& op) const {
  std::vector<TensorType> out;
  for (TensorId t : op.inputs) out.push_back(tensors[t].type);
  return out;
}

std::vector<std::vector<int>> Graph::consumers() const {
  std::vector<std::vector<int>> out(tensors.size());
  for (size_t i = 0; i < ops.size(); ++i)
    for (TensorId t : ops[i].inputs) out[t].push_back(static_cast<int>(i));
  return out;
}

}  // namespace ffc
