// The .ff model format parser.
//
// The format is line-oriented: a statement per line, `#` starts a comment. Comment and blank lines
// are kept with the statement that follows them so that a file prints back unchanged.
#include "frontend/ff_parser.h"

#include <charconv>
#include <cmath>

#include "frontend/read_file.h"
#include "ir/op_table.h"
#include "ir/printer.h"
#include "passes/infer_shapes.h"

namespace ffc {

namespace {

enum class Tok { ident, string, integer, number, punct, end };

struct Token {
  Tok kind = Tok::end;
  std::string text;  ///< identifier, unquoted string, number text or the punctuation char
  int col = 0;
};

class LineParser {
 public:
  LineParser(std::string_view line, const std::string& file, int line_no)
      : line_(line), file_(file), line_no_(line_no) {
    lex();
  }

  const std::string& trailing() const { return trailing_; }
  const Token& peek(size_t ahead = 0) const { return toks_[std::min(pos_ + ahead, toks_.size() - 1)]; }
  Token next() { return toks_[std::min(pos_++, toks_.size() - 1)]; }
  bool at(std::string_view punct) const { return peek().kind == Tok::punct && peek().text == punct; }
  bool at_end() const { return peek().kind == Tok::end; }

  SourceLoc loc(const Token& t) const { return SourceLoc{file_, line_no_, t.col}; }
  SourceLoc loc() const { return loc(peek()); }

  template <typename... Args>
  [[noreturn]] void error(const Token& t, fmt::format_string<Args...> f, Args&&... args) const {
    throw UserError(loc(t), fmt::format(f, std::forward<Args>(args)...));
  }

  void expect(std::string_view punct, std::string_view context) {
    if (!at(punct)) error(peek(), "expected '{}' {}, found {}", punct, context, describe(peek()));
    next();
  }

  /// A name: a plain identifier or a quoted string.
  std::pair<std::string, Token> name(std::string_view what) {
    Token t = next();
    if (t.kind != Tok::ident && t.kind != Tok::string) error(t, "expected {}, found {}", what, describe(t));
    return {t.text, t};
  }

  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Tok::end: return "the end of the line";
      case Tok::string: return fmt::format("\"{}\"", t.text);
      default: return fmt::format("'{}'", t.text);
    }
  }

 private:
  void lex() {
    size_t i = 0, n = line_.size();
    while (i < n) {
      char c = line_[i];
      int col = static_cast<int>(i) + 1;
      if (c == ' ' || c == '\t' || c == '\r') {
        ++i;
      } else if (c == '#') {
        trailing_ = std::string(line_.substr(i + 1));
        while (!trailing_.empty() && (trailing_.back() == ' ' || trailing_.back() == '\t' || trailing_.back() == '\r'))
          trailing_.pop_back();
        break;
      } else if (c == '"') {
        std::string s;
        ++i;
        bool closed = false;
        while (i < n) {
          if (line_[i] == '\\' && i + 1 < n) {
            s += line_[i + 1];
            i += 2;
          } else if (line_[i] == '"') {
            closed = true;
            ++i;
            break;
          } else {
            s += line_[i++];
          }
        }
        if (!closed) throw UserError({file_, line_no_, col}, "unterminated string");
        toks_.push_back({Tok::string, s, col});
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t j = i + 1;
        while (j < n && (std::isalnum(static_cast<unsigned char>(line_[j])) || line_[j] == '_' || line_[j] == '.' ||
                         line_[j] == '-' || line_[j] == '/'))
          ++j;
        toks_.push_back({Tok::ident, std::string(line_.substr(i, j - i)), col});
        i = j;
      } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.') {
        size_t j = i + 1;
        bool is_float = c == '.';
        while (j < n) {
          char d = line_[j];
          if (std::isdigit(static_cast<unsigned char>(d))) {
            ++j;
          } else if (d == '.' || d == 'e' || d == 'E') {
            is_float = true;
            ++j;
            if ((d == 'e' || d == 'E') && j < n && (line_[j] == '-' || line_[j] == '+')) ++j;
          } else {
            break;
          }
        }
        std::string text(line_.substr(i, j - i));
        if (text == "-" || text == "+" || text == ".") throw UserError({file_, line_no_, col}, fmt::format("stray '{}'", text));
        toks_.push_back({is_float ? Tok::number : Tok::integer, text, col});
        i = j;
      } else if (std::string_view("=(),:[]").find(c) != std::string_view::npos) {
        toks_.push_back({Tok::punct, std::string(1, c), col});
        ++i;
      } else {
        throw UserError({file_, line_no_, col},
                        fmt::format("unexpected character '{}'", std::isprint(static_cast<unsigned char>(c))
                                                                     ? std::string(1, c)
                                                                     : fmt::format("\\x{:02x}", static_cast<unsigned char>(c))));
      }
    }
    toks_.push_back({Tok::end, "", static_cast<int>(n) + 1});
  }

  std::string_view line_;
  const std::string& file_;
  int line_no_;
  std::vector<Token> toks_;
  size_t pos_ = 0;
  std::string trailing_;
};

