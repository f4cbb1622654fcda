// Measured kernel costs: keys, the versioned text format, and the model that prefers them.
#include "sim/cost_table.h"

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

#include "ir/diag.h"
#include "ir/op_table.h"

namespace ffc {

namespace {

std::string extents(const Box& b) {
  if (b.rank() == 0) return "scalar";
  std::string s;
  for (int i = 0; i < b.rank(); ++i) s += fmt::format("{}{}", i ? "x" : "", b.r[i].size());
  return s;
}

void operands(std::string& key, std::string_view what, const std::vector<Operand>& v) {
  if (v.empty()) return;
  key += fmt::format(" {}=", what);
  for (size_t i = 0; i < v.size(); ++i) {
    // Appended piecewise: GCC 12's -Wrestrict misfires at -O3 on `const char* + std::string`.
    if (i) key += ',';
    key += v[i].present() ? extents(v[i].box) : "-";
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

/// The next space-separated token of `s`, removed from it.
std::string_view token(std::string_view& s) {
  s = trim(s);
  size_t end = s.find_first_of(" \t");
  std::string_view t = s.substr(0, end);
  s = end == std::string_view::npos ? std::string_view() : s.substr(end);
  return t;
}

}  // namespace

std::string kernel_key(const Graph& g, const RankProgram& r, const Instr& in) {
  const Op& op = g.ops.at(in.op);
  const OpInfo& info = op.info();
  const Operand& typed = !in.out.empty() && in.out[0].present() ? in.out[0] : in.in.at(0);
  std::string key = fmt::format("{} {} {} {{", info.name, instr_kind_name(in.kind),
                                dtype_name(r.buffers.at(typed.buffer).dtype));
  for (size_t i = 0; i < info.attrs.size(); ++i)
    key += fmt::format("{}{}={}", i ? ", " : "", info.attrs[i].name, attr_value_str(op.attrs[i], info.attrs[i].kind));
  key += "}";
  operands(key, "in", in.in);
  operands(key, "out", in.out);
  operands(key, "params", in.params);
  operands(key, "saved", in.saved);
  operands(key, "dout", in.dout);
  operands(key, "din", in.din);
  operands(key, "dparams", in.dparams);
  if (in.stats.present()) key += " stats=" + extents(in.stats.box);
  for (char& c : key)
    if (c == '\n' || c == '\r') c = ' ';  // one entry, one line
  return key;
}

void CostTable::set(const std::string& card, Math math, const std::string& key, double seconds, double launches) {
  entries_[{card, math, key}] = Entry{seconds, launches};
}

const CostTable::Entry* CostTable::find(const std::string& card, Math math, const std::string& key) const {
  auto it = entries_.find({card, math, key});
  return it == entries_.end() ? nullptr : &it->second;
}

void CostTable::merge(const CostTable& other) {
  for (const auto& [k, v] : other.entries_) entries_[k] = v;
}

std::string CostTable::print() const {
  std::string s = fmt::format("ffc-costs {}\n# card math microseconds launches kernel\n", kVersion);
  for (const auto& [k, v] : entries_)
    s += fmt::format("{} {} {:.3f} {:g} {}\n", std::get<0>(k), math_name(std::get<1>(k)), v.seconds * 1e6, v.launches,
                     std::get<2>(k));
  return s;
}

CostTable CostTable::parse(std::string_view text, const std::string& file) {
  CostTable t;
  bool header = false;
  int version = 0;
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = trim(text.substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    const SourceLoc loc{file, line_no};
    if (line.empty() || line.front() == '#') continue;
    if (!header) {
      std::string_view magic = token(line), version_s = trim(line);
      if (magic != "ffc-costs") user_error(loc, "not a cost table: expected `ffc-costs {}` first", kVersion);
      if (version_s != "1" && version_s != "2")
        user_error(loc, "cost table version '{}' is not supported (this ffc reads versions 1 and {})", version_s,
                   kVersion);
      version = version_s == "1" ? 1 : 2;
      header = true;
      continue;
    }
    std::string_view card = token(line), math_s = token(line), us_s = token(line);
    std::string_view launches_s = version >= 2 ? token(line) : std::string_view("1"), key = trim(line);
    if (key.empty())
      user_error(loc, "expected `CARD MATH MICROSECONDS {}KERNEL`", version >= 2 ? "LAUNCHES " : "");
    std::optional<Math> math = parse_math(math_s);
    if (!math) user_error(loc, "math must be fp32 or tf32, got '{}'", math_s);
    // A whole token as a number in [0, max], or an error saying what it should have been.
    auto number = [&](std::string_view text, double max, const char* what) {
      double v = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || end != text.data() + text.size() || !(v >= 0) || v > max)
        user_error(loc, "'{}' is not {}", text, what);
      return v;
    };
    const double us = number(us_s, 1e12, "a time in microseconds");
    const double launches = number(launches_s, 1e6, "a number of launches");
    t.set(std::string(card), *math, std::string(key), us * 1e-6, launches);
  }
  if (!header) user_error(SourceLoc{file}, "empty cost table: expected `ffc-costs {}` first", kVersion);
  return t;
}

CostTable CostTable::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error(SourceLoc{path}, "cannot read the cost table");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

double MeasuredCostModel::kernel(const Graph& g, const RankProgram& r, const Instr& in) const {
  if (const CostTable::Entry* e = table_.find(fallback_.machine().card, fallback_.math(), kernel_key(g, r, in)))
    return e->seconds;
  const double t = fallback_.kernel(g, r, in);
  auto it = scale_.find({g.ops.at(in.op).name, static_cast<int>(in.kind)});
  return it == scale_.end() ? t : t * it->second;
}

void MeasuredCostModel::calibrate(const Graph& g, const Program& p) {
  scale_.clear();
  std::map<std::pair<std::string, int>, std::pair<double, double>> sums;
  for (const RankProgram& r : p.ranks)
    for (const Instr& in : r.step)
      if (is_kernel(in.kind))
        if (const CostTable::Entry* e = table_.find(fallback_.machine().card, fallback_.math(), kernel_key(g, r, in))) {
          auto& s = sums[{g.ops.at(in.op).name, static_cast<int>(in.kind)}];
          s.first += e->seconds;
          s.second += fallback_.kernel(g, r, in);
        }
  for (const auto& [k, s] : sums)
    if (s.second > 0) scale_[k] = s.first / s.second;
}

double MeasuredCostModel::launches(const Graph& g, const RankProgram& r, const Instr& in) const {
  if (is_kernel(in.kind))
    if (const CostTable::Entry* e = table_.find(fallback_.machine().card, fallback_.math(), kernel_key(g, r, in)))
      return e->launches;
  return fallback_.launches(g, r, in);
}

bool MeasuredCostModel::measured(const Graph& g, const RankProgram& r, const Instr& in) const {
  return table_.find(fallback_.machine().card, fallback_.math(), kernel_key(g, r, in)) != nullptr;
}

MeasuredCostModel::Coverage MeasuredCostModel::coverage(const Graph& g, const Program& p) const {
  Coverage c;
  for (const RankProgram& r : p.ranks)
    for (const Instr& in : r.step)
      if (is_kernel(in.kind)) {
        ++c.kernels;
        c.measured += measured(g, r, in);
      }
  return c;
}

}  // namespace ffc
