// The pass pipeline.
#include "passes/pipeline.h"

#include <chrono>
#include <ostream>

#include "ir/printer.h"
#include "ir/verifier.h"
#include "passes/infer_shapes.h"

namespace ffc {

const std::vector<GraphPass>& graph_passes() {
  static const std::vector<GraphPass> passes{
      // The frontends build graphs op by op; check the whole before anything relies on it.
      {"verify", "structural checks: names, def-before-use, operand counts, attribute kinds, types",
       [](Graph& g) { verify_graph(g); }},
      // Every later pass reads tensor types; recompute them from the ops themselves.
      {"shapes", "infer every tensor's type from its producer's table entry", infer_shapes},
      // The middle end follows (passes/parallel.h): it needs a strategy and a device count.
  };
  return passes;
}

const std::vector<std::string_view>& middle_end_passes() {
  static const std::vector<std::string_view> names{"loss",      "autodiff",    "apply-strategy", "partition",
                                                   "communicate", "schedule", "first-write", "bucket", "memory", "overlap"};
  return names;
}

void check_pipeline_options(const PipelineOptions& opts) {
  std::vector<std::string_view> names;
  for (const GraphPass& p : graph_passes()) names.push_back(p.name);
  for (std::string_view p : middle_end_passes()) names.push_back(p);
  auto known = [&](std::string_view n) {
    for (std::string_view k : names)
      if (k == n) return true;
    return false;
  };
  for (const std::string& n : opts.print_after)
    if (!known(n)) throw UserError({}, fmt::format("unknown pass '{}'; the passes are: {}", n, fmt::join(names, ", ")));
  if (!opts.stop_after.empty() && !known(opts.stop_after))
    throw UserError({}, fmt::format("unknown pass '{}'; the passes are: {}", opts.stop_after, fmt::join(names, ", ")));
}

void run_graph_pipeline(Graph& g, const PipelineOptions& opts) {
  check_pipeline_options(opts);
  for (const GraphPass& pass : graph_passes()) {
    auto start = std::chrono::steady_clock::now();
    pass.run(g);
    if (opts.verify_each) verify_graph(g);
    if (opts.time_passes && opts.log) {
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      *opts.log << fmt::format("pass {:<12} {:8.3f} ms\n", pass.name, ms);
    }
    if (opts.ir_out && (opts.print_after_all || opts.print_after.count(pass.name)))
      *opts.ir_out << fmt::format("# IR after {}\n", pass.name) << print_graph(g);
    if (opts.stop_after == pass.name) break;  // a middle-end pass: the graph passes all run
  }
}

}  // namespace ffc