int64_t parse_int(LineParser& p, const Token& t) {
  int64_t v = 0;
  const char* b = t.text.data();
  const char* e = b + t.text.size();
  if (*b == '+') ++b;
  auto [ptr, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || ptr != e) p.error(t, "'{}' is not an integer in range", t.text);
  return v;
}

double parse_float(LineParser& p, const Token& t) {
  std::string s = t.text;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) p.error(t, "'{}' is not a finite number", t.text);
  return v;
}

/// `[` dims `]` where a dim is an integer or N; the `[` is already consumed.
Shape parse_dim_list(LineParser& p, bool allow_n) {
  Shape s;
  if (p.at("]")) {
    p.next();
    return s;
  }
  while (true) {
    Token t = p.next();
    if (t.kind == Tok::ident && t.text == "N" && allow_n) s.push_back(Dim::n());
    else if (t.kind == Tok::integer) s.push_back(Dim::fixed(parse_int(p, t)));
    else p.error(t, "expected {}, found {}", allow_n ? "an integer or N" : "an integer", LineParser::describe(t));
    if (p.at("]")) {
      p.next();
      return s;
    }
    p.expect(",", "between list entries");
  }
}

TensorType parse_type(LineParser& p) {
  Token t = p.next();
  if (t.kind != Tok::ident) p.error(t, "expected a tensor type such as f32[N,10], found {}", LineParser::describe(t));
  auto dt = parse_dtype(t.text);
  if (!dt) p.error(t, "unknown element type '{}' (expected f32, bf16, f16 or i64)", t.text);
  p.expect("[", "after the element type");
  Shape s = parse_dim_list(p, true);
  for (const Dim& d : s)
    if (!d.batch && d.value < 0) p.error(t, "a tensor type cannot have a negative extent");
  return TensorType{*dt, s};
}

AttrValue parse_attr_value(LineParser& p, const Op& op, const AttrSpec& spec) {
  Token t = p.peek();
  struct Wrong {
    LineParser& p;
    const Op& op;
    const AttrSpec& spec;
    const Token& t;
    [[noreturn]] void operator()(std::string_view want) const {
      p.error(t, "{}: attribute '{}' takes {}, found {}", op.describe(), spec.name, want, LineParser::describe(t));
    }
  } wrong{p, op, spec, t};
  switch (spec.kind) {
    case AttrKind::Int:
      if (t.kind != Tok::integer) wrong("an integer");
      return parse_int(p, p.next());
    case AttrKind::Float:
      if (t.kind != Tok::integer && t.kind != Tok::number) wrong("a number");
      return parse_float(p, p.next());
    case AttrKind::Bool:
      if (t.kind != Tok::ident || (t.text != "true" && t.text != "false")) wrong("true or false");
      p.next();
      return t.text == "true";
    case AttrKind::Enum: {
      if (t.kind != Tok::ident) wrong(fmt::format("one of {}", fmt::join(spec.enum_values, ", ")));
      for (std::string_view e : spec.enum_values)
        if (e == t.text) {
          p.next();
          return std::string(t.text);
        }
      wrong(fmt::format("one of {}", fmt::join(spec.enum_values, ", ")));
    }
    case AttrKind::String:
      if (t.kind != Tok::string) wrong("a quoted string");
      return p.next().text;
    case AttrKind::Ints: {
      std::vector<int64_t> v;
      if (t.kind == Tok::integer && spec.length > 0) {
        v.assign(spec.length, parse_int(p, p.next()));  // one number stands for every entry
        return v;
      }
      if (!p.at("[")) wrong(spec.length ? fmt::format("an integer or a list of {}", spec.length) : "a list of integers");
      p.next();
      for (const Dim& d : parse_dim_list(p, false)) v.push_back(d.value);
      if (spec.length && static_cast<int>(v.size()) != spec.length)
        p.error(t, "{}: attribute '{}' takes {} integers, found {}", op.describe(), spec.name, spec.length, v.size());
      return v;
    }
    case AttrKind::Dims:
      if (!p.at("[")) wrong("a list of extents (integers, -1 or N)");
      p.next();
      return parse_dim_list(p, true);
  }
  wrong("a value");
}

class Parser {
 public:
  Parser(std::string_view text, const std::string& file) : text_(text), file_(file) {}

