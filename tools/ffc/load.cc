// Loading models and strategies for the driver.
#include "tools/ffc/load.h"

#include <algorithm>

#include "frontend/ff_parser.h"
#include "frontend/onnx_importer.h"

namespace ffc {

Graph load_model(const std::string& path) {
  auto ends = [&](std::string_view s) { return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0; };
  if (ends(".onnx")) return import_onnx_file(path);
  if (!ends(".ff")) throw UserError({path, 0, 0}, "unknown model format: expected a .ff or .onnx file");
  return parse_ff_file(path);
}

int device_count(int requested, const Strategy* s) {
  if (requested > 0) return requested;
  int64_t most = 0;
  if (s)
    for (const OpConfig& c : s->ops)
      for (int d : c.devices) {
        // Every op the strategy leaves out gets a part per device: a stray huge id must not make
        // ffc plan for billions of devices.
        if (d >= kMaxDevices)
          throw UserError(c.loc, fmt::format("op '{}': device {} is beyond the {} devices ffc supports; pass -g "
                                             "to name the device count",
                                             c.op, d, kMaxDevices));
        most = std::max<int64_t>(most, int64_t{d} + 1);
      }
  return static_cast<int>(std::max<int64_t>(1, most));
}

}  // namespace ffc
