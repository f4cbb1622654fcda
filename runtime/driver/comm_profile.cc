// ffrt_comm_profile (cpu: MPI) and ffrt_comm_profile_cuda (cuda: NCCL): measures the links the
// simulator's machine description models (docs/simulator.md, "Measuring links").
//
// Run under mpirun with one rank per device, it times libffrt's own phases (ffrt/comm.h), so it
// measures what emitted programs do: an all-reduce over every rank, one over ranks 0 and 1, and a
// transfer from rank 0 to rank 1, over sizes from 4 KiB up by factors of 4. For each kind it fits
// the simulator's formula (t = steps · L + x / B, x the formula's bytes term) and prints a table;
// with --out it writes a machine file whose links are the all-ranks all-reduce's bandwidth, and,
// from the three kinds' intercepts (steps · L each), the cost every phase pays once and the latency
// per ring step (a line through (steps, intercept): phase_latency_us and intra_node_latency_us).
// A phase of 8 small all-reduces against a lone one gives what each collective after the first of
// a phase adds (grouped_collective_us); GEMMs timed alone and beside the largest all-reduce, how
// much slower compute runs while a phase is in flight (overlap_slowdown). Phases are issued
// eagerly, back to back; with --graph (cuda) they are recorded in a graph, each after a kernel.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "ffrt/comm.h"
#include "ffrt/kernels.h"

namespace {

using ffrt::Comm;
using ffrt::Context;
using ffrt::View;

constexpr int64_t kMinBytes = int64_t{4} << 10;  // 4 KiB
constexpr int kGrouped = 8;                      // all-reduces in the grouped phase
constexpr double kMinLatencyUs = 0.01;           // what a negative intercept is clamped to
constexpr double kMaxBandwidthGBs = 1e6;         // what a non-positive slope is clamped to

constexpr const char* kUsage = R"(usage: mpirun -np N %s [flags]     (N >= 2, one rank per device)

Times libffrt's phases (%s backend) between the ranks of one node: an all-reduce over every rank, an
all-reduce over ranks 0 and 1, a transfer from rank 0 to rank 1, over sizes from 4 KiB up by factors
of 4, a phase of 8 all-reduces of 4 KiB, and GEMMs alone and beside the largest all-reduce. Fits
the simulator's formulas to the medians (latency L and bandwidth B of each kind) and prints them;
--out writes a machine file for ffc simulate --machine: the all-ranks fit's bandwidth as the
intra-node link's, what a phase pays once and a ring step's latency (a line through the kinds'
intercepts against their steps), what a grouped all-reduce adds, and how much slower compute runs
beside a phase in flight.
  --out FILE      the machine file to write
  --base NAME     the preset it starts from: h100 or h200 (default h100)
  --max-mib M     the largest size, in MiB (default 256; the largest 4 KiB x 4^k not above it)
  --reps R        timed repetitions per size (default 20); the median counts
  --warmup W      untimed repetitions first (default 3: NCCL connects on the first)
  --graph         cuda: time each phase inside a CUDA graph, after a kernel (the NCCL operation
                  alone, as a replayed graph runs it), not issued eagerly back to back
  --threads N     cpu backend worker threads (default: all cores)
  -h, --help      this text
)";

/// An error every rank meets alike (the same flags, the same job): rank 0 says it, and each rank
/// leaves on its own instead of aborting the job.
class SharedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string out, base = "h100";
  int64_t max_mib = 256;
  int reps = 20, warmup = 3, threads = 0;
  bool graph = false, help = false;
};

