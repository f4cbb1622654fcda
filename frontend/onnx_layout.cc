// The ONNX importer's layout ops: Reshape, Flatten, Transpose, Concat, Split, Slice, Squeeze,
// Unsqueeze, Identity and Cast on activations, and the bookkeeping of activations whose ONNX shape
// merges the batch with other dims.
//
// Attention layers reshape [S, N, E] into [S, N·H, D]: the batch merged with the heads. ffc's shapes
// hold N as a dim of its own, so the importer keeps such a tensor as [S, N, H, D] and remembers that
// ONNX dim 1 is ffc dims 1 and 2 (Value::groups). Transposes permute whole groups, and a later
// reshape back to [S·N, E] or [S, N, E] ends the merge.
#include <algorithm>
#include <numeric>

#include "frontend/onnx_import.h"

namespace ffc::onnx_import {

namespace {

int64_t checked_product(Importer& im, int node, int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r) || r > (int64_t{1} << 50)) im.fail(node, "the shape's element count overflows");
  return r;
}

std::string syms_str(const std::vector<Sym>& s) {
  std::vector<std::string> parts;
  for (const Sym& x : s) parts.push_back(x.str());
  return fmt::format("[{}]", fmt::join(parts, ","));
}

/// Groups with every entry 1 are stored as none.
std::vector<int> normalized(std::vector<int> groups) {
  if (std::all_of(groups.begin(), groups.end(), [](int g) { return g == 1; })) groups.clear();
  return groups;
}

/// Axes of Squeeze/Unsqueeze: the attribute before opset 13, the input from 13 on.
std::optional<std::vector<int64_t>> squeeze_axes(Importer& im, int n) {
  if (im.opset() < 13) {
    if (!im.attr(n, "axes")) return std::nullopt;
    return im.attr_ints(n, "axes", {});
  }
  if (!im.has_input(n, 1)) return std::nullopt;
  ConstPtr c = im.constant(n, 1, "axes");
  std::vector<int64_t> v;
  for (const Sym& s : c->ints) {
    if (!s.known || s.n || c->is_float) im.fail(n, "axes must be fixed integers");
    v.push_back(s.k);
  }
  return v;
}

// ---- Reshape, Flatten, Squeeze, Unsqueeze --------------------------------------------------------

void reshape_node(Importer& im, int n) {
  im.expect_attrs(n, {"allowzero"});
  const Value& v = im.activation(n, 0);
  ConstPtr shape = im.constant(n, 1, "the target shape");
  if (shape->is_float || shape->dims.size() != 1) im.fail(n, "the target shape must be a 1-D integer tensor");
  bool allowzero = im.attr_int(n, "allowzero", 0) != 0;
  im.define(n, 0, im.reshape(n, v, shape->ints, !allowzero));
}

void flatten_node(Importer& im, int n) {
  im.expect_attrs(n, {"axis"});
  const Value& v = im.activation(n, 0);
  int r = im.onnx_rank(v);
  int64_t axis = im.attr_int(n, "axis", 1);
  if (axis < -r || axis > r) im.fail(n, "axis {} is out of range for rank {}", axis, r);
  if (axis < 0) axis += r;
  const Shape& s = im.type(v).shape;
  if (v.groups.empty() && axis == 1 && r >= 2 && s[0].batch) {
    if (r == 2) {
      im.define(n, 0, v);
      return;
    }
    Value out = im.emit_value(n, OpKind::flat, {v.tensor}, {});
    out.nonnegative = v.nonnegative;
    im.define(n, 0, out);
    return;
  }
  std::vector<Sym> shape = im.onnx_shape(v);
  std::vector<Sym> target{sym_product(std::span(shape).first(axis)), sym_product(std::span(shape).subspan(axis))};
  if (!target[0].known || !target[1].known) im.fail(n, "cannot flatten {} at axis {}: the batch would be merged twice", syms_str(shape), axis);
  im.define(n, 0, im.reshape(n, v, target, false));
}

