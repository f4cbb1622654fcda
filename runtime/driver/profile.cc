// The driver of profiling programs (include/ffrt/profile.h).
#include "ffrt/profile.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>

#include "ffrt/kernels.h"

namespace ffrt {

namespace {

ProfileOperand make_operand(bool present, DType dtype, std::initializer_list<int64_t> full,
                            std::initializer_list<int64_t> lo, std::initializer_list<int64_t> size, int64_t classes) {
  if (full.size() != lo.size() || full.size() != size.size() || full.size() > static_cast<size_t>(kMaxRank))
    throw Error("profile: an operand of the wrong rank");
  ProfileOperand o;
  o.present = present;
  o.dtype = dtype;
  o.rank = static_cast<int>(full.size());
  std::copy(full.begin(), full.end(), o.full);
  std::copy(lo.begin(), lo.end(), o.lo);
  std::copy(size.begin(), size.end(), o.size);
  o.classes = classes;
  return o;
}

size_t element_bytes(DType t) { return t == DType::f32 ? 4 : 8; }

/// The operands of one kernel in backend memory: a dense buffer per present operand.
class Operands {
 public:
  Operands(Context& ctx, uint64_t seed) : ctx_(ctx), seed_(seed) {}

  /// A view of a dense buffer of the operand's box, filled: synthetic values (U(-1, 1), or ids in
  /// [0, classes)); statistics (f64) with zeros, so a batch norm normalizes by a finite 1/sqrt(eps).
  View view(const ProfileOperand& o) {
    if (!o.present) {
      View v = make_view(nullptr, o.dtype, o.rank, o.full, o.lo, o.size);
      v.data = nullptr;
      return v;
    }
    int64_t n = 1;
    for (int d = 0; d < o.rank; ++d) n *= o.size[d];
    memory_.push_back(allocate(ctx_, static_cast<size_t>(n) * element_bytes(o.dtype)));
    const View v = make_view(memory_.back().get(), o.dtype, o.rank, o.full, o.lo, o.size);
    if (o.dtype == DType::f64)
      fill(ctx_, v, 0.f);
    else
      fill_synthetic(ctx_, seed_ + memory_.size(), o.dtype == DType::i64 ? std::max<int64_t>(1, o.classes) : 0, v);
    return v;
  }
  std::vector<View> views(const std::vector<ProfileOperand>& v) {
    std::vector<View> out;
    for (const ProfileOperand& o : v) out.push_back(view(o));
    return out;
  }
  std::vector<std::optional<View>> optional_views(const std::vector<ProfileOperand>& v) {
    std::vector<std::optional<View>> out;
    for (const ProfileOperand& o : v) out.push_back(o.present ? std::optional<View>(view(o)) : std::nullopt);
    return out;
  }

