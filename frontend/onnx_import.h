// The ONNX importer's internals, shared by its files: the importer's state and the handlers of each
// op family. Not a public header: frontend/onnx_importer.h is the interface.
//
//   onnx_importer.cc     reading and checking the model, the node loop, names, outputs
//   onnx_constants.cc    constants: decoding tensors, folding shape arithmetic
//   onnx_layout.cc       reshapes and the merged-batch bookkeeping; Flatten, Transpose, Concat,
//                        Split, Slice, Squeeze/Unsqueeze, Identity, Cast
//   onnx_nn.cc           Conv, pools, Pad, Gemm, MatMul, BatchNormalization, Gather (embedding)
//   onnx_elementwise.cc  activations, arithmetic, Dropout, Softmax, LayerNormalization, and the
//                        GELU and LayerNorm patterns
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "ir/op_table.h"
#include "onnx.pb.h"

namespace ffc::onnx_import {

namespace pb = ::onnx;

/// An integer of shape arithmetic: `k`, or `k`·N with N the symbolic batch. `known` is false for
/// what that cannot express (N·N, N+1, a value read from data).
struct Sym {
  int64_t k = 0;
  bool n = false;
  bool known = true;

  static Sym fixed(int64_t v) { return {v, false, true}; }
  static Sym batch(int64_t k = 1) { return {k, true, true}; }
  static Sym unknown() { return {0, false, false}; }
  bool operator==(const Sym&) const = default;
  std::string str() const;
};

/// Checked arithmetic on Syms; unknown when the result is not of the form k or k·N, or overflows.
Sym sym_add(Sym a, Sym b);
Sym sym_sub(Sym a, Sym b);
Sym sym_mul(Sym a, Sym b);
/// ONNX integer division (truncating); unknown when N does not divide out evenly.
Sym sym_div(Sym a, Sym b);
/// The product of a list; unknown as sym_mul.
Sym sym_product(std::span<const Sym> s);

/// A tensor whose value is known at import time: an initializer, a Constant node's value, or the
/// result of folding shape arithmetic.
struct Constant {
  std::vector<int64_t> dims;
  bool is_float = false;     ///< Floating-point data; otherwise integers (and booleans).
  std::vector<double> floats;
  std::vector<Sym> ints;     ///< Integer elements; the batch may appear in shape vectors.
  bool loaded = true;        ///< false: too large to decode (a parameter); only dims are known.
  std::string initializer;   ///< The initializer this is, unchanged; empty otherwise.
  bool transposed = false;   ///< The initializer transposed (perm [1,0]), as MatMul weights come.

  int64_t numel() const;
  /// A one-element constant's value as a double; nullopt otherwise (or for a symbolic value).
  std::optional<double> scalar() const;
};

using ConstPtr = std::shared_ptr<const Constant>;

/// Zero padding waiting to be folded into the conv or pool that reads it (a Pad node's output).
struct PendingPad {
  int64_t h = 0, w = 0;
};

/// What an ONNX value name stands for during import: a tensor of the graph being built (an
/// activation), or a constant.
///
/// An activation's ONNX shape may merge the batch with other dims ([N·4, 16, 16] for the heads of
/// an attention layer); ffc keeps them apart ([N, 4, 16, 16]) and `groups` says how many ffc dims
/// make each ONNX dim. Empty groups: one each, the shapes agree.
struct Value {
  TensorId tensor = -1;
  std::vector<int> groups = {};
  ConstPtr constant = nullptr;
  bool nonnegative = false;  ///< Known to be >= 0 (a ReLU's output).
  std::optional<PendingPad> pad = std::nullopt;

