// The ONNX importer: reading and checking the model, the node loop, names, and the outputs.
#include "frontend/onnx_importer.h"

#include <fcntl.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include "frontend/onnx_import.h"
#include "ir/printer.h"
#include "passes/infer_shapes.h"

namespace ffc {

namespace onnx_import {

namespace {

constexpr int kMinOpset = 11;
constexpr int kMaxOpset = 17;
/// Nodes that a recursive fold of later nodes may walk through before giving up (and leaving them
/// to the node loop), so that a long chain in a hostile file cannot exhaust the stack.
constexpr int kMaxFoldDepth = 64;

bool is_default_domain(const std::string& d) { return d.empty() || d == "ai.onnx"; }

/// A name from the file, made printable for a message.
std::string printable(std::string_view s, size_t max = 200) {
  std::string out;
  for (char c : s.substr(0, max)) {
    unsigned char u = static_cast<unsigned char>(c);
    out += u < 0x20 || u == 0x7f ? fmt::format("\\x{:02x}", u) : std::string(1, c);
  }
  if (s.size() > max) out += "...";
  return out;
}

/// A name from the file made fit for an op name: no control characters, and no ':' (which
/// separates an op from its output index in tensor references).
std::string sanitize(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == ':') c = '_';
  return out;
}

/// Where the hint for an operator that only patterns cover says what it takes.
std::string_view pattern_hint(std::string_view op_type) {
  if (op_type == "Erf") return "only inside the GELU pattern x*0.5*(1+erf(x/sqrt(2)))";
  if (op_type == "Pow" || op_type == "Sqrt" || op_type == "ReduceMean")
    return "only inside the LayerNorm pattern (ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div)";
  return {};
}

}  // namespace

// ---- Sym ---------------------------------------------------------------------------------------

std::string Sym::str() const {
  if (!known) return "?";
  if (!n) return std::to_string(k);
  return k == 1 ? "N" : fmt::format("{}N", k);
}

Sym sym_add(Sym a, Sym b) {
  int64_t r;
  if (!a.known || !b.known || a.n != b.n || __builtin_add_overflow(a.k, b.k, &r)) return Sym::unknown();
  return {r, a.n, true};
}

Sym sym_sub(Sym a, Sym b) {
  int64_t r;
  if (!a.known || !b.known || a.n != b.n || __builtin_sub_overflow(a.k, b.k, &r)) return Sym::unknown();
  return {r, a.n && r != 0, true};
}

Sym sym_mul(Sym a, Sym b) {
  int64_t r;
  if (!a.known || !b.known || (a.n && b.n) || __builtin_mul_overflow(a.k, b.k, &r)) return Sym::unknown();
  return {r, (a.n || b.n) && r != 0, true};
}

Sym sym_div(Sym a, Sym b) {
  if (!a.known || !b.known || b.n || b.k == 0) return Sym::unknown();
  if (a.k == INT64_MIN && b.k == -1) return Sym::unknown();
  if (a.n && a.k % b.k != 0) return Sym::unknown();  // N·k/b is k/b·N only when b divides k
  return {a.k / b.k, a.n, true};
}

Sym sym_product(std::span<const Sym> s) {
  Sym p = Sym::fixed(1);
  for (const Sym& x : s) p = sym_mul(p, x);
  return p;
}

// ---- the importer ------------------------------------------------------------------------------

Importer::Importer(const pb::ModelProto& model, std::string file) : model_(model), file_(std::move(file)) {}

void Importer::fail_message(int node, const std::string& message) const {
  throw UserError(SourceLoc{file_}, describe(node) + ": " + message);
}

void Importer::fail_model(const std::string& message) const { throw UserError(SourceLoc{file_}, message); }

std::string Importer::describe(int n) const {
  const pb::NodeProto& nd = node(n);
  if (!nd.name().empty()) return fmt::format("node '{}' ({})", printable(nd.name()), printable(nd.op_type()));
  return fmt::format("node {} ({}, unnamed; imported as '{}')", n, printable(nd.op_type()),
                     generated_names_.empty() ? std::string("?") : printable(generated_names_[n]));
}

void Importer::check_model() {
  if (model_.ir_version() < 3)
    fail_model(model_.ir_version() <= 0
                   ? "not an ONNX model: it has no IR version (is this an .onnx file?)"
                   : fmt::format("ONNX IR version {} predates opset imports; re-export the model", model_.ir_version()));
  if (!model_.has_graph()) fail_model("not an ONNX model: it has no graph");
  bool found = false;
  for (const pb::OperatorSetIdProto& o : model_.opset_import())
    if (is_default_domain(o.domain())) {
      found = true;
      opset_ = static_cast<int>(std::clamp<int64_t>(o.version(), INT_MIN, INT_MAX));
    }
  if (!found) fail_model("the model does not import the default ONNX opset (opset_import has no entry for domain \"\")");
  if (opset_ < kMinOpset || opset_ > kMaxOpset)
    fail_model(fmt::format("the model uses ONNX opset {}; ffc imports opsets {} to {} "
                           "(export with torch.onnx.export(..., opset_version=13))",
                           opset_, kMinOpset, kMaxOpset));
  // Nodes of other domains (com.microsoft, custom functions): one error listing them all.
  std::map<std::string, std::vector<int>> foreign;
  for (int i = 0; i < num_nodes(); ++i)
    if (!is_default_domain(node(i).domain())) foreign[node(i).domain()].push_back(i);
  if (!foreign.empty()) {
    std::string msg = "the model uses operator domains ffc does not know (it imports the default ONNX domain only):";
    for (const auto& [domain, nodes] : foreign) {
      msg += fmt::format("\n  domain '{}': {} node{} ({})", printable(domain), nodes.size(), nodes.size() == 1 ? "" : "s",
                         printable(node(nodes[0]).op_type()));
      std::vector<std::string> names;
      for (size_t k = 0; k < nodes.size() && k < 5; ++k) names.push_back(describe(nodes[k]));
      msg += ": " + fmt::format("{}", fmt::join(names, ", ")) + (nodes.size() > 5 ? ", ..." : "");
    }
    fail_model(msg);
  }
  if (graph_proto().sparse_initializer_size() > 0) fail_model("the model has sparse initializers, which ffc does not import");
}

void Importer::index_names() {
  const pb::GraphProto& g = graph_proto();
  for (int i = 0; i < g.initializer_size(); ++i) {
    const std::string& name = g.initializer(i).name();
    if (name.empty()) fail_model(fmt::format("initializer {} has no name", i));
    if (!initializers_.emplace(name, i).second) fail_model(fmt::format("two initializers are named '{}'", printable(name)));
  }
  std::map<std::string, int> per_type;
  generated_names_.resize(num_nodes());
  for (int i = 0; i < num_nodes(); ++i) {
    const pb::NodeProto& nd = node(i);
    generated_names_[i] = nd.name().empty() ? fmt::format("{}_{}", sanitize(nd.op_type()), per_type[nd.op_type()]++)
                                            : sanitize(nd.name());
    if (nd.op_type().empty()) fail(i, "has no operator type");
  }
  std::set<std::string, std::less<>> inputs;
  for (const pb::ValueInfoProto& in : g.input()) inputs.insert(in.name());
  for (int i = 0; i < num_nodes(); ++i) {
    const pb::NodeProto& nd = node(i);
    for (const std::string& out : nd.output()) {
      if (out.empty()) continue;
      auto [it, fresh] = producers_.emplace(out, i);
      if (!fresh) fail(i, "defines '{}', which {} already defines", printable(out), describe(it->second));
      if (initializers_.count(out) || inputs.count(out))
        fail(i, "defines '{}', which is already a graph input or an initializer", printable(out));
    }
    for (const std::string& in : nd.input())
      if (!in.empty()) {
        auto& c = consumers_[in];
        if (c.empty() || c.back() != i) c.push_back(i);
      }
  }
  for (const pb::ValueInfoProto& out : g.output()) graph_outputs_.insert(out.name());
  if (graph_outputs_.empty()) fail_model("the graph has no outputs");
}

void Importer::add_graph_inputs() {
  int count = 0;
  for (const pb::ValueInfoProto& in : graph_proto().input()) {
    if (initializers_.count(in.name())) continue;  // old exports list initializers as inputs too
    std::string name = printable(in.name());
    if (in.name().empty()) fail_model("a graph input has no name");
    if (!in.type().has_tensor_type()) fail_model(fmt::format("graph input '{}' is not a tensor", name));
    const pb::TypeProto::Tensor& tt = in.type().tensor_type();
    DType dtype;
    switch (tt.elem_type()) {
      case pb::TensorProto::FLOAT: dtype = DType::f32; break;
      case pb::TensorProto::FLOAT16: dtype = DType::f16; break;
      case pb::TensorProto::BFLOAT16: dtype = DType::bf16; break;
      case pb::TensorProto::INT64: dtype = DType::i64; break;
      default:
        fail_model(fmt::format("graph input '{}' has element type {}; ffc takes float, float16, bfloat16 or int64 inputs",
                               name, pb::TensorProto::DataType_Name(static_cast<pb::TensorProto::DataType>(tt.elem_type()))));
    }
    if (!tt.has_shape() || tt.shape().dim_size() == 0)
      fail_model(fmt::format("graph input '{}' has no shape; ffc needs every dim but the batch to be fixed", name));
    Shape shape{Dim::n()};
    int64_t per_sample = 1;  // bounded, so that no shape computed from it overflows
    for (int d = 1; d < tt.shape().dim_size(); ++d) {
      const pb::TensorShapeProto::Dimension& dim = tt.shape().dim(d);
      if (!dim.has_dim_value())
        fail_model(fmt::format("dim {} of graph input '{}' is {}; only dim 0, the batch, may vary", d, name,
                               dim.has_dim_param() ? fmt::format("symbolic ('{}')", printable(dim.dim_param())) : "unknown"));
      if (dim.dim_value() < 1 || dim.dim_value() > (int64_t{1} << 31))
        fail_model(fmt::format("dim {} of graph input '{}' has extent {}", d, name, dim.dim_value()));
      shape.push_back(Dim::fixed(dim.dim_value()));
      if (__builtin_mul_overflow(per_sample, dim.dim_value(), &per_sample) || per_sample > (int64_t{1} << 40))
        fail_model(fmt::format("graph input '{}' has too many elements per sample", name));
    }
    const pb::TensorShapeProto::Dimension& batch = tt.shape().dim(0);
    if (count == 0 && batch.has_dim_value() && batch.dim_value() >= 1 && batch.dim_value() <= (int64_t{1} << 31))
      exported_batch_ = batch.dim_value();
    int op = graph_.add_op(unique_name(sanitize(in.name())), OpKind::input, {}, {}, SourceLoc{file_});
    graph_.tensors[graph_.ops[op].outputs[0]].type = TensorType{dtype, shape};
    infer_op_shapes(graph_, op);
    values_[in.name()] = Value{.tensor = graph_.ops[op].outputs[0]};
    ++count;
  }
  if (count == 0) fail_model("the graph has no inputs (besides initializers)");
}

void Importer::check_supported(const std::vector<Fusion>& fusions) {
  std::set<int> covered;
  for (const Fusion& f : fusions) covered.insert(f.nodes.begin(), f.nodes.end());
  std::set<std::string_view, std::less<>> known;
  for (auto handlers : {layout_handlers(), nn_handlers(), elementwise_handlers()})
    for (const HandlerEntry& h : handlers) known.insert(h.op_type);
  std::map<std::string, std::vector<int>> unsupported;
  for (int i = 0; i < num_nodes(); ++i) {
    const std::string& t = node(i).op_type();
    if (!covered.count(i) && !known.count(t) && !is_folding_op(t)) unsupported[t].push_back(i);
  }
  if (unsupported.empty()) return;
  size_t total = 0;
  for (const auto& [t, nodes] : unsupported) total += nodes.size();
  std::string msg = fmt::format("the model uses {} operator{} that ffc does not import ({} node{}):", unsupported.size(),
                                unsupported.size() == 1 ? "" : "s", total, total == 1 ? "" : "s");
  for (const auto& [t, nodes] : unsupported) {
    std::vector<std::string> names;
    for (size_t k = 0; k < nodes.size() && k < 8; ++k) names.push_back(printable(generated_names_[nodes[k]]));
    if (nodes.size() > 8) names.push_back(fmt::format("and {} more", nodes.size() - 8));
    msg += fmt::format("\n  {} ({} node{}): {}", printable(t), nodes.size(), nodes.size() == 1 ? "" : "s", fmt::join(names, ", "));
    if (!pattern_hint(t).empty()) msg += fmt::format(" [ffc takes {} {}]", t, pattern_hint(t));
  }
  fail_model(msg);
}

void Importer::convert_node(int i) {
  if (done_[i]) return;
  const std::string& type = node(i).op_type();
  if (is_folding_op(type)) {
    folding_[i] = true;
    ConstPtr c = fold_node(*this, i);
    folding_[i] = false;
    if (c) {
      define(i, 0, Value{.constant = c});
      done_[i] = true;
      return;
    }
  }
  for (auto handlers : {layout_handlers(), nn_handlers(), elementwise_handlers()})
    for (const HandlerEntry& h : handlers)
      if (h.op_type == type) {
        h.handler(*this, i);
        done_[i] = true;
        return;
      }
  // A folding-only op type whose inputs are not all constants.
  for (int k = 0; k < num_inputs(i); ++k)
    if (has_input(i, k) && !input(i, k).is_constant())
      fail(i, "input {} ('{}') is computed by the network; ffc folds {} only over constants (shape arithmetic)", k,
           printable(node(i).input(k)), printable(type));
  fail(i, "cannot be folded");
}

void Importer::finish_outputs() {
  for (const pb::ValueInfoProto& out : graph_proto().output()) {
    auto it = values_.find(out.name());
    std::string name = printable(out.name());
    if (it == values_.end()) {
      if (initializers_.count(out.name())) fail_model(fmt::format("graph output '{}' is an initializer, not computed by the network", name));
      fail_model(fmt::format("graph output '{}' is not computed by any node", name));
    }
    const Value& v = it->second;
    if (v.is_constant()) fail_model(fmt::format("graph output '{}' is a constant, not computed from the inputs", name));
    if (!v.groups.empty())
      fail_model(fmt::format("graph output '{}' merges the batch with another dim (ffc holds it as {})", name,
                             graph_.type(v.tensor).str()));
  }
}

Graph Importer::prune_dead_ops() {
  std::vector<bool> live(graph_.ops.size(), false);
  std::vector<TensorId> work;
  for (const pb::ValueInfoProto& out : graph_proto().output()) work.push_back(values_.at(out.name()).tensor);
  while (!work.empty()) {
    TensorId t = work.back();
    work.pop_back();
    int op = graph_.tensors[t].producer;
    if (live[op]) continue;
    live[op] = true;
    for (TensorId in : graph_.ops[op].inputs) work.push_back(in);
  }
  for (size_t i = 0; i < graph_.ops.size(); ++i)
    if (graph_.ops[i].kind == OpKind::input) live[i] = true;
  if (std::all_of(live.begin(), live.end(), [](bool b) { return b; })) return std::move(graph_);
  // Rebuild without the ops nothing reads (e.g. a node whose outputs feed only unused outputs).
  Graph g;
  std::vector<TensorId> remap(graph_.tensors.size(), -1);
  for (size_t i = 0; i < graph_.ops.size(); ++i) {
    if (!live[i]) continue;
    const Op& op = graph_.ops[i];
    std::vector<TensorId> inputs;
    for (TensorId t : op.inputs) inputs.push_back(remap[t]);
    int k = g.add_op(op.name, op.kind, inputs, op.attrs, op.loc);
    Op& copy = g.ops[k];
    copy.param_names = op.param_names;
    copy.trailing = op.trailing;
    for (size_t o = 0; o < op.outputs.size(); ++o) {
      remap[op.outputs[o]] = copy.outputs[o];
      g.tensors[copy.outputs[o]].type = graph_.type(op.outputs[o]);
    }
  }
  return g;
}

std::string Importer::unique_name(std::string base) {
  if (base.empty()) base = "op";
  std::string name = base;
  for (int k = 1; used_names_.count(name) || graph_.find_op(name) >= 0; ++k) name = fmt::format("{}_{}", base, k);
  used_names_.insert(name);
  return name;
}

Graph Importer::run() {
  check_model();
  index_names();
  done_.assign(num_nodes(), false);
  folding_.assign(num_nodes(), false);
  add_graph_inputs();

  std::vector<Fusion> fusions = find_fusions(*this);
  std::map<int, const Fusion*> anchors;
  for (const Fusion& f : fusions) anchors[f.anchor] = &f;
  check_supported(fusions);
  std::vector<bool> fused(num_nodes(), false);
  for (const Fusion& f : fusions)
    for (int n : f.nodes) fused[n] = true;

  for (int i = 0; i < num_nodes(); ++i) {
    if (auto it = anchors.find(i); it != anchors.end()) {
      emit_fusion(*this, *it->second);
      for (int n : it->second->nodes) done_[n] = true;
      continue;
    }
    if (fused[i]) continue;
    convert_node(i);
  }
  finish_outputs();
  Graph g = prune_dead_ops();

  std::string stem = file_.substr(file_.find_last_of('/') + 1);
  std::string base = stem;
  if (stem.size() > 5 && stem.substr(stem.size() - 5) == ".onnx") stem.resize(stem.size() - 5);
  g.name = sanitize(stem.empty() ? "model" : stem);
  std::string producer = model_.producer_name().empty() ? "an unknown producer"
                                                        : model_.producer_name() + " " + model_.producer_version();
  std::string header = fmt::format("# Imported from {} (written by {}, ONNX opset {}) by ffc.", base, producer, opset_);
  for (char& c : header)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '_';
  g.header = {header};
  return g;
}

// ---- inputs, attributes, outputs -------------------------------------------------------------------

bool Importer::has_input(int n, int i) const { return i < node(n).input_size() && !node(n).input(i).empty(); }

const Value& Importer::input(int n, int i) {
  if (i >= node(n).input_size()) fail(n, "has {} inputs; it needs input {}", node(n).input_size(), i);
  const std::string& name = node(n).input(i);
  if (name.empty()) fail(n, "input {} is omitted, but ffc needs it", i);
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  if (try_constant(name)) return values_.at(name);
  int p = producer(name);
  if (p < 0) fail(n, "reads '{}', which no node, graph input or initializer defines (a missing initializer?)", printable(name));
  if (!done_[p] || p >= n)
    fail(n, "reads '{}' before {} defines it: the nodes are not in topological order", printable(name), describe(p));
  fail(n, "reads '{}', an output of {} that ffc does not import", printable(name), describe(p));
}

const Value& Importer::activation(int n, int i, std::string_view what) {
  const Value& v = input(n, i);
  if (v.is_constant())
    fail(n, "{} ('{}') is a constant; ffc needs a tensor computed by the network here", what, printable(node(n).input(i)));
  const std::string& t = node(n).op_type();
  if (v.pad && !(i == 0 && (t == "Conv" || t == "MaxPool" || t == "AveragePool")))
    fail(n, "reads a padded tensor; ffc folds Pad only into the conv or pool that follows it");
  return v;
}

ConstPtr Importer::constant(int n, int i, std::string_view what) {
  if (!has_input(n, i)) fail(n, "{} (input {}) is missing", what, i);
  const Value& v = input(n, i);
  if (!v.is_constant())
    fail(n, "{} ('{}') must be known at import time, but it is computed from the network's tensors", what,
         printable(node(n).input(i)));
  if (!v.constant->loaded) fail(n, "{} ('{}') is too large to use as a constant", what, printable(node(n).input(i)));
  return v.constant;
}

const Constant& Importer::initializer(int n, int i, std::string_view what) {
  if (!has_input(n, i)) fail(n, "{} (input {}) is missing", what, i);
  const Value& v = input(n, i);
  if (!v.is_constant() || v.constant->initializer.empty() || v.constant->transposed)
    fail(n, "{} ('{}') must be an initializer (a stored weight); here it is {}", what, printable(node(n).input(i)),
         v.is_constant() ? "a constant computed at import" : "computed by the network");
  return *v.constant;
}

ConstPtr Importer::try_constant(const std::string& name) {
  if (auto it = values_.find(name); it != values_.end()) return it->second.constant;
  if (auto it = initializers_.find(name); it != initializers_.end()) {
    // Small initializers are decoded (shape constants stored as initializers); weights keep dims only.
    auto c = std::make_shared<Constant>(decode_tensor(*this, graph_proto().initializer(it->second),
                                                      fmt::format("initializer '{}'", printable(name)), 4096));
    c->initializer = name;
    values_[name] = Value{.constant = c};
    return c;
  }
  int p = producer(name);
  if (p < 0 || done_[p] || folding_[p] || !is_folding_op(node(p).op_type())) return nullptr;
  if (fold_depth_ >= kMaxFoldDepth) return nullptr;
  folding_[p] = true;
  ++fold_depth_;
  ConstPtr c;
  try {
    c = fold_node(*this, p);
  } catch (...) {
    folding_[p] = false;
    --fold_depth_;
    throw;
  }
  folding_[p] = false;
  --fold_depth_;
  if (!c) return nullptr;
  define(p, 0, Value{.constant = c});
  done_[p] = true;
  return c;
}

const Value* Importer::find_value(const std::string& name) {
  if (auto it = values_.find(name); it != values_.end()) return &it->second;
  if (try_constant(name)) return &values_.at(name);
  return nullptr;
}

const pb::AttributeProto* Importer::attr(int n, std::string_view name) const {
  for (const pb::AttributeProto& a : node(n).attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

int64_t Importer::attr_int(int n, std::string_view name, int64_t dflt) const {
  const pb::AttributeProto* a = attr(n, name);
  if (!a) return dflt;
  if (a->type() != pb::AttributeProto::INT && !(a->type() == pb::AttributeProto::UNDEFINED && a->has_i()))
    fail(n, "attribute '{}' must be an integer", name);
  return a->i();
}

double Importer::attr_float(int n, std::string_view name, double dflt) const {
  const pb::AttributeProto* a = attr(n, name);
  if (!a) return dflt;
  if (a->type() != pb::AttributeProto::FLOAT && !(a->type() == pb::AttributeProto::UNDEFINED && a->has_f()))
    fail(n, "attribute '{}' must be a float", name);
  return a->f();
}

std::vector<int64_t> Importer::attr_ints(int n, std::string_view name, std::vector<int64_t> dflt) const {
  const pb::AttributeProto* a = attr(n, name);
  if (!a) return dflt;
  if (a->type() != pb::AttributeProto::INTS && !(a->type() == pb::AttributeProto::UNDEFINED && a->ints_size() > 0))
    fail(n, "attribute '{}' must be a list of integers", name);
  return {a->ints().begin(), a->ints().end()};
}

std::string Importer::attr_string(int n, std::string_view name, std::string dflt) const {
  const pb::AttributeProto* a = attr(n, name);
  if (!a) return dflt;
  if (a->type() != pb::AttributeProto::STRING && !(a->type() == pb::AttributeProto::UNDEFINED && a->has_s()))
    fail(n, "attribute '{}' must be a string", name);
  return a->s();
}

void Importer::expect_attrs(int n, std::initializer_list<std::string_view> known) const {
  for (const pb::AttributeProto& a : node(n).attribute())
    if (std::find(known.begin(), known.end(), a.name()) == known.end())
      fail(n, "has attribute '{}', which ffc does not import", printable(a.name()));
}

void Importer::define(int n, int out, Value v) {
  if (out >= node(n).output_size() || node(n).output(out).empty()) return;
  define_name(node(n).output(out), std::move(v));
}

void Importer::define_name(const std::string& name, Value v) {
  if (name.empty()) return;
  FFC_CHECK(!values_.count(name));
  values_[name] = std::move(v);
}

void Importer::expect_unused_outputs(int n, int from, std::string_view why) {
  for (int j = from; j < node(n).output_size(); ++j) {
    const std::string& out = node(n).output(j);
    if (out.empty()) continue;
    if (is_graph_output(out)) fail(n, "output {} ('{}') is a graph output, but ffc {}", j, printable(out), why);
    const std::vector<int>& c = consumers(out);
    if (!c.empty()) fail(n, "output {} ('{}') is read by {}, but ffc {}", j, printable(out), describe(c[0]), why);
  }
}

const std::vector<int>& Importer::consumers(const std::string& value) const {
  static const std::vector<int> none;
  auto it = consumers_.find(value);
  return it == consumers_.end() ? none : it->second;
}

int Importer::sole_consumer(const std::string& value) const {
  const std::vector<int>& c = consumers(value);
  if (c.size() != 1 || is_graph_output(value)) return -1;
  // The node must read it once: x*x reads x twice.
  int uses = 0;
  for (const std::string& in : node(c[0]).input()) uses += in == value;
  return uses == 1 ? c[0] : -1;
}

int Importer::producer(const std::string& value) const {
  auto it = producers_.find(value);
  return it == producers_.end() ? -1 : it->second;
}

// ---- building the graph --------------------------------------------------------------------------

int Importer::emit(int n, OpKind kind, std::vector<TensorId> inputs, std::vector<AttrValue> attrs,
                   std::vector<std::string> params, std::string name) {
  std::string op_name_ = unique_name(name.empty() ? op_name(n) : sanitize(name));
  int index = graph_.add_op(op_name_, kind, std::move(inputs), std::move(attrs), SourceLoc{file_});
  infer_op_shapes(graph_, index);
  if (params.empty()) return index;
  Op& op = graph_.ops[index];
  std::vector<ParamSpec> specs = op_params(graph_, op);
  FFC_CHECK(specs.size() == params.size());
  for (size_t p = 0; p < specs.size(); ++p) {
    if (params[p].empty()) {
      op.param_names.push_back(fmt::format("{}.{}", op.name, specs[p].name));
      continue;
    }
    const Constant& c = *try_constant(params[p]);
    std::vector<int64_t> want;
    for (const Dim& d : specs[p].shape) want.push_back(d.value);
    // A bias stored as [1, C] serves a [C] parameter: the elements are the same.
    std::vector<int64_t> have = c.dims;
    while (have.size() > want.size() && have.front() == 1) have.erase(have.begin());
    if (have != want)
      fail(n, "initializer '{}' has shape [{}], but the {} op's {} needs [{}]", printable(params[p]), fmt::join(c.dims, ","),
           op.info().name, specs[p].name, fmt::join(want, ","));
    auto [it, fresh] = param_owner_.emplace(params[p], op.name);
    if (!fresh)
      fail(n, "initializer '{}' is shared by ops '{}' and '{}'; ffc gives every op its own parameters", printable(params[p]),
           it->second, op.name);
    op.param_names.push_back(params[p]);
  }
  return index;
}

Value Importer::emit_value(int n, OpKind kind, std::vector<TensorId> inputs, std::vector<AttrValue> attrs,
                           std::vector<std::string> params, std::string name) {
  int op = emit(n, kind, std::move(inputs), std::move(attrs), std::move(params), std::move(name));
  return Value{.tensor = graph_.ops[op].outputs.at(0)};
}

std::string Importer::op_name(int n) const { return generated_names_[n]; }

std::string Importer::fused_name(const std::vector<int>& nodes, std::string_view what) const {
  const std::string& first = node(nodes.front()).name();
  size_t slash = first.find_last_of('/');
  if (first.empty() || slash == std::string::npos) return std::string(what);
  return sanitize(first.substr(0, slash + 1)) + std::string(what);
}

}  // namespace onnx_import

bool onnx_importer_built() { return true; }

namespace {

/// The error for bytes that do not parse as a ModelProto; `head` is the start of the file.
[[noreturn]] void not_a_model(std::string_view head, const std::string& file) {
  head = head.substr(0, 64);
  bool text = std::all_of(head.begin(), head.end(), [](char c) {
    return c == '\n' || c == '\r' || c == '\t' || (c >= 0x20 && c < 0x7f);
  });
  throw UserError({file}, text ? "not an ONNX model: this looks like a text file (a .ff model?), not a serialized ModelProto"
                               : "not an ONNX model, or a corrupt or truncated one: its protobuf data does not parse "
                                 "as a ModelProto");
}

void check_size(uint64_t size, const std::string& file) {
  if (size == 0) throw UserError({file}, "the file is empty; an ONNX model is a serialized ModelProto");
  if (size > static_cast<uint64_t>(INT_MAX))
    throw UserError({file}, "the file is larger than 2 GiB, the limit of a protobuf message; "
                            "ONNX models this large keep their weights in external data files, which ffc does not read");
}

}  // namespace

Graph import_onnx(std::string_view bytes, const std::string& file) {
  check_size(bytes.size(), file);
  onnx_import::pb::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) not_a_model(bytes, file);
  return onnx_import::Importer(model, file).run();
}

Graph import_onnx_file(const std::string& path) {
  // Parsed straight from the file: models run to hundreds of megabytes (VGG's weights are 0.5 GB),
  // and a copy of the bytes besides the parsed message would double the memory.
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw UserError({path}, "cannot read the file");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) throw UserError({path}, "cannot read the file");
  check_size(static_cast<uint64_t>(st.st_size), path);
  onnx_import::pb::ModelProto model;
  google::protobuf::io::FileInputStream in(fd);
  if (!model.ParseFromZeroCopyStream(&in) || in.GetErrno() != 0) {
    if (in.GetErrno() != 0) throw UserError({path}, "cannot read the file");
    char head[64];
    ssize_t n = ::pread(fd, head, sizeof head, 0);
    not_a_model(std::string_view(head, n > 0 ? static_cast<size_t>(n) : 0), path);
  }
  return onnx_import::Importer(model, path).run();
}

}  // namespace ffc
