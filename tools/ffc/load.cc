// Loading models and strategies for the driver.
#include "tools/ffc/load.h"

#include <algorithm>

#include "frontend/ff_parser.h"

namespace ffc {

Graph load_model(const std::string& path) {
  auto ends = [&](std::string_view s) { return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0; };
  if (ends(".onnx")) throw UserError({path, 0, 0}, "ONNX models are not supported yet: the ONNX importer is not built");
  if (!ends(".ff")) throw UserError({path, 0, 0}, "unknown model format: expected a .ff or .onnx file");
  return parse_ff_file(path);
}

int device_count(int requested, const Strategy* s) {
  if (requested > 0) return requested;
  int most = 0;
  if (s)
    for (const OpConfig& c : s->ops)
      for (int d : c.devices) most = std::max(most, d + 1);
  return std::max(1, most);
}

}  // namespace ffc
