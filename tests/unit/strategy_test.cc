// Strategy files: the binary and text forms round-trip, FlexFlow's innermost-first dims map to ffc's
// outermost-first degrees, and resolve_strategy fills in data parallelism and reports every problem.
#include "frontend/strategy.h"

#include <gtest/gtest.h>

#include "tests/unit/testing.h"

namespace ffc {
namespace {

Graph tiny() {
  return testing::model(
      "data = input() : f32[N,1,28,28]\n"
      "conv1 = conv2d(data, out_channels=8, kernel=3, padding=1)\n"
      "flat1 = flat(conv1)\n"
      "linear1 = linear(flat1, out_features=10)\n"
      "prob = softmax(linear1)\n"
      "label = input() : i64[N]\n"
      "loss = softmax_cross_entropy(linear1, label)\n"
      "fixed = input() : f32[6,4]\n"
      "rows = reshape(fixed, shape=[4,6])\n");
}

OpConfig config(std::string op, std::vector<int64_t> degrees, std::vector<int> devices) {
  OpConfig c;
  c.op = std::move(op);
  c.degrees = std::move(degrees);
  c.devices = std::move(devices);
  return c;
}

Strategy sample() {
  Strategy s;
  s.ops.push_back(config("conv1", {1, 1, 2, 2}, {0, 2, 1, 3}));
  s.ops.push_back(config("linear1", {1, 3}, {0, 2, 3}));
  s.ops.back().cpu = true;
  s.ops.back().memory_types = {0, 1, 1};
  s.ops.push_back(config("odd \"name\" \\ here", {4}, {3, 2, 1, 0}));
  return s;
}

void expect_same(const Strategy& a, const Strategy& b) {
  ASSERT_EQ(a.ops.size(), b.ops.size());
  for (size_t i = 0; i < a.ops.size(); ++i) {
    EXPECT_EQ(a.ops[i].op, b.ops[i].op);
    EXPECT_EQ(a.ops[i].cpu, b.ops[i].cpu);
    EXPECT_EQ(a.ops[i].degrees, b.ops[i].degrees);
    EXPECT_EQ(a.ops[i].devices, b.ops[i].devices);
    EXPECT_EQ(a.ops[i].memory_types, b.ops[i].memory_types);
  }
}

TEST(Strategy, BinaryRoundTrip) {
  Strategy s = sample();
  std::string bytes = strategy_to_binary(s);
  Strategy back = parse_strategy_binary(bytes, "s.pb");
  expect_same(s, back);
  EXPECT_EQ(strategy_to_binary(back), bytes);
  EXPECT_EQ(back.ops[0].loc.str(), "s.pb");  // binary files have no lines
}

TEST(Strategy, BinaryIsFlexFlowsWireFormat) {
  // One op, written as FlexFlow's proto2 schema does: name (1), device_type (2), dims (3) and
  // device_ids (4) unpacked, innermost dim first.
  Strategy s;
  s.ops.push_back(config("c", {1, 2}, {0, 1}));  // n=1 c=2: FlexFlow's dims [2, 1]
  const std::string want{"\x0a\x0d"           // Strategy.ops, 13 bytes
                         "\x0a\x01"
                         "c"                  // name
                         "\x10\x00"           // device_type GPU
                         "\x18\x02\x18\x01"   // dims 2, 1
                         "\x20\x00\x20\x01",  // device_ids 0, 1
                         15};
  EXPECT_EQ(strategy_to_binary(s), want);
}

TEST(Strategy, TextRoundTrip) {
  Strategy s = sample();
  std::string text = strategy_to_text(s, {"A header line.", ""});
  EXPECT_EQ(text.rfind("# A header line.\n#\n\n", 0), 0u) << text;
  EXPECT_NE(text.find("# conv1: n=1 c=1 h=2 w=2 on 0 2 1 3\n"
                      "ops { name: \"conv1\" device_type: GPU dims: [2, 2, 1, 1] device_ids: [0, 2, 1, 3] }\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("device_type: CPU dims: [3, 1] device_ids: [0, 2, 3] memory_types: [FBM, ZCM, ZCM] }"),
            std::string::npos)
      << text;
  Strategy back = parse_strategy_text(text, "s.pbtxt");
  expect_same(s, back);
  EXPECT_EQ(strategy_to_text(back, {"A header line.", ""}), text);
  // Each entry remembers the line and column it was read at.
  EXPECT_EQ(back.ops[0].loc.str(), "s.pbtxt:5:1");
  EXPECT_EQ(back.ops[1].loc.str(), "s.pbtxt:7:1");
}

TEST(Strategy, TextErrorsHaveLineAndColumn) {
  try {
    parse_strategy_text("ops { name: \"a\" }\nops { dims: [1,, 2] }\n", "bad.pbtxt");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_EQ(e.loc().line, 2);
    EXPECT_EQ(e.loc().col, 16);
    EXPECT_EQ(e.message(), "Expected integer, got: ,");
  }
  EXPECT_THROW(parse_strategy_binary("\xff\xff", "bad.pb"), UserError);
  EXPECT_THROW(read_strategy_file("/nonexistent/s.pb"), UserError);
}

TEST(Strategy, ResolveFillsInDataParallelism) {
  Graph g = tiny();
  Strategy s;
  s.ops.push_back(config("linear1", {1, 2}, {3, 1}));
  ResolvedStrategy r = resolve_strategy(g, s, 4);
  ASSERT_EQ(r.configs.size(), g.ops.size());
  EXPECT_EQ(r.num_devices, 4);
  auto at = [&](std::string_view name) { return r.configs[g.find_op(name)]; };
  EXPECT_EQ(at("linear1").degrees, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(at("linear1").devices, (std::vector<int>{3, 1}));
  EXPECT_TRUE(r.from_file[g.find_op("linear1")]);
  // Everything else: the batch over all devices, the other dims whole.
  EXPECT_FALSE(r.from_file[g.find_op("conv1")]);
  EXPECT_EQ(at("conv1").degrees, (std::vector<int64_t>{4, 1, 1, 1}));
  EXPECT_EQ(at("conv1").devices, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(at("prob").degrees, (std::vector<int64_t>{4, 1}));
  EXPECT_EQ(at("loss").degrees, (std::vector<int64_t>{4}));  // the labels' shape
  // An op without a batch dim (or one it cannot split) runs whole on device 0.
  EXPECT_EQ(at("fixed").degrees, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(at("fixed").devices, (std::vector<int>{0}));
  EXPECT_EQ(at("rows").devices, (std::vector<int>{0}));
  // to_strategy writes every op.
  EXPECT_EQ(to_strategy(g, r).ops.size(), g.ops.size());
  EXPECT_EQ(config_str(at("conv1")), "n=4 c=1 h=1 w=1");
  EXPECT_EQ(config_str(at("loss")), "n=4");
}

TEST(Strategy, ResolveReportsEveryProblem) {
  Graph g = tiny();
  Strategy s = parse_strategy_text(
      "ops { name: \"nope\" dims: [1] device_ids: [0] }\n"
      "ops { name: \"linear1\" dims: [1, 1, 1] device_ids: [0] }\n"
      "ops { name: \"prob\" dims: [2, 1] device_ids: [0, 1] }\n"
      "ops { name: \"conv1\" dims: [1, 1, 9, 1] device_ids: [0] }\n"
      "ops { name: \"flat1\" dims: [1, 2] device_ids: [0, 5] }\n"
      "ops { name: \"flat1\" dims: [1, 1] device_ids: [0] }\n"
      "ops { name: \"label\" dims: [8] device_ids: [0, 1, 2, 3, 0, 1, 2, 3] }\n",
      "s.pbtxt");
  try {
    resolve_strategy(g, s, 4, 4);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()),
              "s.pbtxt:1:1: error: unknown op 'nope': the model 't' has no op of that name\n"
              "s.pbtxt:2:1: error: op 'linear1' (linear): 3 dims given, but its output [N,10] has 2 (n c)\n"
              "s.pbtxt:3:1: error: op 'prob' (softmax): cannot split dim c; it may split n\n"
              "s.pbtxt:4:1: error: op 'conv1' (conv2d): degree 9 of dim c exceeds its extent 8\n"
              "s.pbtxt:5:1: error: op 'flat1' (flat): device 5 is out of range for 4 devices (0..3)\n"
              "s.pbtxt:6:1: error: op 'flat1' (flat) is configured twice\n"
              "s.pbtxt:7:1: error: op 'label' (input): degree 8 of dim n exceeds its extent 4 (the batch)");
  }
  // Without a batch, the batch degree is not bounded.
  Strategy ok;
  ok.ops.push_back(config("label", {8}, {0, 1, 2, 3, 0, 1, 2, 3}));
  EXPECT_NO_THROW(resolve_strategy(g, ok, 4));
}

TEST(Strategy, TableLayout) {
  Graph g = testing::model("x = input() : f32[N,2]\nlonger_name = relu(x)\n");
  ResolvedStrategy r = resolve_strategy(g, Strategy{}, 2);
  EXPECT_EQ(strategy_table(g, r),
            "| Operator    | Type  | Configuration | Devices |\n"
            "|-------------|-------|---------------|---------|\n"
            "| x           | input | n=2 c=1       | 0 1     |\n"
            "| longer_name | relu  | n=2 c=1       | 0 1     |\n");
}

}  // namespace
}  // namespace ffc