  bool is_constant() const { return constant != nullptr; }
};

class Importer;

/// Converts one node (and the nodes it fuses), defining its outputs.
using Handler = void (*)(Importer& im, int node);

struct HandlerEntry {
  std::string_view op_type;
  Handler handler;
};

/// The handlers of each family, by ONNX op type.
std::span<const HandlerEntry> layout_handlers();
std::span<const HandlerEntry> nn_handlers();
std::span<const HandlerEntry> elementwise_handlers();

/// Folds a node whose inputs are all constants; nullptr when it is not a folding op type or an
/// input is not constant. Throws UserError on a malformed node.
ConstPtr fold_node(Importer& im, int node);
/// Whether nodes of this type may be folded when their inputs are constants.
bool is_folding_op(std::string_view op_type);

/// A float read from the model, as the shortest decimal that reads back as the same float32:
/// 0.1 for the 0.10000000149011612 a float32 holds, so that attributes print as they were written.
double float32_value(double v);

/// Decodes a TensorProto (an initializer or a Constant's value); `what` names it in messages.
/// Tensors with more than `max_load` elements keep only their dims.
Constant decode_tensor(Importer& im, const pb::TensorProto& t, const std::string& what, int64_t max_load);

/// Patterns that fuse several nodes into one op, found before conversion so that the check for
/// unsupported operators knows which Erf, Pow, Sqrt and ReduceMean nodes they cover.
struct Fusion {
  enum Kind { gelu, layer_norm } kind = gelu;
  int anchor = -1;           ///< The first node; the fused op is emitted there.
  std::vector<int> nodes;    ///< Every node it covers, anchor included.
  std::string x;             ///< The input value.
  std::string y;             ///< The output value.
  double eps = 0;            ///< layer_norm
  int axis_node = -1;        ///< layer_norm: the ReduceMean whose axes are checked on conversion
  std::string weight, bias;  ///< layer_norm: initializers, or empty when not affine
};
/// Finds the GELU and LayerNorm patterns of the graph.
std::vector<Fusion> find_fusions(Importer& im);
/// Emits the op of a fusion found by find_fusions.
void emit_fusion(Importer& im, const Fusion& f);

/// The importer's state while it converts one model.
class Importer {
 public:
  Importer(const pb::ModelProto& model, std::string file);

  /// Converts the whole model.
  Graph run();

  // ---- the model ----------------------------------------------------------------------------
  const pb::NodeProto& node(int i) const { return graph_proto().node(i); }
  int num_nodes() const { return graph_proto().node_size(); }
  int opset() const { return opset_; }
  const std::string& file() const { return file_; }
  /// The batch the model was exported with (dim 0 of its first input), or 0 when symbolic.
  int64_t exported_batch() const { return exported_batch_; }

  /// A UserError naming the file and the node.
  template <typename... Args>
  [[noreturn]] void fail(int node, fmt::format_string<Args...> f, Args&&... args) const {
    fail_message(node, fmt::format(f, std::forward<Args>(args)...));
  }
  [[noreturn]] void fail_message(int node, const std::string& message) const;
  /// A UserError naming the file only.
  [[noreturn]] void fail_model(const std::string& message) const;
  /// `node '/features/features.0/Conv' (Conv)`, for messages.
  std::string describe(int node) const;

  // ---- inputs ---------------------------------------------------------------------------------
  /// Inputs a node has, optional empty ones included.
  int num_inputs(int node) const { return this->node(node).input_size(); }
  /// Whether input `i` is present (not omitted, not the empty name).
  bool has_input(int node, int i) const;
  /// The value of input `i`; fails when it is missing or not defined before the node.
  const Value& input(int node, int i);
  /// Input `i`, which must be an activation (not a constant).
  const Value& activation(int node, int i, std::string_view what = "its data input");
  /// Input `i`, which must be a constant (folded on demand); fails otherwise.
  ConstPtr constant(int node, int i, std::string_view what);
  /// The constant value named `name`, folding its producers on demand; nullptr when it is not
  /// known at import time (or not defined).
  ConstPtr try_constant(const std::string& name);
  /// The value named `name` when it is defined by now (folding constants on demand), else nullptr.
  const Value* find_value(const std::string& name);
  /// The initializer read by input `i` (a parameter); fails unless it is one.
  const Constant& initializer(int node, int i, std::string_view what);

  // ---- attributes -----------------------------------------------------------------------------
  const pb::AttributeProto* attr(int node, std::string_view name) const;
  int64_t attr_int(int node, std::string_view name, int64_t dflt) const;
  double attr_float(int node, std::string_view name, double dflt) const;
  std::vector<int64_t> attr_ints(int node, std::string_view name, std::vector<int64_t> dflt) const;
  std::string attr_string(int node, std::string_view name, std::string dflt) const;
  /// Fails when the node has attributes other than `known` (ones that would change its meaning).
  void expect_attrs(int node, std::initializer_list<std::string_view> known) const;

