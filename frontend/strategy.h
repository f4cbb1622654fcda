// Parallelization strategies: reading and writing strategy files (.pb binary, .pbtxt text), checking
// them against a model, and the per-op parallel configs the middle end consumes.
//
// A config gives each dim of an op's parallel shape (its output's, DESIGN.md §3) a degree; the
// product of the degrees is the number of parts, and part i runs on the i-th listed device. Ops
// a strategy leaves out are data parallel over all devices.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "ir/diag.h"
#include "ir/graph.h"

namespace ffc {

/// The config of one op as written in a strategy file.
struct OpConfig {
  std::string op;                ///< the op's name
  bool cpu = false;              ///< device_type CPU (FlexFlow's); ffc places parts on its devices either way
  std::vector<int64_t> degrees;  ///< one per parallel dim, outermost first (n, c, h, w)
  std::vector<int> devices;      ///< one per part
  std::vector<int> memory_types; ///< FlexFlow's, kept for round trips
  SourceLoc loc;                 ///< where the entry was read
};

/// A strategy file's contents, in file order.
struct Strategy {
  std::vector<OpConfig> ops;
};

/// Reads a strategy from `.pb` (binary protobuf) or `.pbtxt` (text format); other extensions are
/// tried as binary, then as text. Throws UserError with the file, line and column of a problem.
Strategy read_strategy_file(const std::string& path);
/// Parses the binary form; `file` names the source in diagnostics.
Strategy parse_strategy_binary(const std::string& bytes, const std::string& file);
/// Parses the text form.
Strategy parse_strategy_text(const std::string& text, const std::string& file);

/// The binary form.
std::string strategy_to_binary(const Strategy& s);
/// The text form, with a comment per op naming its config; `header` lines become comments on top.
std::string strategy_to_text(const Strategy& s, const std::vector<std::string>& header = {});
/// Writes `.pb` or `.pbtxt` by the path's extension (anything else: text).
void write_strategy_file(const Strategy& s, const std::string& path, const std::vector<std::string>& header = {});

/// The config every op of a graph runs with.
struct ResolvedStrategy {
  int num_devices = 1;
  std::vector<OpConfig> configs;  ///< one per graph op, in graph order
  std::vector<bool> from_file;    ///< whether the op's config was written in the strategy
};

/// The data-parallel config of an op: its batch dim split over all devices, other dims whole. (A
/// batch smaller than the device count is reported by resolve_strategy.)
OpConfig data_parallel_config(const Graph& g, const Op& op, int num_devices);

/// A random valid config for an op: on each dim it may split, a degree drawn from 1..4 (at most the
/// dim's extent, the batch's for N), at most `max_parts` parts in all; each part on a device drawn
/// uniformly from 0..devices-1, repeats allowed. The same `rng` state gives the same config.
OpConfig random_config(const Graph& g, const Op& op, int devices, int64_t batch, std::mt19937_64& rng,
                       int64_t max_parts = 8);
/// A random config for every op of a graph (a property test's strategy; a search's start).
Strategy random_strategy(const Graph& g, int devices, int64_t batch, uint64_t seed, int64_t max_parts = 8);

/// Checks a strategy against a model on `num_devices` devices and fills in data parallelism for the
/// ops it leaves out. Every problem is reported, one line each naming the op: an unknown op, a wrong
/// number of dims, a degree below 1 or above the dim's extent (the batch's when `batch` is given), a
/// split of a dim the op cannot split, a device list whose length is not the number of parts, a
/// device id out of range. Throws UserError listing them all.
ResolvedStrategy resolve_strategy(const Graph& g, const Strategy& s, int num_devices,
                                  std::optional<int64_t> batch = std::nullopt);

/// The strategy as a full file: every op of the graph, in graph order.
Strategy to_strategy(const Graph& g, const ResolvedStrategy& r);

/// `n=1 c=1 h=2 w=2`.
std::string config_str(const OpConfig& c);

/// The table of FlexFlow's README: `| conv2 | conv2d | n=1 c=1 h=2 w=2 | 0 2 1 3 |`.
std::string strategy_table(const Graph& g, const ResolvedStrategy& r);
/// The graph with each op's configuration and devices as Graphviz (`dot -Tsvg`): a node per op
/// (name, type, config, devices; filled by how it is split), an edge per tensor with its type.
std::string strategy_dot(const Graph& g, const ResolvedStrategy& r);

}  // namespace ffc
