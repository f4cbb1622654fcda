// Partition.
#include "passes/partition.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ir/op_table.h"

namespace ffc {

Partition partition(const Graph& g, const ResolvedStrategy& s, int64_t batch) {
  Partition p;
  p.num_devices = s.num_devices;
  p.batch = batch;
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const Op& op = g.ops[i];
    const OpConfig& c = s.configs.at(i);
    BoundOp bound = bind_op(g, op, batch);
    std::vector<int64_t> extents = op_parallel_extents(g, op, batch);
    std::vector<ParamSpec> specs = op_params(g, op);
    const OpInfo& info = op.info();
    OpParts parts;
    parts.degrees = c.degrees;
    FFC_CHECK(c.degrees.size() == extents.size());
    const int64_t n = num_parts(c.degrees);
    FFC_CHECK(static_cast<int64_t>(c.devices.size()) == n);
    for (int64_t k = 0; k < n; ++k) {
      Part part;
      part.device = c.devices[k];
      part.box = part_box(extents, c.degrees, k);
      for (size_t j = 0; j < op.outputs.size(); ++j) part.out.push_back(op_output_box(bound, static_cast<int>(j), part.box));
      for (size_t j = 0; j < op.inputs.size(); ++j) {
        Box b = info.input_box ? info.input_box(bound, static_cast<int>(j), part.box) : part.box;
        FFC_CHECK(b.rank() == static_cast<int>(bound.in[j].size()));
        part.in.push_back(std::move(b));
      }
      for (size_t j = 0; j < specs.size(); ++j)
        part.params.push_back(info.param_box ? info.param_box(bound, static_cast<int>(j), part.box)
                                             : Box::whole(bind_shape(specs[j].shape, batch)));
      part.saved = op_saved_boxes(bound, part.box);
      parts.parts.push_back(std::move(part));
    }
    p.ops.push_back(std::move(parts));
  }
  return p;
}

std::string print_partition(const Graph& g, const Partition& p) {
  std::string s = fmt::format("partition of {} on {} devices, batch {}\n", g.name, p.num_devices, p.batch);
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const Op& op = g.ops[i];
    const OpParts& parts = p.ops[i];
    std::vector<std::string> dims = parallel_dim_names(static_cast<int>(parts.degrees.size()));
    std::vector<std::string> cfg;
    for (size_t d = 0; d < parts.degrees.size(); ++d) cfg.push_back(fmt::format("{}={}", dims[d], parts.degrees[d]));
    s += fmt::format("{} ({}) {}\n", op.name, op.info().name, fmt::join(cfg, " "));
    for (size_t k = 0; k < parts.parts.size(); ++k) {
      const Part& part = parts.parts[k];
      s += fmt::format("  part {} on device {}: {}\n", k, part.device, part.box.str());
      for (size_t j = 0; j < part.out.size(); ++j)
        if (part.out.size() > 1 || part.out[j] != part.box) s += fmt::format("    out {} {}\n", j, part.out[j].str());
      for (size_t j = 0; j < part.in.size(); ++j)
        s += fmt::format("    in {} {} {}\n", j, g.tensors[op.inputs[j]].name, part.in[j].empty() ? "(nothing)" : part.in[j].str());
      std::vector<ParamSpec> specs = op_params(g, op);
      for (size_t j = 0; j < part.params.size(); ++j)
        s += fmt::format("    param {} {}\n", specs[j].name, part.params[j].str());
    }
  }
  return s;
}

}  // namespace ffc