 private:
  Context& ctx_;
  uint64_t seed_;
  std::vector<std::shared_ptr<std::byte>> memory_;
};

void run_kernel(Context& ctx, const ProfileKernel& k, const OpDesc& op, const StepInfo& info, OpViews& v) {
  switch (k.kind) {
    case ProfileKernel::forward: op_forward(ctx, op, info, v); break;
    case ProfileKernel::forward_stats: op_forward_stats(ctx, op, info, v); break;
    case ProfileKernel::backward_stats: op_backward_stats(ctx, op, info, v); break;
    case ProfileKernel::backward: op_backward(ctx, op, info, v); break;
  }
}

struct Measurement {
  double median_us = 0, min_us = 0, max_us = 0;
  /// Device launches (kernels, memsets, copies) one call issues: counted in the recorded graph,
  /// 1 where there is none.
  double launches = 1;
};

/// Calls of one kernel recorded into a CUDA graph, replayed as one: enough that the replay's own
/// launch is a small part of the interval.
constexpr int kGraphCalls = 10;

/// Warm-up calls (the first chooses algorithms and fills caches), then `reps` timed intervals
/// between two marks on the compute stream; the median of the intervals resists a shared machine's
/// noise. Where the backend has CUDA graphs (and not `eager`), each interval is one replay of
/// kGraphCalls recorded calls, divided by their number: the kernel's time as a program run with
/// --cuda-graph sees it, without the gaps the host's launches leave between short kernels.
/// Otherwise each interval is one call, the calls issued back to back.
Measurement measure(Context& ctx, const ProfileInfo& p, const ProfileKernel& k, int warmup, int reps, bool eager,
                    uint64_t seed) {
  const OpDesc& op = p.ops.at(k.op);
  set_op(ctx, op.name.c_str());
  Operands mem(ctx, seed);
  OpViews v;
  v.in = mem.views(k.in);
  v.out = mem.views(k.out);
  v.params = mem.views(k.params);
  v.saved = mem.views(k.saved);
  v.dout = mem.views(k.dout);
  v.din = mem.optional_views(k.din);
  v.dparams = mem.optional_views(k.dparams);
  if (k.stats.present) v.stats = mem.view(k.stats);
  v.update_state = k.update_state;
  v.overwrite = k.overwrite;
  StepInfo info;
  info.seed = seed;
  for (int i = 0; i < warmup; ++i) run_kernel(ctx, k, op, info, v);
  synchronize(ctx);
  std::shared_ptr<Graph> graph;
  if (!eager && graphs_supported()) {
    begin_capture(ctx);
    for (int i = 0; i < kGraphCalls; ++i) run_kernel(ctx, k, op, info, v);
    graph = end_capture(ctx);
    replay(ctx, *graph);  // the first replay uploads the graph
    synchronize(ctx);
  }
  Measurement m;
  if (graph) m.launches = static_cast<double>(graph_launches(ctx, *graph)) / kGraphCalls;
  mark_times(ctx);  // forget marks from before
  for (int i = 0; i < reps; ++i) {
    mark(ctx);
    if (graph) replay(ctx, *graph);
    else run_kernel(ctx, k, op, info, v);
  }
  mark(ctx);
  const std::vector<double> t = mark_times(ctx);
  std::vector<double> d;
  for (size_t i = 1; i < t.size(); ++i) d.push_back((t[i] - t[i - 1]) / (graph ? kGraphCalls : 1));
  std::sort(d.begin(), d.end());
  const size_t n = d.size();
  m.median_us = n % 2 ? d[n / 2] : (d[n / 2 - 1] + d[n / 2]) / 2;
  m.min_us = d.front();
  m.max_us = d.back();
  return m;
}

constexpr const char* kUsage = R"(usage: %s --out FILE [flags]

Measures the %zu distinct kernels of %s's programs on one device and writes them as a cost table
for ffc simulate --costs and ffc search --costs (one process: no mpirun).
  -o, --out FILE     the cost table to write (required)
  --reps R           timed intervals per kernel (default 20); the median is recorded
  --warmup W         untimed calls first (default 3)
  --eager            time calls as issued one by one, launch gaps included (as a program run without
                     --cuda-graph); by default, where CUDA graphs exist, replays of 10 recorded calls
  --card NAME        the card to file the times under (default: %s)
  --math fp32|tf32   tf32: tensor cores may round convolution and GEMM inputs (cuda; default %s)
  --device D         the cuda device (default 0)
  --threads N        cpu backend worker threads (default: all cores)
  --seed S           synthetic data (default 0)
  -q, --quiet        no line per kernel
  -h, --help         this text
)";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  std::exit(1);
}

}  // namespace

ProfileOperand operand(DType dtype, std::initializer_list<int64_t> full, std::initializer_list<int64_t> lo,
                       std::initializer_list<int64_t> size, int64_t classes) {
  return make_operand(true, dtype, full, lo, size, classes);
}

ProfileOperand absent(DType dtype, std::initializer_list<int64_t> full, std::initializer_list<int64_t> lo,
                      std::initializer_list<int64_t> size) {
  return make_operand(false, dtype, full, lo, size, 0);
}

ProfileOperand absent() { return ProfileOperand{}; }

