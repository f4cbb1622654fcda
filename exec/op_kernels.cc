// Runtime descriptors of Graph IR ops.
#include "exec/op_kernels.h"

#include "ir/op_table.h"
#include "ir/ops/helpers.h"

namespace ffc {

namespace {

ffrt::Act act_of(const Op& op) {
  const std::string& a = op.attr_str("activation");
  if (a == "relu") return ffrt::Act::relu;
  if (a == "sigmoid") return ffrt::Act::sigmoid;
  if (a == "tanh") return ffrt::Act::tanh;
  if (a == "gelu") return ffrt::Act::gelu;
  return ffrt::Act::none;
}

bool has_attr(const Op& op, std::string_view name) {
  for (const AttrSpec& a : op.info().attrs)
    if (a.name == name) return true;
  return false;
}

}  // namespace

ffrt::OpDesc op_desc(const Op& op) {
  ffrt::OpDesc d;
  d.kind = static_cast<ffrt::OpKind>(op.kind);
  d.name = op.name;
  if (has_attr(op, "activation")) {
    d.act = act_of(op);
    d.saves_pre_activation = ops::saves_pre_activation(op);
  }
  switch (op.kind) {
    case OpKind::conv2d:
      for (int i = 0; i < 2; ++i) {
        d.conv.kernel[i] = op.attr_ints("kernel")[i];
        d.conv.stride[i] = op.attr_ints("stride")[i];
        d.conv.padding[i] = op.attr_ints("padding")[i];
        d.conv.dilation[i] = op.attr_ints("dilation")[i];
      }
      d.conv.groups = op.attr_int("groups");
      break;
    case OpKind::pool2d:
      for (int i = 0; i < 2; ++i) {
        d.pool.kernel[i] = op.attr_ints("kernel")[i];
        d.pool.stride[i] = op.attr_ints("stride")[i];
        d.pool.padding[i] = op.attr_ints("padding")[i];
      }
      d.pool.max = op.attr_str("type") == "max";
      d.pool.count_include_pad = op.attr_bool("count_include_pad");
      break;
    case OpKind::matmul: d.matmul = ffrt::MatmulAttrs{op.attr_bool("transpose_a"), op.attr_bool("transpose_b")}; break;
    case OpKind::batch_norm:
      d.momentum = static_cast<float>(op.attr_float("momentum"));
      [[fallthrough]];
    case OpKind::layer_norm:
      d.eps = static_cast<float>(op.attr_float("eps"));
      d.affine = op.attr_bool("affine");
      break;
    case OpKind::dropout: d.rate = static_cast<float>(op.attr_float("rate")); break;
    case OpKind::clip:
      d.lo = static_cast<float>(op.attr_float("min"));
      d.hi = static_cast<float>(op.attr_float("max"));
      break;
    case OpKind::scale: d.factor = static_cast<float>(op.attr_float("factor")); break;
    case OpKind::softmax:
    case OpKind::log_softmax:
    case OpKind::concat:
    case OpKind::split: d.axis = op.attr_int("axis"); break;
    case OpKind::transpose:
      for (int64_t p : op.attr_ints("perm")) d.perm.push_back(static_cast<int>(p));
      break;
    default: break;
  }
  // The op table and the runtime agree on which ops exchange statistics between parts.
  FFC_CHECK(op.info().split_statistics == ffrt::op_has_statistics(d.kind));
  return d;
}

std::vector<ffrt::OpDesc> op_descs(const Graph& g) {
  std::vector<ffrt::OpDesc> v;
  for (const Op& op : g.ops) v.push_back(op_desc(op));
  return v;
}

}  // namespace ffc
