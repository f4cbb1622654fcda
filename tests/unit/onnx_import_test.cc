// The ONNX importer on small models built in C++: what each node becomes, the patterns, the shape
// folding with a symbolic batch, names, parameters, and the messages for what it refuses.
#include <gtest/gtest.h>

#include "frontend/ff_parser.h"
#include "ir/op_table.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "tests/onnx/model_builder.h"

namespace ffc {
namespace {

using testing::ModelBuilder;
using testing::import_error;
using Ints = std::vector<int64_t>;

const Op& op_named(const Graph& g, std::string_view name) {
  int i = g.find_op(name);
  EXPECT_GE(i, 0) << "no op " << name << " in\n" << print_graph(g);
  return g.ops.at(i < 0 ? 0 : i);
}

std::string kinds(const Graph& g) {
  std::string s;
  for (const Op& op : g.ops) s += std::string(s.empty() ? "" : " ") + std::string(op.info().name);
  return s;
}

/// Imports, verifies, and checks that the printed form parses and prints back the same.
Graph import_checked(const ModelBuilder& b) {
  Graph g = b.import();
  verify_graph(g);
  std::string text = print_graph(g);
  EXPECT_EQ(print_graph(parse_ff(text, "printed.ff")), text);
  return g;
}

TEST(OnnxImport, SampleModel) {
  Graph g = import_checked(testing::sample_model());
  EXPECT_EQ(g.name, "test");
  EXPECT_EQ(kinds(g),
            "input conv2d batch_norm relu pool2d reshape layer_norm linear gelu split transpose matmul scale softmax "
            "flat linear split tanh concat");
  const Op& conv = op_named(g, "/conv/Conv");
  EXPECT_EQ(conv.attr_ints("padding"), (Ints{1, 1}));  // the Pad node, folded
  EXPECT_EQ(conv.param_names, (std::vector<std::string>{"conv.weight", "conv.bias"}));
  EXPECT_DOUBLE_EQ(op_named(g, "/bn/BN").attr_float("momentum"), 0.1);
  EXPECT_EQ(g.type(op_named(g, "/Reshape").outputs[0]).str(), "f32[N,4,16]");
  const Op& ln = op_named(g, "/ln/LayerNormalization");
  EXPECT_DOUBLE_EQ(ln.attr_float("eps"), 1e-5);
  EXPECT_EQ(ln.param_names, (std::vector<std::string>{"ln.weight", "ln.bias"}));
  const Op& fc = op_named(g, "/fc/MatMul");
  EXPECT_EQ(fc.attr_int("out_features"), 32);
  EXPECT_EQ(fc.param_names, (std::vector<std::string>{"fc.weight", "fc.bias"}));
  op_named(g, "/act/Gelu");
  const Op& split = op_named(g, "/Slice");  // both slices share one split
  EXPECT_EQ(split.attr_ints("sizes"), (Ints{16, 16}));
  EXPECT_DOUBLE_EQ(op_named(g, "/Div").attr_float("factor"), 0.25);
  EXPECT_EQ(op_named(g, "/Split").attr_ints("sizes"), (Ints{4, 6}));
  EXPECT_EQ(g.type(g.ops.back().outputs[0]).str(), "f32[N,10]");
}

TEST(OnnxImport, NamelessNodesGetStableNames) {
  ModelBuilder b;
  b.input("x", {2, 8});
  b.node("Relu", {"x"}, {"a"});
  b.node("Relu", {"a"}, {"b"});
  b.node("Sigmoid", {"b"}, {"c"}, "Relu_1");  // a name the generator would give: made unique
  b.output("c");
  Graph g = import_checked(b);
  EXPECT_GE(g.find_op("Relu_0"), 0);
  EXPECT_GE(g.find_op("Relu_1"), 0);
  EXPECT_GE(g.find_op("Relu_1_1"), 0);
}

TEST(OnnxImport, AwkwardNamesRoundTrip) {
  ModelBuilder b;
  b.input("in:put", {2, 8});
  b.node("Relu", {"in:put"}, {"a"}, "N");
  b.node("Relu", {"a"}, {"b"}, "has \"quotes\" and spaces");
  b.node("Relu", {"b"}, {"c"}, "model");
  b.weight("odd name::w", {4, 8}).weight("fc.b", {4});
  b.node("Gemm", {"c", "odd name::w", "fc.b"}, {"y"}, "/g:0");
  ModelBuilder::attr(b.model.mutable_graph()->mutable_node(3), "transB", int64_t{1});
  b.output("y");
  Graph g = import_checked(b);
  EXPECT_GE(g.find_op("in_put"), 0);
  EXPECT_EQ(op_named(g, "/g_0").param_names, (std::vector<std::string>{"odd name::w", "fc.b"}));
}

TEST(OnnxImport, GemmWithoutTransBNamesTheTransposedWeight) {
  ModelBuilder b;
  b.input("x", {2, 8});
  b.weight("w", {8, 4});
  b.node("Gemm", {"x", "w"}, {"y"}, "fc");
  b.output("y");
  Graph g = import_checked(b);
  const Op& fc = op_named(g, "fc");
  EXPECT_EQ(fc.attr_int("out_features"), 4);
  EXPECT_FALSE(fc.attr_bool("bias"));
  EXPECT_EQ(fc.param_names, (std::vector<std::string>{"fc.weight"}));
  EXPECT_NE(fc.trailing.find("transpose of ONNX initializer 'w'"), std::string::npos);
}

TEST(OnnxImport, MatMulOfActivationsIsMatmul) {
  ModelBuilder b;
  b.input("x", {2, 4, 8}).input("z", {2, 8, 3});
  b.node("MatMul", {"x", "z"}, {"y"}, "mm");
  b.output("y");
  Graph g = import_checked(b);
  EXPECT_EQ(kinds(g), "input input matmul");
  EXPECT_EQ(g.type(op_named(g, "mm").outputs[0]).str(), "f32[N,4,3]");
}

TEST(OnnxImport, PadFoldsIntoAvgPoolCountingThePad) {
  ModelBuilder b;
  b.input("x", {2, 3, 8, 8});
  b.ints("pads", {0, 0, 1, 1, 0, 0, 1, 1});
  b.node("Pad", {"x", "pads"}, {"xp"}, "pad");
  auto* p = b.node("AveragePool", {"xp"}, {"y"}, "pool");
  ModelBuilder::attr(p, "kernel_shape", Ints{3, 3});
  b.output("y");
  Graph g = import_checked(b);
  EXPECT_EQ(kinds(g), "input pool2d");
  EXPECT_EQ(op_named(g, "pool").attr_ints("padding"), (Ints{1, 1}));
  EXPECT_TRUE(op_named(g, "pool").attr_bool("count_include_pad"));
}

TEST(OnnxImport, PadBeforeMaxPoolNeedsNonNegativeInput) {
  auto model = [](bool relu) {
    ModelBuilder b;
    b.input("x", {2, 3, 8, 8});
    b.node(relu ? "Relu" : "Tanh", {"x"}, {"r"}, "act");
    b.ints("pads", {0, 0, 1, 1, 0, 0, 1, 1});
    b.node("Pad", {"r", "pads"}, {"xp"}, "pad");
    auto* p = b.node("MaxPool", {"xp"}, {"y"}, "pool");
    ModelBuilder::attr(p, "kernel_shape", Ints{3, 3});
    b.output("y");
    return b;
  };
  EXPECT_EQ(op_named(import_checked(model(true)), "pool").attr_ints("padding"), (Ints{1, 1}));
  EXPECT_NE(import_error(model(false)).find("node 'pad' (Pad): pads with 0 in front of a max pool"), std::string::npos);
}

TEST(OnnxImport, PadNotBeforeConvOrPoolIsRefused) {
  ModelBuilder b;
  b.input("x", {2, 3, 8, 8});
  b.ints("pads", {0, 0, 1, 1, 0, 0, 1, 1});
  b.node("Pad", {"x", "pads"}, {"xp"}, "pad");
  b.node("Relu", {"xp"}, {"y"}, "relu");
  b.output("y");
  EXPECT_NE(import_error(b).find("is not followed by a conv or pool"), std::string::npos);
}

TEST(OnnxImport, AsymmetricPaddingIsRefused) {
  ModelBuilder b;
  b.input("x", {2, 3, 8, 8});
  b.weight("w", {4, 3, 3, 3});
  auto* c = b.node("Conv", {"x", "w"}, {"y"}, "conv");
  ModelBuilder::attr(c, "pads", Ints{0, 0, 1, 1});
  b.output("y");
  EXPECT_NE(import_error(b).find("test.onnx: error: node 'conv' (Conv): pads [0,0,1,1] pad one side more"),
            std::string::npos);
}

TEST(OnnxImport, DepthwiseConvAndGlobalPool) {
  ModelBuilder b;
  b.input("x", {2, 8, 6, 6});
  b.weight("w", {8, 1, 3, 3});
  auto* c = b.node("Conv", {"x", "w"}, {"c"}, "dw");
  ModelBuilder::attr(c, "group", int64_t{8});
  ModelBuilder::attr(c, "pads", Ints{1, 1, 1, 1});
  b.node("GlobalAveragePool", {"c"}, {"y"}, "gap");
  b.output("y");
  Graph g = import_checked(b);
  EXPECT_EQ(op_named(g, "dw").attr_int("groups"), 8);
  EXPECT_EQ(op_named(g, "gap").attr_ints("kernel"), (Ints{6, 6}));
  EXPECT_EQ(g.type(op_named(g, "gap").outputs[0]).str(), "f32[N,8,1,1]");
}

TEST(OnnxImport, ClipDropoutAndScalarArithmetic) {
  ModelBuilder b(13);
  b.input("x", {2, 8});
  b.scalar("lo", 0.0f).scalar("hi", 6.0f).scalar("rate0", 0.0f).scalar("rate", 0.25f).scalar("three", 3.0f);
  b.model.mutable_graph()->add_initializer()->CopyFrom([] {
    onnx::TensorProto t;
    t.set_name("train");
    t.set_data_type(onnx::TensorProto::BOOL);
    t.add_int32_data(1);
    return t;
  }());
  b.node("Clip", {"x", "lo", "hi"}, {"a"}, "relu6");
  b.node("Clip", {"a", "lo"}, {"b"}, "relu");
  b.node("Dropout", {"b", "rate0", "train"}, {"c"}, "no_dropout");
  b.node("Dropout", {"c", "rate", "train"}, {"d", ""}, "dropout");
  b.node("Dropout", {"d", "rate"}, {"e"}, "inference_dropout");
  b.node("Mul", {"three", "e"}, {"f"}, "times3");
  b.node("Div", {"f", "three"}, {"y"}, "div3");
  b.output("y");
  Graph g = import_checked(b);
  EXPECT_EQ(kinds(g), "input clip relu dropout scale scale");
  EXPECT_DOUBLE_EQ(op_named(g, "relu6").attr_float("max"), 6.0);
  EXPECT_DOUBLE_EQ(op_named(g, "dropout").attr_float("rate"), 0.25);
  EXPECT_DOUBLE_EQ(op_named(g, "times3").attr_float("factor"), 3.0);
  EXPECT_DOUBLE_EQ(op_named(g, "div3").attr_float("factor"), 0.33333334);  // 1/3 as a float32
}

TEST(OnnxImport, ArithmeticWithATensorConstantIsRefused) {
  ModelBuilder b;
  b.input("x", {2, 8});
  b.weight("shift", {8});
  b.node("Add", {"x", "shift"}, {"y"}, "add");
  b.output("y");
  EXPECT_NE(import_error(b).find("node 'add' (Add): combines a tensor and the constant 'shift' of shape [8]"),
            std::string::npos);
}

TEST(OnnxImport, MergedBatchOfAttentionHeads) {
  // [N,16,64] -> [16,N,64] -> [16, N*4, 16] (the batch written as the exported 2) -> [N*4,16,16]
  ModelBuilder b;
  b.input("x", {2, 16, 64});
  auto* t = b.node("Transpose", {"x"}, {"t"}, "t");
  ModelBuilder::attr(t, "perm", Ints{1, 0, 2});
  b.ints("heads", {16, 8, 16});
  b.node("Reshape", {"t", "heads"}, {"h"}, "split_heads");
  auto* t2 = b.node("Transpose", {"h"}, {"q"}, "to_batch_first");
  ModelBuilder::attr(t2, "perm", Ints{1, 0, 2});
  auto* t3 = b.node("Transpose", {"h"}, {"k"}, "keys");
  ModelBuilder::attr(t3, "perm", Ints{1, 2, 0});
  b.node("MatMul", {"q", "k"}, {"s"}, "scores");
  b.node("Softmax", {"s"}, {"p"}, "softmax");
  b.node("MatMul", {"p", "q"}, {"o"}, "context");
  auto* t4 = b.node("Transpose", {"o"}, {"ot"}, "seq_first");
  ModelBuilder::attr(t4, "perm", Ints{1, 0, 2});
  b.ints("merged", {32, 64});
  b.node("Reshape", {"ot", "merged"}, {"m"}, "merge_heads");
  b.ints("back", {16, 2, 64});
  b.node("Reshape", {"m", "back"}, {"u"}, "unmerge");
  auto* t5 = b.node("Transpose", {"u"}, {"y"}, "batch_first");
  ModelBuilder::attr(t5, "perm", Ints{1, 0, 2});
  b.output("y");
  Graph g = import_checked(b);
  EXPECT_EQ(kinds(g), "input transpose reshape transpose transpose matmul softmax matmul transpose reshape transpose");
  EXPECT_EQ(g.type(op_named(g, "split_heads").outputs[0]).str(), "f32[16,N,4,16]");
  EXPECT_EQ(op_named(g, "to_batch_first").attr_ints("perm"), (Ints{1, 2, 0, 3}));
  EXPECT_EQ(op_named(g, "keys").attr_ints("perm"), (Ints{1, 2, 3, 0}));
  EXPECT_EQ(g.type(op_named(g, "scores").outputs[0]).str(), "f32[N,4,16,16]");
  EXPECT_EQ(g.type(op_named(g, "merge_heads").outputs[0]).str(), "f32[16,N,64]");
  EXPECT_EQ(g.find_op("unmerge"), -1);  // [16·N, 64] -> [16, N, 64] is the same ffc shape
  EXPECT_EQ(g.type(g.ops.back().outputs[0]).str(), "f32[N,16,64]");
}

TEST(OnnxImport, ReshapeThatMovesTheBatchIsRefused) {
  ModelBuilder b;
  b.input("x", {2, 6});
  b.ints("shape", {3, 4});  // [N,6] -> [3, 2N]: N would be split across dims
  b.node("Reshape", {"x", "shape"}, {"y"}, "r");
  b.output("y");
  EXPECT_NE(import_error(b).find("node 'r' (Reshape): cannot reshape [N,6] into [3,4]"), std::string::npos);
}

TEST(OnnxImport, ReshapeReadsTheBatchFromMinusOneOrTheExportedBatch) {
  ModelBuilder b;
  b.input("x", {2, 4, 6});
  b.ints("a", {-1, 24});
  b.node("Reshape", {"x", "a"}, {"y1"}, "minus_one");
  b.ints("b", {2, -1});
  b.node("Reshape", {"x", "b"}, {"y2"}, "exported_batch");
  b.node("Add", {"y1", "y2"}, {"y"}, "sum");
  b.output("y");
  Graph g = import_checked(b);
  EXPECT_EQ(g.type(op_named(g, "minus_one").outputs[0]).str(), "f32[N,24]");
  EXPECT_EQ(g.type(op_named(g, "exported_batch").outputs[0]).str(), "f32[N,24]");
}

TEST(OnnxImport, SingleSliceSplitsAroundIt) {
  ModelBuilder b;
  b.input("x", {2, 10});
  b.ints("lo", {2}).ints("hi", {5}).ints("ax", {1});
  b.node("Slice", {"x", "lo", "hi", "ax"}, {"y"}, "slice");
  b.output("y");
  Graph g = import_checked(b);
  const Op& s = op_named(g, "slice");
  EXPECT_EQ(s.attr_ints("sizes"), (Ints{2, 3, 5}));
  EXPECT_EQ(g.type(s.outputs[1]).str(), "f32[N,3]");
}

TEST(OnnxImport, SplitSizesFromAttributeBeforeOpset13) {
  ModelBuilder b(11);
  b.input("x", {2, 10});
  auto* s = b.node("Split", {"x"}, {"a", "b"}, "split");
  ModelBuilder::attr(s, "axis", int64_t{1});
  ModelBuilder::attr(s, "split", Ints{3, 7});
  b.node("Concat", {"b", "a"}, {"y"}, "cat");
  ModelBuilder::attr(b.model.mutable_graph()->mutable_node(1), "axis", int64_t{1});
  b.output("y");
  Graph g = import_checked(b);
  EXPECT_EQ(op_named(g, "split").attr_ints("sizes"), (Ints{3, 7}));
}

TEST(OnnxImport, SoftmaxBeforeOpset13FlattensTrailingDims) {
  ModelBuilder b(11);
  b.input("x", {2, 4, 5});
  b.node("Softmax", {"x"}, {"y"}, "softmax");  // axis 1: over dims 1 and 2 together
  b.output("y");
  EXPECT_NE(import_error(b).find("over dims 1 to 2 together"), std::string::npos);
}

TEST(OnnxImport, EmbeddingAndLogSoftmax) {
  ModelBuilder b(17);
  b.input("tokens", {2, 7}, onnx::TensorProto::INT64);
  b.weight("emb.weight", {50, 16});
  b.node("Gather", {"emb.weight", "tokens"}, {"e"}, "/emb/Gather");
  b.weight("ln.w", {16}).weight("ln.b", {16});
  b.node("LayerNormalization", {"e", "ln.w", "ln.b"}, {"n"}, "/ln/LayerNormalization");
  b.node("LogSoftmax", {"n"}, {"y"}, "/LogSoftmax");
  b.output("y");
  Graph g = import_checked(b);
  EXPECT_EQ(kinds(g), "input embedding layer_norm log_softmax");
  EXPECT_EQ(op_named(g, "/emb/Gather").param_names, (std::vector<std::string>{"emb.weight"}));
  EXPECT_EQ(g.type(g.ops.back().outputs[0]).str(), "f32[N,7,16]");
}

TEST(OnnxImport, UnsupportedOperatorsAreListedInOneError) {
  ModelBuilder b;
  b.input("x", {2, 8});
  b.node("Sin", {"x"}, {"a"}, "sin1");
  b.node("NonZero", {"a"}, {"b"});
  b.node("Sin", {"b"}, {"c"}, "sin2");
  b.node("Erf", {"c"}, {"y"}, "erf");
  b.output("y");
  std::string e = import_error(b);
  EXPECT_NE(e.find("test.onnx: error: the model uses 3 operators that ffc does not import (4 nodes):"), std::string::npos) << e;
  EXPECT_NE(e.find("\n  Erf (1 node): erf [ffc takes Erf only inside the GELU pattern"), std::string::npos) << e;
  EXPECT_NE(e.find("\n  NonZero (1 node): NonZero_0"), std::string::npos) << e;
  EXPECT_NE(e.find("\n  Sin (2 nodes): sin1, sin2"), std::string::npos) << e;
}

TEST(OnnxImport, ModelLevelErrors) {
  {
    ModelBuilder b(10);
    b.input("x", {2, 8});
    b.node("Relu", {"x"}, {"y"});
    b.output("y");
    EXPECT_NE(import_error(b).find("opset 10; ffc imports opsets 11 to 17"), std::string::npos);
  }
  {
    ModelBuilder b;
    b.input("x", {2, 8});
    b.node("Relu", {"x"}, {"y"})->set_domain("com.microsoft");
    b.output("y");
    EXPECT_NE(import_error(b).find("domain 'com.microsoft'"), std::string::npos);
  }
  {
    ModelBuilder b;
    b.input("x", {2, 8});
    b.node("Relu", {"x"}, {"y"}, "r");
    b.output("nothing");
    EXPECT_NE(import_error(b).find("graph output 'nothing' is not computed by any node"), std::string::npos);
  }
  {
    ModelBuilder b;
    b.input("x", {2, 8});
    b.node("Relu", {"a"}, {"y"}, "late");
    b.node("Relu", {"x"}, {"a"}, "early");
    b.output("y");
    EXPECT_NE(import_error(b).find("node 'late' (Relu): reads 'a' before node 'early' (Relu) defines it"), std::string::npos);
  }
  {
    ModelBuilder b;
    b.input("x", {2, 8});
    b.weight("w", {4, 8});
    b.node("Gemm", {"x", "w"}, {"a"}, "g1");
    ModelBuilder::attr(b.model.mutable_graph()->mutable_node(0), "transB", int64_t{1});
    b.node("Gemm", {"x", "w"}, {"c"}, "g2");
    ModelBuilder::attr(b.model.mutable_graph()->mutable_node(1), "transB", int64_t{1});
    b.node("Add", {"a", "c"}, {"y"}, "sum");
    b.output("y");
    EXPECT_NE(import_error(b).find("initializer 'w' is shared by ops 'g1' and 'g2'"), std::string::npos);
  }
  {
    ModelBuilder b;
    b.input("x", {2, 3, 8, 8});
    b.weight("w", {4, 3, 3, 3}).weight("bias", {5});
    b.node("Conv", {"x", "w", "bias"}, {"y"}, "conv");
    b.output("y");
    EXPECT_NE(import_error(b).find("initializer 'bias' has shape [5], but the conv2d op's bias needs [4]"), std::string::npos);
  }
  {
    ModelBuilder b;
    b.input("x", {2, 8});
    b.scalar("c", 1.0f);
    b.output("c");
    EXPECT_NE(import_error(b).find("graph output 'c' is a constant"), std::string::npos);
  }
}

TEST(OnnxImport, BadBytes) {
  EXPECT_THROW(import_onnx("", "e.onnx"), UserError);
  EXPECT_THROW(import_onnx("model tiny\n", "t.onnx"), UserError);
  EXPECT_THROW(import_onnx(std::string("\x08\x07\x12\x03", 4), "t.onnx"), UserError);
  std::string good = testing::sample_model().bytes();
  EXPECT_THROW(import_onnx(good.substr(0, good.size() / 2), "half.onnx"), UserError);
}

}  // namespace
}  // namespace ffc
