// The ONNX importer's constants: decoding tensors (initializers, Constant nodes) and folding the
// shape arithmetic PyTorch emits (Shape -> Gather -> Unsqueeze -> Concat -> Reshape and friends)
// into known values, with the batch kept symbolic.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "frontend/onnx_import.h"

namespace ffc::onnx_import {

namespace {

/// The most elements a folded constant may have: shape arithmetic is small, and a hostile file must
/// not make the importer allocate without bound.
constexpr int64_t kMaxFoldElements = int64_t{1} << 20;
/// The largest extent or element count a tensor of a model may claim.
constexpr int64_t kMaxExtent = int64_t{1} << 40;

int64_t checked_numel(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0 || d > kMaxExtent || __builtin_mul_overflow(n, d, &n) || n > kMaxExtent) return -1;
  }
  return n;
}

float half_to_float(uint16_t h) {
  uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0) v = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31) v = mant ? NAN : INFINITY;
  else v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}

float bfloat_to_float(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

template <typename T>
T read_le(const std::string& raw, int64_t i) {
  T v;
  std::memcpy(&v, raw.data() + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return v;
}

/// Row-major strides of a shape.
std::vector<int64_t> strides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) s[i] = s[i + 1] * dims[i + 1];
  return s;
}

/// A constant with the given dims whose element i is element src(i) of `c`.
Constant relayout(const Constant& c, std::vector<int64_t> dims, const std::function<int64_t(int64_t)>& src) {
  Constant out;
  out.dims = std::move(dims);
  out.is_float = c.is_float;
  int64_t n = out.numel();
  if (c.is_float) {
    out.floats.resize(n);
    for (int64_t i = 0; i < n; ++i) out.floats[i] = c.floats[src(i)];
  } else {
    out.ints.resize(n);
    for (int64_t i = 0; i < n; ++i) out.ints[i] = c.ints[src(i)];
  }
  return out;
}

class Folder {
 public:
  Folder(Importer& im, int node) : im_(im), n_(node), type_(im.node(node).op_type()) {}

  ConstPtr run() {
    if (type_ == "Constant") return done(constant_node());
    // Every other folding op needs its inputs known now; otherwise the node loop converts it.
    for (int i = 0; i < im_.num_inputs(n_); ++i) {
      if (!im_.has_input(n_, i)) continue;
      const Value* v = im_.find_value(im_.node(n_).input(i));
      if (!v) return nullptr;
      if (type_ == "Shape" && i == 0) continue;  // the shape of an activation is known
      if (!v->is_constant()) return nullptr;
    }
    if (type_ == "Shape") return done(shape());
    if (type_ == "Identity") return in(0, true);
    if (type_ == "Transpose") return transpose();
    for (int i = 0; i < im_.num_inputs(n_); ++i)
      if (im_.has_input(n_, i) && !im_.find_value(im_.node(n_).input(i))->constant->loaded)
        im_.fail(n_, "input {} ('{}') is a weight too large to fold at import", i, im_.node(n_).input(i));
    if (type_ == "Gather") return done(gather());
    if (type_ == "Unsqueeze") return done(unsqueeze());
    if (type_ == "Squeeze") return done(squeeze());
    if (type_ == "Concat") return done(concat());
    if (type_ == "Slice") return done(slice());
    if (type_ == "Cast") return done(cast());
    if (type_ == "Reshape") return done(reshape());
    if (type_ == "ConstantOfShape") return done(constant_of_shape());
    if (type_ == "Add" || type_ == "Sub" || type_ == "Mul" || type_ == "Div") return done(arith());
    return nullptr;
  }

 private:
  ConstPtr done(Constant c) {
    if (c.numel() > kMaxFoldElements) im_.fail(n_, "folds to a constant of {} elements, too many", c.numel());
    return std::make_shared<const Constant>(std::move(c));
  }

  /// Input i as a constant. `keep` allows an undecoded weight.
  ConstPtr in(int i, bool keep = false) {
    if (!im_.has_input(n_, i)) im_.fail(n_, "input {} is missing", i);
    ConstPtr c = im_.find_value(im_.node(n_).input(i))->constant;
    if (!keep && !c->loaded) im_.fail(n_, "input {} is too large to fold", i);
    return c;
  }

