// Fuzzing the ONNX importer: mutations of a small model that exercises most of it, as bytes (flips,
// cuts, splices) and as messages (changed attributes, dims, names, op types, reordered or dropped
// nodes). Every input must import or be refused with a UserError: no other exception, no crash.
// What imports must pass the verifier and print back the same after a trip through the .ff parser.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "frontend/ff_parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "tests/onnx/model_builder.h"

namespace ffc {
namespace {

/// Mutations per test: 6000, or FFC_FUZZ_ITERATIONS for a longer run by hand.
int iterations() {
  const char* env = std::getenv("FFC_FUZZ_ITERATIONS");
  return env ? std::max(1, std::atoi(env)) : 6000;
}

/// The random seed: fixed, or FFC_FUZZ_SEED for other mutations.
uint64_t rng_seed(uint64_t fixed) {
  const char* env = std::getenv("FFC_FUZZ_SEED");
  return env ? std::strtoull(env, nullptr, 10) * 7919 + fixed : fixed;
}

struct Outcome {
  int imported = 0;
  int refused = 0;
};

/// Imports `bytes`; fails the test on anything but success or a UserError.
void try_import(const std::string& bytes, Outcome& out, const char* what, int iteration) {
  try {
    Graph g = import_onnx(bytes, "fuzz.onnx");
    verify_graph(g);
    std::string text = print_graph(g);
    Graph again = parse_ff(text, "fuzz.ff");
    ASSERT_EQ(print_graph(again), text) << what << " iteration " << iteration;
    ++out.imported;
  } catch (const UserError& e) {
    ASSERT_NE(std::string(e.what()).find("fuzz."), std::string::npos) << "a message without the file: " << e.what();
    ++out.refused;
  } catch (const std::exception& e) {
    FAIL() << what << " iteration " << iteration << ": " << typeid(e).name() << ": " << e.what();
  }
}

TEST(OnnxFuzz, SampleModelImports) {
  Outcome o;
  try_import(testing::sample_model().bytes(), o, "seed", 0);
  EXPECT_EQ(o.imported, 1);
}

TEST(OnnxFuzz, ByteMutations) {
  const std::string seed = testing::sample_model().bytes();
  std::mt19937_64 rng(rng_seed(1));
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % std::max<size_t>(n, 1)); };
  Outcome o;
  for (int it = 0, n = iterations(); it < n; ++it) {
    std::string s = seed;
    int edits = 1 + static_cast<int>(pick(4));
    for (int e = 0; e < edits; ++e) {
      switch (pick(6)) {
        case 0: s[pick(s.size())] ^= static_cast<char>(1 << pick(8)); break;       // flip a bit
        case 1: s[pick(s.size())] = static_cast<char>(rng()); break;               // a random byte
        case 2: s.resize(pick(s.size())); break;                                    // truncate
        case 3: s.erase(pick(s.size()), 1 + pick(16)); break;                       // cut
        case 4: s.insert(pick(s.size()), std::string(1 + pick(8), static_cast<char>(rng()))); break;
        case 5: {                                                                   // splice from the seed
          size_t from = pick(seed.size()), len = 1 + pick(64);
          s.insert(pick(s.size()), seed.substr(from, len));
          break;
        }
      }
      if (s.empty()) break;
    }
    try_import(s, o, "byte mutation", it);
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_GT(o.refused, 0);
  std::printf("byte mutations: %d imported, %d refused\n", o.imported, o.refused);
}

TEST(OnnxFuzz, MessageMutations) {
  const onnx::ModelProto seed = testing::sample_model().model;
  std::mt19937_64 rng(rng_seed(2));
  auto pick = [&](int n) { return n <= 0 ? 0 : static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  const int64_t interesting[] = {-1, 0, 1, 2, 3, 4, 7, 16, 64, -2, 1 << 20, INT64_MAX, INT64_MIN, int64_t{1} << 40};
  auto some_int = [&]() { return interesting[pick(std::size(interesting))]; };
  const char* types[] = {"Conv", "Relu", "Add", "Mul", "Div", "Sub", "Reshape", "Transpose", "Slice", "Gather",
                         "Concat", "Split", "Shape", "Unsqueeze", "Squeeze", "Flatten", "MatMul", "Gemm", "Softmax",
                         "Pad", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization", "Identity",
                         "Cast", "Clip", "Dropout", "LayerNormalization", "LogSoftmax", "Erf", "Sqrt", "Pow",
                         "ReduceMean", "Constant", "ConstantOfShape", "Sin"};
  Outcome o;
  for (int it = 0, n = iterations(); it < n; ++it) {
    onnx::ModelProto m = seed;
    onnx::GraphProto* g = m.mutable_graph();
    int edits = 1 + pick(3);
    for (int e = 0; e < edits; ++e) {
      onnx::NodeProto* n = g->mutable_node(pick(g->node_size()));
      switch (pick(12)) {
        case 0:  // an integer attribute, or one entry of an integer list
          if (n->attribute_size()) {
            auto* a = n->mutable_attribute(pick(n->attribute_size()));
            if (a->ints_size()) a->set_ints(pick(a->ints_size()), some_int());
            else a->set_i(some_int());
          }
          break;
        case 1:  // an operand renamed to another value, nothing, or a name nobody defines
          if (n->input_size()) {
            int k = pick(n->input_size());
            const onnx::NodeProto& other = g->node(pick(g->node_size()));
            n->set_input(k, pick(4) == 0 ? std::string() : pick(4) == 0 ? std::string("ghost")
                            : other.output_size()    ? other.output(0)
                                                     : n->input(k));
          }
          break;
        case 2: n->set_op_type(types[pick(std::size(types))]); break;
        case 3: g->mutable_node()->DeleteSubrange(pick(g->node_size()), 1); break;
        case 4: g->mutable_node()->SwapElements(pick(g->node_size()), pick(g->node_size())); break;
        case 5: {  // a constant's value
          if (n->op_type() == "Constant" && n->attribute_size() && n->attribute(0).has_t()) {
            auto* t = n->mutable_attribute(0)->mutable_t();
            if (t->int64_data_size()) t->set_int64_data(pick(t->int64_data_size()), some_int());
            else if (t->float_data_size()) t->set_float_data(0, static_cast<float>(some_int()));
            if (pick(3) == 0 && t->dims_size()) t->set_dims(0, some_int());
          }
          break;
        }
        case 6: {  // an initializer's dims
          if (g->initializer_size()) {
            auto* t = g->mutable_initializer(pick(g->initializer_size()));
            if (t->dims_size()) t->set_dims(pick(t->dims_size()), some_int());
          }
          break;
        }
        case 7: {  // an input dim
          auto* shape = g->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
          shape->mutable_dim(pick(shape->dim_size()))->set_dim_value(some_int());
          break;
        }
        case 8: n->clear_attribute(); break;
        case 9: *g->add_node() = *n; break;  // duplicated: its outputs defined twice
        case 10: m.mutable_opset_import(0)->set_version(10 + pick(9)); break;
        case 11: {  // the graph output: another value
          const onnx::NodeProto& other = g->node(pick(g->node_size()));
          g->mutable_output(0)->set_name(other.output_size() ? other.output(0) : "y");
          break;
        }
      }
      if (g->node_size() == 0) break;
    }
    try_import(m.SerializeAsString(), o, "message mutation", it);
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_GT(o.imported, 0);
  EXPECT_GT(o.refused, 0);
  std::printf("message mutations: %d imported, %d refused\n", o.imported, o.refused);
}

}  // namespace
}  // namespace ffc