void unsqueeze_node(Importer& im, int n) {
  im.expect_attrs(n, {"axes"});
  const Value& v = im.activation(n, 0);
  auto axes = squeeze_axes(im, n);
  if (!axes) im.fail(n, "needs axes");
  std::vector<Sym> shape = im.onnx_shape(v);
  int r = static_cast<int>(shape.size() + axes->size());
  std::vector<bool> one(r, false);
  for (int64_t a : *axes) {
    if (a < -r || a >= r) im.fail(n, "axis {} is out of range for rank {}", a, r);
    if (one[a < 0 ? a + r : a]) im.fail(n, "axes repeat {}", a);
    one[a < 0 ? a + r : a] = true;
  }
  std::vector<Sym> target;
  for (int i = 0, k = 0; i < r; ++i) target.push_back(one[i] ? Sym::fixed(1) : shape[k++]);
  im.define(n, 0, im.reshape(n, v, target, false));
}

void squeeze_node(Importer& im, int n) {
  im.expect_attrs(n, {"axes"});
  const Value& v = im.activation(n, 0);
  std::vector<Sym> shape = im.onnx_shape(v);
  int r = static_cast<int>(shape.size());
  std::vector<bool> drop(r, false);
  if (auto axes = squeeze_axes(im, n)) {
    for (int64_t a : *axes) {
      if (a < -r || a >= r) im.fail(n, "axis {} is out of range for rank {}", a, r);
      int x = static_cast<int>(a < 0 ? a + r : a);
      if (shape[x] != Sym::fixed(1)) im.fail(n, "cannot squeeze dim {} of extent {}", x, shape[x].str());
      drop[x] = true;
    }
  } else {
    for (int i = 0; i < r; ++i) drop[i] = shape[i] == Sym::fixed(1);
  }
  std::vector<Sym> target;
  for (int i = 0; i < r; ++i)
    if (!drop[i]) target.push_back(shape[i]);
  im.define(n, 0, im.reshape(n, v, target, false));
}

// ---- Transpose, Concat ------------------------------------------------------------------------------

void transpose_node(Importer& im, int n) {
  im.expect_attrs(n, {"perm"});
  const Value& v = im.activation(n, 0);
  int r = im.onnx_rank(v);
  std::vector<int64_t> perm = im.attr_ints(n, "perm", {});
  if (perm.empty())
    for (int i = r - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int>(perm.size()) != r) im.fail(n, "perm has {} entries for an input of rank {}", perm.size(), r);
  std::vector<bool> seen(r, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= r || seen[p]) im.fail(n, "perm is not a permutation of 0..{}", r - 1);
    seen[p] = true;
  }
  std::vector<int> groups = v.groups.empty() ? std::vector<int>(r, 1) : v.groups;
  std::vector<int> start(r, 0);
  for (int i = 1; i < r; ++i) start[i] = start[i - 1] + groups[i - 1];
  std::vector<int64_t> ffc_perm;
  std::vector<int> out_groups;
  for (int64_t p : perm) {
    for (int k = 0; k < groups[p]; ++k) ffc_perm.push_back(start[p] + k);
    out_groups.push_back(groups[p]);
  }
  Value out = v;
  out.groups = normalized(out_groups);
  bool identity = true;
  for (size_t i = 0; i < ffc_perm.size(); ++i) identity &= ffc_perm[i] == static_cast<int64_t>(i);
  if (!identity) {
    out.tensor = im.emit_value(n, OpKind::transpose, {v.tensor}, {AttrValue{ffc_perm}}).tensor;
  }
  im.define(n, 0, out);
}

void concat_node(Importer& im, int n) {
  im.expect_attrs(n, {"axis"});
  if (!im.attr(n, "axis")) im.fail(n, "needs attribute 'axis'");
  std::vector<TensorId> inputs;
  const Value& first = im.activation(n, 0, "input 0");
  bool nonneg = true;
  for (int i = 0; i < im.num_inputs(n); ++i) {
    if (!im.has_input(n, i)) continue;
    const Value& v = im.activation(n, i, fmt::format("input {}", i));
    if (v.groups != first.groups) im.fail(n, "input {} merges the batch with other dims differently from input 0", i);
    inputs.push_back(v.tensor);
    nonneg &= v.nonnegative;
  }
  int axis = im.ffc_axis(n, first, im.attr_int(n, "axis", 0), "the concatenated dim");
  Value out = im.emit_value(n, OpKind::concat, inputs, {AttrValue{int64_t{axis}}});
  out.groups = first.groups;
  out.nonnegative = nonneg;
  im.define(n, 0, out);
}