  /// Integer values of a constant input, all known and fixed (axes, pads, target shapes).
  std::vector<int64_t> ints_of(const Constant& c, std::string_view what) {
    if (c.is_float) im_.fail(n_, "{} must be integers", what);
    std::vector<int64_t> v;
    for (const Sym& s : c.ints) {
      if (!s.known || s.n) im_.fail(n_, "{} must be fixed numbers, got {}", what, s.str());
      v.push_back(s.k);
    }
    return v;
  }

  int axis(int64_t a, int rank, std::string_view what = "axis") {
    if (a < -rank || a >= rank) im_.fail(n_, "{} {} is out of range for rank {}", what, a, rank);
    return static_cast<int>(a < 0 ? a + rank : a);
  }

  /// Axes from the attribute (opsets before 13) or the input (13 and later).
  std::optional<std::vector<int64_t>> axes_input(int input) {
    if (im_.opset() < 13 || !im_.has_input(n_, input)) {
      if (!im_.attr(n_, "axes")) return std::nullopt;
      return im_.attr_ints(n_, "axes", {});
    }
    return ints_of(*in(input), "axes");
  }

  Constant constant_node() {
    const pb::NodeProto& nd = im_.node(n_);
    if (nd.attribute_size() != 1) im_.fail(n_, "must have exactly one attribute holding its value");
    const pb::AttributeProto& a = nd.attribute(0);
    Constant c;
    if (a.name() == "value") {
      if (!a.has_t()) im_.fail(n_, "attribute 'value' must be a tensor");
      return decode_tensor(im_, a.t(), "its value", kMaxFoldElements);
    } else if (a.name() == "value_float") {
      c.is_float = true;
      c.floats = {im_.attr_float(n_, "value_float", 0)};
    } else if (a.name() == "value_floats") {
      c.is_float = true;
      c.floats.assign(a.floats().begin(), a.floats().end());
      c.dims = {static_cast<int64_t>(c.floats.size())};
    } else if (a.name() == "value_int") {
      c.ints = {Sym::fixed(im_.attr_int(n_, "value_int", 0))};
    } else if (a.name() == "value_ints") {
      for (int64_t v : im_.attr_ints(n_, "value_ints", {})) c.ints.push_back(Sym::fixed(v));
      c.dims = {static_cast<int64_t>(c.ints.size())};
    } else {
      im_.fail(n_, "holds its value in attribute '{}', which ffc does not import", a.name());
    }
    return c;
  }

  Constant shape() {
    if (!im_.has_input(n_, 0)) im_.fail(n_, "has no input");
    const Value& v = *im_.find_value(im_.node(n_).input(0));
    std::vector<Sym> s;
    if (v.is_constant()) {
      for (int64_t d : v.constant->dims) s.push_back(Sym::fixed(d));
    } else {
      s = im_.onnx_shape(v);
    }
    int r = static_cast<int>(s.size());
    int64_t start = im_.attr_int(n_, "start", 0), end = im_.attr_int(n_, "end", r);
    start = std::clamp<int64_t>(start < 0 ? start + r : start, 0, r);
    end = std::clamp<int64_t>(end < 0 ? end + r : end, 0, r);
    Constant c;
    if (end > start) c.ints.assign(s.begin() + start, s.begin() + end);
    c.dims = {static_cast<int64_t>(c.ints.size())};
    return c;
  }