  Graph run() {
    size_t start = 0;
    int line_no = 0;
    bool seen_model = false;
    while (start < text_.size()) {
      size_t end = text_.find('\n', start);
      if (end == std::string_view::npos) end = text_.size();
      std::string_view line = text_.substr(start, end - start);
      start = end + 1;
      ++line_no;
      if (line.find('\0') != std::string_view::npos)
        throw UserError({file_, line_no, static_cast<int>(line.find('\0')) + 1}, "unexpected NUL byte");
      std::string_view trimmed = trim(line);
      if (trimmed.empty() || trimmed[0] == '#') {
        pending_.push_back(std::string(trimmed));
        continue;
      }
      LineParser p(line, file_, line_no);
      if (!seen_model) {
        Token kw = p.next();
        if (kw.kind != Tok::ident || kw.text != "model")
          p.error(kw, "a model file starts with `model NAME`, found {}", LineParser::describe(kw));
        graph_.name = p.name("the model's name").first;
        if (!p.at_end()) p.error(p.peek(), "unexpected {} after the model's name", LineParser::describe(p.peek()));
        graph_.model_trailing = p.trailing();
        graph_.header = std::move(pending_);
        pending_.clear();
        seen_model = true;
        continue;
      }
      parse_op(p);
    }
    if (!seen_model) throw UserError({file_, line_no ? line_no : 1, 1}, "no `model NAME` line: is this a .ff model file?");
    graph_.trailer = std::move(pending_);
    return std::move(graph_);
  }

 private:
  static std::string_view trim(std::string_view s) {
    size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
    return b == std::string_view::npos ? std::string_view() : s.substr(b, e - b + 1);
  }

