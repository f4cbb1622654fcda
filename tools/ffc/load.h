// Loading the inputs every subcommand shares: a model and, optionally, a strategy.
#pragma once

#include <optional>
#include <string>

#include "frontend/strategy.h"
#include "ir/graph.h"

namespace ffc {

/// Reads a model by its extension (.ff; .onnx once the importer exists). A UserError names the file
/// on any problem.
Graph load_model(const std::string& path);

/// The device count to use: `requested` when given (> 0), else one more than the highest device a
/// strategy names, else 1.
int device_count(int requested, const Strategy* s);

}  // namespace ffc
