// libFuzzer target for the strategy reader (built with FFC_FUZZ=ON and clang). The first byte picks
// the form (even: text, odd: binary); every input must parse or be rejected with a UserError, and
// what parses is resolved against a small model and written back in both forms.
//
//   ffc_strategy_fuzzer -max_total_time=600 corpus/ ../strategies/
#include <cstdint>
#include <string>

#include "frontend/ff_parser.h"
#include "frontend/strategy.h"
#include "passes/pipeline.h"

namespace {

const ffc::Graph& model() {
  static const ffc::Graph g = [] {
    ffc::Graph m = ffc::parse_ff(
        "model tiny\n"
        "data = input() : f32[N,1,28,28]\n"
        "conv1 = conv2d(data, out_channels=8, kernel=3, padding=1, activation=relu)\n"
        "pool1 = pool2d(conv1, type=max, kernel=2, stride=2)\n"
        "flat1 = flat(pool1)\n"
        "linear1 = linear(flat1, out_features=10)\n"
        "prob = softmax(linear1)\n"
        "label = input() : i64[N]\n"
        "loss = softmax_cross_entropy(linear1, label)\n",
        "tiny.ff");
    ffc::run_graph_pipeline(m, ffc::PipelineOptions{});
    return m;
  }();
  return g;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  bool binary = data[0] & 1;
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    ffc::Strategy s = binary ? ffc::parse_strategy_binary(bytes, "fuzz.pb") : ffc::parse_strategy_text(bytes, "fuzz.pbtxt");
    ffc::parse_strategy_binary(ffc::strategy_to_binary(s), "again.pb");
    ffc::ResolvedStrategy r = ffc::resolve_strategy(model(), s, 4, 16);
    ffc::strategy_table(model(), r);
    ffc::parse_strategy_text(ffc::strategy_to_text(ffc::to_strategy(model(), r)), "again.pbtxt");
  } catch (const ffc::UserError&) {
  }
  return 0;
}
