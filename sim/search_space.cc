// The search space: candidate configs per op.
#include "sim/search_space.h"

#include <cmath>

#include "ir/op_table.h"

namespace ffc {

bool same_config(const OpConfig& a, const OpConfig& b) { return a.degrees == b.degrees && a.devices == b.devices; }

int SearchSpace::find(int op, const OpConfig& c) const {
  const std::vector<OpConfig>& cands = configs.at(op);
  for (size_t i = 0; i < cands.size(); ++i)
    if (same_config(cands[i], c)) return static_cast<int>(i);
  return -1;
}

int SearchSpace::add(int op, const OpConfig& c) {
  int i = find(op, c);
  if (i >= 0) return i;
  OpConfig copy = c;
  copy.loc = {};
  copy.cpu = false;
  copy.memory_types.clear();
  configs.at(op).push_back(std::move(copy));
  return static_cast<int>(configs[op].size()) - 1;
}

std::vector<int> SearchSpace::data_parallel_choice() const { return data_parallel; }

double SearchSpace::log10_size() const {
  double s = 0;
  for (int op : ops) s += std::log10(static_cast<double>(configs[op].size()));
  return s;
}

namespace {

/// Appends every degree vector with degree 1 on unsplittable dims, each degree at most its dim's
/// extent, and product `parts`, in lexicographic order (outermost dim first).
void degree_vectors(const std::vector<int64_t>& extents, const std::vector<bool>& split, int64_t parts, size_t dim,
                    std::vector<int64_t>& cur, std::vector<std::vector<int64_t>>& out) {
  if (dim == extents.size()) {
    if (parts == 1) out.push_back(cur);
    return;
  }
  for (int64_t d = 1; d <= parts; ++d) {
    if (parts % d != 0) continue;
    if (d > 1 && (!split[dim] || d > extents[dim])) continue;
    cur[dim] = d;
    degree_vectors(extents, split, parts / d, dim + 1, cur, out);
  }
  cur[dim] = 1;
}

}  // namespace

std::vector<OpConfig> candidate_configs(const Graph& g, const Op& op, int devices, int64_t batch) {
  const std::vector<int64_t> extents = op_parallel_extents(g, op, batch);
  const std::vector<bool> split = op_splittable(g, op);
  std::vector<OpConfig> out;
  for (int parts = 1; parts <= devices; ++parts) {
    if (devices % parts != 0) continue;
    std::vector<std::vector<int64_t>> degrees;
    std::vector<int64_t> cur(extents.size(), 1);
    degree_vectors(extents, split, parts, 0, cur, degrees);
    for (const std::vector<int64_t>& d : degrees)
      for (int start = 0; start < devices; start += parts) {
        OpConfig c;
        c.op = op.name;
        c.degrees = d;
        for (int k = 0; k < parts; ++k) c.devices.push_back(start + k);
        out.push_back(std::move(c));
      }
  }
  return out;
}

SearchSpace build_search_space(const Graph& g, int searched_ops, int devices, int64_t batch) {
  SearchSpace s;
  s.devices = devices;
  s.batch = batch;
  s.configs.resize(g.ops.size());
  s.data_parallel.assign(g.ops.size(), -1);
  for (int i = 0; i < searched_ops; ++i) {
    const Op& op = g.ops[i];
    s.ops.push_back(i);
    s.configs[i] = candidate_configs(g, op, devices, batch);
    s.data_parallel[i] = s.add(i, data_parallel_config(g, op, devices));
  }
  return s;
}

}  // namespace ffc
