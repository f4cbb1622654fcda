// Strategy files and their validation against a model.
#include "frontend/strategy.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "frontend/read_file.h"
#include "ir/op_table.h"
#include "strategy.pb.h"

namespace ffc {

namespace {

namespace pb = google::protobuf;

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Strategy from_proto(const proto::Strategy& msg, const std::string& file, const pb::TextFormat::ParseInfoTree* tree) {
  Strategy s;
  const pb::FieldDescriptor* ops_field = proto::Strategy::descriptor()->FindFieldByName("ops");
  for (int i = 0; i < msg.ops_size(); ++i) {
    const proto::Op& op = msg.ops(i);
    OpConfig c;
    c.op = op.name();
    c.cpu = op.device_type() == proto::Op::CPU;
    for (int j = op.dims_size() - 1; j >= 0; --j) c.degrees.push_back(op.dims(j));
    c.devices.assign(op.device_ids().begin(), op.device_ids().end());
    for (int m : op.memory_types()) c.memory_types.push_back(m);
    c.loc.file = file;
    if (tree) {
      pb::TextFormat::ParseLocation where = tree->GetLocation(ops_field, i);
      c.loc.line = where.line + 1;
      c.loc.col = where.column + 1;
    }
    s.ops.push_back(std::move(c));
  }
  return s;
}

proto::Strategy to_proto(const Strategy& s) {
  proto::Strategy msg;
  for (const OpConfig& c : s.ops) {
    proto::Op* op = msg.add_ops();
    op->set_name(c.op);
    op->set_device_type(c.cpu ? proto::Op::CPU : proto::Op::GPU);
    for (auto it = c.degrees.rbegin(); it != c.degrees.rend(); ++it) op->add_dims(static_cast<int32_t>(*it));
    for (int d : c.devices) op->add_device_ids(d);
    for (int m : c.memory_types) op->add_memory_types(static_cast<proto::Op::MemoryType>(m));
  }
  return msg;
}

class CollectErrors : public pb::io::ErrorCollector {
 public:
  explicit CollectErrors(const std::string& file) : file_(file) {}
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (!first_) first_ = UserError({file_, line + 1, column + 1}, message);
  }
  void AddWarning(int, pb::io::ColumnNumber, const std::string&) override {}
  const std::optional<UserError>& first() const { return first_; }

 private:
  std::string file_;
  std::optional<UserError> first_;
};

}  // namespace

Strategy parse_strategy_binary(const std::string& bytes, const std::string& file) {
  proto::Strategy msg;
  if (!msg.ParseFromString(bytes))
    throw UserError({file, 0, 0}, "not a valid binary strategy file (a Strategy protobuf message)");
  return from_proto(msg, file, nullptr);
}

Strategy parse_strategy_text(const std::string& text, const std::string& file) {
  proto::Strategy msg;
  pb::TextFormat::Parser parser;
  CollectErrors errors(file);
  pb::TextFormat::ParseInfoTree tree;
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(&tree);
  if (!parser.ParseFromString(text, &msg)) {
    if (errors.first()) throw *errors.first();
    throw UserError({file, 0, 0}, "not a valid text strategy file");
  }
  return from_proto(msg, file, &tree);
}

Strategy read_strategy_file(const std::string& path) {
  std::string bytes = read_input_file(path);
  if (ends_with(path, ".pb")) return parse_strategy_binary(bytes, path);
  if (ends_with(path, ".pbtxt") || ends_with(path, ".txt")) return parse_strategy_text(bytes, path);
  try {
    return parse_strategy_binary(bytes, path);
  } catch (const UserError&) {
    return parse_strategy_text(bytes, path);
  }
}

std::string strategy_to_binary(const Strategy& s) {
  std::string out;
  FFC_CHECK(to_proto(s).SerializeToString(&out));
  return out;
}

std::string config_str(const OpConfig& c) {
  std::vector<std::string> names = parallel_dim_names(static_cast<int>(c.degrees.size()));
  std::vector<std::string> parts;
  for (size_t i = 0; i < c.degrees.size(); ++i) parts.push_back(fmt::format("{}={}", names[i], c.degrees[i]));
  return parts.empty() ? "-" : fmt::format("{}", fmt::join(parts, " "));
}

std::string strategy_to_text(const Strategy& s, const std::vector<std::string>& header) {
  std::string out;
  for (const std::string& h : header) out += h.empty() ? "#\n" : "# " + h + "\n";
  if (!header.empty()) out += "\n";
  for (const OpConfig& c : s.ops) {
    std::string name = c.op;
    std::string quoted;
    for (char ch : name) {
      if (ch == '"' || ch == '\\') quoted += '\\';
      quoted += ch;
    }
    std::vector<int64_t> dims(c.degrees.rbegin(), c.degrees.rend());
    out += fmt::format("# {}: {} on {}\n", c.op, config_str(c), fmt::join(c.devices, " "));
    out += fmt::format("ops {{ name: \"{}\" device_type: {} dims: [{}] device_ids: [{}]", quoted,
                       c.cpu ? "CPU" : "GPU", fmt::join(dims, ", "), fmt::join(c.devices, ", "));
    if (!c.memory_types.empty()) {
      std::vector<std::string> m;
      for (int t : c.memory_types) m.push_back(t ? "ZCM" : "FBM");
      out += fmt::format(" memory_types: [{}]", fmt::join(m, ", "));
    }
    out += " }\n";
  }
  return out;
}