// ---- Split, Slice -----------------------------------------------------------------------------------

/// Emits a split of `v` along ffc dim `axis` into `sizes` and returns the pieces as values.
std::vector<Value> emit_split(Importer& im, int n, const Value& v, int axis, const std::vector<int64_t>& sizes) {
  int op = im.emit(n, OpKind::split, {v.tensor}, {AttrValue{int64_t{axis}}, AttrValue{sizes}});
  std::vector<Value> pieces;
  for (TensorId t : im.graph().ops[op].outputs) {
    Value piece = v;
    piece.tensor = t;
    pieces.push_back(piece);
  }
  return pieces;
}

void split_node(Importer& im, int n) {
  im.expect_attrs(n, {"axis", "split"});
  const Value& v = im.activation(n, 0);
  int axis = im.ffc_axis(n, v, im.attr_int(n, "axis", 0), "the split dim");
  const Dim& d = im.type(v).shape[axis];
  if (d.batch) im.fail(n, "splits the batch N; ffc splits other dims only");
  int outputs = im.node(n).output_size();
  std::vector<int64_t> sizes;
  if (im.opset() < 13) {
    sizes = im.attr_ints(n, "split", {});
  } else if (im.has_input(n, 1)) {
    ConstPtr c = im.constant(n, 1, "the split sizes");
    for (const Sym& s : c->ints) {
      if (c->is_float || !s.known || s.n) im.fail(n, "the split sizes must be fixed integers");
      sizes.push_back(s.k);
    }
  }
  if (sizes.empty()) {
    if (outputs < 1 || d.value % outputs) im.fail(n, "cannot split extent {} into {} equal parts", d.value, outputs);
    sizes.assign(outputs, d.value / outputs);
  }
  if (static_cast<int>(sizes.size()) != outputs) im.fail(n, "has {} outputs for {} split sizes", outputs, sizes.size());
  if (outputs == 1) {
    im.define(n, 0, v);
    return;
  }
  std::vector<Value> pieces = emit_split(im, n, v, axis, sizes);
  for (int i = 0; i < outputs; ++i) im.define(n, i, pieces[i]);
}

/// What a Slice node takes of its data: [lo, hi) of one ffc dim, or all of it.
struct SliceRange {
  int axis = -1;  ///< ffc dim; -1 when the slice takes everything
  int64_t lo = 0, hi = 0;
};

/// The range a Slice node takes, for its data `v`. With `quiet`, returns nullopt instead of failing
/// when the node is not a simple slice whose bounds are known now.
std::optional<SliceRange> slice_range(Importer& im, int n, const Value& v, bool quiet) {
  auto give_up = [&](std::string_view why) -> std::optional<SliceRange> {
    if (quiet) return std::nullopt;
    im.fail(n, "{}", why);
  };
  std::vector<std::vector<int64_t>> lists;
  for (int i = 1; i <= 4; ++i) {
    if (!im.has_input(n, i)) {
      if (i <= 2) return give_up("needs starts and ends");
      lists.emplace_back();
      continue;
    }
    ConstPtr c = quiet ? im.try_constant(im.node(n).input(i)) : im.constant(n, i, "a slice bound");
    if (!c || !c->loaded || c->is_float) return give_up("slice bounds must be integer constants");
    std::vector<int64_t> l;
    for (const Sym& s : c->ints) {
      if (!s.known || s.n) return give_up("slice bounds must be fixed numbers, not the batch");
      l.push_back(s.k);
    }
    lists.push_back(l);
  }
  const auto &starts = lists[0], &ends = lists[1];
  std::vector<int64_t> axes = lists[2], steps = lists[3];
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    return give_up("starts, ends, axes and steps differ in length");
  std::vector<Sym> shape = im.onnx_shape(v);
  int r = static_cast<int>(shape.size());
  SliceRange range;
  for (size_t i = 0; i < starts.size(); ++i) {
    if (axes[i] < -r || axes[i] >= r) return give_up("an axis is out of range");
    int a = static_cast<int>(axes[i] < 0 ? axes[i] + r : axes[i]);
    if (shape[a].n) {
      // Slicing the batch whole is a no-op (PyTorch's x[:, ...] may write it out).
      if (starts[i] == 0 && ends[i] >= INT64_MAX / 2 && steps[i] == 1) continue;
      return give_up("slices the batch N; ffc slices other dims only");
    }
    int64_t e = shape[a].k;
    auto clampi = [&](int64_t x) { return std::clamp(x < 0 ? (x < -e ? 0 : x + e) : x, int64_t{0}, e); };
    int64_t lo = clampi(starts[i]), hi = clampi(ends[i]);
    if (lo == 0 && hi == e && steps[i] == 1) continue;
    if (steps[i] != 1) return give_up("slices with a step other than 1");
    if (hi <= lo) return give_up("takes an empty slice");
    if (range.axis >= 0) return give_up("slices more than one dim; ffc slices one at a time");
    if (quiet && !v.groups.empty() && v.groups[a] != 1) return std::nullopt;
    range.axis = im.ffc_axis(n, v, a, "the sliced dim");
    range.lo = lo;
    range.hi = hi;
  }
  return range;
}

