// libFuzzer target for the ONNX importer (built with FFC_FUZZ=ON and clang). Every input must import
// or be rejected with a UserError; what imports must pass the pipeline and print back the same
// after a trip through the .ff parser. Seeds: small exported models, e.g.
//
//   ffc_onnx_fuzzer -max_total_time=600 corpus/ tests/onnx/models/   (after ctest -R onnx_export_tiny)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "frontend/ff_parser.h"
#include "frontend/onnx_importer.h"
#include "ir/printer.h"
#include "passes/pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  ffc::Graph g;
  try {
    g = ffc::import_onnx(bytes, "fuzz.onnx");
    ffc::run_graph_pipeline(g, ffc::PipelineOptions{});
  } catch (const ffc::UserError&) {
    return 0;
  }
  std::string printed = ffc::print_graph(g);
  try {
    if (ffc::print_graph(ffc::parse_ff(printed, "printed.ff")) != printed) {
      std::fprintf(stderr, "the imported model does not print back the same:\n%s\n", printed.c_str());
      std::abort();
    }
  } catch (const ffc::UserError& e) {
    std::fprintf(stderr, "the imported model's printed form does not parse: %s\n%s\n", e.what(), printed.c_str());
    std::abort();
  }
  return 0;
}