/// `text` as a whole number (all of it), or a SharedError naming the flag.
int64_t number(const std::string& flag, const std::string& text) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::logic_error&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) throw SharedError(flag + " takes a whole number, not '" + text + "'");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      o.help = true;
      return o;
    }
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw SharedError(a + " needs a value");
      return argv[++i];
    };
    auto small = [&] { return static_cast<int>(std::clamp<int64_t>(number(a, value()), -1, 1 << 30)); };
    if (a == "--out") o.out = value();
    else if (a == "--base") o.base = value();
    else if (a == "--max-mib") o.max_mib = number(a, value());
    else if (a == "--reps") o.reps = small();
    else if (a == "--warmup") o.warmup = small();
    else if (a == "--threads") o.threads = small();
    else if (a == "--graph") o.graph = true;
    else throw SharedError("unknown flag " + a + " (--help lists them)");
  }
  if (o.base != "h100" && o.base != "h200") throw SharedError("--base takes h100 or h200, not " + o.base);
  // Sizes are 4 KiB x 4^k: the next above 4 GiB (2^32 floats) overflows MPI's int element counts.
  if (o.max_mib < 1 || o.max_mib > 4096) throw SharedError("--max-mib takes 1 to 4096");
  if (o.reps < 1) throw SharedError("--reps must be at least 1");
  if (o.warmup < 0) throw SharedError("--warmup must not be negative");
  if (o.threads < 0) throw SharedError("--threads must not be negative");
  if (o.graph && !ffrt::graphs_supported())
    throw SharedError(std::string("--graph: the ") + ffrt::backend_name() + " backend records no graphs");
  if (o.graph && o.warmup < 1)
    throw SharedError("--graph needs --warmup 1 or more: NCCL connects peers on a first transfer, which a graph "
                      "cannot record");
  return o;
}

/// One kind of measurement: the simulator's formula for it is t = steps · L + scale · bytes / B.
struct Series {
  std::string name;          ///< for the table
  std::vector<int> members;  ///< the ranks taking part (0 and 1 are always among them)
  int group = -1;            ///< the all-reduce's group; -1: a transfer from rank 0 to rank 1
  int count = 1;             ///< all-reduces per phase, each over its own slice of the buffer
  double steps = 1, scale = 1;
  std::vector<int64_t> bytes;
  std::vector<double> median_us;  ///< rank 0 only
  double latency_us = 0, bandwidth_gb_s = 0;
  std::string clamped;  ///< what the fit had to clamp, if anything

  int n() const { return static_cast<int>(members.size()); }
  bool member(int rank) const { return std::find(members.begin(), members.end(), rank) != members.end(); }
  double x(int64_t b) const { return scale * static_cast<double>(b); }
  double fitted_us(int64_t b) const { return steps * latency_us + x(b) / (bandwidth_gb_s * 1e3); }
};

Series all_reduce_series(const std::string& name, const std::vector<int>& members, int group) {
  Series s;
  s.name = name;
  s.members = members;
  s.group = group;
  const double n = static_cast<double>(members.size());
  s.steps = 2 * (n - 1);
  s.scale = 2 * (n - 1) / n;
  return s;
}

/// One float summed over group 0 (every rank), waited for: no rank leaves before every rank came,
/// so the timed phase after it starts together on every rank.
void barrier(Comm& comm, Context& ctx, const View& one) {
  Comm::Phase p(comm, ctx);
  p.all_reduce(one, 0);
  p.run();
  ffrt::synchronize(ctx);
}

/// Phases per repetition. A program issues its phases on the communication stream without waiting
/// for each, so what one costs there is the device's time per phase in such a run, not the host's
/// round trip (a launch and a synchronization) around a lone one.
constexpr int kPhasesPerRep = 10;

/// This rank's phase of series `s` over `buf` (nothing on ranks that take no part).
void issue_phase(Comm& comm, Context& ctx, const Series& s, const View& buf) {
  if (!s.member(comm.rank())) return;
  Comm::Phase p(comm, ctx);
  if (s.group >= 0) {
    const int64_t n = buf.size[0] / s.count;
    for (int k = 0; k < s.count; ++k) p.all_reduce(ffrt::whole_view(buf.f32() + k * n, ffrt::DType::f32, {n}), s.group);
  } else if (comm.rank() == 0) p.send(buf, 1);
  else p.recv(buf, 0);
  p.run();
}

/// One eager repetition on this rank (the cpu backend's timing, and the warm-up that connects):
/// microseconds per phase, from leaving the barrier until the results of kPhasesPerRep phases
/// issued back to back are there (the host waits for the device); 0 on ranks that take no part.
/// The phases are built inside the timed interval: the MPI backend packs and posts its transfers
/// as they are added.
double time_once(Comm& comm, Context& ctx, const Series& s, const View& buf, const View& one) {
  barrier(comm, ctx, one);
  if (!s.member(comm.rank())) return 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kPhasesPerRep; ++i) issue_phase(comm, ctx, s, buf);
  ffrt::synchronize(ctx);
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / kPhasesPerRep;
}

