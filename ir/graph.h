// The Graph IR: the model as the user wrote it.
//
// A graph is a list of ops in a topological order (every input is defined before it is used) over
// named tensors. Ops have unique names, which strategies refer to, a kind from the op table,
// attributes, and the source location they came from. Parameters are not stored: the op table
// derives each op's parameters from its kind, attributes and input types.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ir/attr.h"
#include "ir/diag.h"
#include "ir/types.h"

namespace ffc {

enum class OpKind : int;
struct OpInfo;

using TensorId = int;

/// A value flowing between ops: an output of exactly one op.
struct Tensor {
  std::string name;  ///< The op's name for its only output, `op:i` for output i of several.
  TensorType type;
  int producer = -1;  ///< Index of the producing op in Graph::ops.
  int index = 0;      ///< Which output of the producer.
};

/// One operation.
struct Op {
  std::string name;
  OpKind kind{};
  std::vector<TensorId> inputs;
  std::vector<TensorId> outputs;
  /// Attribute values, one per spec of the op's table entry, in that order; defaults filled in.
  std::vector<AttrValue> attrs;
  /// External names of the parameters (e.g. ONNX initializer names), one per parameter, or empty
  /// to use `<op>.<param>`.
  std::vector<std::string> param_names;
  SourceLoc loc;
  /// Comment and blank lines written before the op in a .ff file, kept so files round-trip.
  std::vector<std::string> leading;
  /// A comment written after the op on its line, without the `#`.
  std::string trailing;

  const OpInfo& info() const;
  /// Index of the attribute `name` in the op's table entry; an internal error when it has none.
  int attr_index(std::string_view name) const;
  int64_t attr_int(std::string_view name) const;
  double attr_float(std::string_view name) const;
  bool attr_bool(std::string_view name) const;
  const std::string& attr_str(std::string_view name) const;
  const std::vector<int64_t>& attr_ints(std::string_view name) const;
  const Shape& attr_dims(std::string_view name) const;
  /// `op 'conv1' (conv2d)`, for messages.
  std::string describe() const;
};

/// A whole model.
struct Graph {
  std::string name;
  /// Comment and blank lines before the `model` line of a .ff file.
  std::vector<std::string> header;
  /// A comment written after `model NAME` on its line, without the `#`.
  std::string model_trailing;
  /// Comment and blank lines after the last op.
  std::vector<std::string> trailer;
  std::vector<Op> ops;
  std::vector<Tensor> tensors;

  /// Appends an op with the given attributes (missing ones take their defaults) and creates its
  /// outputs with unknown types; shape inference fills them in. Names must be new.
  int add_op(std::string name, OpKind kind, std::vector<TensorId> inputs,
             std::vector<AttrValue> attrs, SourceLoc loc = {});
  /// The op named `name`, or -1.
  int find_op(std::string_view name) const;
  /// The tensor named `name` (`op` or `op:i`), or -1.
  TensorId find_tensor(std::string_view name) const;
  const TensorType& type(TensorId t) const { return tensors[t].type; }
  /// Types of an op's inputs.
  std::vector<TensorType> input_types(const Op& op) const;
  /// The ops reading each tensor, in graph order.
  std::vector<std::vector<int>> consumers() const;

 private:
  std::map<std::string, int, std::less<>> op_index_;
  std::map<std::string, TensorId, std::less<>> tensor_index_;
};

}  // namespace ffc