  void parse_op(LineParser& p) {
    auto [name, name_tok] = p.name("an op name");
    if (name == "model" && name_tok.kind == Tok::ident) p.error(name_tok, "`model` may appear only once");
    if (int prev = graph_.find_op(name); prev >= 0)
      p.error(name_tok, "op '{}' is already defined (line {})", name, graph_.ops[prev].loc.line);
    if (graph_.find_tensor(name) >= 0) p.error(name_tok, "'{}' already names an output of another op", name);
    p.expect("=", "after the op name");
    Token kind_tok = p.next();
    OpKind kind;
    if (kind_tok.kind != Tok::ident || !parse_op_kind(kind_tok.text, &kind)) {
      std::vector<std::string_view> names;
      for (OpKind k : all_op_kinds()) names.push_back(op_info(k).name);
      p.error(kind_tok, "unknown op kind {}; the kinds are: {}", LineParser::describe(kind_tok), fmt::join(names, ", "));
    }
    const OpInfo& info = op_info(kind);
    p.expect("(", "after the op kind");

    // Operands, then attributes.
    std::vector<TensorId> inputs;
    std::vector<std::optional<AttrValue>> attrs(info.attrs.size());
    Op probe;  // for messages while the op is not yet in the graph
    probe.name = name;
    probe.kind = kind;
    probe.loc = p.loc(name_tok);
    bool in_attrs = false;
    while (!p.at(")")) {
      Token t = p.peek();
      if ((t.kind == Tok::ident) && p.peek(1).kind == Tok::punct && p.peek(1).text == "=") {
        in_attrs = true;
        p.next();
        p.next();
        int index = -1;
        for (size_t a = 0; a < info.attrs.size(); ++a)
          if (info.attrs[a].name == t.text) index = static_cast<int>(a);
        if (index < 0) {
          std::vector<std::string_view> names;
          for (const AttrSpec& s : info.attrs) names.push_back(s.name);
          p.error(t, "{} has no attribute '{}'{}", probe.describe(), t.text,
                  names.empty() ? std::string(" (it takes none)") : fmt::format("; it takes: {}", fmt::join(names, ", ")));
        }
        if (attrs[index]) p.error(t, "attribute '{}' is given twice", t.text);
        attrs[index] = parse_attr_value(p, probe, info.attrs[index]);
      } else if (t.kind == Tok::ident || t.kind == Tok::string) {
        if (in_attrs) p.error(t, "operands must come before attributes");
        std::string ref = p.next().text;
        if (p.at(":")) {
          p.next();
          Token idx = p.next();
          if (idx.kind != Tok::integer) p.error(idx, "expected an output index after ':', found {}", LineParser::describe(idx));
          ref += ":" + idx.text;
        }
        TensorId id = graph_.find_tensor(ref);
        if (id < 0) {
          int op = graph_.find_op(ref);
          if (op >= 0) p.error(t, "op '{}' has {} outputs: name one as '{}:0'", ref, graph_.ops[op].outputs.size(), ref);
          p.error(t, "'{}' is not defined before this line", ref);
        }
        inputs.push_back(id);
      } else {
        p.error(t, "expected an operand or an attribute, found {}", LineParser::describe(t));
      }
      if (p.at(",")) {
        p.next();
        if (p.at(")")) p.error(p.peek(), "expected an operand or an attribute after ','");
      } else if (!p.at(")")) {
        p.error(p.peek(), "expected ',' or ')', found {}", LineParser::describe(p.peek()));
      }
    }
    Token close = p.next();

    int n = static_cast<int>(inputs.size());
    if (n < info.min_inputs || (info.max_inputs >= 0 && n > info.max_inputs)) {
      std::string want = info.min_inputs == info.max_inputs ? std::to_string(info.min_inputs)
                         : info.max_inputs < 0          ? fmt::format("at least {}", info.min_inputs)
                                                        : fmt::format("{} to {}", info.min_inputs, info.max_inputs);
      p.error(close, "{} takes {} operand{}, found {}", probe.describe(), want, want.ends_with(" 1") || want == "1" ? "" : "s", n);
    }
    std::vector<AttrValue> values;
    for (size_t a = 0; a < info.attrs.size(); ++a) {
      if (attrs[a]) values.push_back(*attrs[a]);
      else if (info.attrs[a].default_value) values.push_back(*info.attrs[a].default_value);
      else p.error(close, "{} needs attribute '{}'", probe.describe(), info.attrs[a].name);
    }

    // Optional types, parameter names and comment.
    std::vector<TensorType> declared;
    Token type_tok = p.peek();
    if (p.at(":")) {
      p.next();
      type_tok = p.peek();
      if (p.at("(")) {
        p.next();
        while (true) {
          declared.push_back(parse_type(p));
          if (p.at(")")) break;
          p.expect(",", "between output types");
        }
        p.next();
      } else {
        declared.push_back(parse_type(p));
      }
      probe.attrs = values;
      int num_outputs = op_num_outputs(probe);
      if (static_cast<int>(declared.size()) != num_outputs)
        p.error(type_tok, "{} has {} output{}, {} type{} written", probe.describe(), num_outputs,
                num_outputs == 1 ? "" : "s", declared.size(), declared.size() == 1 ? " is" : "s are");
    }
    std::vector<std::pair<std::string, Token>> param_names;
    if (p.peek().kind == Tok::ident && p.peek().text == "params") {
      p.next();
      p.expect("(", "after params");
      while (!p.at(")")) {
        auto [pname, ptok] = p.name("a parameter name");
        p.expect("=", "after the parameter name");
        param_names.push_back({pname, ptok});
        param_names.back().first += '\n' + p.name("the parameter's external name").first;
        if (!p.at(")")) p.expect(",", "between parameters");
      }
      p.next();
    }
    if (!p.at_end()) p.error(p.peek(), "unexpected {} after the op", LineParser::describe(p.peek()));
    // Outputs of an op with several are named `name:i`; a quoted earlier name may have taken one.
    probe.attrs = values;
    if (int n_out = op_num_outputs(probe); n_out > 1)
      for (int o = 0; o < n_out; ++o)
        if (graph_.find_tensor(fmt::format("{}:{}", name, o)) >= 0)
          p.error(name_tok, "'{}:{}', the name of output {} of this op, already names another op", name, o, o);

    int index = graph_.add_op(name, kind, inputs, std::move(values), p.loc(name_tok));
    Op& op = graph_.ops[index];
    op.leading = std::move(pending_);
    pending_.clear();
    op.trailing = p.trailing();
    if (kind == OpKind::input) {
      if (declared.empty()) p.error(close, "{}: an input needs its type, e.g. `: f32[N,3,224,224]`", op.describe());
      graph_.tensors[op.outputs[0]].type = declared[0];
    }
    infer_op_shapes(graph_, index);
    for (size_t o = 0; o < declared.size(); ++o)
      if (graph_.type(op.outputs[o]) != declared[o])
        p.error(type_tok, "{}: the type written, {}, differs from the type its inputs give, {}", op.describe(),
                declared[o].str(), graph_.type(op.outputs[o]).str());
    if (!param_names.empty()) {
      std::vector<ParamSpec> params = op_params(graph_, op);
      op.param_names.resize(params.size());
      for (auto& [entry, tok] : param_names) {
        std::string pname = entry.substr(0, entry.find('\n')), ext = entry.substr(entry.find('\n') + 1);
        size_t k = 0;
        while (k < params.size() && params[k].name != pname) ++k;
        if (k == params.size()) p.error(tok, "{} has no parameter '{}'", op.describe(), pname);
        if (!op.param_names[k].empty()) p.error(tok, "parameter '{}' is named twice", pname);
        op.param_names[k] = ext;
      }
      for (size_t k = 0; k < params.size(); ++k)
        if (op.param_names[k].empty()) op.param_names[k] = fmt::format("{}.{}", op.name, params[k].name);
    }
  }

  std::string_view text_;
  const std::string& file_;
  Graph graph_;
  std::vector<std::string> pending_;
};

}  // namespace

Graph parse_ff(std::string_view text, const std::string& file) { return Parser(text, file).run(); }

Graph parse_ff_file(const std::string& path) { return parse_ff(read_input_file(path), path); }

}  // namespace ffc
