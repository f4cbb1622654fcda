// libFuzzer target for the .ff parser (built with FFC_FUZZ=ON and clang). Every input must parse or
// be rejected with a UserError; what parses must print and parse back to the same text.
//
//   ffc_ff_fuzzer -max_total_time=600 -dict=../tests/fuzz/ff.dict corpus/ ../examples/
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "frontend/ff_parser.h"
#include "ir/printer.h"
#include "passes/pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  ffc::Graph g;
  try {
    g = ffc::parse_ff(text, "fuzz.ff");
    ffc::run_graph_pipeline(g, ffc::PipelineOptions{});
  } catch (const ffc::UserError&) {
    return 0;
  }
  std::string printed = ffc::print_graph(g);
  try {
    if (ffc::print_graph(ffc::parse_ff(printed, "printed.ff")) != printed) {
      std::fprintf(stderr, "printing is not a fixed point:\n%s\n", printed.c_str());
      std::abort();
    }
  } catch (const ffc::UserError& e) {
    std::fprintf(stderr, "the printed form does not parse: %s\n%s\n", e.what(), printed.c_str());
    std::abort();
  }
  return 0;
}
