// Loading the inputs every subcommand shares: a model and, optionally, a strategy.
#pragma once

#include <optional>
#include <string>

#include "frontend/strategy.h"
#include "ir/graph.h"

namespace ffc {

/// Reads a model by its extension: .ff (the text form) or .onnx (frontend/onnx_importer.h). A
/// UserError names the file on any problem.
Graph load_model(const std::string& path);

/// The most devices ffc plans for (`-g`, or the highest device id of a strategy plus one).
inline constexpr int kMaxDevices = 1 << 16;

/// The device count to use: `requested` when given (> 0), else one more than the highest device a
/// strategy names, else 1. A strategy naming a device at or above kMaxDevices is a UserError.
int device_count(int requested, const Strategy* s);

}  // namespace ffc