/// --graph: phases recorded in a graph, each after a kernel (a program issues a phase after the
/// kernels that made its operands, and the next kernels wait for it), so a repetition times the
/// NCCL operations as a replayed step runs them, without the host's launch. Issued eagerly back to
/// back, the host's launch paces small phases instead (4 x H200: a 4 KiB all-reduce over every rank
/// 16.4 us a phase eagerly, 12.0 us in a graph). The default stays eager: a program's phases also
/// pay what this pattern lacks (waits for the slowest member and for the packing before them), and
/// the eager prices predicted the transformer's hybrid strategies closer (bench/RESULTS.md,
/// session 9).
struct GraphTiming {
  View scratch;  ///< what the kernel between phases writes
  double kernels_us = 0;  ///< kPhasesPerRep of those kernels alone, recorded likewise (this rank's median)

  void kernel(Context& ctx) const { ffrt::fill(ctx, scratch, 1.f); }
};

/// The device's time of one replay of `graph`, launched while the replay before it runs (the
/// host's launch is not in it), after a barrier.
double time_replay(Comm& comm, Context& ctx, const ffrt::Graph& graph, const View& one) {
  barrier(comm, ctx, one);
  ffrt::replay(ctx, graph);
  const int m0 = ffrt::mark(ctx);
  ffrt::replay(ctx, graph);
  const int m1 = ffrt::mark(ctx);
  comm.track(ctx, "a replay of ffrt_comm_profile's graph");
  ffrt::synchronize(ctx);
  const std::vector<double> t = ffrt::mark_times(ctx);
  return t.at(static_cast<size_t>(m1)) - t.at(static_cast<size_t>(m0));
}

/// kPhasesPerRep phases of `s` (none: kernels only), each after GraphTiming's kernel, recorded.
std::shared_ptr<ffrt::Graph> record(Comm& comm, Context& ctx, const GraphTiming& g, const Series* s, const View& buf) {
  comm.set_capturing(true);
  ffrt::begin_capture(ctx);
  for (int i = 0; i < kPhasesPerRep; ++i) {
    g.kernel(ctx);
    if (s) issue_phase(comm, ctx, *s, buf);
  }
  std::shared_ptr<ffrt::Graph> graph = ffrt::end_capture(ctx);
  comm.set_capturing(false);
  return graph;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// Rank 0 gets the median over the repetitions of the slowest member's time, each rank having
/// timed them (`times`, alike in number on every rank); the others get 0. A collective call.
double slowest_median(Comm& comm, const std::vector<int>& members, const std::vector<double>& times) {
  std::ostringstream mine;
  mine.precision(17);
  for (double t : times) mine << t << ' ';
  const std::vector<std::string> all = comm.gather(mine.str());
  if (comm.rank() != 0) return 0;
  std::vector<double> slowest(times.size(), 0.0);
  for (int r : members) {
    std::istringstream in(all.at(static_cast<size_t>(r)));
    for (double& t : slowest) {
      double v = 0;
      if (!(in >> v)) throw ffrt::Error("comm_profile: rank " + std::to_string(r) + " sent too few times");
      t = std::max(t, v);
    }
  }
  return median(slowest);
}

/// Every rank times `reps` repetitions; rank 0 gets the median over them of the slowest member's
/// time (a phase lasts until its last member has its results, as the simulator counts it). With
/// `graphs`, a repetition is a replay of kPhasesPerRep phases each after a kernel, less the kernels'
/// own time, per phase; otherwise an eager time_once. The warm-up runs eagerly either way (NCCL
/// connects peers on a first transfer, which a graph cannot record).
double measure(Comm& comm, Context& ctx, const Options& o, const Series& s, const View& buf, const View& one,
               const GraphTiming* graphs) {
  for (int i = 0; i < o.warmup; ++i) time_once(comm, ctx, s, buf, one);
  std::vector<double> times;
  if (graphs && s.member(comm.rank())) {
    const std::shared_ptr<ffrt::Graph> graph = record(comm, ctx, *graphs, &s, buf);
    (void)time_replay(comm, ctx, *graph, one);  // its first replay uploads it
    for (int i = 0; i < o.reps; ++i)
      times.push_back((time_replay(comm, ctx, *graph, one) - graphs->kernels_us) / kPhasesPerRep);
  } else if (graphs) {
    for (int i = 0; i < o.reps + 1; ++i) barrier(comm, ctx, one);  // the members' barriers
    times.assign(static_cast<size_t>(o.reps), 0.0);
  } else {
    for (int i = 0; i < o.reps; ++i) times.push_back(time_once(comm, ctx, s, buf, one));
  }
  return slowest_median(comm, s.members, times);
}

std::string num(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", v);
  return text;
}

/// Least squares of t = a + b · x over the points, each residual relative to its t: the sizes span
/// five decades, and absolute residuals would let the largest sizes' noise (microseconds) decide
/// the intercept (the latency, a few microseconds) alone. Then L = a / steps, B = 1 / b.
void fit(Series& s) {
  double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < s.bytes.size(); ++i) {
    const double x = s.x(s.bytes[i]), t = s.median_us[i], w = 1 / (t * t);
    sw += w, sx += w * x, sy += w * t, sxx += w * x * x, sxy += w * x * t;
  }
  const double det = sw * sxx - sx * sx;
  double b = det > 0 ? (sw * sxy - sx * sy) / det : 0;  // microseconds per byte
  double a = det > 0 ? (sy - b * sx) / sw : 0;
  // The machine parser takes positive bandwidths only; a latency below the fit's resolution is
  // kept small but positive, and the file's comments say so.
  const double min_b = 1 / (kMaxBandwidthGBs * 1e3);
  if (!(b >= min_b)) {
    s.clamped += "slope " + num(b) + " us/byte clamped: B set to " + num(kMaxBandwidthGBs) + " GB/s; ";
    b = min_b;
    a = (sy - b * sx) / sw;
  }
  if (!(a >= s.steps * kMinLatencyUs)) {
    s.clamped += "intercept " + num(a) + " us clamped: L set to " + num(kMinLatencyUs) + " us; ";
    a = s.steps * kMinLatencyUs;
  }
  s.latency_us = a / s.steps;
  s.bandwidth_gb_s = 1 / (b * 1e3);  // bytes per microsecond / 1e3 = GB/s
}

