// The .ff parser and printer: graphs built in code print, parse and print again unchanged; names,
// numbers and comments survive; errors carry their line and column.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "frontend/ff_parser.h"
#include "ir/op_table.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "passes/infer_shapes.h"
#include "tests/unit/testing.h"

namespace ffc {
namespace {

using Ints = std::vector<int64_t>;

/// Adds an input op of the given type.
TensorId add_input(Graph& g, const std::string& name, TensorType t) {
  int i = g.add_op(name, OpKind::input, {}, {});
  g.tensors[g.ops[i].outputs[0]].type = std::move(t);
  return g.ops[i].outputs[0];
}

TensorId out(const Graph& g, int op) { return g.ops[op].outputs[0]; }

/// A CNN and a sequence model built op by op, attributes given positionally as the table lists them.
Graph built_graph() {
  Graph g;
  g.name = "built";
  g.header = {"# Built by parser_test.cc with Graph::add_op.", ""};
  TensorId img = add_input(g, "data", {DType::f32, {Dim::n(), Dim::fixed(3), Dim::fixed(32), Dim::fixed(32)}});
  int conv = g.add_op("conv1", OpKind::conv2d, {img},
                      {int64_t{16}, Ints{3, 3}, Ints{2, 2}, Ints{1, 1}, Ints{1, 1}, int64_t{1}, false, std::string("relu")});
  g.ops[conv].trailing = " 16 channels";
  int pool = g.add_op("pool1", OpKind::pool2d, {out(g, conv)}, {std::string("max"), Ints{2, 2}, Ints{2, 2}});
  g.ops[pool].leading = {"", "# Pooling, then the classifier."};
  int bn = g.add_op("bn1", OpKind::batch_norm, {out(g, pool)}, {1e-3});
  int flat = g.add_op("flat1", OpKind::flat, {out(g, bn)}, {});
  int fc = g.add_op("fc", OpKind::linear, {out(g, flat)}, {int64_t{10}});
  g.ops[fc].param_names = {"classifier.weight", "classifier.bias"};
  int drop = g.add_op("drop", OpKind::dropout, {out(g, fc)}, {0.25});
  TensorId ids = add_input(g, "token ids", {DType::i64, {Dim::n(), Dim::fixed(6)}});
  int emb = g.add_op("emb", OpKind::embedding, {ids}, {int64_t{50}, int64_t{8}});
  int ln = g.add_op("ln", OpKind::layer_norm, {out(g, emb)}, {});
  int t = g.add_op("t", OpKind::transpose, {out(g, ln)}, {Ints{0, 2, 1}});
  int mm = g.add_op("scores", OpKind::matmul, {out(g, ln), out(g, t)}, {});
  int sm = g.add_op("probs", OpKind::softmax, {out(g, mm)}, {int64_t{-1}});
  int cat = g.add_op("cat", OpKind::concat, {out(g, sm), out(g, ln)}, {int64_t{2}});
  int r = g.add_op("r", OpKind::reshape, {out(g, cat)}, {Shape{Dim::n(), Dim::fixed(-1)}});
  int head = g.add_op("head", OpKind::linear, {out(g, r)}, {int64_t{10}, true, std::string("tanh")});
  int sum = g.add_op("sum", OpKind::add, {out(g, drop), out(g, head)}, {});
  TensorId label = add_input(g, "label", {DType::i64, {Dim::n()}});
  g.add_op("loss", OpKind::softmax_cross_entropy, {out(g, sum), label}, {});
  g.trailer = {"", "# The end."};
  infer_shapes(g);
  verify_graph(g);
  return g;
}

TEST(Parser, BuiltGraphPrintsParsesAndPrintsUnchanged) {
  Graph g = built_graph();
  std::string once = print_graph(g);
  Graph parsed = parse_ff(once, "built.ff");
  EXPECT_EQ(print_graph(parsed), once);
  // The parsed graph is the built one: same ops, kinds, attributes, types.
  ASSERT_EQ(parsed.ops.size(), g.ops.size());
  for (size_t i = 0; i < g.ops.size(); ++i) {
    EXPECT_EQ(parsed.ops[i].name, g.ops[i].name);
    EXPECT_EQ(parsed.ops[i].kind, g.ops[i].kind);
    EXPECT_EQ(parsed.ops[i].attrs, g.ops[i].attrs) << g.ops[i].name;
    EXPECT_EQ(parsed.ops[i].inputs, g.ops[i].inputs) << g.ops[i].name;
    EXPECT_EQ(parsed.ops[i].loc.line, static_cast<int>(i) + 4 + (i >= 2 ? 2 : 0)) << g.ops[i].name;
  }
  for (size_t t = 0; t < g.tensors.size(); ++t) EXPECT_EQ(parsed.type(t), g.type(t)) << g.tensors[t].name;
  EXPECT_EQ(parsed.ops[parsed.find_op("fc")].param_names, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
}

TEST(Parser, PrintedFormOfTheBuiltGraph) {
  std::string text = print_graph(built_graph());
  EXPECT_NE(text.find("# Built by parser_test.cc with Graph::add_op.\n\nmodel built\n"), std::string::npos) << text;
  EXPECT_NE(text.find("conv1 = conv2d(data, out_channels=16, kernel=[3,3], stride=[2,2], padding=[1,1], bias=false, "
                      "activation=relu) : f32[N,16,16,16]  # 16 channels\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\n\n# Pooling, then the classifier.\npool1 = "), std::string::npos) << text;
  EXPECT_NE(text.find("bn1 = batch_norm(pool1, eps=0.001) : f32[N,16,8,8]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("params(weight=classifier.weight, bias=classifier.bias)"), std::string::npos) << text;
  EXPECT_NE(text.find("\"token ids\" = input() : i64[N,6]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("emb = embedding(\"token ids\", num_embeddings=50, embedding_dim=8) : f32[N,6,8]\n"), std::string::npos);
  EXPECT_NE(text.find("r = reshape(cat, shape=[N,-1]) : f32[N,84]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("loss = softmax_cross_entropy(sum, label) : f32[]\n\n# The end.\n"), std::string::npos) << text;
}

TEST(Parser, NamesThatNeedQuotesRoundTrip) {
  for (std::string name : {"a b", "x\"y", "back\\slash", "N", "true", "false", "model", "params", "1st", "/features/0",
                           "a#b", "caf\xc3\xa9", "-", "a:b"}) {
    Graph g;
    g.name = name;
    add_input(g, name, {DType::f32, {Dim::n(), Dim::fixed(2)}});
    g.add_op(name + "2", OpKind::relu, {0}, {});
    infer_shapes(g);
    std::string text = print_graph(g);
    Graph parsed = parse_ff(text, "names.ff");
    EXPECT_EQ(parsed.name, name);
    EXPECT_EQ(parsed.ops[0].name, name) << text;
    EXPECT_EQ(parsed.ops[1].inputs, std::vector<TensorId>{0}) << text;
    EXPECT_EQ(print_graph(parsed), text);
  }
  EXPECT_TRUE(is_plain_name("conv1.weight/x-2_"));
  EXPECT_FALSE(is_plain_name("2x"));
  EXPECT_FALSE(is_plain_name(""));
  EXPECT_EQ(print_name("N"), "\"N\"");
  EXPECT_EQ(print_name("a\"b"), "\"a\\\"b\"");
}

TEST(Parser, FloatsPrintInTheirShortestExactForm) {
  for (double v : {0.1, 0.25, 1e-7, 0.30000000000000004, 5e-324, 0.9999999999999999, 1.0, 1e300, 123456789.0}) {
    Graph g;
    g.name = "floats";
    add_input(g, "x", {DType::f32, {Dim::n(), Dim::fixed(2)}});
    g.add_op("bn", OpKind::batch_norm, {0}, {v});
    infer_shapes(g);
    std::string text = print_graph(g);
    Graph parsed = parse_ff(text, "floats.ff");
    EXPECT_EQ(parsed.ops[1].attr_float("eps"), v) << text;
    EXPECT_EQ(print_graph(parsed), text);
  }
}

TEST(Parser, CommentsAndBlankLinesStayWithTheirStatements) {
  Graph g = parse_ff(
      "# header 1\n"
      "\n"
      "model m   # about m\n"
      "  # indented\n"
      "x = input() : f32[N,2]   # input\t\n"
      "\n"
      "y = relu(x)#tight\n"
      "# trailer\n",
      "c.ff");
  EXPECT_EQ(g.header, (std::vector<std::string>{"# header 1", ""}));
  EXPECT_EQ(g.model_trailing, " about m");
  EXPECT_EQ(g.ops[0].leading, (std::vector<std::string>{"# indented"}));
  EXPECT_EQ(g.ops[0].trailing, " input");
  EXPECT_EQ(g.ops[1].leading, (std::vector<std::string>{""}));
  EXPECT_EQ(g.ops[1].trailing, "tight");
  EXPECT_EQ(g.trailer, (std::vector<std::string>{"# trailer"}));
  std::string text = print_graph(g);
  EXPECT_EQ(text,
            "# header 1\n\nmodel m  # about m\n# indented\nx = input() : f32[N,2]  # input\n\ny = relu(x) : f32[N,2]  #tight\n"
            "# trailer\n");
  EXPECT_EQ(print_graph(parse_ff(text, "c.ff")), text);
}

TEST(Parser, LineEndingsAndMissingFinalNewline) {
  Graph crlf = parse_ff("model m\r\nx = input() : f32[N,2]\r\ny = relu(x)", "crlf.ff");
  EXPECT_EQ(print_graph(crlf), "model m\nx = input() : f32[N,2]\ny = relu(x) : f32[N,2]\n");
}

TEST(Parser, SeveralOutputsAreReferredToByIndex) {
  Graph g = testing::model(
      "x = input() : f32[N,5,4]\n"
      "s = split(x, sizes=[2,3])\n"
      "a = relu(s:0)\n"
      "b = relu(s:1) : f32[N,3,4]\n");
  EXPECT_EQ(testing::out_type(g, "s", 0), "f32[N,2,4]");
  EXPECT_EQ(testing::out_type(g, "s", 1), "f32[N,3,4]");
  std::string text = print_graph(g);
  EXPECT_NE(text.find("s = split(x, sizes=[2,3]) : (f32[N,2,4], f32[N,3,4])\na = relu(s:0) : f32[N,2,4]\n"), std::string::npos)
      << text;
  EXPECT_EQ(print_graph(parse_ff(text, "t.ff")), text);
  try {
    testing::model("x = input() : f32[N,5,4]\ns = split(x, sizes=[2,3])\na = relu(s)\n");
    FAIL() << "a bare reference to an op with several outputs must be an error";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "t.ff:4:10: error: op 's' has 2 outputs: name one as 's:0'");
  }
}

TEST(Parser, ErrorsCarryFileLineAndColumn) {
  try {
    parse_ff("model m\nx = input() : f32[N,3]\ny = linear(x, out_features=[4])\n", "bad.ff");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_EQ(e.loc().file, "bad.ff");
    EXPECT_EQ(e.loc().line, 3);
    EXPECT_EQ(e.loc().col, 28);
    EXPECT_EQ(e.message(), "op 'y' (linear): attribute 'out_features' takes an integer, found '['");
    EXPECT_STREQ(e.what(), "bad.ff:3:28: error: op 'y' (linear): attribute 'out_features' takes an integer, found '['");
  }
  try {
    parse_ff_file("/nonexistent/model.ff");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/model.ff: error: cannot read the file");
  }
}

TEST(Parser, ScalarShorthandFillsFixedLengthLists) {
  Graph g = testing::model("x = input() : f32[N,3,9,9]\nc = conv2d(x, out_channels=4, kernel=3, stride=2, padding=1)\n");
  const Op& c = testing::op_named(g, "c");
  EXPECT_EQ(c.attr_ints("kernel"), (Ints{3, 3}));
  EXPECT_EQ(c.attr_ints("stride"), (Ints{2, 2}));
  EXPECT_EQ(c.attr_ints("padding"), (Ints{1, 1}));
  EXPECT_EQ(c.attr_ints("dilation"), (Ints{1, 1}));
  EXPECT_EQ(c.attr_int("groups"), 1);
  EXPECT_EQ(c.attr_str("activation"), "none");
}

}  // namespace
}  // namespace ffc
