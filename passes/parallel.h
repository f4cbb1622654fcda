// The middle end's pipeline (DESIGN.md §1): from a shape-checked graph and a strategy to the Rank
// IR — loss → autodiff → apply-strategy → partition → communicate → schedule → first-write →
// bucket → memory → overlap — with the same debug controls as the Graph IR passes (print after a
// pass, stop after one, time them).
#pragma once

#include <cstdint>
#include <optional>

#include "frontend/strategy.h"
#include "ir/rank_ir.h"
#include "passes/add_loss.h"
#include "passes/autodiff.h"
#include "passes/overlap.h"
#include "passes/partition.h"
#include "passes/pipeline.h"

namespace ffc {

struct ParallelOptions {
  int devices = 1;
  int64_t batch = 64;
  int optimizer_states = 2;           ///< see CommunicateOptions
  std::optional<LossKind> loss;       ///< for a model without a loss op
  bool input_grads = false;
  int64_t bucket_bytes = kDefaultBucketBytes;  ///< gradient all-reduce buckets (passes/overlap.h); 0: none
  PipelineOptions pipeline;           ///< print / stop / time controls (pass names of both pipelines)
};

/// Everything the middle end produced, for the tools that report on it.
struct Compiled {
  Graph graph;  ///< with its loss
  ResolvedStrategy strategy;
  Backward backward;
  Partition partition;
  Program program;
  bool complete = false;  ///< false when the pipeline stopped early (--stop-after)
};

/// Runs the middle end on a graph that passed the Graph IR pipeline. A UserError for a strategy
/// that does not fit the model.
Compiled compile_parallel(Graph g, const Strategy& s, const ParallelOptions& opts);

}  // namespace ffc