  ConstPtr transpose() {
    ConstPtr c = in(0, true);
    int r = static_cast<int>(c->dims.size());
    std::vector<int64_t> perm = im_.attr_ints(n_, "perm", {});
    if (perm.empty())
      for (int i = r - 1; i >= 0; --i) perm.push_back(i);
    if (static_cast<int>(perm.size()) != r) im_.fail(n_, "perm has {} entries for rank {}", perm.size(), r);
    std::vector<bool> seen(r, false);
    for (int64_t p : perm) {
      if (p < 0 || p >= r || seen[p]) im_.fail(n_, "perm is not a permutation of 0..{}", r - 1);
      seen[p] = true;
    }
    if (!c->loaded) {
      // A weight transposed for MatMul: remember the transpose instead of doing it.
      if (r != 2 || perm[0] != 1 || c->initializer.empty())
        im_.fail(n_, "transposes a weight too large to fold; ffc folds only the [1,0] transpose of a 2-D initializer");
      auto t = std::make_shared<Constant>(*c);
      t->dims = {c->dims[1], c->dims[0]};
      t->transposed = !c->transposed;
      return t;
    }
    std::vector<int64_t> dims(r), in_strides = strides(c->dims);
    for (int i = 0; i < r; ++i) dims[i] = c->dims[perm[i]];
    std::vector<int64_t> out_strides = strides(dims);
    Constant t = relayout(*c, dims, [&](int64_t i) {
      int64_t src = 0;
      for (int d = 0; d < r; ++d) src += (i / out_strides[d] % dims[d]) * in_strides[perm[d]];
      return src;
    });
    if (!c->initializer.empty() && r == 2 && perm[0] == 1) {
      t.initializer = c->initializer;
      t.transposed = !c->transposed;
    }
    return done(std::move(t));
  }

  Constant gather() {
    ConstPtr data = in(0), idx = in(1);
    int r = static_cast<int>(data->dims.size());
    if (r == 0) im_.fail(n_, "cannot gather from a scalar");
    int ax = axis(im_.attr_int(n_, "axis", 0), r);
    std::vector<int64_t> index = ints_of(*idx, "indices");
    int64_t extent = data->dims[ax];
    for (int64_t& i : index) {
      if (i < -extent || i >= extent) im_.fail(n_, "index {} is out of range for extent {}", i, extent);
      if (i < 0) i += extent;
    }
    std::vector<int64_t> dims(data->dims.begin(), data->dims.begin() + ax);
    dims.insert(dims.end(), idx->dims.begin(), idx->dims.end());
    dims.insert(dims.end(), data->dims.begin() + ax + 1, data->dims.end());
    if (checked_numel(dims) < 0 || checked_numel(dims) > kMaxFoldElements) im_.fail(n_, "gathers too many elements");
    int64_t inner = 1;
    for (int d = ax + 1; d < r; ++d) inner *= data->dims[d];
    int64_t nidx = static_cast<int64_t>(index.size());
    return relayout(*data, dims, [&](int64_t i) {
      int64_t in_pos = i % inner, rest = i / inner;
      int64_t k = rest % nidx, outer = rest / nidx;
      return (outer * extent + index[k]) * inner + in_pos;
    });
  }

  Constant unsqueeze() {
    Constant c = *in(0);
    auto axes = axes_input(1);
    if (!axes) im_.fail(n_, "needs axes");
    int r = static_cast<int>(c.dims.size() + axes->size());
    std::vector<bool> one(r, false);
    for (int64_t a : *axes) {
      int x = axis(a, r, "axes entry");
      if (one[x]) im_.fail(n_, "axes repeat {}", a);
      one[x] = true;
    }
    std::vector<int64_t> dims;
    for (int i = 0, k = 0; i < r; ++i) dims.push_back(one[i] ? 1 : c.dims[k++]);
    c.dims = dims;
    c.initializer.clear();
    return c;
  }

  Constant squeeze() {
    Constant c = *in(0);
    int r = static_cast<int>(c.dims.size());
    auto axes = axes_input(1);
    std::vector<bool> drop(r, false);
    if (!axes) {
      for (int i = 0; i < r; ++i) drop[i] = c.dims[i] == 1;
    } else {
      for (int64_t a : *axes) {
        int x = axis(a, r, "axes entry");
        if (c.dims[x] != 1) im_.fail(n_, "cannot squeeze dim {} of extent {}", x, c.dims[x]);
        drop[x] = true;
      }
    }
    std::vector<int64_t> dims;
    for (int i = 0; i < r; ++i)
      if (!drop[i]) dims.push_back(c.dims[i]);
    c.dims = dims;
    c.initializer.clear();
    return c;
  }

