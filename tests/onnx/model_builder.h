// Building small ONNX models in C++ for the importer's unit and fuzz tests (no Python needed).
#pragma once

#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "frontend/onnx_importer.h"
#include "onnx.pb.h"

namespace ffc::testing {

/// A ModelProto under construction: graph inputs, initializers, nodes and outputs.
class ModelBuilder {
 public:
  explicit ModelBuilder(int opset = 13) {
    model.set_ir_version(8);
    model.set_producer_name("ffc-test");
    auto* o = model.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    model.mutable_graph()->set_name("test");
  }

  /// A graph input; dim 0 is the batch.
  ModelBuilder& input(const std::string& name, std::vector<int64_t> dims, int elem = onnx::TensorProto::FLOAT) {
    auto* v = model.mutable_graph()->add_input();
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(elem);
    for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
    return *this;
  }

  ModelBuilder& output(const std::string& name) {
    model.mutable_graph()->add_output()->set_name(name);
    return *this;
  }

  /// A float initializer filled with `fill`.
  ModelBuilder& weight(const std::string& name, std::vector<int64_t> dims, float fill = 0.5f) {
    auto* t = model.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    int64_t n = 1;
    for (int64_t d : dims) t->add_dims(d), n *= d;
    std::string raw(static_cast<size_t>(n) * 4, '\0');
    for (int64_t i = 0; i < n; ++i) std::memcpy(raw.data() + i * 4, &fill, 4);
    t->set_raw_data(raw);
    return *this;
  }

  /// A Constant node holding int64 values (a 1-D tensor, or a scalar when `scalar`).
  ModelBuilder& ints(const std::string& name, std::vector<int64_t> values, bool scalar = false) {
    auto* n = node("Constant", {}, {name}, name + "_const");
    auto* a = n->add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    auto* t = a->mutable_t();
    t->set_data_type(onnx::TensorProto::INT64);
    if (!scalar) t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
    return *this;
  }

  /// A Constant node holding one float.
  ModelBuilder& scalar(const std::string& name, float value) {
    auto* n = node("Constant", {}, {name}, name + "_const");
    auto* a = n->add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    auto* t = a->mutable_t();
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_float_data(value);
    return *this;
  }

  onnx::NodeProto* node(const std::string& type, std::vector<std::string> inputs, std::vector<std::string> outputs,
                        const std::string& name = "") {
    auto* n = model.mutable_graph()->add_node();
    n->set_op_type(type);
    n->set_name(name);
    for (auto& i : inputs) n->add_input(i);
    for (auto& o : outputs) n->add_output(o);
    return n;
  }

  static void attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, float v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, const std::string& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }

  std::string bytes() const { return model.SerializeAsString(); }
  Graph import(const std::string& file = "test.onnx") const { return import_onnx(bytes(), file); }

  onnx::ModelProto model;
};

/// The message of the UserError importing a model throws, or "<imported>".
inline std::string import_error(const ModelBuilder& b) {
  try {
    b.import();
  } catch (const UserError& e) {
    return e.what();
  }
  return "<imported>";
}

