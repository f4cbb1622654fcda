// Op table: ops that move elements without arithmetic — flat, reshape, transpose, concat, split.
#include <algorithm>

#include "ir/ops/families.h"
#include "ir/ops/helpers.h"

namespace ffc::ops {

namespace {

// ---- flat: [N, C, H, W] -> [N, C*H*W] ---------------------------------------------------------

std::vector<TensorType> flat_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  expect_rank(op, in, 0, 2, 6);
  int64_t rest = 1;
  for (int d = 1; d < in[0].rank(); ++d) rest = checked_mul(op, rest, fixed_dim(op, in, 0, d, "a flattened dim"));
  return {TensorType{in[0].dtype, {in[0].shape[0], Dim::fixed(rest)}}};
}

// A range of flattened features reads the bounding box of the input elements it covers: the dims
// before the first one where its first and last element differ hold one index, that dim the range
// between them, and the dims after it are read whole.
Box flat_input_box(const BoundOp& b, int, const Box& part) {
  const auto& in = b.in[0];
  size_t r = in.size();
  Box box{{part.r[0]}};
  if (part.r[1].empty()) {
    for (size_t d = 1; d < r; ++d) box.r.push_back({0, 0});
    return box;
  }
  std::vector<int64_t> first(r), last(r);
  int64_t f = part.r[1].lo, l = part.r[1].hi - 1;
  for (size_t d = r - 1; d >= 1; --d) {
    first[d] = f % in[d], last[d] = l % in[d];
    f /= in[d], l /= in[d];
  }
  bool differed = false;
  for (size_t d = 1; d < r; ++d) {
    if (differed) {
      box.r.push_back({0, in[d]});
    } else {
      box.r.push_back({first[d], last[d] + 1});
      differed = first[d] != last[d];
    }
  }
  return box;
}

// ---- reshape ---------------------------------------------------------------------------------

std::vector<TensorType> reshape_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  const Shape& target = op.attr_dims("shape");
  if (target.empty()) fail(op, "shape must not be empty");
  int batch_in = 0, batch_out = 0, infer_at = -1;
  int64_t known_in = 1, known_out = 1;
  for (const Dim& d : in[0].shape) d.batch ? ++batch_in : (known_in = checked_mul(op, known_in, d.value), 0);
  for (size_t i = 0; i < target.size(); ++i) {
    const Dim& d = target[i];
    if (d.batch) {
      ++batch_out;
    } else if (d.value == -1) {
      if (infer_at >= 0) fail(op, "shape may hold -1 only once");
      infer_at = static_cast<int>(i);
    } else if (d.value < 1) {
      fail(op, "shape extent {} at dim {} must be positive (or -1 to infer it)", d.value, i);
    } else {
      known_out = checked_mul(op, known_out, d.value);
    }
  }
  if (batch_out > 1) fail(op, "shape may hold N only once");
  if (batch_in != batch_out)
    fail(op, "the batch N must be kept: input {} {} it, shape {} {} it", in[0].str(),
         batch_in ? "has" : "lacks", shape_str(target), batch_out ? "has" : "lacks");
  Shape out = target;
  if (infer_at >= 0) {
    if (known_in % known_out)
      fail(op, "cannot infer the -1 in {}: {} elements per sample do not divide by {}", shape_str(target),
           known_in, known_out);
    out[infer_at] = Dim::fixed(known_in / known_out);
    known_out = known_in;
  }
  if (known_in != known_out)
    fail(op, "cannot reshape {} into {}: element counts differ", in[0].str(), shape_str(out));
  return {TensorType{in[0].dtype, out}};
}

// Only the batch may be split, and only when it leads both shapes: then a part's rows are
// whole input rows.
std::vector<bool> batch_leading_only(const Op& op, std::span<const TensorType> in,
                                     std::span<const TensorType> out) {
  (void)op;
  std::vector<bool> s(out[0].shape.size(), false);
  if (!s.empty() && out[0].shape[0].batch && in[0].rank() > 0 && in[0].shape[0].batch) s[0] = true;
  return s;
}

Box batch_rows_box(const BoundOp& b, int, const Box& part) {
  Box box = Box::whole(b.in[0]);
  // Rows map to rows only when both shapes lead with the same extent; otherwise (e.g. [6,4] into
  // [4,6]) dim 0 is not split and the part reads the whole input.
  if (!box.r.empty() && !b.out[0].empty() && b.in[0][0] == b.out[0][0]) box.r[0] = part.r[0];
  return box;
}

// ---- transpose -------------------------------------------------------------------------------

std::vector<TensorType> transpose_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  const auto& perm = op.attr_ints("perm");
  int r = in[0].rank();
  if (static_cast<int>(perm.size()) != r) fail(op, "perm has {} entries for an input of rank {}", perm.size(), r);
  std::vector<bool> seen(r, false);
  Shape out;
  for (int64_t p : perm) {
    if (p < 0 || p >= r || seen[p]) fail(op, "perm [{}] is not a permutation of 0..{}", fmt::join(perm, ","), r - 1);
    seen[p] = true;
    out.push_back(in[0].shape[p]);
  }
  return {TensorType{in[0].dtype, out}};
}

Box transpose_input_box(const BoundOp& b, int, const Box& part) {
  const auto& perm = b.op.attr_ints("perm");
  Box box;
  box.r.resize(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) box.r[perm[i]] = part.r[i];
  return box;
}

// ---- concat ----------------------------------------------------------------------------------

