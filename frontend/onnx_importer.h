// The ONNX frontend: an .onnx model, as torch.onnx.export writes it (opsets 11 to 17), to a Graph.
//
// Every ONNX node becomes at most one op of ffc's op table, and the patterns PyTorch decomposes
// become one op again (the Erf form of GELU, LayerNorm as ReduceMean/Sub/Pow/Sqrt/Div). Shape
// arithmetic (Shape, Gather, Unsqueeze, Concat, Constant, ...) is folded at import, with dim 0 of
// every graph input read as the symbolic batch N. Initializers become the parameters of the ops
// that read them and keep their ONNX names (Op::param_names); op names come from node names.
// The model's outputs are the network's; no loss is added here.
#pragma once

#include <string>
#include <string_view>

#include "ir/graph.h"

namespace ffc {

/// Whether this build has the ONNX importer (it needs onnx.proto from libonnx-dev to build).
bool onnx_importer_built();

/// Imports a serialized ONNX ModelProto. `file` names the source in diagnostics; its stem names the
/// model. Throws UserError, naming the file and the node, on a file that is not a readable ONNX model
/// or a model ffc cannot express; every unsupported operator is listed in one error.
Graph import_onnx(std::string_view bytes, const std::string& file);

/// Reads and imports an .onnx file; a file that cannot be read is a UserError.
Graph import_onnx_file(const std::string& path);

}  // namespace ffc