/// A small CNN and attention block that exercises most of the importer: Conv with a Pad before it,
/// batch norm, pools, Gemm, the shape arithmetic of a reshape, sibling slices, MatMul with a bias,
/// the LayerNorm and GELU patterns, softmax, split and concat.
inline ModelBuilder sample_model() {
  ModelBuilder b(13);
  b.input("x", {2, 3, 8, 8});
  b.weight("conv.weight", {4, 3, 3, 3}).weight("conv.bias", {4});
  b.weight("bn.weight", {4}).weight("bn.bias", {4}).weight("bn.mean", {4}).weight("bn.var", {4}, 1.0f);
  b.ints("pads", {0, 0, 1, 1, 0, 0, 1, 1});
  b.node("Pad", {"x", "pads"}, {"xp"}, "/pad/Pad");
  auto* conv = b.node("Conv", {"xp", "conv.weight", "conv.bias"}, {"c"}, "/conv/Conv");
  ModelBuilder::attr(conv, "kernel_shape", std::vector<int64_t>{3, 3});
  auto* bn = b.node("BatchNormalization", {"c", "bn.weight", "bn.bias", "bn.mean", "bn.var"}, {"b", "", ""}, "/bn/BN");
  ModelBuilder::attr(bn, "momentum", 0.9f);
  b.node("Relu", {"b"}, {"r"}, "/relu/Relu");
  auto* pool = b.node("MaxPool", {"r"}, {"p"}, "/pool/MaxPool");
  ModelBuilder::attr(pool, "kernel_shape", std::vector<int64_t>{2, 2});
  ModelBuilder::attr(pool, "strides", std::vector<int64_t>{2, 2});
  // [N,4,4,4] -> [N,4,16] via Shape -> Gather -> Unsqueeze -> Concat -> Reshape
  b.node("Shape", {"p"}, {"shape"}, "/Shape");
  b.ints("zero", {0}, true);
  auto* g = b.node("Gather", {"shape", "zero"}, {"batch"}, "/Gather");
  ModelBuilder::attr(g, "axis", int64_t{0});
  b.ints("axes0", {0});
  b.node("Unsqueeze", {"batch", "axes0"}, {"batch1"}, "/Unsqueeze");
  b.ints("rest", {4, 16});
  auto* cat = b.node("Concat", {"batch1", "rest"}, {"target"}, "/Concat");
  ModelBuilder::attr(cat, "axis", int64_t{0});
  b.node("Reshape", {"p", "target"}, {"seq"}, "/Reshape");
  // LayerNorm pattern over the last dim
  auto* m1 = b.node("ReduceMean", {"seq"}, {"mean"}, "/ln/ReduceMean");
  ModelBuilder::attr(m1, "axes", std::vector<int64_t>{-1});
  b.node("Sub", {"seq", "mean"}, {"dev"}, "/ln/Sub");
  b.scalar("two", 2.0f);
  b.node("Pow", {"dev", "two"}, {"sq"}, "/ln/Pow");
  auto* m2 = b.node("ReduceMean", {"sq"}, {"var"}, "/ln/ReduceMean_1");
  ModelBuilder::attr(m2, "axes", std::vector<int64_t>{-1});
  b.scalar("eps", 1e-5f);
  b.node("Add", {"var", "eps"}, {"vareps"}, "/ln/Add");
  b.node("Sqrt", {"vareps"}, {"std"}, "/ln/Sqrt");
  b.node("Div", {"dev", "std"}, {"normed"}, "/ln/Div");
  b.weight("ln.weight", {16}, 1.0f).weight("ln.bias", {16}, 0.0f);
  b.node("Mul", {"normed", "ln.weight"}, {"scaled"}, "/ln/Mul");
  b.node("Add", {"scaled", "ln.bias"}, {"ln"}, "/ln/Add_1");
  // x @ W^T + b, then GELU as erf
  b.weight("fc.weight", {32, 16}).weight("fc.bias", {32});
  auto* t = b.node("Transpose", {"fc.weight"}, {"wt"}, "/fc/Transpose");
  ModelBuilder::attr(t, "perm", std::vector<int64_t>{1, 0});
  b.node("MatMul", {"ln", "wt"}, {"mm"}, "/fc/MatMul");
  b.node("Add", {"fc.bias", "mm"}, {"fc"}, "/fc/Add");
  b.scalar("sqrt2", 1.4142135f);
  b.node("Div", {"fc", "sqrt2"}, {"gd"}, "/act/Div");
  b.node("Erf", {"gd"}, {"ge"}, "/act/Erf");
  b.scalar("one", 1.0f);
  b.node("Add", {"ge", "one"}, {"ga"}, "/act/Add");
  b.node("Mul", {"fc", "ga"}, {"gm"}, "/act/Mul");
  b.scalar("half", 0.5f);
  b.node("Mul", {"gm", "half"}, {"gelu"}, "/act/Mul_1");
  // chunk(2) as two sibling slices, then scores = a @ b^T / 4, softmax
  b.ints("s0", {0}).ints("s16", {16}).ints("s32", {32}).ints("axis_last", {-1});
  b.node("Slice", {"gelu", "s0", "s16", "axis_last"}, {"qa"}, "/Slice");
  b.node("Slice", {"gelu", "s16", "s32", "axis_last"}, {"qb"}, "/Slice_1");
  auto* tb = b.node("Transpose", {"qb"}, {"qbt"}, "/Transpose");
  ModelBuilder::attr(tb, "perm", std::vector<int64_t>{0, 2, 1});
  b.node("MatMul", {"qa", "qbt"}, {"scores"}, "/MatMul");
  b.scalar("four", 4.0f);
  b.node("Div", {"scores", "four"}, {"scaled_scores"}, "/Div");
  auto* sm = b.node("Softmax", {"scaled_scores"}, {"attn"}, "/Softmax");
  ModelBuilder::attr(sm, "axis", int64_t{-1});
  auto* fl = b.node("Flatten", {"attn"}, {"flat"}, "/Flatten");
  ModelBuilder::attr(fl, "axis", int64_t{1});
  b.weight("head.weight", {10, 16}).weight("head.bias", {10});
  auto* gemm = b.node("Gemm", {"flat", "head.weight", "head.bias"}, {"logits"}, "/head/Gemm");
  ModelBuilder::attr(gemm, "transB", int64_t{1});
  b.ints("sizes", {4, 6});
  auto* sp = b.node("Split", {"logits", "sizes"}, {"l0", "l1"}, "/Split");
  ModelBuilder::attr(sp, "axis", int64_t{1});
  b.node("Tanh", {"l0"}, {"t0"}, "/Tanh");
  auto* cc = b.node("Concat", {"t0", "l1"}, {"y"}, "/Concat_1");
  ModelBuilder::attr(cc, "axis", int64_t{1});
  b.output("y");
  return b;
}

}  // namespace ffc::testing