void slice_node(Importer& im, int n) {
  im.expect_attrs(n, {});
  const Value& v = im.activation(n, 0);
  SliceRange mine = *slice_range(im, n, v, false);
  if (mine.axis < 0) {
    im.define(n, 0, v);
    return;
  }
  // PyTorch's chunk() becomes sibling Slices of one tensor; one split serves them all.
  const std::string& data = im.node(n).input(0);
  std::vector<std::pair<int, SliceRange>> slices{{n, mine}};
  for (int m : im.consumers(data)) {
    if (m == n || im.done(m) || im.node(m).op_type() != "Slice" || im.node(m).input(0) != data ||
        im.node(m).attribute_size() != 0)
      continue;
    std::optional<SliceRange> r = slice_range(im, m, v, true);
    if (r && r->axis == mine.axis) slices.push_back({m, *r});
  }
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (auto& [m, r] : slices) ranges.push_back({r.lo, r.hi});
  std::sort(ranges.begin(), ranges.end());
  ranges.erase(std::unique(ranges.begin(), ranges.end()), ranges.end());
  bool disjoint = true;
  for (size_t i = 1; i < ranges.size(); ++i) disjoint &= ranges[i].first >= ranges[i - 1].second;
  if (!disjoint) {
    slices.resize(1);
    ranges = {{mine.lo, mine.hi}};
  }
  // Pieces cover the whole dim: the slices taken and the gaps between them.
  int64_t extent = im.type(v).shape[mine.axis].value;
  std::vector<int64_t> sizes, starts;
  int64_t at = 0;
  for (auto [lo, hi] : ranges) {
    if (lo > at) sizes.push_back(lo - at), starts.push_back(at);
    sizes.push_back(hi - lo), starts.push_back(lo);
    at = hi;
  }
  if (at < extent) sizes.push_back(extent - at), starts.push_back(at);
  std::vector<Value> pieces = emit_split(im, n, v, mine.axis, sizes);
  for (auto& [m, r] : slices) {
    size_t k = std::find(starts.begin(), starts.end(), r.lo) - starts.begin();
    im.define(m, 0, pieces.at(k));
    im.mark_done(m);
  }
}

// ---- Identity, Cast ---------------------------------------------------------------------------------

void identity_node(Importer& im, int n) {
  im.expect_attrs(n, {});
  im.define(n, 0, im.input(n, 0));
}

void cast_node(Importer& im, int n) {
  im.expect_attrs(n, {"to", "saturate"});
  const Value& v = im.activation(n, 0);
  int64_t to = im.attr_int(n, "to", 0);
  DType t = im.type(v).dtype;
  bool same = (to == pb::TensorProto::FLOAT && t == DType::f32) || (to == pb::TensorProto::FLOAT16 && t == DType::f16) ||
              (to == pb::TensorProto::BFLOAT16 && t == DType::bf16) || (to == pb::TensorProto::INT64 && t == DType::i64);
  if (!same) im.fail(n, "casts a {} tensor to element type {}; ffc imports casts that keep the type only", dtype_name(t), to);
  im.define(n, 0, v);
}

}  // namespace

