// Machine descriptions: the presets and the key = value file format.
#include "sim/machine.h"

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "ir/diag.h"

namespace ffc {

namespace {

constexpr double kGiB = 1 << 30;

/// A key of the file format: its name, the unit its value is written in (a factor to the
/// internal unit), whether zero is allowed, and the field it sets.
struct NumberKey {
  std::string_view name;
  double Machine::*field;
  double unit;
  bool zero_ok;
};

const std::vector<NumberKey>& number_keys() {
  static const std::vector<NumberKey> keys{
      {"intra_node_bandwidth_gb_s", &Machine::intra_node_bandwidth, 1e9, false},
      {"intra_node_latency_us", &Machine::intra_node_latency, 1e-6, true},
      {"inter_node_bandwidth_gb_s", &Machine::inter_node_bandwidth, 1e9, false},
      {"inter_node_latency_us", &Machine::inter_node_latency, 1e-6, true},
      {"gpu_memory_gib", &Machine::gpu_memory, kGiB, false},
      {"fp32_tflop_s", &Machine::fp32_flops, 1e12, false},
      {"tf32_tflop_s", &Machine::tf32_flops, 1e12, false},
      {"memory_bandwidth_gb_s", &Machine::memory_bandwidth, 1e9, false},
      {"launch_us", &Machine::launch, 1e-6, true},
      {"grouped_collective_us", &Machine::grouped_collective, 1e-6, true},
      {"phase_latency_us", &Machine::phase_latency, 1e-6, true},
      {"overlap_slowdown", &Machine::overlap_slowdown, 1, false},
      {"job_launch_us", &Machine::job_launch, 1e-6, true},
  };
  return keys;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string known_keys() {
  std::string s = "base, name, card, nodes, gpus_per_node";
  for (const NumberKey& k : number_keys()) s += fmt::format(", {}", k.name);
  return s;
}

}  // namespace

std::string Machine::describe() const {
  std::string where = nodes > 0 ? fmt::format("{} node{} x {} GPUs", nodes, nodes == 1 ? "" : "s", gpus_per_node)
                                : fmt::format("{} GPUs per node", gpus_per_node);
  const std::string card_note = card == name ? "" : fmt::format(" ({})", card);
  return fmt::format("{}{}: {}, {:.0f} GiB, fp32 {:.0f} / tf32 {:.0f} TFLOP/s, memory {:.0f} GB/s, "
                     "links {:.0f} GB/s {:.1f} us (node), {:.0f} GB/s {:.1f} us (between nodes), launch {:.1f} us",
                     name, card_note, where, gpu_memory / kGiB, fp32_flops / 1e12, tf32_flops / 1e12, memory_bandwidth / 1e9,
                     intra_node_bandwidth / 1e9, intra_node_latency * 1e6, inter_node_bandwidth / 1e9,
                     inter_node_latency * 1e6, launch * 1e6) +
         (grouped_collective >= 0 ? fmt::format(", {:.1f} us a grouped collective", grouped_collective * 1e6) : "") +
         (phase_latency >= 0 ? fmt::format(", {:.1f} us a phase", phase_latency * 1e6) : "") +
         (overlap_slowdown != 1 ? fmt::format(", compute x{:.2f} beside communication", overlap_slowdown) : "") +
         (job_launch > 0 ? fmt::format(", {:.2f} us more a launch in a job", job_launch * 1e6) : "");
}

// The presets' links are ffrt_comm_profile_cuda's on this project's 4-GPU hosts (bench/RESULTS.md,
// sessions 6 and 7): NCCL over NVLink, a ring step's latency, a phase's fixed cost, what a grouped
// all-reduce adds, and how much slower compute runs beside an all-reduce. The fields' own
// defaults (Machine{}) leave the last three out: the bare ring model.
namespace {

struct MeasuredLinks {
  double gb_s, step_us, phase_us, grouped_us, slowdown;
};

Machine with_links(Machine m, const MeasuredLinks& l) {
  m.intra_node_bandwidth = l.gb_s * 1e9;
  m.intra_node_latency = l.step_us * 1e-6;
  m.phase_latency = l.phase_us * 1e-6;
  m.grouped_collective = l.grouped_us * 1e-6;
  m.overlap_slowdown = l.slowdown;
  return m;
}

}  // namespace

std::optional<Machine> machine_preset(std::string_view name) {
  Machine m;  // the compute and memory defaults are an H100 SXM's
  // A replayed graph's dependent launches, timed with CUPTI (bench/ktrace) in the transformer's
  // data-parallel program on 4 x H200, 2026-11-28: a median gap of 0.45 us in the 4-rank job
  // against 0.11 us in the 1-rank program at the same per-rank batch, the same kernels' durations
  // equal; 96 us more a step, over the 236 launches the simulator counts in that program (its
  // cost table's): 0.41 us each.
  m.job_launch = 0.41e-6;
  // 4 x H100 80GB HBM3, 2026-11-28: three runs gave 317-320 GB/s, phases of 8.9-16.1 us (the
  // middle one here), grouped all-reduces 0.9-2.4 us, and compute x1.97-1.98 beside a 256 MiB
  // all-reduce.
  if (name == "h100") return with_links(m, {318, 0.19, 13.6, 1.6, 1.97});
  if (name == "h200") {
    m.name = "h200";
    m.card = "h200";
    m.gpu_memory = 141.0 * kGiB;
    m.memory_bandwidth = 4.8e12;
    // 4 x H200, 2026-11-27 (bench/data/h200x4-session6); the slowdown beside communication was
    // measured on the H100s (the same 132 SMs and NCCL).
    return with_links(m, {327, 0.40, 13.8, 1.38, 1.97});
  }
  return std::nullopt;
}

Machine parse_machine(std::string_view text, const std::string& file) {
  Machine m = *machine_preset("h100");  // without `base`
  std::set<std::string, std::less<>> seen;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    const SourceLoc loc{file, line_no};
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) user_error(loc, "expected `key = value`, got '{}'", line);
    std::string_view key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    if (key.empty()) user_error(loc, "a key is missing before '='");
    if (value.empty()) user_error(loc, "'{}' has no value", key);
    if (!seen.insert(std::string(key)).second) user_error(loc, "'{}' is given twice", key);