std::string card_name(const std::string& device) {
  std::string word, whole;
  for (char c : device) {
    const bool alnum = std::isalnum(static_cast<unsigned char>(c)) != 0;
    whole += alnum ? static_cast<char>(std::tolower(static_cast<unsigned char>(c))) : '-';
  }
  size_t i = 0;
  while (i < whole.size()) {
    size_t j = whole.find('-', i);
    if (j == std::string::npos) j = whole.size();
    const std::string w = whole.substr(i, j - i);
    if (std::any_of(w.begin(), w.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }))
      return w;
    i = j + 1;
  }
  return whole.empty() ? std::string("unknown") : whole;
}

int profile_main(int argc, char** argv, const ProfileInfo& p) {
  std::string out, card = p.card;
  int reps = 20, warmup = 3, device = 0, threads = 0;
  bool tf32 = p.tf32, quiet = false, eager = false;
  uint64_t seed = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::printf(kUsage, argv[0], p.kernels.size(), p.name.c_str(),
                  p.card.empty() ? "the device's name, as h100 for an NVIDIA H100" : p.card.c_str(),
                  p.tf32 ? "tf32" : "fp32");
      return 0;
    }
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "-o" || a == "--out") out = value();
      else if (a == "--reps") reps = std::stoi(value());
      else if (a == "--warmup") warmup = std::stoi(value());
      else if (a == "--card") card = value();
      else if (a == "--device") device = std::stoi(value());
      else if (a == "--threads") threads = std::stoi(value());
      else if (a == "--seed") seed = std::stoull(value());
      else if (a == "-q" || a == "--quiet") quiet = true;
      else if (a == "--eager") eager = true;
      else if (a == "--math") {
        const std::string v = value();
        if (v != "fp32" && v != "tf32") usage_error("--math takes fp32 or tf32, not " + v);
        tf32 = v == "tf32";
      } else usage_error("unknown flag " + a + " (--help lists them)");
    } catch (const std::logic_error&) {
      usage_error("a bad number after " + a);
    }
  }
  if (out.empty()) usage_error("--out FILE is required: where to write the cost table");
  if (reps < 1) usage_error("--reps must be at least 1");
  if (warmup < 0) usage_error("--warmup must not be negative");
  if (card.find_first_of(" \t\r\n#") != std::string::npos)
    usage_error("--card takes one word, not '" + card + "'");
  try {
    auto ctx = make_context({threads, device, 0, tf32});
    const std::string dev = device_name(*ctx);
    if (card.empty()) card = card_name(dev);
    const char* math = tf32 ? "tf32" : "fp32";
    const std::string replays =
        !eager && graphs_supported() ? ", each a replay of " + std::to_string(kGraphCalls) + " recorded calls" : "";
    std::printf("profiling %zu kernels of %s on %s (%s backend), card %s, %s, %d reps after %d warm-up%s\n%s",
                p.kernels.size(), p.name.c_str(), dev.c_str(), backend_name(), card.c_str(), math, reps, warmup,
                replays.c_str(), p.about.c_str());
    std::fflush(stdout);
    std::string table = "ffc-costs 2\n# card math microseconds launches kernel\n";
    double total_us = 0;
    for (size_t i = 0; i < p.kernels.size(); ++i) {
      const ProfileKernel& k = p.kernels[i];
      const Measurement m = measure(*ctx, p, k, warmup, reps, eager, seed + i);
      char line[64];
      std::snprintf(line, sizeof line, "%.3f %g", m.median_us, m.launches);
      table += card + " " + math + " " + line + " " + k.key + "\n";
      total_us += m.median_us;
      if (!quiet) {
        std::printf("%4zu/%zu %12.3f us (min %.3f, max %.3f)  %s\n", i + 1, p.kernels.size(), m.median_us, m.min_us,
                    m.max_us, k.key.c_str());
        std::fflush(stdout);
      }
    }
    std::FILE* f = std::fopen(out.c_str(), "w");
    if (!f) throw Error("cannot write " + out);
    std::fputs(table.c_str(), f);
    if (std::fclose(f) != 0) throw Error("cannot write " + out);
    std::printf("wrote %s: %zu kernels, %.3f ms in all (card %s, %s)\n", out.c_str(), p.kernels.size(),
                total_us / 1e3, card.c_str(), math);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace ffrt