void write_strategy_file(const Strategy& s, const std::string& path, const std::vector<std::string>& header) {
  std::string data = ends_with(path, ".pb") ? strategy_to_binary(s) : strategy_to_text(s, header);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  if (!out) throw UserError({path, 0, 0}, "cannot write the file");
}

OpConfig data_parallel_config(const Graph& g, const Op& op, int num_devices) {
  OpConfig c;
  c.op = op.name;
  Shape shape = op_parallel_shape(g, op);
  std::vector<bool> split = op_splittable(g, op);
  c.degrees.assign(shape.size(), 1);
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d].batch && split[d]) {
      c.degrees[d] = num_devices;
      break;
    }
  for (int64_t i = 0; i < num_parts(c.degrees); ++i) c.devices.push_back(static_cast<int>(i));
  return c;
}

OpConfig random_config(const Graph& g, const Op& op, int devices, int64_t batch, std::mt19937_64& rng,
                       int64_t max_parts) {
  OpConfig c;
  c.op = op.name;
  std::vector<int64_t> extents = bind_shape(op_parallel_shape(g, op), batch);
  std::vector<bool> split = op_splittable(g, op);
  c.degrees.assign(extents.size(), 1);
  int64_t parts = 1;
  for (size_t d = 0; d < extents.size(); ++d) {
    if (!split[d]) continue;
    int64_t most = std::min<int64_t>({4, extents[d], max_parts / parts});
    if (most <= 1) continue;
    // Half the time leave the dim whole, so that many ops keep a simple layout.
    if (std::uniform_int_distribution<int>(0, 1)(rng) == 0) continue;
    c.degrees[d] = std::uniform_int_distribution<int64_t>(2, most)(rng);
    parts *= c.degrees[d];
  }
  std::uniform_int_distribution<int> device(0, devices - 1);
  for (int64_t i = 0; i < parts; ++i) c.devices.push_back(device(rng));
  return c;
}

Strategy random_strategy(const Graph& g, int devices, int64_t batch, uint64_t seed, int64_t max_parts) {
  std::mt19937_64 rng(seed);
  Strategy s;
  for (const Op& op : g.ops) s.ops.push_back(random_config(g, op, devices, batch, rng, max_parts));
  return s;
}

ResolvedStrategy resolve_strategy(const Graph& g, const Strategy& s, int num_devices, std::optional<int64_t> batch) {
  FFC_CHECK(num_devices >= 1);
  ResolvedStrategy r;
  r.num_devices = num_devices;
  r.configs.resize(g.ops.size());
  r.from_file.assign(g.ops.size(), false);
  std::vector<std::pair<SourceLoc, std::string>> problems;
  auto problem = [&](const SourceLoc& loc, std::string msg) { problems.push_back({loc, std::move(msg)}); };

  for (const OpConfig& c : s.ops) {
    int index = g.find_op(c.op);
    if (index < 0) {
      problem(c.loc, fmt::format("unknown op '{}': the model '{}' has no op of that name", c.op, g.name));
      continue;
    }
    const Op& op = g.ops[index];
    std::string who = op.describe();
    if (r.from_file[index]) {
      problem(c.loc, fmt::format("{} is configured twice", who));
      continue;
    }
    r.from_file[index] = true;
    r.configs[index] = c;
    Shape shape = op_parallel_shape(g, op);
    std::vector<bool> split = op_splittable(g, op);
    std::vector<std::string> names = parallel_dim_names(static_cast<int>(shape.size()));
    if (c.degrees.size() != shape.size()) {
      problem(c.loc, fmt::format("{}: {} dims given, but its output {} has {}{}", who, c.degrees.size(),
                                 shape_str(shape), shape.size(),
                                 shape.empty() ? "" : fmt::format(" ({})", fmt::join(names, " "))));
      continue;
    }
    bool degrees_ok = true;
    for (size_t d = 0; d < shape.size(); ++d) {
      int64_t k = c.degrees[d];
      std::optional<int64_t> extent = shape[d].batch ? batch : std::optional<int64_t>(shape[d].value);
      if (k < 1) {
        problem(c.loc, fmt::format("{}: degree {} of dim {} is below 1", who, k, names[d]));
        degrees_ok = false;
      } else if (extent && k > *extent) {
        problem(c.loc, fmt::format("{}: degree {} of dim {} exceeds its extent {}{}", who, k, names[d], *extent,
                                   shape[d].batch ? " (the batch)" : ""));
        degrees_ok = false;
      } else if (k > 1 && !split[d]) {
        std::vector<std::string> can;
        for (size_t e = 0; e < split.size(); ++e)
          if (split[e]) can.push_back(names[e]);
        problem(c.loc, fmt::format("{}: cannot split dim {}; it may split {}", who, names[d],
                                   can.empty() ? std::string("no dim") : fmt::format("{}", fmt::join(can, " "))));
        degrees_ok = false;
      }
    }
    if (!degrees_ok) continue;
    int64_t parts = num_parts(c.degrees);
    if (static_cast<int64_t>(c.devices.size()) != parts)
      problem(c.loc, fmt::format("{}: {} device{} listed for {} part{} ({})", who, c.devices.size(),
                                 c.devices.size() == 1 ? "" : "s", parts, parts == 1 ? "" : "s", config_str(c)));
    for (int dev : c.devices)
      if (dev < 0 || dev >= num_devices) {
        problem(c.loc, fmt::format("{}: device {} is out of range for {} device{} (0..{})", who, dev, num_devices,
                                   num_devices == 1 ? "" : "s", num_devices - 1));
        break;
      }
  }
  for (size_t i = 0; i < g.ops.size(); ++i) {
    if (r.from_file[i]) continue;
    r.configs[i] = data_parallel_config(g, g.ops[i], num_devices);
    // A batch smaller than the device count cannot give every device a sample.
    if (batch) {
      Shape shape = op_parallel_shape(g, g.ops[i]);
      for (size_t d = 0; d < shape.size(); ++d)
        if (shape[d].batch && r.configs[i].degrees[d] > *batch)
          problem(g.ops[i].loc, fmt::format("{}: data parallel over {} devices needs a batch of at least {}, got {}",
                                            g.ops[i].describe(), num_devices, num_devices, *batch));
    }
  }
  if (!problems.empty()) {
    std::string msg = problems[0].second;
    for (size_t i = 1; i < problems.size(); ++i)
      msg += std::string("\n") + UserError(problems[i].first, problems[i].second).what();
    throw UserError(problems[0].first, msg);
  }
  return r;
}