std::vector<TensorType> concat_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  int r = in[0].rank();
  int axis = normalize_axis(op, op.attr_int("axis"), r);
  Shape out = in[0].shape;
  if (out[axis].batch) fail(op, "cannot concatenate along the batch N");
  for (size_t i = 1; i < in.size(); ++i) {
    if (in[i].dtype != in[0].dtype) fail(op, "input {} is {}, input 0 is {}", i, in[i].str(), in[0].str());
    if (in[i].rank() != r) fail(op, "input {} has rank {}, input 0 has rank {}", i, in[i].rank(), r);
    for (int d = 0; d < r; ++d) {
      if (d == axis) {
        if (in[i].shape[d].batch) fail(op, "cannot concatenate along the batch N");
        out[d].value = checked_add(op, out[d].value, in[i].shape[d].value);
      } else if (in[i].shape[d] != in[0].shape[d]) {
        fail(op, "input {} {} and input 0 {} differ in dim {}", i, in[i].str(), in[0].str(), d);
      }
    }
  }
  return {TensorType{in[0].dtype, out}};
}

Box concat_input_box(const BoundOp& b, int i, const Box& part) {
  int axis = static_cast<int>(b.op.attr_int("axis"));
  if (axis < 0) axis += part.rank();
  int64_t offset = 0;
  for (int j = 0; j < i; ++j) offset += b.in[j][axis];
  Box box = part;
  Range r = part.r[axis];
  int64_t lo = std::max(r.lo, offset), hi = std::min(r.hi, offset + b.in[i][axis]);
  box.r[axis] = hi > lo ? Range{lo - offset, hi - offset} : Range{0, 0};
  return box;
}

// ---- split -----------------------------------------------------------------------------------

// One output per entry of `sizes`, consecutive pieces of the input along `axis`. Its parallel shape
// is the input's: a part is a box of the input, whole along the axis, and output k gets that box
// with the axis range of piece k.

int split_outputs(const Op& op) { return static_cast<int>(op.attr_ints("sizes").size()); }

std::vector<TensorType> split_infer(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  if (in[0].rank() < 1) fail(op, "input must have at least one dim");
  int axis = normalize_axis(op, op.attr_int("axis"), in[0].rank());
  int64_t extent = fixed_dim(op, in, 0, axis, "the split dim");
  const auto& sizes = op.attr_ints("sizes");
  if (sizes.empty()) fail(op, "sizes must not be empty");
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 1 || s > extent) fail(op, "size {} is out of range for a dim of extent {}", s, extent);
    total = checked_add(op, total, s);
  }
  if (total != extent) fail(op, "sizes [{}] add up to {}, the split dim has {}", fmt::join(sizes, ","), total, extent);
  std::vector<TensorType> out;
  for (int64_t s : sizes) {
    TensorType t = in[0];
    t.shape[axis] = Dim::fixed(s);
    out.push_back(std::move(t));
  }
  return out;
}

Shape input_shape(const Op&, std::span<const TensorType> in, std::span<const TensorType>) { return in[0].shape; }

std::vector<bool> split_splittable(const Op& op, std::span<const TensorType> in, std::span<const TensorType>) {
  std::vector<bool> s(in[0].rank(), true);
  s[normalize_axis(op, op.attr_int("axis"), in[0].rank())] = false;
  return s;
}

// Output j of a split is the slice [offset_j, offset_j + sizes[j]) of the input along the axis, shifted
// to start at 0: a part (a box of the input) computes the part of each slice it covers.
Box split_output_box(const BoundOp& b, int j, const Box& part) {
  const int axis = normalize_axis(b.op, b.op.attr_int("axis"), static_cast<int>(b.in[0].size()));
  int64_t offset = 0;
  for (int i = 0; i < j; ++i) offset += b.out[i][axis];
  Box box = part;
  Range r = part.r[axis];
  int64_t lo = std::max(r.lo, offset), hi = std::min(r.hi, offset + b.out[j][axis]);
  if (hi < lo) hi = lo;
  box.r[axis] = {lo - offset, hi - offset};
  if (box.r[axis].empty()) box.r[axis] = {0, 0};
  return box;
}

}  // namespace

const OpInfo& layout_flat() {
  static const OpInfo info{
      .kind = OpKind::flat, .name = "flat", .attrs = {}, .infer = flat_infer, .input_box = flat_input_box};
  return info;
}

const OpInfo& layout_reshape() {
  static const OpInfo info{
      .kind = OpKind::reshape,
      .name = "reshape",
      .attrs = {{"shape", AttrKind::Dims, {}}},
      .infer = reshape_infer,
      .splittable = batch_leading_only,
      .input_box = batch_rows_box,
  };
  return info;
}

const OpInfo& layout_transpose() {
  static const OpInfo info{
      .kind = OpKind::transpose,
      .name = "transpose",
      .attrs = {{"perm", AttrKind::Ints, {}}},
      .infer = transpose_infer,
      .input_box = transpose_input_box,
  };
  return info;
}

const OpInfo& layout_concat() {
  static const OpInfo info{
      .kind = OpKind::concat,
      .name = "concat",
      .max_inputs = -1,
      .attrs = {{"axis", AttrKind::Int, AttrValue{int64_t{1}}}},
      .infer = concat_infer,
      .input_box = concat_input_box,
  };
  return info;
}

const OpInfo& layout_split() {
  static const OpInfo info{
      .kind = OpKind::split,
      .name = "split",
      .attrs = {{"axis", AttrKind::Int, AttrValue{int64_t{1}}}, {"sizes", AttrKind::Ints, {}}},
      .outputs_from_attrs = split_outputs,
      .infer = split_infer,
      .parallel_shape = input_shape,
      .splittable = split_splittable,
      .input_box = same_box,
      .output_box = split_output_box,
  };
  return info;
}

}  // namespace ffc::ops
