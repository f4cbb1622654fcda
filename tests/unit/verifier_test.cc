// The Graph IR verifier: each structural invariant, broken on purpose in a graph a pass might
// produce, is reported as a UserError naming the op and its location.
#include <gtest/gtest.h>

#include <sstream>

#include "ir/verifier.h"
#include "passes/pipeline.h"
#include "tests/unit/testing.h"

namespace ffc {
namespace {

Graph good() {
  return testing::model(
      "x = input() : f32[N,4]\n"
      "y = relu(x)\n"
      "z = add(x, y)\n"
      "fc = linear(z, out_features=3) params(weight=w)\n");
}

/// The verifier's message for a graph, or "" when it passes.
std::string verify_message(const Graph& g) {
  try {
    verify_graph(g);
    return "";
  } catch (const UserError& e) {
    return e.what();
  }
}

TEST(Verifier, AcceptsWhatTheParserBuilds) { EXPECT_EQ(verify_message(good()), ""); }

TEST(Verifier, EmptyName) {
  Graph g = good();
  g.ops[1].name = "";
  EXPECT_EQ(verify_message(g), "t.ff:3:1: error: op '' (relu): has an empty name");
}

TEST(Verifier, DuplicateName) {
  Graph g = good();
  g.ops[2].name = std::string(1, 'y');  // not = "y": GCC 12 -O3 warns falsely (-Wrestrict)
  EXPECT_EQ(verify_message(g), "t.ff:4:1: error: op 'y' (add): the name 'y' is used by an earlier op");
}

TEST(Verifier, OperandCount) {
  Graph g = good();
  g.ops[1].inputs.push_back(0);
  EXPECT_EQ(verify_message(g), "t.ff:3:1: error: op 'y' (relu): takes 1 inputs, got 2");
  Graph h = good();
  h.ops[0].inputs.push_back(0);
  EXPECT_EQ(verify_message(h), "t.ff:2:1: error: op 'x' (input): takes 0 inputs, got 1");
}

TEST(Verifier, ReadBeforeDefinition) {
  Graph g = good();
  g.ops[1].inputs = {g.ops[2].outputs[0]};
  EXPECT_EQ(verify_message(g), "t.ff:3:1: error: op 'y' (relu): reads 'z' before it is defined");
  Graph h = good();
  h.ops[1].inputs = {42};
  EXPECT_EQ(verify_message(h), "t.ff:3:1: error: op 'y' (relu): reads a tensor that does not exist");
}

TEST(Verifier, AttributeKindsAndCount) {
  Graph g = good();
  g.ops[3].attrs[0] = 3.0;  // out_features is an Int
  EXPECT_EQ(verify_message(g), "t.ff:5:1: error: op 'fc' (linear): attribute 'out_features' has a value of the wrong kind");
  Graph h = good();
  h.ops[3].attrs.pop_back();
  EXPECT_EQ(verify_message(h), "t.ff:5:1: error: op 'fc' (linear): has 2 attribute values for 3 attributes");
  Graph e = good();
  e.ops[3].attrs[2] = std::string("softplus");  // not one of the activation names
  EXPECT_EQ(verify_message(e), "t.ff:5:1: error: op 'fc' (linear): attribute 'activation' has a value of the wrong kind");
}

TEST(Verifier, OutputsAndTheirTypes) {
  Graph g = good();
  g.tensors[g.ops[1].outputs[0]].type.shape.back() = Dim::fixed(5);
  EXPECT_EQ(verify_message(g), "t.ff:3:1: error: op 'y' (relu): output 0 has type f32[N,5], but its inputs give f32[N,4]");
  Graph h = good();
  h.tensors[h.ops[2].outputs[0]].producer = 1;
  EXPECT_EQ(verify_message(h), "t.ff:4:1: error: op 'z' (add): output 'z' names another producer");
}

TEST(Verifier, ParameterNames) {
  Graph g = good();
  g.ops[3].param_names = {"only.one"};
  EXPECT_EQ(verify_message(g), "t.ff:5:1: error: op 'fc' (linear): names 1 parameters, it has 2");
}

TEST(Verifier, ShapeErrorsOfAnEditedGraph) {
  // A pass that rewires an op onto an input it cannot take is caught by shape inference inside
  // the verifier, at the op's location.
  Graph g = good();
  g.ops[3].inputs = {g.ops[0].outputs[0]};
  g.ops[3].attrs[0] = int64_t{0};
  EXPECT_EQ(verify_message(g), "t.ff:5:1: error: op 'fc' (linear): out_features must be at least 1, got 0");
}

TEST(Pipeline, VerifierRunsAfterEachPassAndUnknownPassesAreErrors) {
  Graph g = good();
  PipelineOptions opts;
  run_graph_pipeline(g, opts);
  EXPECT_EQ(verify_message(g), "");
  opts.stop_after = "nonsense";
  try {
    run_graph_pipeline(g, opts);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown pass 'nonsense'; the passes are: "), std::string::npos) << e.what();
  }
  PipelineOptions print;
  print.print_after.insert("verify");
  std::ostringstream ir;
  print.ir_out = &ir;
  run_graph_pipeline(g, print);
  EXPECT_EQ(ir.str().rfind("# IR after verify\nmodel t\n", 0), 0u) << ir.str();
}

}  // namespace
}  // namespace ffc
