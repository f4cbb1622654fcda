// The op table: lookup of entries by kind and name, and queries that fill in table defaults.
#include "ir/op_table.h"

#include <array>

#include "ir/ops/families.h"

namespace ffc {

namespace {

const std::vector<const OpInfo*>& table() {
  static const std::vector<const OpInfo*> t = [] {
    std::vector<const OpInfo*> v;
#define FFC_OP_ENTRY(id, family) v.push_back(&ops::family##_##id());
    FFC_OPS(FFC_OP_ENTRY)
#undef FFC_OP_ENTRY
    for (size_t i = 0; i < v.size(); ++i) FFC_CHECK(static_cast<size_t>(v[i]->kind) == i);
    return v;
  }();
  return t;
}

const std::vector<OpKind>& kinds() {
  static const std::vector<OpKind> k = [] {
    std::vector<OpKind> v;
#define FFC_OP_KIND(id, family) v.push_back(OpKind::id);
    FFC_OPS(FFC_OP_KIND)
#undef FFC_OP_KIND
    return v;
  }();
  return k;
}

}  // namespace

const OpInfo& op_info(OpKind kind) { return *table().at(static_cast<size_t>(kind)); }

bool parse_op_kind(std::string_view name, OpKind* kind) {
  for (const OpInfo* info : table())
    if (info->name == name) {
      *kind = info->kind;
      return true;
    }
  return false;
}

std::span<const OpKind> all_op_kinds() { return kinds(); }

namespace {
std::vector<TensorType> output_types(const Graph& g, const Op& op) {
  std::vector<TensorType> out;
  for (TensorId t : op.outputs) out.push_back(g.type(t));
  return out;
}
}  // namespace

int op_num_outputs(const Op& op) {
  const OpInfo& info = op.info();
  return info.outputs_from_attrs ? info.outputs_from_attrs(op) : info.num_outputs;
}

std::vector<ParamSpec> op_params(const Graph& g, const Op& op) {
  if (!op.info().params) return {};
  return op.info().params(op, g.input_types(op));
}

Shape op_parallel_shape(const Graph& g, const Op& op) {
  if (op.info().parallel_shape) return op.info().parallel_shape(op, g.input_types(op), output_types(g, op));
  return g.type(op.outputs.at(0)).shape;
}

std::vector<bool> op_splittable(const Graph& g, const Op& op) {
  if (op.info().splittable) return op.info().splittable(op, g.input_types(op), output_types(g, op));
  return std::vector<bool>(op_parallel_shape(g, op).size(), true);
}

BoundOp bind_op(const Graph& g, const Op& op, int64_t batch) {
  BoundOp b{op, {}, {}};
  for (TensorId t : op.inputs) b.in.push_back(bind_shape(g.type(t).shape, batch));
  for (TensorId t : op.outputs) b.out.push_back(bind_shape(g.type(t).shape, batch));
  return b;
}

Box op_output_box(const BoundOp& op, int j, const Box& part) {
  if (op.op.info().output_box) return op.op.info().output_box(op, j, part);
  return part;
}

std::vector<Box> op_saved_boxes(const BoundOp& op, const Box& part) {
  if (!op.op.info().saved) return {};
  return op.op.info().saved(op, part);
}

std::vector<int64_t> op_parallel_extents(const Graph& g, const Op& op, int64_t batch) {
  return bind_shape(op_parallel_shape(g, op), batch);
}

std::vector<std::vector<int64_t>> op_saved_extents(const BoundOp& op) {
  // The op's parallel shape bound: output 0's extents, or the input's for ops split like it.
  const OpInfo& info = op.op.info();
  if (!info.saved) return {};
  FFC_CHECK(!info.parallel_shape);  // ops with saved state are split like their output
  std::vector<std::vector<int64_t>> ext;
  for (const Box& b : info.saved(op, Box::whole(op.out[0]))) {
    std::vector<int64_t> e;
    for (const Range& r : b.r) e.push_back(r.hi);
    ext.push_back(std::move(e));
  }
  return ext;
}

Box op_stats_box(const Box& part) { return Box{{{0, 2}, part.r.at(1)}}; }

std::vector<std::string> parallel_dim_names(int rank) {
  switch (rank) {
    case 0: return {};
    case 1: return {"n"};
    case 2: return {"n", "c"};
    case 3: return {"n", "s", "c"};
    case 4: return {"n", "c", "h", "w"};
    default: {
      std::vector<std::string> v{"n"};
      for (int i = 1; i < rank; ++i) v.push_back(fmt::format("d{}", i));
      return v;
    }
  }
}

}  // namespace ffc