/// What a phase pays once (us) and the latency of a ring step (us): the least-squares line through
/// each kind's intercept against its steps. One latency per step alone cannot price them all: on
/// 4 H200s a lone transfer (1 step) measured 13.9 us and a 4-rank all-reduce (6 steps) 16.1 us,
/// so a phase costs ~13.8 us and a step ~0.4. A slope below kMinLatencyUs is clamped to it and the
/// intercept refitted (on 4 H100s the three intercepts were 15.9, 16.8 and 15.7 us for 6, 2 and 1
/// steps: a phase costs the same whatever its steps). Without two distinct step counts, or with a
/// negative intercept, the fit is not used (the all-ranks fit's latency stands alone).
struct PhaseFit {
  bool ok = false;
  double phase_us = 0, step_us = 0;
};

PhaseFit fit_phase(const std::vector<Series>& series) {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const Series& s : series) {
    const double x = s.steps, y = s.steps * s.latency_us;
    n += 1, sx += x, sy += y, sxx += x * x, sxy += x * y;
  }
  const double det = n * sxx - sx * sx;
  PhaseFit f;
  if (det <= 0) return f;
  f.step_us = std::max(kMinLatencyUs, (n * sxy - sx * sy) / det);
  f.phase_us = (sy - f.step_us * sx) / n;
  f.ok = f.phase_us >= 0;
  return f;
}

std::string ranks_str(const std::vector<int>& ranks) {
  if (ranks.size() > 2 && ranks.back() - ranks.front() + 1 == static_cast<int>(ranks.size()))
    return std::to_string(ranks.front()) + ".." + std::to_string(ranks.back());
  std::string s;
  for (int r : ranks) {
    if (!s.empty()) s += ',';
    s += std::to_string(r);
  }
  return s;
}