// ---- shapes of activations -----------------------------------------------------------------------------

std::vector<Sym> Importer::onnx_shape(const Value& v) const {
  const Shape& s = type(v).shape;
  std::vector<Sym> out;
  auto sym = [](const Dim& d) { return d.batch ? Sym::batch() : Sym::fixed(d.value); };
  if (v.groups.empty()) {
    for (const Dim& d : s) out.push_back(sym(d));
    return out;
  }
  size_t at = 0;
  for (int g : v.groups) {
    Sym p = Sym::fixed(1);
    for (int k = 0; k < g; ++k) p = sym_mul(p, sym(s[at++]));
    out.push_back(p);
  }
  return out;
}

int Importer::onnx_rank(const Value& v) const {
  return v.groups.empty() ? type(v).rank() : static_cast<int>(v.groups.size());
}

int Importer::ffc_axis(int n, const Value& v, int64_t axis, std::string_view what) const {
  int r = onnx_rank(v);
  if (axis < -r || axis >= r) fail(n, "axis {} is out of range for rank {}", axis, r);
  int a = static_cast<int>(axis < 0 ? axis + r : axis);
  if (v.groups.empty()) return a;
  if (v.groups[a] != 1)
    fail(n, "{} (dim {} of {}) merges the batch with other dims; ffc cannot take it apart here", what, a,
         syms_str(onnx_shape(v)));
  return std::accumulate(v.groups.begin(), v.groups.begin() + a, 0);
}

void Importer::expect_plain(int n, const Value& v, std::string_view what) const {
  if (!v.groups.empty())
    fail(n, "{} has the ONNX shape {}, which merges the batch with other dims; ffc holds it as {} and cannot use it here",
         what, syms_str(onnx_shape(v)), type(v).str());
}

namespace {

/// The ffc dims and groups of a resolved reshape target (no -1, at most one entry with N), for an
/// input with `before` elements before its N and `after` after it; nullopt when the batch does not
/// line up (the target would move N across dims) or the counts differ.
std::optional<std::pair<Shape, std::vector<int>>> reshape_layout(const std::vector<Sym>& target, bool input_has_n,
                                                                 int64_t before, int64_t after) {
  Shape dims;
  std::vector<int> groups;
  int n_at = -1;
  int64_t known = 1;
  for (size_t j = 0; j < target.size(); ++j) {
    if (target[j].n) n_at = static_cast<int>(j);
    if (__builtin_mul_overflow(known, target[j].k, &known)) return std::nullopt;
  }
  int64_t per_sample = before * after;  // checked by the caller
  if (known != per_sample || (n_at >= 0) != input_has_n) return std::nullopt;
  // target[n_at] = a·N·b, with a·(the target's elements before it) = the input's before N.
  int64_t pre = 1, a = 1, b = 1;
  if (n_at >= 0) {
    for (int j = 0; j < n_at; ++j) pre *= target[j].k;
    if (before % pre || target[n_at].k % (before / pre)) return std::nullopt;
    a = before / pre;
    b = target[n_at].k / a;
  }
  for (size_t j = 0; j < target.size(); ++j) {
    if (static_cast<int>(j) != n_at) {
      dims.push_back(Dim::fixed(target[j].k));
      groups.push_back(1);
      continue;
    }
    int g = 1;
    if (a > 1) dims.push_back(Dim::fixed(a)), ++g;
    dims.push_back(Dim::n());
    if (b > 1) dims.push_back(Dim::fixed(b)), ++g;
    groups.push_back(g);
  }
  return std::pair{dims, groups};
}

}  // namespace

