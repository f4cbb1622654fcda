// A deterministic mutation fuzzer for the readers of user input: the .ff parser, the strategy
// reader (text and binary), and the simulator's cost tables (`--costs`) and machine files
// (`--machine`).
//
// Seeds are the example models and strategies and the lit tests' inputs (good and bad ones). Each
// is mutated thousands of times — byte flips, inserted tokens that matter to the grammars (`[`, `N`,
// `-1`, quotes, huge numbers, op and attribute names), deleted spans, duplicated, swapped or dropped
// lines, truncation — with a fixed seed, so a failure reproduces. Every mutant must be accepted or
// rejected with a UserError: never another exception, a crash or a hang. What is accepted must also
// hold up downstream: it prints and parses back to the same text, passes the verifier, resolves a
// data-parallel strategy, and every op's box rules give boxes inside their tensors.
//
// FFC_FUZZ_ITERATIONS scales the number of mutants per seed (default 1; e.g. 20 for a longer run).
// On a crash the input being tried is written to ffc_fuzz_crash.txt in the working directory.
#include <fcntl.h>
#include <fmt/format.h>
#include <google/protobuf/stubs/logging.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <typeinfo>

#include "frontend/ff_parser.h"
#include "frontend/strategy.h"
#include "ir/op_table.h"
#include "ir/printer.h"
#include "passes/parallel.h"
#include "passes/pipeline.h"
#include "sim/cost_table.h"
#include "sim/machine.h"
#include "sim/simulate.h"

namespace ffc {
namespace {

namespace fs = std::filesystem;

// ---- crash reporting -----------------------------------------------------------------------------

/// The input under test, for the crash handler.
std::string g_current;

extern "C" void dump_current_input(int sig) {
  int fd = ::open("ffc_fuzz_crash.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    ssize_t ignored = ::write(fd, g_current.data(), g_current.size());
    (void)ignored;
    ::close(fd);
  }
  const char msg[] = "\nffc fuzz: crashed on the input written to ffc_fuzz_crash.txt\n";
  ssize_t ignored = ::write(2, msg, sizeof msg - 1);
  (void)ignored;
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void install_crash_handler() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  // protobuf logs every string field that is not UTF-8; mutants have thousands of them.
  google::protobuf::SetLogHandler(nullptr);
  std::signal(SIGABRT, dump_current_input);
  std::signal(SIGSEGV, dump_current_input);
  std::signal(SIGFPE, dump_current_input);
}

// ---- seeds ---------------------------------------------------------------------------------------

struct Seed {
  std::string path;
  std::string text;
};

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The files under `dir` (recursively when asked) whose names end in `ext`, sorted by path.
std::vector<Seed> files(const fs::path& dir, std::string_view ext, bool recursive) {
  std::vector<Seed> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  auto take = [&](const fs::directory_entry& e) {
    if (e.is_regular_file() && e.path().string().ends_with(ext)) out.push_back({e.path().string(), read_all(e.path())});
  };
  if (recursive) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) take(e);
  } else {
    for (const auto& e : fs::directory_iterator(dir)) take(e);
  }
  std::sort(out.begin(), out.end(), [](const Seed& a, const Seed& b) { return a.path < b.path; });
  return out;
}

const fs::path kSource = FFC_SOURCE_DIR;

int scale() {
  const char* s = std::getenv("FFC_FUZZ_ITERATIONS");
  int n = s ? std::atoi(s) : 1;
  return n < 1 ? 1 : n;
}

// ---- mutations -----------------------------------------------------------------------------------

/// Tokens that mean something to the .ff grammar, or are numbers at the edges of what it reads.
std::vector<std::string> ff_tokens() {
  std::vector<std::string> t{"[", "]", "(", ")", ",", "=", ":", "N", "-1", "0", "1", "2", "\"", "#", "\n", " ", "\t",
                             "\r", "\\", "-", "+", ".", "1.", ".5", "1e", "1e-", "-0.0", "1e308", "1e999", "1e-400",
                             "nan", "inf", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
                             "4611686018427387904", "3037000500", "2147483648", "99999999999999999999", "model ",
                             "model m\n", "params(", "params(weight=w)", "input()", ": f32[N,3]", ": f32[]", ": (f32[N], f32[N])",
                             "f32", "i64", "bf16", "f16", "true", "false", "x:0", "s:1", ":0", ":1", "[N,-1]", "[]",
                             std::string(1, '\0'), "\xff", "\xc3\xa9", "\"a b\"", "\"s:1\" = ", "\"x:0\"",
                             "s = split(x, sizes=[1,1])\n"};
  for (OpKind k : all_op_kinds()) {
    t.push_back(std::string(op_info(k).name));
    t.push_back(std::string(op_info(k).name) + "(");
    for (const AttrSpec& a : op_info(k).attrs) t.push_back(std::string(a.name) + "=");
  }
  return t;
}