std::string fit_line(const Series& s) {
  char line[256];
  std::snprintf(line, sizeof line, "%s over ranks %s: B = %.6g GB/s, L = %.6g us (t = %g*L + %.4g*bytes/B)",
                s.name.c_str(), ranks_str(s.members).c_str(), s.bandwidth_gb_s, s.latency_us, s.steps, s.scale);
  return line;
}

void print_series(const Series& s) {
  std::printf("%-15s %5s %12s %12s %12s %10s\n", "kind", "ranks", "bytes", "median us", "fitted us", "bus GB/s");
  for (size_t i = 0; i < s.bytes.size(); ++i)
    std::printf("%-15s %5d %12lld %12.2f %12.2f %10.2f\n", s.name.c_str(), s.n(), static_cast<long long>(s.bytes[i]),
                s.median_us[i], s.fitted_us(s.bytes[i]), s.x(s.bytes[i]) / (s.median_us[i] * 1e3));
  std::printf("fit: %s\n", fit_line(s).c_str());
  if (!s.clamped.empty()) std::printf("note: %s: the fit %s\n", s.name.c_str(), s.clamped.c_str());
  std::printf("\n");
  std::fflush(stdout);
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &utc);
  return text;
}

/// Compute beside communication: GEMMs timed alone, then while an all-reduce runs on the
/// communication stream.
struct Overlap {
  int64_t n = 0;  ///< the GEMMs' extent: (n x n) by (n x n)
  int count = 0;  ///< GEMMs per repetition
  double alone_us = 0, beside_us = 0;  ///< medians of a repetition's GEMMs, rank 0's
  double phase_us = 0;                  ///< median of the all-reduce beside them, rank 0's
  double slowdown = 1;                  ///< the ranks' mean, at least 1
};

/// The sum over every rank of each one's `mine`, on every rank (the barrier's all-reduce; `one`
/// holds zero before and after).
double sum_over_ranks(Comm& comm, Context& ctx, const View& one, double mine) {
  float host = static_cast<float>(mine);
  ffrt::upload(ctx, ffrt::whole_view(&host, ffrt::DType::f32, {1}), one);
  barrier(comm, ctx, one);
  ffrt::download(ctx, one, ffrt::whole_view(&host, ffrt::DType::f32, {1}));
  ffrt::fill(ctx, one, 0.f);
  return host;
}

/// Rank 0's `value` on every rank.
double share(Comm& comm, Context& ctx, const View& one, double value) {
  return sum_over_ranks(comm, ctx, one, comm.rank() == 0 ? value : 0.0);
}

