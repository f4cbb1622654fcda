// Measured kernel costs (`--costs DB`): a versioned text file, one kernel a line, keyed by the
// card, the math mode and what decides a kernel's time — op kind, kernel, dtype, attributes and
// operand extents (`kernel_key`). Tables merge: a later entry for the same key replaces an earlier
// one. MeasuredCostModel answers from the table where it can and elsewhere from the analytical
// model, scaled by the op's measured ratio once calibrated. The format is in docs/simulator.md;
// `ffc profile` writes it (codegen/profile.h).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <tuple>

#include "sim/cost.h"

namespace ffc {

/// The key of a kernel instruction in a cost table, independent of the rank it runs on:
/// `conv2d forward f32 {out_channels=64, kernel=[11,11], ...} in=16x3x224x224 out=16x64x55x55 params=64x3x11x11,64`.
std::string kernel_key(const Graph& g, const RankProgram& r, const Instr& in);

class CostTable {
 public:
  /// The file format's version written (the first line: `ffc-costs 2`). Version 1 (no launches
  /// column) is still read, each entry one launch.
  static constexpr int kVersion = 2;

  struct Entry {
    double seconds = 0;
    /// Device launches (kernels, memsets, copies) one call issues, as the profile counted them.
    double launches = 1;
  };

  /// Adds an entry, replacing one with the same card, math and key.
  void set(const std::string& card, Math math, const std::string& key, double seconds, double launches = 1);
  /// The measured entry of a kernel, or null.
  const Entry* find(const std::string& card, Math math, const std::string& key) const;
  size_t size() const { return entries_.size(); }
  /// Adds every entry of `other`, its entries replacing this table's.
  void merge(const CostTable& other);

  /// The text form, entries sorted: byte-identical for equal tables.
  std::string print() const;
  /// Parses the text form; a UserError at `file:line` for bad input.
  static CostTable parse(std::string_view text, const std::string& file);
  /// Reads and parses a file.
  static CostTable load(const std::string& path);

 private:
  std::map<std::tuple<std::string, Math, std::string>, Entry> entries_;
};

/// Measured kernel times where the table has them (for the machine's card and the math mode),
/// the analytical model's for everything else, scaled after `calibrate` by the op's ratio.
class MeasuredCostModel : public CostModel {
 public:
  MeasuredCostModel(const CostTable& table, const AnalyticalCostModel& fallback)
      : table_(table), fallback_(fallback) {}

  double kernel(const Graph& g, const RankProgram& r, const Instr& in) const override;
  /// The table's count for a measured kernel; the analytical model's otherwise.
  double launches(const Graph& g, const RankProgram& r, const Instr& in) const override;
  double job_launch() const override { return fallback_.job_launch(); }
  double overlap_slowdown() const override { return fallback_.overlap_slowdown(); }
  double move(const RankProgram& r, const Instr& in) const override { return fallback_.move(r, in); }
  double update(const RankProgram& r, const Instr& in) const override { return fallback_.update(r, in); }
  double phase(const Program& p, std::span<const PhaseMember> members) const override {
    return fallback_.phase(p, members);
  }
  /// Whether the table has this kernel.
  bool measured(const Graph& g, const RankProgram& r, const Instr& in) const;

  /// How many of a program's kernel instructions (over every rank) the table has.
  struct Coverage {
    int64_t measured = 0;
    int64_t kernels = 0;
    bool complete() const { return measured == kernels; }
  };
  Coverage coverage(const Graph& g, const Program& p) const;

  /// Learns, per op (by name) and kernel kind, the ratio of the measured to the analytical time of
  /// `p`'s kernels that the table has; a kernel the table lacks then costs its analytical time
  /// times its op's ratio (unscaled where `p` measured none). ffc simulate and ffc search calibrate
  /// on data parallelism: the roofline is a floor that real kernels run well above, by a factor
  /// that belongs more to the op than to the part shape (docs/simulator.md).
  void calibrate(const Graph& g, const Program& p);

 private:
  const CostTable& table_;
  const AnalyticalCostModel& fallback_;
  std::map<std::pair<std::string, int>, double> scale_;
};

}  // namespace ffc