/// Tokens of the protobuf text format and the strategy schema.
std::vector<std::string> strategy_tokens() {
  return {"ops {", "ops { name: \"conv1\" dims: [1, 1, 2, 2] device_ids: [0, 1, 2, 3] }", "}", "{", "name:", "dims:",
          "device_ids:", "device_type:", "memory_types:", "GPU", "CPU", "TPU", "FBM", "ZCM", "[", "]", ",", ":", "\"",
          "\\", "#", "\n", " ", "0", "1", "-1", "2147483647", "-2147483648", "2147483648", "4294967296",
          "99999999999999999999", "0x10", "1.5", "\"conv1\"", "\"linear1\"", "\"nope\"", "nested { }", "<", ">",
          std::string(1, '\0'), "\xff"};
}

class Mutator {
 public:
  Mutator(uint64_t seed, std::vector<std::string> tokens) : rng_(seed), tokens_(std::move(tokens)) {}

  /// One to four random edits of `s`.
  std::string mutate(std::string s) {
    int edits = 1 + pick(4);
    for (int i = 0; i < edits; ++i) edit(s);
    return s;
  }

  size_t pick(size_t n) { return n ? rng_() % n : 0; }

 private:
  void edit(std::string& s) {
    size_t at = pick(s.size() + 1);
    switch (pick(12)) {
      case 0:  // overwrite a byte
        if (!s.empty()) s[pick(s.size())] = static_cast<char>(pick(256));
        break;
      case 1:  // flip a bit
        if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1 << pick(8));
        break;
      case 2:
      case 3:  // insert a token
        s.insert(at, tokens_[pick(tokens_.size())]);
        break;
      case 4:  // delete a span
        s.erase(std::min(at, s.size()), 1 + pick(16));
        break;
      case 5:  // truncate
        s.resize(std::min(at, s.size()));
        break;
      case 6: {  // duplicate a line
        auto [lo, hi] = line_at(s, pick(s.size() + 1));
        s.insert(pick(2) ? hi : lo, s.substr(lo, hi - lo));
        break;
      }
      case 7: {  // delete a line
        auto [lo, hi] = line_at(s, pick(s.size() + 1));
        s.erase(lo, hi - lo);
        break;
      }
      case 8: {  // swap two lines
        auto [a_lo, a_hi] = line_at(s, pick(s.size() + 1));
        std::string a = s.substr(a_lo, a_hi - a_lo);
        s.erase(a_lo, a_hi - a_lo);
        auto [b_lo, b_hi] = line_at(s, pick(s.size() + 1));
        s.insert(pick(2) ? b_hi : b_lo, a);
        break;
      }
      case 9: {  // replace a number with an interesting one
        std::vector<size_t> starts;
        for (size_t i = 0; i < s.size(); ++i)
          if (std::isdigit(static_cast<unsigned char>(s[i])) && (i == 0 || !std::isalnum(static_cast<unsigned char>(s[i - 1]))))
            starts.push_back(i);
        if (starts.empty()) break;
        size_t b = starts[pick(starts.size())], e = b;
        while (e < s.size() && std::isdigit(static_cast<unsigned char>(s[e]))) ++e;
        static const char* numbers[] = {"0", "1", "2", "3", "7", "64", "1000", "65535", "65536", "2147483647",
                                        "2147483648", "4294967296", "9223372036854775807", "9223372036854775808",
                                        "3037000500", "100000000000", "1e3"};
        s.replace(b, e - b, numbers[pick(std::size(numbers))]);
        break;
      }
      case 10: {  // copy a chunk elsewhere
        if (s.empty()) break;
        size_t b = pick(s.size()), n = 1 + pick(64);
        std::string chunk = s.substr(b, n);
        s.insert(pick(s.size() + 1), chunk);
        break;
      }
      default: {  // replace a word with a token
        std::vector<size_t> starts;
        for (size_t i = 0; i < s.size(); ++i)
          if (std::isalpha(static_cast<unsigned char>(s[i])) && (i == 0 || !std::isalnum(static_cast<unsigned char>(s[i - 1]))))
            starts.push_back(i);
        if (starts.empty()) break;
        size_t b = starts[pick(starts.size())], e = b;
        while (e < s.size() && (std::isalnum(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
        s.replace(b, e - b, tokens_[pick(tokens_.size())]);
        break;
      }
    }
  }

  /// The line holding byte `at`, with its newline: [lo, hi).
  static std::pair<size_t, size_t> line_at(const std::string& s, size_t at) {
    at = std::min(at, s.size());
    size_t lo = s.rfind('\n', at == 0 ? 0 : at - 1);
    lo = (lo == std::string::npos || at == 0) ? 0 : lo + 1;
    size_t hi = s.find('\n', at);
    hi = hi == std::string::npos ? s.size() : hi + 1;
    return {lo, hi};
  }

  std::mt19937_64 rng_;
  std::vector<std::string> tokens_;
};

// ---- checks --------------------------------------------------------------------------------------

/// What an accepted model must also survive: the pipeline, printing and parsing back, a
/// data-parallel strategy, and every op's table queries and box rules.
void check_accepted_model(Graph& g) {
  try {
    run_graph_pipeline(g, PipelineOptions{});
  } catch (const UserError&) {
    return;  // e.g. an op with an empty name, which the verifier rejects
  }
  std::string printed = print_graph(g);
  Graph again;
  try {
    again = parse_ff(printed, "printed.ff");
  } catch (const UserError& e) {
    ADD_FAILURE() << "the printed form of an accepted model does not parse: " << e.what() << "\n" << printed;
    return;
  }
  EXPECT_EQ(print_graph(again), printed) << "printing is not a fixed point";

  const int64_t batch = 8;
  ResolvedStrategy r;
  try {
    r = resolve_strategy(g, Strategy{}, 4, batch);
  } catch (const UserError&) {
    return;
  }
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const Op& op = g.ops[i];
    std::vector<ParamSpec> params = op_params(g, op);
    std::vector<int64_t> extents = bind_shape(op_parallel_shape(g, op), batch);
    ASSERT_EQ(extents.size(), r.configs[i].degrees.size()) << op.name;
    if (!op.info().input_box) continue;
    BoundOp bound = bind_op(g, op, batch);
    for (int64_t p = 0; p < num_parts(r.configs[i].degrees); ++p) {
      Box part = part_box(extents, r.configs[i].degrees, p);
      for (size_t in = 0; in < op.inputs.size(); ++in) {
        Box b = op.info().input_box(bound, static_cast<int>(in), part);
        ASSERT_EQ(b.rank(), static_cast<int>(bound.in[in].size())) << op.name;
        EXPECT_TRUE(Box::whole(bound.in[in]).contains(b)) << op.describe() << " input " << in << ": " << b.str();
      }
      if (op.info().param_box)
        for (size_t k = 0; k < params.size(); ++k) {
          Box b = op.info().param_box(bound, static_cast<int>(k), part);
          EXPECT_TRUE(Box::whole(bind_shape(params[k].shape, batch)).contains(b)) << op.describe() << " param " << k;
        }
    }
  }
}

/// Runs `read` on one candidate input: it must succeed or throw a UserError, within 2 s; any other
/// exception fails the test (a crash or hang is caught by the handler and ctest's timeout).
template <class F>
void accept_or_reject(const std::string& input, F&& read) {
  g_current = input;
  auto start = std::chrono::steady_clock::now();
  try {
    read();
  } catch (const UserError&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a UserError: " << typeid(e).name() << ": " << e.what() << "\ninput:\n" << input;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(s, 2.0) << "took " << s << " s on:\n" << input;
}

/// Parses one candidate model, and checks what it accepts.
void try_model(const std::string& text) {
  accept_or_reject(text, [&] {
    Graph g = parse_ff(text, "fuzz.ff");
    check_accepted_model(g);
  });
}

/// Resolves a parsed strategy against `g` (when there is one) and writes it back in both forms.
void check_accepted_strategy(const Strategy& s, const Graph* g) {
  Strategy bin = parse_strategy_binary(strategy_to_binary(s), "again.pb");
  ASSERT_EQ(bin.ops.size(), s.ops.size());
  for (size_t i = 0; i < s.ops.size(); ++i) {
    EXPECT_EQ(bin.ops[i].degrees, s.ops[i].degrees);
    EXPECT_EQ(bin.ops[i].devices, s.ops[i].devices);
  }
  if (!g) return;
  for (std::optional<int64_t> batch : {std::optional<int64_t>(), std::optional<int64_t>(16)}) {
    try {
      ResolvedStrategy r = resolve_strategy(*g, s, 4, batch);
      EXPECT_FALSE(strategy_table(*g, r).empty());
      Strategy full = to_strategy(*g, r);
      Strategy text = parse_strategy_text(strategy_to_text(full), "again.pbtxt");
      EXPECT_EQ(text.ops.size(), g->ops.size());
    } catch (const UserError&) {
    }
  }
}

void try_strategy(const std::string& bytes, bool binary, const Graph* g) {
  accept_or_reject(bytes, [&] {
    Strategy s = binary ? parse_strategy_binary(bytes, "fuzz.pb") : parse_strategy_text(bytes, "fuzz.pbtxt");
    check_accepted_strategy(s, g);
  });
}

/// Mutates every seed `per_seed` times with a generator seeded by `seed`.
void fuzz_models(const std::vector<Seed>& seeds, int per_seed, uint64_t seed) {
  install_crash_handler();
  Mutator m(seed, ff_tokens());
  for (const Seed& s : seeds) {
    SCOPED_TRACE(s.path);
    try_model(s.text);
    for (int i = 0; i < per_seed * scale(); ++i) {
      try_model(m.mutate(s.text));
      if (::testing::Test::HasFailure()) return;  // one reported input is enough
    }
  }
}

// ---- the tests -----------------------------------------------------------------------------------

TEST(FuzzModels, ExampleModels) {
  std::vector<Seed> seeds = files(kSource / "examples", ".ff", false);
  if (seeds.empty()) GTEST_SKIP() << "no examples/*.ff under " << kSource;
  fuzz_models(seeds, 1500, 1);
}

TEST(FuzzModels, LitTestModels) {
  // The lit tests' models: small, and many of them one edit away from an error.
  std::vector<Seed> seeds = files(kSource / "tests" / "lit", ".ff", true);
  if (seeds.empty()) GTEST_SKIP() << "no tests/lit/**/*.ff under " << kSource;
  fuzz_models(seeds, 150, 2);
}

TEST(FuzzModels, CrossoverOfExampleLines) {
  // Lines of one model spliced into another: ops referring to names that do not exist, or do but
  // with other shapes.
  std::vector<Seed> seeds = files(kSource / "examples", ".ff", false);
  if (seeds.size() < 2) GTEST_SKIP() << "needs two examples/*.ff";
  install_crash_handler();
  std::mt19937_64 rng(3);
  std::vector<std::string> lines;
  for (const Seed& s : seeds) {
    std::istringstream in(s.text);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
  }
  for (int i = 0; i < 1500 * scale(); ++i) {
    std::string text = seeds[rng() % seeds.size()].text;
    for (int k = 1 + rng() % 3; k > 0; --k) {
      size_t at = text.find('\n', rng() % (text.size() + 1));
      text.insert(at == std::string::npos ? text.size() : at + 1, lines[rng() % lines.size()] + "\n");
    }
    try_model(text);
    if (HasFailure()) return;
  }
}

TEST(FuzzStrategies, Text) {
  std::vector<Seed> seeds = files(kSource / "strategies", ".pbtxt", false);
  for (Seed& s : files(kSource / "tests" / "lit", ".pbtxt", true)) seeds.push_back(std::move(s));
  if (seeds.empty()) GTEST_SKIP() << "no strategies";
  install_crash_handler();
  // Resolve against the model the file is for, where there is one: strategies/alexnet_dp4.pbtxt
  // is for examples/alexnet.ff, the lit tests' strategies for tests/lit/Inputs/tiny.ff.
  std::map<std::string, Graph> models;
  auto model_for = [&](const std::string& path) -> const Graph* {
    std::string stem = fs::path(path).stem().string();
    fs::path ff = path.find("/tests/lit/") != std::string::npos
                      ? kSource / "tests" / "lit" / "Inputs" / "tiny.ff"
                      : kSource / "examples" / (stem.substr(0, stem.rfind('_')) + ".ff");
    auto it = models.find(ff.string());
    if (it == models.end()) {
      try {
        Graph g = parse_ff_file(ff.string());
        run_graph_pipeline(g, PipelineOptions{});
        it = models.emplace(ff.string(), std::move(g)).first;
      } catch (const UserError&) {
        return nullptr;
      }
    }
    return &it->second;
  };
  Mutator m(4, strategy_tokens());
  for (const Seed& s : seeds) {
    SCOPED_TRACE(s.path);
    const Graph* g = model_for(s.path);
    try_strategy(s.text, false, g);
    for (int i = 0; i < 200 * scale(); ++i) {
      try_strategy(m.mutate(s.text), false, g);
      if (HasFailure()) return;
    }
  }
}

TEST(FuzzStrategies, Binary) {
  std::vector<Seed> seeds = files(kSource / "strategies", ".pbtxt", false);
  if (seeds.empty()) GTEST_SKIP() << "no strategies/*.pbtxt";
  install_crash_handler();
  Graph alexnet;
  bool have_model = false;
  try {
    alexnet = parse_ff_file((kSource / "examples" / "alexnet.ff").string());
    have_model = true;
  } catch (const UserError&) {
  }
  // Binary mutations: bytes, varints and lengths; no textual tokens.
  std::vector<std::string> tokens{std::string("\x80", 1), std::string("\xff\xff\xff\xff\x0f", 5),
                                  std::string("\x0a\x7f", 2), std::string("\x18\x80\x80\x80\x80\x10", 6),
                                  std::string("\x22\x03\x01\x02\x03", 5), std::string("\x00", 1),
                                  std::string("\x10\x07", 2), std::string("\x28\x05", 2), std::string("\x1a\x00", 2)};
  Mutator m(5, tokens);
  for (const Seed& s : seeds) {
    SCOPED_TRACE(s.path);
    std::string bytes;
    try {
      bytes = strategy_to_binary(parse_strategy_text(s.text, s.path));
    } catch (const UserError&) {
      continue;
    }
    const Graph* g = have_model && s.path.find("alexnet") != std::string::npos ? &alexnet : nullptr;
    try_strategy(bytes, true, g);
    for (int i = 0; i < 1500 * scale(); ++i) {
      try_strategy(m.mutate(bytes), true, g);
      if (HasFailure()) return;
    }
  }
}

// ---- cost tables and machine files ----------------------------------------------------------------

/// Tokens of the cost-table and machine-file formats, and numbers at the edges of what they read.
std::vector<std::string> sim_tokens() {
  return {"ffc-costs 1\n", "ffc-costs 2\n", " 0.000 ", " 0 1 ", "h100 fp32 0 1 ", "ffc-costs 3\n", "h100 ", "h200 ", "fp32 ", "tf32 ", "bf16 ", " 1 ",
          " 0 ", " -1 ", " 1e12 ", " 1e13 ", " nan ", " inf ", " 0x10 ", "1e308", "1e-320", "{", "}", "=", " = ",
          "#", "\n", " ", "\t", "\r", "base = h200\n", "base = ", "nodes = auto\n", "nodes = 0\n",
          "gpus_per_node = 65537\n", "overlap_slowdown = 0.5\n", "intra_node_bandwidth_gb_s = 1e-300\n",
          "memory_bandwidth_gb_s = 0\n", "launch_us = 0\n", "job_launch_us = 1e15\n", "grouped_collective_us = ring\n",
          "phase_latency_us = ", "name = a b\n", "card = \n", "linear forward f32 {} in=4x8 out=4x2", "in=", "x",
          std::string(1, '\0'), "\xff"};
}

/// A small model, data parallel on 2 ranks (or on 1), compiled once: accepted machines and tables
/// must price it.
const Compiled& priced_program(int devices = 2) {
  auto compile = [](int n) {
    Graph g = parse_ff("model m\nx = input() : f32[N,64]\nh = linear(x, out_features=32, activation=relu) : f32[N,32]\n"
                       "y = linear(h, out_features=8) : f32[N,8]\n",
                       "priced.ff");
    run_graph_pipeline(g, PipelineOptions{});
    ParallelOptions po;
    po.devices = n;
    po.batch = 16;
    return compile_parallel(std::move(g), Strategy{}, po);
  };
  static const Compiled two = compile(2), one = compile(1);
  return devices == 1 ? one : two;
}

/// An accepted table prints, parses back to the same text, and prices a program to a finite time.
void try_costs(const std::string& text) {
  accept_or_reject(text, [&] {
    const CostTable t = CostTable::parse(text, "fuzz.costs");
    const std::string printed = t.print();
    CostTable again;
    try {
      again = CostTable::parse(printed, "printed.costs");
    } catch (const UserError& e) {
      ADD_FAILURE() << "the printed form of an accepted table does not parse: " << e.what() << "\n" << printed;
      return;
    }
    EXPECT_EQ(again.print(), printed) << "printing is not a fixed point";
    const Machine m = *machine_preset("h100");
    const AnalyticalCostModel analytical(m, Math::fp32);
    MeasuredCostModel measured(t, analytical);
    const Compiled& c = priced_program();
    measured.calibrate(c.graph, c.program);
    // The 2-rank program's kernels as measured; the 1-rank program's (twice the rows) scaled.
    for (const Compiled* p : {&c, &priced_program(1)}) {
      const double time = simulate(p->graph, p->program, m, measured).iteration;
      EXPECT_TRUE(std::isfinite(time) && time >= 0) << time;
    }
  });
}

/// An accepted machine describes itself and prices a program to a finite, positive time.
void try_machine(const std::string& text) {
  accept_or_reject(text, [&] {
    Machine m = parse_machine(text, "fuzz.machine");
    EXPECT_FALSE(m.describe().empty());
    if (m.nodes == 0) m.nodes = (2 + m.gpus_per_node - 1) / m.gpus_per_node;
    if (m.gpus() < 2) return;
    const AnalyticalCostModel analytical(m, Math::fp32);
    const Compiled& c = priced_program();
    const double time = simulate(c.graph, c.program, m, analytical).iteration;
    EXPECT_TRUE(std::isfinite(time) && time > 0) << time << " s on:\n" << text;
  });
}

TEST(FuzzSimInputs, CostTables) {
  // The tables bench/ measured on GPUs, and the lit tests' (small, and some near an error).
  std::vector<Seed> seeds = files(kSource / "bench" / "data", ".costs", true);
  for (Seed& s : files(kSource / "tests" / "lit", ".costs", true)) seeds.push_back(std::move(s));
  if (seeds.empty()) GTEST_SKIP() << "no *.costs under bench/data or tests/lit";
  // And a table of the priced program's own kernels, for the card and math it is priced with, so
  // that mutants reach the measured and calibrated prices (a time of 0 included).
  {
    const Compiled& c = priced_program();
    CostTable own;
    double us = 3;
    for (const Instr& in : c.program.ranks[0].step)
      if (is_kernel(in.kind)) own.set("h100", Math::fp32, kernel_key(c.graph, c.program.ranks[0], in), (us += 7) * 1e-6, 1);
    seeds.insert(seeds.begin(), {"priced-program", own.print()});
  }
  install_crash_handler();
  Mutator m(6, sim_tokens());
  for (const Seed& s : seeds) {
    SCOPED_TRACE(s.path);
    try_costs(s.text);
    // Mutate the header and a slice of lines: whole tables are long, and their lines alike.
    std::string head = s.text.substr(0, std::min<size_t>(s.text.size(), 2000));
    for (int i = 0; i < 300 * scale(); ++i) {
      try_costs(m.mutate(head));
      if (HasFailure()) return;
    }
  }
}

TEST(FuzzSimInputs, MachineFiles) {
  std::vector<Seed> seeds = files(kSource / "bench" / "data", ".machine", true);
  for (Seed& s : files(kSource / "tests" / "lit", ".machine", true)) seeds.push_back(std::move(s));
  seeds.push_back({"preset-like", "base = h200\nname = mine\nnodes = 2\ngpus_per_node = 1\n"});
  install_crash_handler();
  Mutator m(7, sim_tokens());
  for (const Seed& s : seeds) {
    SCOPED_TRACE(s.path);
    try_machine(s.text);
    for (int i = 0; i < 2000 * scale(); ++i) {
      try_machine(m.mutate(s.text));
      if (HasFailure()) return;
    }
  }
}

}  // namespace
}  // namespace ffc