/// How much slower compute runs while a phase of its rank is in flight (NCCL's kernels take SMs
/// and memory bandwidth), as the simulator applies it: `count` GEMMs (W us alone) issued right after
/// an all-reduce of `big` over every rank has started on the communication stream, both timed (T
/// and P us). The GEMMs take about a quarter of the all-reduce's time alone (`all_reduce_us`, rank
/// 0's median), so they should run beside it throughout: the slowdown is T / W. Where they outlast
/// it, only W - (T - P) of their work ran beside it, in P: the slowdown is P / (W - (T - P)). Each
/// rank's ratio of medians; every rank gets their mean.
Overlap measure_overlap(Comm& comm, Context& ctx, const Options& o, const View& big, double all_reduce_us,
                        const View& one) {
  Overlap r;
  r.n = std::string(ffrt::backend_name()) == "cpu" ? 64 : 2048;
  const size_t bytes = static_cast<size_t>(r.n * r.n) * 4;
  auto x_mem = ffrt::allocate(ctx, bytes), w_mem = ffrt::allocate(ctx, bytes), y_mem = ffrt::allocate(ctx, bytes);
  const View x = ffrt::whole_view(x_mem.get(), ffrt::DType::f32, {r.n, r.n});
  const View w = ffrt::whole_view(w_mem.get(), ffrt::DType::f32, {r.n, r.n});
  const View y = ffrt::whole_view(y_mem.get(), ffrt::DType::f32, {r.n, r.n});
  ffrt::fill(ctx, x, 0.5f);  // not zeros: a GEMM of zeros draws less power and may clock higher
  ffrt::fill(ctx, w, 0.25f);
  struct Times {
    double gemms = 0, phase = 0;  ///< us
  };
  auto once = [&](int count, bool beside) {
    barrier(comm, ctx, one);
    std::unique_ptr<Comm::Phase> p;
    if (beside) {
      p = std::make_unique<Comm::Phase>(comm, ctx);
      p->all_reduce(big, 0);
      p->timed = true;
      p->start();
    }
    const int m0 = ffrt::mark(ctx);
    for (int i = 0; i < count; ++i) ffrt::linear_forward(ctx, ffrt::Act::none, x, w, nullptr, y);
    const int m1 = ffrt::mark(ctx);
    if (p) p->finish();
    ffrt::synchronize(ctx);
    const std::vector<double> t = ffrt::mark_times(ctx);
    Times r;
    r.gemms = t.at(static_cast<size_t>(m1)) - t.at(static_cast<size_t>(m0));
    if (p && p->marks[0] >= 0 && p->marks[1] >= 0)
      r.phase = t.at(static_cast<size_t>(p->marks[1])) - t.at(static_cast<size_t>(p->marks[0]));
    return r;
  };
  auto medians = [&](int count, bool beside) {
    std::vector<double> g, ph;
    for (int i = 0; i < o.warmup + o.reps; ++i) {
      const Times t = once(count, beside);
      if (i < o.warmup) continue;
      g.push_back(t.gemms);
      ph.push_back(t.phase);
    }
    return Times{median(g), median(ph)};
  };
  const double one_gemm = share(comm, ctx, one, medians(1, false).gemms);
  const double target = share(comm, ctx, one, all_reduce_us) / 4;
  r.count = static_cast<int>(std::clamp(std::floor(target / std::max(one_gemm, 1e-3)), 1.0, 256.0));
  const Times alone = medians(r.count, false), beside = medians(r.count, true);
  r.alone_us = alone.gemms;
  r.beside_us = beside.gemms;
  r.phase_us = beside.phase;
  const double w_us = std::max(alone.gemms, 1e-3), t_us = beside.gemms, p_us = beside.phase;
  double ratio = t_us / w_us;
  if (t_us > p_us && p_us > 0 && w_us - (t_us - p_us) > 0) ratio = p_us / (w_us - (t_us - p_us));
  r.slowdown = std::max(1.0, sum_over_ranks(comm, ctx, one, ratio) / comm.size());
  return r;
}

/// The machine file (docs/simulator.md, "Machines"): the base preset with the all-ranks
/// all-reduce's bandwidth as the intra-node link's, the phase and ring-step latencies of
/// fit_phase (or, without a usable line, the all-ranks fit's latency), the grouped cost, the
/// overlap slowdown; the fits and the medians as comments.
void write_machine(const Options& o, const std::string& device, int ranks, const std::vector<Series>& series,
                   double grouped_us, const Overlap& overlap, const GraphTiming* graphs) {
  const Series& main = series.front();
  std::ostringstream f;
  f << "# Measured by ffrt_comm_profile (" << ffrt::backend_name() << " backend) on " << ranks << " x " << device
    << ", " << today() << "\n";
  f << "# median of " << o.reps << " repetitions after " << o.warmup << " warm-up"
    << (graphs ? ", " + std::to_string(kPhasesPerRep) + " phases each in a CUDA graph, each after a kernel (" +
                     num(graphs->kernels_us) + " us for the kernels alone)"
               : std::string(", ") + std::to_string(kPhasesPerRep) + " phases each issued back to back")
    << "; fits of t = steps * L + x / B:\n";
  for (const Series& s : series) {
    f << "#   " << fit_line(s) << "\n";
    if (!s.clamped.empty()) f << "#     (" << s.clamped << ")\n";
  }
  f << "# medians (us) by bytes:\n";
  for (const Series& s : series) {
    f << "#   " << s.name << " n=" << s.n() << ":";
    for (size_t i = 0; i < s.bytes.size(); ++i) f << " " << s.bytes[i] << "=" << s.median_us[i];
    f << "\n";
  }
  const PhaseFit phase = fit_phase(series);
  if (phase.ok)
    f << "# intercepts against steps: a phase " << num(phase.phase_us) << " us, a ring step " << num(phase.step_us)
      << " us\n";
  else
    f << "# intercepts against steps: no usable line (the all-ranks fit's latency per step stands alone)\n";
  f << "# compute beside a phase: " << overlap.count << " GEMMs of " << overlap.n << " x " << overlap.n << " took "
    << num(overlap.alone_us) << " us alone, " << num(overlap.beside_us) << " us beside the largest all-reduce ("
    << num(overlap.phase_us) << " us)\n";
  char values[320];
  std::snprintf(values, sizeof values,
                "intra_node_bandwidth_gb_s = %.6g\nintra_node_latency_us = %.6g\ngrouped_collective_us = %.6g\n",
                main.bandwidth_gb_s, phase.ok ? phase.step_us : main.latency_us, grouped_us);
  f << "base = " << o.base << "\nname = measured\n" << values;
  if (phase.ok) f << "phase_latency_us = " << num(phase.phase_us) << "\n";
  f << "overlap_slowdown = " << num(overlap.slowdown) << "\n";
  std::FILE* out = std::fopen(o.out.c_str(), "w");
  if (!out) throw ffrt::Error("cannot write " + o.out);
  const std::string text = f.str();
  const bool ok = std::fputs(text.c_str(), out) >= 0;
  if (std::fclose(out) != 0 || !ok) throw ffrt::Error("cannot write " + o.out);
  std::printf("wrote %s: intra-node links of %.6g GB/s (%s, over %d ranks), %.6g us a ring step", o.out.c_str(),
              main.bandwidth_gb_s, main.name.c_str(), ranks, phase.ok ? phase.step_us : main.latency_us);
  if (phase.ok) std::printf(", %.6g us a phase", phase.phase_us);
  std::printf("\n");
}