  Constant concat() {
    std::vector<ConstPtr> parts;
    for (int i = 0; i < im_.num_inputs(n_); ++i)
      if (im_.has_input(n_, i)) parts.push_back(in(i));
    if (parts.empty()) im_.fail(n_, "has no inputs");
    int r = static_cast<int>(parts[0]->dims.size());
    if (r == 0) im_.fail(n_, "cannot concatenate scalars");
    int ax = axis(im_.attr_int(n_, "axis", 0), r);
    std::vector<int64_t> dims = parts[0]->dims;
    dims[ax] = 0;
    for (const ConstPtr& p : parts) {
      if (p->is_float != parts[0]->is_float) im_.fail(n_, "mixes float and integer inputs");
      if (static_cast<int>(p->dims.size()) != r) im_.fail(n_, "inputs differ in rank");
      for (int d = 0; d < r; ++d)
        if (d != ax && p->dims[d] != parts[0]->dims[d]) im_.fail(n_, "inputs differ in dim {}", d);
      dims[ax] += p->dims[ax];
      if (dims[ax] > kMaxFoldElements) im_.fail(n_, "concatenates too many elements");
    }
    Constant out;
    out.dims = dims;
    out.is_float = parts[0]->is_float;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < ax; ++d) outer *= dims[d];
    for (int d = ax + 1; d < r; ++d) inner *= dims[d];
    for (int64_t o = 0; o < outer; ++o)
      for (const ConstPtr& p : parts) {
        int64_t chunk = p->dims[ax] * inner;
        for (int64_t k = 0; k < chunk; ++k) {
          if (out.is_float) out.floats.push_back(p->floats[o * chunk + k]);
          else out.ints.push_back(p->ints[o * chunk + k]);
        }
      }
    return out;
  }

  Constant slice() {
    ConstPtr data = in(0);
    int r = static_cast<int>(data->dims.size());
    std::vector<int64_t> starts = ints_of(*in(1), "starts"), ends = ints_of(*in(2), "ends");
    std::vector<int64_t> axes, steps;
    if (im_.has_input(n_, 3)) axes = ints_of(*in(3), "axes");
    else
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    if (im_.has_input(n_, 4)) steps = ints_of(*in(4), "steps");
    else steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
      im_.fail(n_, "starts, ends, axes and steps differ in length");
    std::vector<int64_t> lo(r, 0), step(r, 1), dims = data->dims;
    std::vector<bool> seen(r, false);
    for (size_t i = 0; i < starts.size(); ++i) {
      int a = axis(axes[i], r, "axes entry");
      if (seen[a]) im_.fail(n_, "slices axis {} twice", a);
      seen[a] = true;
      int64_t e = data->dims[a], s = steps[i];
      if (s == 0) im_.fail(n_, "step must not be 0");
      auto clampi = [&](int64_t v, int64_t lo_, int64_t hi_) {
        if (v < 0) v = v < -e ? -1 : v + e;  // careful with INT64_MIN-like sentinels
        return std::clamp(v, lo_, hi_);
      };
      int64_t b, en;
      if (s > 0) {
        b = clampi(starts[i], 0, e);
        en = clampi(ends[i], 0, e);
        dims[a] = en > b ? 1 + (en - b - 1) / s : 0;
      } else {
        b = clampi(starts[i], -1, e - 1);
        en = clampi(ends[i], -1, e - 1);
        if (s == INT64_MIN) im_.fail(n_, "step is out of range");
        dims[a] = b > en ? 1 + (b - en - 1) / (-s) : 0;
      }
      lo[a] = b;
      step[a] = s;
    }
    std::vector<int64_t> in_strides = strides(data->dims), out_strides = strides(dims);
    return relayout(*data, dims, [&](int64_t i) {
      int64_t src = 0;
      for (int d = 0; d < r; ++d) src += (lo[d] + (i / out_strides[d] % dims[d]) * step[d]) * in_strides[d];
      return src;
    });
  }

  Constant cast() {
    Constant c = *in(0);
    c.initializer.clear();
    int64_t to = im_.attr_int(n_, "to", 0);
    bool to_float = to == pb::TensorProto::FLOAT || to == pb::TensorProto::DOUBLE || to == pb::TensorProto::FLOAT16 ||
                    to == pb::TensorProto::BFLOAT16;
    bool to_int = to == pb::TensorProto::INT64 || to == pb::TensorProto::INT32 || to == pb::TensorProto::INT16 ||
                  to == pb::TensorProto::INT8 || to == pb::TensorProto::UINT8 || to == pb::TensorProto::BOOL;
    if (!to_float && !to_int) im_.fail(n_, "casts to element type {}, which ffc does not fold", to);
    if (to_float && !c.is_float) {
      for (const Sym& s : c.ints) {
        if (!s.known || s.n) im_.fail(n_, "casts the symbolic {} to float", s.str());
        c.floats.push_back(static_cast<double>(s.k));
      }
      c.ints.clear();
      c.is_float = true;
    } else if (to_int && c.is_float) {
      for (double f : c.floats) {
        if (!std::isfinite(f) || std::fabs(f) > 9e18) im_.fail(n_, "casts {} to an integer", f);
        c.ints.push_back(Sym::fixed(to == pb::TensorProto::BOOL ? f != 0 : static_cast<int64_t>(f)));
      }
      c.floats.clear();
      c.is_float = false;
    }
    return c;
  }

  Constant reshape() {
    Constant c = *in(0);
    std::vector<int64_t> shape = ints_of(*in(1), "the target shape");
    bool allowzero = im_.attr_int(n_, "allowzero", 0) != 0;
    int64_t known = 1;
    int infer = -1;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == 0 && !allowzero) {
        if (i >= c.dims.size()) im_.fail(n_, "target dim {} copies a dim the input does not have", i);
        shape[i] = c.dims[i];
      }
      if (shape[i] == -1) {
        if (infer >= 0) im_.fail(n_, "the target shape holds -1 twice");
        infer = static_cast<int>(i);
      } else if (shape[i] < 0 || __builtin_mul_overflow(known, shape[i], &known) || known > kMaxExtent) {
        im_.fail(n_, "the target shape is invalid");
      }
    }
    if (infer >= 0) {
      if (known == 0 || c.numel() % known) im_.fail(n_, "cannot infer the -1 of the target shape");
      shape[infer] = c.numel() / known;
    } else if (known != c.numel()) {
      im_.fail(n_, "cannot reshape {} elements into {}", c.numel(), known);
    }
    c.dims = shape;
    c.initializer.clear();
    return c;
  }

  Constant constant_of_shape() {
    std::vector<int64_t> dims = ints_of(*in(0), "the shape");
    int64_t n = checked_numel(dims);
    if (n < 0 || n > kMaxFoldElements) im_.fail(n_, "the shape [{}] is too large to fold", fmt::join(dims, ","));
    Constant c;
    c.dims = dims;
    c.is_float = true;
    double v = 0;
    if (const pb::AttributeProto* a = im_.attr(n_, "value")) {
      Constant t = decode_tensor(im_, a->t(), "its value", 1);
      if (t.numel() != 1 || !t.loaded) im_.fail(n_, "value must hold one element");
      c.is_float = t.is_float;
      if (!t.is_float) {
        c.ints.assign(n, t.ints[0]);
        return c;
      }
      v = t.floats[0];
    }
    c.floats.assign(n, v);
    return c;
  }

  Constant arith() {
    ConstPtr a = in(0), b = in(1);
    if (a->is_float != b->is_float) im_.fail(n_, "mixes float and integer operands");
    int r = static_cast<int>(std::max(a->dims.size(), b->dims.size()));
    std::vector<int64_t> dims(r);
    for (int i = 0; i < r; ++i) {
      int ia = i - (r - static_cast<int>(a->dims.size())), ib = i - (r - static_cast<int>(b->dims.size()));
      int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
      if (da != db && da != 1 && db != 1) im_.fail(n_, "operand shapes do not broadcast");
      dims[i] = da == 1 ? db : da;
    }
    int64_t n = checked_numel(dims);
    if (n < 0 || n > kMaxFoldElements) im_.fail(n_, "folds to too many elements");
    auto index = [&](const Constant& c, int64_t i) {
      std::vector<int64_t> cs = strides(c.dims);
      int off = r - static_cast<int>(c.dims.size());
      int64_t src = 0, rest = i;
      for (int d = r - 1; d >= 0; --d) {
        int64_t coord = rest % dims[d];
        rest /= dims[d];
        if (d >= off && c.dims[d - off] != 1) src += coord * cs[d - off];
      }
      return src;
    };
    Constant out;
    out.dims = dims;
    out.is_float = a->is_float;
    for (int64_t i = 0; i < n; ++i) {
      int64_t ia = index(*a, i), ib = index(*b, i);
      if (out.is_float) {
        double x = a->floats[ia], y = b->floats[ib];
        out.floats.push_back(type_ == "Add" ? x + y : type_ == "Sub" ? x - y : type_ == "Mul" ? x * y : x / y);
      } else {
        Sym x = a->ints[ia], y = b->ints[ib];
        if (type_ == "Div" && y.known && !y.n && y.k == 0) im_.fail(n_, "divides by zero");
        out.ints.push_back(type_ == "Add" ? sym_add(x, y) : type_ == "Sub" ? sym_sub(x, y) : type_ == "Mul" ? sym_mul(x, y) : sym_div(x, y));
      }
    }
    return out;
  }

  Importer& im_;
  int n_;
  const std::string& type_;
};

}  // namespace

