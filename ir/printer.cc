// The textual form of the Graph IR.
#include "ir/printer.h"

#include <fmt/format.h>

#include "ir/op_table.h"

namespace ffc {

bool is_plain_name(std::string_view n) {
  if (n.empty()) return false;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!alpha(n[0])) return false;
  for (char c : n)
    if (!alpha(c) && !(c >= '0' && c <= '9') && c != '.' && c != '-' && c != '/') return false;
  // Words with a meaning of their own must be quoted when used as names.
  return n != "N" && n != "true" && n != "false" && n != "model" && n != "params";
}

std::string print_name(std::string_view n) {
  if (is_plain_name(n)) return std::string(n);
  std::string out = "\"";
  for (char c : n) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

namespace {

std::string tensor_ref(const Graph& g, TensorId t) {
  const Tensor& tensor = g.tensors[t];
  const Op& producer = g.ops[tensor.producer];
  std::string s = print_name(producer.name);
  if (producer.outputs.size() > 1) s += fmt::format(":{}", tensor.index);
  return s;
}

void print_lines(std::string& out, const std::vector<std::string>& lines) {
  for (const std::string& l : lines) {
    out += l;
    out += '\n';
  }
}

}  // namespace

std::string print_graph(const Graph& g) {
  std::string out;
  print_lines(out, g.header);
  out += fmt::format("model {}", print_name(g.name));
  if (!g.model_trailing.empty()) out += "  #" + g.model_trailing;
  out += '\n';
  for (const Op& op : g.ops) {
    print_lines(out, op.leading);
    const OpInfo& info = op.info();
    std::vector<std::string> args;
    for (TensorId t : op.inputs) args.push_back(tensor_ref(g, t));
    for (size_t a = 0; a < info.attrs.size(); ++a) {
      const AttrSpec& spec = info.attrs[a];
      if (spec.default_value && *spec.default_value == op.attrs[a]) continue;
      args.push_back(fmt::format("{}={}", spec.name, attr_value_str(op.attrs[a], spec.kind)));
    }
    out += fmt::format("{} = {}({})", print_name(op.name), info.name, fmt::join(args, ", "));
    std::vector<std::string> types;
    for (TensorId t : op.outputs) types.push_back(g.type(t).str());
    if (types.size() == 1) out += " : " + types[0];
    else out += fmt::format(" : ({})", fmt::join(types, ", "));
    if (!op.param_names.empty()) {
      std::vector<ParamSpec> params = op_params(g, op);
      std::vector<std::string> named;
      for (size_t p = 0; p < params.size() && p < op.param_names.size(); ++p)
        named.push_back(fmt::format("{}={}", params[p].name, print_name(op.param_names[p])));
      out += fmt::format(" params({})", fmt::join(named, ", "));
    }
    if (!op.trailing.empty()) out += "  #" + op.trailing;
    out += '\n';
  }
  print_lines(out, g.trailer);
  return out;
}

}  // namespace ffc