/// Every rank: whether every rank of the job runs on one node (rank r is the node's r-th), as the
/// intra-node link the machine file names needs.
bool one_node(Comm& comm, Context& ctx, const View& one) {
  return sum_over_ranks(comm, ctx, one, comm.local_rank() == comm.rank() ? 0.0 : 1.0) == 0.0;
}

void run(Comm& comm, const Options& o) {
  auto context = ffrt::make_context({o.threads, comm.local_rank(), comm.rank(), false});
  Context& ctx = *context;
  const int ranks = comm.size();
  std::vector<int> all(static_cast<size_t>(ranks));
  for (int r = 0; r < ranks; ++r) all[static_cast<size_t>(r)] = r;
  comm.create_groups({all, {0, 1}});  // groups 0 and 1, in this order
  std::vector<Series> series = {all_reduce_series("all_reduce", all, 0), all_reduce_series("all_reduce_pair", {0, 1}, 1)};
  Series p2p;
  p2p.name = "send_recv";
  p2p.members = {0, 1};
  series.push_back(p2p);

  int64_t max_bytes = kMinBytes;  // the largest 4 KiB x 4^k not above --max-mib
  while (max_bytes * 4 <= o.max_mib << 20) max_bytes *= 4;
  auto one_mem = ffrt::allocate(ctx, 256);
  const View one = ffrt::whole_view(one_mem.get(), ffrt::DType::f32, {1});
  // Zeros: sums of them stay finite however often they are all-reduced.
  auto mem = ffrt::allocate(ctx, static_cast<size_t>(max_bytes));
  ffrt::synchronize(ctx);
  if (!one_node(comm, ctx, one))
    throw SharedError("the job spans several nodes; ffrt_comm_profile measures the links of one node: run it "
                      "with every rank on one host");
  const std::string device = ffrt::device_name(ctx);
  if (comm.rank() == 0) {
    std::printf("%d ranks on %s (%s backend), %d reps after %d warm-up, 4 KiB to %lld MiB\n\n", ranks, device.c_str(),
                ffrt::backend_name(), o.reps, o.warmup, static_cast<long long>(max_bytes >> 20));
    std::fflush(stdout);
  }
  // --graph (cuda): the kernel before each phase, and those kernels' own time.
  std::optional<GraphTiming> timing;
  auto scratch_mem = ffrt::allocate(ctx, 256);
  if (o.graph) {
    timing.emplace();
    timing->scratch = ffrt::whole_view(scratch_mem.get(), ffrt::DType::f32, {64});
    timing->kernel(ctx);
    ffrt::synchronize(ctx);
    const std::shared_ptr<ffrt::Graph> kernels = record(comm, ctx, *timing, nullptr, one);
    (void)time_replay(comm, ctx, *kernels, one);
    std::vector<double> t;
    for (int i = 0; i < o.reps; ++i) t.push_back(time_replay(comm, ctx, *kernels, one));
    timing->kernels_us = median(t);
    if (comm.rank() == 0) {
      std::printf("phases timed in CUDA graphs of %d, each after a kernel (%.1f us for the kernels alone, rank 0)\n\n",
                  kPhasesPerRep, timing->kernels_us);
      std::fflush(stdout);
    }
  }
  const GraphTiming* graphs = timing ? &*timing : nullptr;
  for (Series& s : series) {
    for (int64_t bytes = kMinBytes; bytes <= max_bytes; bytes *= 4) {
      const View buf = ffrt::whole_view(mem.get(), ffrt::DType::f32, {bytes / 4});
      const double t = measure(comm, ctx, o, s, buf, one, graphs);
      s.bytes.push_back(bytes);
      s.median_us.push_back(t);
    }
    if (comm.rank() != 0) continue;
    fit(s);
    print_series(s);
  }
  // A phase of kGrouped all-reduces of 4 KiB over every rank against a lone one: what each
  // collective after the first of a phase adds (the machine's grouped_collective_us). A program's
  // phases hold many: a bucket of gradients, a transformer's dozens of small ones.
  Series grouped = all_reduce_series("all_reduce_x8", all, 0);
  grouped.count = kGrouped;
  const double t_grouped = measure(comm, ctx, o, grouped,
                                   ffrt::whole_view(mem.get(), ffrt::DType::f32, {kGrouped * kMinBytes / 4}), one, graphs);
  double grouped_us = 0;
  if (comm.rank() == 0) {
    const double lone = series.front().median_us.front();
    grouped_us = std::max(0.0, (t_grouped - lone) / (kGrouped - 1));
    std::printf("grouped: a phase of %d all-reduces of 4 KiB over ranks %s: %.2f us, a lone one %.2f us: each after the "
                "first adds %.3g us\n",
                kGrouped, ranks_str(all).c_str(), t_grouped, lone, grouped_us);
    std::fflush(stdout);
  }
  // Compute beside the largest all-reduce over every rank (AlexNet's gradients are 244 MB).
  const View big = ffrt::whole_view(mem.get(), ffrt::DType::f32, {max_bytes / 4});
  const Overlap overlap =
      measure_overlap(comm, ctx, o, big, comm.rank() == 0 ? series.front().median_us.back() : 0.0, one);
  if (comm.rank() == 0) {
    std::printf("overlap: %d GEMMs of %lld x %lld: %.1f us alone, %.1f us beside an all-reduce of %lld MiB over ranks "
                "%s (%.1f us): compute x%.3f beside communication\n",
                overlap.count, static_cast<long long>(overlap.n), static_cast<long long>(overlap.n), overlap.alone_us,
                overlap.beside_us, static_cast<long long>(max_bytes >> 20), ranks_str(all).c_str(), overlap.phase_us,
                overlap.slowdown);
    std::fflush(stdout);
  }
  if (comm.rank() == 0 && !o.out.empty()) write_machine(o, device, ranks, series, grouped_us, overlap, graphs);
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<Comm> comm;
  try {
    comm = Comm::init(&argc, &argv);
  } catch (const ffrt::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  Options o;
  try {
    o = parse(argc, argv);
    if (!o.help && comm->size() < 2)
      throw SharedError("measuring links needs at least 2 ranks: mpirun -np N " + std::string(argv[0]) +
                       " with N >= 2 (this job has " + std::to_string(comm->size()) + ")");
  } catch (const SharedError& e) {
    // Every rank saw the same flags: each leaves on its own, without aborting the job.
    if (comm->rank() == 0) std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  if (o.help) {
    if (comm->rank() == 0) std::printf(kUsage, argv[0], ffrt::backend_name());
    return 0;
  }
  try {
    run(*comm, o);
  } catch (const SharedError& e) {
    if (comm->rank() == 0) std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const ffrt::Error& e) {
    comm->abort(e.what());  // one rank's failure: the others must not wait for it
  }
  return 0;
}