double float32_value(double v) {
  if (!std::isfinite(v) || std::fabs(v) > 3.4e38) return v;
  return std::strtod(fmt::format("{}", static_cast<float>(v)).c_str(), nullptr);
}

int64_t Constant::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;  // dims were checked when the constant was made
  return n;
}

std::optional<double> Constant::scalar() const {
  if (!loaded || numel() != 1) return std::nullopt;
  if (is_float) return floats[0];
  if (!ints[0].known || ints[0].n) return std::nullopt;
  return static_cast<double>(ints[0].k);
}

bool is_folding_op(std::string_view t) {
  static const std::set<std::string_view, std::less<>> ops{
      "Constant", "Shape", "Identity", "Transpose", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice",
      "Cast",     "Reshape", "ConstantOfShape", "Add", "Sub", "Mul", "Div"};
  return ops.count(t) > 0;
}

ConstPtr fold_node(Importer& im, int node) { return Folder(im, node).run(); }

Constant decode_tensor(Importer& im, const pb::TensorProto& t, const std::string& what, int64_t max_load) {
  Constant c;
  c.dims.assign(t.dims().begin(), t.dims().end());
  int64_t n = checked_numel(c.dims);
  if (n < 0) im.fail_model(fmt::format("{} has an invalid shape [{}]", what, fmt::join(c.dims, ",")));
  if (t.data_location() == pb::TensorProto::EXTERNAL) {
    c.loaded = false;  // its bytes live in another file; ffc needs only its shape
    c.is_float = true;
    return c;
  }
  int size = 0;  // bytes per element in raw_data
  switch (t.data_type()) {
    case pb::TensorProto::FLOAT: c.is_float = true, size = 4; break;
    case pb::TensorProto::DOUBLE: c.is_float = true, size = 8; break;
    case pb::TensorProto::FLOAT16:
    case pb::TensorProto::BFLOAT16: c.is_float = true, size = 2; break;
    case pb::TensorProto::INT64:
    case pb::TensorProto::UINT64: size = 8; break;
    case pb::TensorProto::INT32:
    case pb::TensorProto::UINT32: size = 4; break;
    case pb::TensorProto::INT16:
    case pb::TensorProto::UINT16: size = 2; break;
    case pb::TensorProto::INT8:
    case pb::TensorProto::UINT8:
    case pb::TensorProto::BOOL: size = 1; break;
    default:
      im.fail_model(fmt::format("{} has element type {}, which ffc does not import", what,
                                pb::TensorProto::DataType_IsValid(t.data_type())
                                    ? pb::TensorProto::DataType_Name(static_cast<pb::TensorProto::DataType>(t.data_type()))
                                    : std::to_string(t.data_type())));
  }
  const auto type = t.data_type();
  int64_t stored;
  if (t.has_raw_data()) {
    stored = static_cast<int64_t>(t.raw_data().size());
    if (stored != n * size)
      im.fail_model(fmt::format("{} has {} bytes of data; its shape [{}] needs {} (a truncated or corrupt file?)", what, stored,
                                fmt::join(c.dims, ","), n * size));
  } else {
    switch (type) {
      case pb::TensorProto::FLOAT: stored = t.float_data_size(); break;
      case pb::TensorProto::DOUBLE: stored = t.double_data_size(); break;
      case pb::TensorProto::INT64: stored = t.int64_data_size(); break;
      case pb::TensorProto::UINT64:
      case pb::TensorProto::UINT32: stored = t.uint64_data_size(); break;
      default: stored = t.int32_data_size(); break;
    }
    if (stored != n)
      im.fail_model(fmt::format("{} has {} elements of data; its shape [{}] needs {} (a truncated or corrupt file?)", what, stored,
                                fmt::join(c.dims, ","), n));
  }
  if (n > max_load) {
    c.loaded = false;
    return c;
  }
  for (int64_t i = 0; i < n; ++i) {
    const std::string& raw = t.raw_data();
    bool r = t.has_raw_data();
    switch (type) {
      case pb::TensorProto::FLOAT: c.floats.push_back(r ? read_le<float>(raw, i) : t.float_data(static_cast<int>(i))); break;
      case pb::TensorProto::DOUBLE: c.floats.push_back(r ? read_le<double>(raw, i) : t.double_data(static_cast<int>(i))); break;
      case pb::TensorProto::FLOAT16:
        c.floats.push_back(half_to_float(r ? read_le<uint16_t>(raw, i) : static_cast<uint16_t>(t.int32_data(static_cast<int>(i)))));
        break;
      case pb::TensorProto::BFLOAT16:
        c.floats.push_back(bfloat_to_float(r ? read_le<uint16_t>(raw, i) : static_cast<uint16_t>(t.int32_data(static_cast<int>(i)))));
        break;
      case pb::TensorProto::INT64: c.ints.push_back(Sym::fixed(r ? read_le<int64_t>(raw, i) : t.int64_data(static_cast<int>(i)))); break;
      case pb::TensorProto::UINT64: {
        uint64_t v = r ? read_le<uint64_t>(raw, i) : t.uint64_data(static_cast<int>(i));
        c.ints.push_back(v > static_cast<uint64_t>(INT64_MAX) ? Sym::unknown() : Sym::fixed(static_cast<int64_t>(v)));
        break;
      }
      case pb::TensorProto::UINT32:
        c.ints.push_back(Sym::fixed(r ? read_le<uint32_t>(raw, i) : static_cast<int64_t>(t.uint64_data(static_cast<int>(i)))));
        break;
      case pb::TensorProto::INT32: c.ints.push_back(Sym::fixed(r ? read_le<int32_t>(raw, i) : t.int32_data(static_cast<int>(i)))); break;
      case pb::TensorProto::INT16: c.ints.push_back(Sym::fixed(r ? read_le<int16_t>(raw, i) : t.int32_data(static_cast<int>(i)))); break;
      case pb::TensorProto::UINT16: c.ints.push_back(Sym::fixed(r ? read_le<uint16_t>(raw, i) : t.int32_data(static_cast<int>(i)))); break;
      case pb::TensorProto::INT8: c.ints.push_back(Sym::fixed(r ? read_le<int8_t>(raw, i) : t.int32_data(static_cast<int>(i)))); break;
      default: c.ints.push_back(Sym::fixed(r ? read_le<uint8_t>(raw, i) : t.int32_data(static_cast<int>(i)))); break;
    }
  }
  return c;
}

}  // namespace ffc::onnx_import