Strategy to_strategy(const Graph&, const ResolvedStrategy& r) { return Strategy{r.configs}; }

std::string strategy_table(const Graph& g, const ResolvedStrategy& r) {
  std::vector<std::array<std::string, 4>> rows{{"Operator", "Type", "Configuration", "Devices"}};
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const OpConfig& c = r.configs[i];
    rows.push_back({g.ops[i].name, std::string(g.ops[i].info().name), config_str(c), fmt::format("{}", fmt::join(c.devices, " "))});
  }
  std::array<size_t, 4> width{};
  for (const auto& row : rows)
    for (size_t k = 0; k < 4; ++k) width[k] = std::max(width[k], row[k].size());
  std::string out;
  for (size_t i = 0; i < rows.size(); ++i) {
    out += "|";
    for (size_t k = 0; k < 4; ++k) out += fmt::format(" {:<{}} |", rows[i][k], width[k]);
    out += "\n";
    if (i == 0) {
      out += "|";
      for (size_t k = 0; k < 4; ++k) out += fmt::format("{:-<{}}|", "", width[k] + 2);
      out += "\n";
    }
  }
  return out;
}

/// A Graphviz string literal's contents: quotes and backslashes escaped.
std::string dot_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string strategy_dot(const Graph& g, const ResolvedStrategy& r) {
  // Fill colours by how an op is split: data parallel over every device (the default), on other
  // dims too (model or spatial parallel), whole on one device, or written otherwise.
  std::string out = fmt::format("digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", "
                                "fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=8];\n"
                                "  label=\"{} on {} device{}: white data parallel, blue split on other dims, "
                                "orange whole on one device, grey other\";\n",
                                dot_escape(g.name), dot_escape(g.name), r.num_devices, r.num_devices == 1 ? "" : "s");
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const Op& op = g.ops[i];
    const OpConfig& c = r.configs[i];
    const OpConfig dp = data_parallel_config(g, op, r.num_devices);
    int64_t parts = 1;
    bool other_dims = false;
    for (size_t d = 0; d < c.degrees.size(); ++d) {
      parts *= c.degrees[d];
      if (d > 0 && c.degrees[d] > 1) other_dims = true;
    }
    const char* fill = c.degrees == dp.degrees && c.devices == dp.devices ? "white"
                       : other_dims                                       ? "lightblue"
                       : parts == 1                                       ? "orange"
                                                                          : "lightgrey";
    out += fmt::format("  op{} [label=\"{}\\n{}\\n{}\\non {}\", fillcolor={}];\n", i, dot_escape(op.name),
                       op.info().name, config_str(c), fmt::join(c.devices, " "), fill);
  }
  for (size_t i = 0; i < g.ops.size(); ++i)
    for (TensorId t : g.ops[i].inputs) {
      const Tensor& tensor = g.tensors[t];
      if (tensor.producer < 0) continue;
      out += fmt::format("  op{} -> op{} [label=\"{}\"];\n", tensor.producer, i, dot_escape(tensor.type.str()));
    }
  return out + "}\n";
}

}  // namespace ffc
