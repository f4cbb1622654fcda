// Partition: every op becomes parts, each a box of its parallel shape on a device (DESIGN.md §3).
//
// A part's boxes come from the op table: the box of each output it computes (output_box), of each
// input it reads (input_box: halos for windows, whole rows for contractions, ...), of each
// parameter block (param_box) and of its saved state. Part i of a config covers the i-th box of
// the row-major numbering of its degrees (part_box, ⌊i·E/d⌋ splits) and runs on the config's i-th
// device; several parts may share a device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "frontend/strategy.h"
#include "ir/box.h"
#include "ir/graph.h"

namespace ffc {

struct Part {
  int device = 0;
  Box box;                  ///< of the op's parallel shape
  std::vector<Box> out;     ///< per output
  std::vector<Box> in;      ///< per input; empty when the part reads nothing of it
  std::vector<Box> params;  ///< per parameter (op_params order)
  std::vector<Box> saved;   ///< per saved-state tensor (OpInfo::saved)
};

struct OpParts {
  std::vector<int64_t> degrees;
  std::vector<Part> parts;
};

struct Partition {
  int num_devices = 1;
  int64_t batch = 0;
  std::vector<OpParts> ops;  ///< per graph op
};

/// Partitions a graph (shapes inferred) under a resolved strategy for a global batch.
Partition partition(const Graph& g, const ResolvedStrategy& s, int64_t batch);

/// Text form: per op its config, then per part its device and boxes.
std::string print_partition(const Graph& g, const Partition& p);

}  // namespace ffc
