// Helpers shared by the unit tests: small models written in the .ff text form, boxes by hand, and
// box rules evaluated on an op of a model.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "frontend/ff_parser.h"
#include "ir/box.h"
#include "ir/graph.h"
#include "ir/op_table.h"

namespace ffc::testing {

/// Parses `body` (op lines) as the model `t`; shape inference runs as it is read.
inline Graph model(std::string_view body) { return parse_ff("model t\n" + std::string(body), "t.ff"); }

/// The op named `name` of a model.
inline const Op& op_named(const Graph& g, std::string_view name) {
  int i = g.find_op(name);
  if (i < 0) throw std::runtime_error("no op " + std::string(name));
  return g.ops[i];
}

/// The type of output `k` of the op named `name`, as text (`f32[N,8,16,16]`).
inline std::string out_type(const Graph& g, std::string_view name, int k = 0) {
  return g.type(op_named(g, name).outputs.at(k)).str();
}

/// A box from [lo, hi) pairs.
inline Box box(std::initializer_list<std::pair<int64_t, int64_t>> ranges) {
  Box b;
  for (auto [lo, hi] : ranges) b.r.push_back({lo, hi});
  return b;
}

/// The box of input `i` that a part (a box of the op's parallel shape) needs, with N bound to `batch`.
inline Box input_box(const Graph& g, std::string_view name, int i, const Box& part, int64_t batch) {
  const Op& op = op_named(g, name);
  BoundOp b = bind_op(g, op, batch);
  return op.info().input_box(b, i, part);
}

/// The box of parameter `p` that a part needs (the whole parameter when the op has no rule).
inline Box param_box(const Graph& g, std::string_view name, int p, const Box& part, int64_t batch) {
  const Op& op = op_named(g, name);
  BoundOp b = bind_op(g, op, batch);
  if (op.info().param_box) return op.info().param_box(b, p, part);
  std::vector<ParamSpec> params = op_params(g, op);
  return Box::whole(bind_shape(params.at(p).shape, batch));
}

/// Every multi-index of a box, row-major.
inline std::vector<std::vector<int64_t>> points(const Box& b) {
  std::vector<std::vector<int64_t>> out;
  if (b.empty()) return out;
  std::vector<int64_t> p(b.rank());
  for (int d = 0; d < b.rank(); ++d) p[d] = b.r[d].lo;
  while (true) {
    out.push_back(p);
    int d = b.rank() - 1;
    while (d >= 0 && ++p[d] == b.r[d].hi) {
      p[d] = b.r[d].lo;
      --d;
    }
    if (d < 0) return out;
  }
}

/// The smallest box holding every point (rank `rank`; empty when there are none).
inline Box bounding_box(const std::vector<std::vector<int64_t>>& pts, int rank) {
  Box b;
  b.r.assign(rank, Range{0, 0});
  if (pts.empty()) return b;
  for (int d = 0; d < rank; ++d) b.r[d] = {pts[0][d], pts[0][d] + 1};
  for (const auto& p : pts)
    for (int d = 0; d < rank; ++d) {
      b.r[d].lo = std::min(b.r[d].lo, p[d]);
      b.r[d].hi = std::max(b.r[d].hi, p[d] + 1);
    }
  return b;
}

}  // namespace ffc::testing
