// The ONNX importer's stand-in for builds without onnx.proto: every .onnx model is refused.
#include "frontend/onnx_importer.h"

namespace ffc {

bool onnx_importer_built() { return false; }

Graph import_onnx(std::string_view, const std::string& file) {
  throw UserError({file}, "this ffc was built without the ONNX importer (onnx.proto from libonnx-dev was not found)");
}

Graph import_onnx_file(const std::string& path) { return import_onnx({}, path); }

}  // namespace ffc