Value Importer::reshape(int n, const Value& in, std::vector<Sym> target, bool copy_zero) {
  const Shape& f = type(in).shape;
  std::vector<Sym> src = onnx_shape(in);
  bool has_n = false;
  int64_t before = 1, after = 1;
  for (const Dim& d : f) {
    if (d.batch) has_n = true;
    else if (!has_n) before = checked_product(*this, n, before, d.value);
    else after = checked_product(*this, n, after, d.value);
  }
  int64_t per_sample = checked_product(*this, n, before, after);

  // Resolve 0 (copy the input's dim); find -1 and N.
  int infer = -1, n_at = -1;
  int64_t known = 1;
  for (size_t i = 0; i < target.size(); ++i) {
    Sym& t = target[i];
    if (!t.known) fail(n, "entry {} of the target shape is not known at import time", i);
    if (!t.n && t.k == 0 && copy_zero) {
      if (i >= src.size()) fail(n, "target entry {} copies a dim the input {} does not have", i, syms_str(src));
      t = src[i];
    }
    if (!t.n && t.k == -1) {
      if (infer >= 0) fail(n, "the target shape {} holds -1 twice", syms_str(target));
      infer = static_cast<int>(i);
      continue;
    }
    if (t.k < 1) fail(n, "entry {} of the target shape is {}", i, t.str());
    if (t.n) {
      if (n_at >= 0) fail(n, "the target shape {} holds the batch N twice", syms_str(target));
      n_at = static_cast<int>(i);
    }
    known = checked_product(*this, n, known, t.k);
  }

  // The readings of the target, likeliest first.
  std::vector<std::vector<Sym>> readings;
  if (!has_n || n_at >= 0) {
    if (infer >= 0 && per_sample % known == 0) target[infer] = Sym::fixed(per_sample / known);
    readings.push_back(target);
  } else {
    // The input has N and the target does not say where it goes. Either -1 takes it...
    if (infer >= 0 && per_sample % known == 0) {
      std::vector<Sym> t = target;
      t[infer] = Sym::batch(per_sample / known);
      readings.push_back(t);
    }
    // ... or the target writes the batch as the number the model was exported with: the dim that
    // holds it is where the input's elements before N line up with the target's.
    int64_t batch = exported_batch_;
    std::vector<Sym> t = target;
    int64_t total = batch >= 1 ? checked_product(*this, n, per_sample, batch) : 0;
    if (infer >= 0 && batch >= 1 && total % known == 0) t[infer] = Sym::fixed(total / known);
    int best = -1;
    bool best_exact = false;
    int64_t pre = 1;
    for (size_t j = 0; batch >= 1 && j < t.size() && pre <= before; ++j) {
      if (t[j].k < 1) break;
      if (before % pre == 0 && t[j].k % checked_product(*this, n, before / pre, batch) == 0) {
        bool exact = before / pre == 1 && t[j].k == batch;  // the dim is the batch itself: likeliest
        if (best < 0 || (exact && !best_exact)) best = static_cast<int>(j), best_exact = exact;
      }
      pre = checked_product(*this, n, pre, t[j].k);
    }
    if (best >= 0) {
      t[best] = Sym::batch(t[best].k / batch);
      readings.push_back(t);
    }
  }
  for (const std::vector<Sym>& t : readings) {
    bool resolved = std::none_of(t.begin(), t.end(), [](const Sym& x) { return !x.n && x.k == -1; });
    if (!resolved) continue;
    if (auto layout = reshape_layout(t, has_n, before, after)) {
      Value out = in;
      out.groups = normalized(layout->second);
      if (layout->first != f) out.tensor = emit_value(n, OpKind::reshape, {in.tensor}, {AttrValue{layout->first}}).tensor;
      return out;
    }
  }
  if (has_n && n_at < 0)
    fail(n, "cannot reshape {} into {}: no dim of the target lines up with the batch N", syms_str(src), syms_str(target));
  fail(n, "cannot reshape {} into {}: the element counts differ or the batch N would move across dims", syms_str(src),
       syms_str(target));
}

std::span<const HandlerEntry> layout_handlers() {
  static const HandlerEntry handlers[] = {
      {"Reshape", reshape_node}, {"Flatten", flatten_node}, {"Unsqueeze", unsqueeze_node}, {"Squeeze", squeeze_node},
      {"Transpose", transpose_node}, {"Concat", concat_node}, {"Split", split_node}, {"Slice", slice_node},
      {"Identity", identity_node}, {"Cast", cast_node},
  };
  return handlers;
}

}  // namespace ffc::onnx_import