    if (key == "base") {
      if (seen.size() != 1) user_error(loc, "'base' must come before every other key");
      std::optional<Machine> preset = machine_preset(value);
      if (!preset) user_error(loc, "unknown preset '{}' (known: h100, h200)", value);
      m = *preset;
      continue;
    }
    if (key == "name" || key == "card") {
      if (value.find_first_of(" \t") != std::string_view::npos) user_error(loc, "'{}' must be one word, got '{}'", key, value);
      (key == "name" ? m.name : m.card) = std::string(value);
      continue;
    }
    if (key == "nodes" || key == "gpus_per_node") {
      if (key == "nodes" && value == "auto") {
        m.nodes = 0;
        continue;
      }
      int v = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
      if (ec != std::errc() || p != value.data() + value.size() || v < 1 || v > (1 << 16))
        user_error(loc, "'{}' takes a whole number from 1 to 65536{}, got '{}'", key,
                   key == "nodes" ? " or `auto`" : "", value);
      (key == "nodes" ? m.nodes : m.gpus_per_node) = v;
      continue;
    }
    if (key == "grouped_collective_us" && value == "ring") {  // the bare ring model: each collective its latency
      m.grouped_collective = -1;
      continue;
    }
    const NumberKey* k = nullptr;
    for (const NumberKey& nk : number_keys())
      if (nk.name == key) k = &nk;
    if (!k) user_error(loc, "unknown key '{}' (known: {})", key, known_keys());
    double v = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc() || p != value.data() + value.size() || !(v == v) || v > 1e15)
      user_error(loc, "'{}' takes a number, got '{}'", key, value);
    if (key == "overlap_slowdown" && v < 1) user_error(loc, "'overlap_slowdown' must be 1 or more, got {}", value);
    if (v < 0 || (v == 0 && !k->zero_ok))
      user_error(loc, "'{}' must be {}, got {}", key, k->zero_ok ? "zero or more" : "positive", value);
    // A rate of 1e-320 is positive, and makes every transfer take forever: no key means that.
    if (v > 0 && v < 1e-6) user_error(loc, "'{}' must be {}at least 1e-6, got {}", key, k->zero_ok ? "0 or " : "", value);
    m.*(k->field) = v * k->unit;
  }
  return m;
}

Machine load_machine(const std::string& arg) {
  if (arg.empty()) return *machine_preset("h100");
  if (std::optional<Machine> preset = machine_preset(arg)) return *preset;
  std::ifstream in(arg, std::ios::binary);
  if (!in) user_error(SourceLoc{arg}, "cannot read the machine file (or name a preset: h100, h200)");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_machine(ss.str(), arg);
}

}  // namespace ffc