  // ---- outputs and the graph being built --------------------------------------------------------
  /// Defines output `out` of a node (ignored when the output is omitted).
  void define(int node, int out, Value v);
  /// Defines a value by name.
  void define_name(const std::string& name, Value v);
  /// Fails when an output of a node other than the first ones it converts is read by anything.
  void expect_unused_outputs(int node, int from, std::string_view why);
  /// The nodes reading a value, in node order.
  const std::vector<int>& consumers(const std::string& value) const;
  /// The only node reading a value, or -1 (none, several, or a graph output reads it).
  int sole_consumer(const std::string& value) const;
  bool is_graph_output(const std::string& value) const { return graph_outputs_.count(value) > 0; }
  /// The node producing a value, or -1.
  int producer(const std::string& value) const;
  /// Marks a node converted (fused into another's op).
  void mark_done(int node) { done_[node] = true; }
  bool done(int node) const { return done_[node]; }

  /// Adds an op for a node, infers its types and checks its parameters' shapes against the
  /// initializers named in `params` (empty entries: not from an initializer). Returns its index.
  int emit(int node, OpKind kind, std::vector<TensorId> inputs, std::vector<AttrValue> attrs,
           std::vector<std::string> params = {}, std::string name = "");
  /// The single-output op `emit` added, as a value.
  Value emit_value(int node, OpKind kind, std::vector<TensorId> inputs, std::vector<AttrValue> attrs,
                   std::vector<std::string> params = {}, std::string name = "");
  const Graph& graph() const { return graph_; }
  Graph& graph() { return graph_; }
  const TensorType& type(const Value& v) const { return graph_.type(v.tensor); }
  /// The name for the op of a node: its ONNX name made unique, or a generated one.
  std::string op_name(int node) const;
  /// The name for an op fusing nodes: their common scope and `what`, e.g. `/layers.0/norm1/LayerNormalization`.
  std::string fused_name(const std::vector<int>& nodes, std::string_view what) const;

  // ---- shapes of activations ---------------------------------------------------------------------
  /// The ONNX shape of an activation.
  std::vector<Sym> onnx_shape(const Value& v) const;
  int onnx_rank(const Value& v) const;
  /// The ffc dim where ONNX dim `axis` (may be negative) starts; fails unless it is one ffc dim.
  int ffc_axis(int node, const Value& v, int64_t axis, std::string_view what) const;
  /// Fails unless the activation's ONNX and ffc shapes agree (no merged batch).
  void expect_plain(int node, const Value& v, std::string_view what) const;
  /// Reshapes an activation to an ONNX shape (entries may be -1, and 0 when `copy_zero`); emits a
  /// reshape op only when the ffc shape changes.
  Value reshape(int node, const Value& in, std::vector<Sym> target, bool copy_zero);

 private:
  const pb::GraphProto& graph_proto() const { return model_.graph(); }
  void check_model();
  void index_names();
  void add_graph_inputs();
  void check_supported(const std::vector<Fusion>& fusions);
  void convert_node(int node);
  void finish_outputs();
  Graph prune_dead_ops();
  std::string unique_name(std::string base);

  const pb::ModelProto& model_;
  std::string file_;
  int opset_ = 0;
  int64_t exported_batch_ = 0;
  Graph graph_;

  std::map<std::string, int, std::less<>> initializers_;       // name -> index in graph.initializer
  std::map<std::string, int, std::less<>> producers_;          // value -> node
  std::map<std::string, std::vector<int>, std::less<>> consumers_;
  std::set<std::string, std::less<>> graph_outputs_;
  std::map<std::string, Value, std::less<>> values_;
  std::vector<bool> done_;
  std::vector<bool> folding_;                                   // on-demand folding in progress
  int fold_depth_ = 0;
  std::vector<std::string> generated_names_;                    // per node: its name for messages and ops
  std::set<std::string, std::less<>> used_names_;              // op names given out
  std::map<std::string, std::string, std::less<>> param_owner_; // initializer -> op using it
};

}  // namespace ffc::onnx_import
