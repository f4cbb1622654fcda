// The pass pipeline, in the order of DESIGN.md §1, with the debug controls a compiler engineer
// expects: print the IR after every pass or after named ones, stop after a pass, time each pass,
// and run the verifier after each.
#pragma once

#include <iosfwd>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"

namespace ffc {

/// One Graph IR pass: a name for flags, why it is in the pipeline, and the function.
struct GraphPass {
  std::string_view name;
  std::string_view why;
  void (*run)(Graph& g);
};

/// The Graph IR passes, in pipeline order.
const std::vector<GraphPass>& graph_passes();

/// The middle end's passes (passes/parallel.h), in pipeline order, after the Graph IR passes.
const std::vector<std::string_view>& middle_end_passes();

struct PipelineOptions {
  bool print_after_all = false;
  std::set<std::string, std::less<>> print_after;  ///< pass names
  std::string stop_after;                          ///< a pass name; empty runs them all
  bool verify_each = true;                         ///< run the verifier after every pass
  bool time_passes = false;                        ///< report each pass's time on `log`
  std::ostream* ir_out = nullptr;                  ///< where printed IR goes
  std::ostream* log = nullptr;                     ///< where timings go
};

/// Checks that every pass named in the options exists; a UserError lists the passes otherwise.
void check_pipeline_options(const PipelineOptions& opts);

/// Runs the Graph IR passes over `g`.
void run_graph_pipeline(Graph& g, const PipelineOptions& opts);

}  // namespace ffc
