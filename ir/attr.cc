// Op attributes: printing in .ff syntax.
#include "ir/attr.h"

#include <fmt/format.h>

#include <cmath>

namespace ffc {

namespace {

std::string float_str(double v) {
  // The shortest text that reads back as the same double; always with a '.', an exponent or a
  // special name so that the parser sees a float and not an integer.
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEni") == std::string::npos) s += ".0";
  return s;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string attr_value_str(const AttrValue& v, AttrKind kind) {
  switch (kind) {
    case AttrKind::Int: return std::to_string(std::get<int64_t>(v));
    case AttrKind::Float: return float_str(std::get<double>(v));
    case AttrKind::Bool: return std::get<bool>(v) ? "true" : "false";
    case AttrKind::Enum: return std::get<std::string>(v);
    case AttrKind::String: return quote(std::get<std::string>(v));
    case AttrKind::Ints: return fmt::format("[{}]", fmt::join(std::get<std::vector<int64_t>>(v), ","));
    case AttrKind::Dims: return shape_str(std::get<Shape>(v));
  }
  return "?";
}

}  // namespace ffc
