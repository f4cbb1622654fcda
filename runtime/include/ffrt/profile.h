// The driver of a profiling program (ffc profile): the kernels a model's strategies can run,
// measured one by one on one device, written as a cost table the simulator reads.
//
// Generated code (ffc profile) describes every distinct kernel instruction of the programs it
// compiled — its op, which kernel (forward, forward_stats, backward_stats, backward), its operands
// as boxes of global tensors, and its key in the cost table — and calls profile_main. The driver
// gives each operand a dense buffer of its box filled with synthetic data (ids and labels in
// range), runs the kernel a few times to warm up, then times repetitions between marks on the
// backend's stream (ffrt::mark: cuda events, or the host clock) and writes the median per call in
// the format of ffc's sim/cost_table.h (`ffc-costs 2`, then `CARD MATH MICROSECONDS LAUNCHES KEY` lines).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "ffrt/ops.h"
#include "ffrt/view.h"

namespace ffrt {

/// An operand of a measured kernel: a box of a global tensor, or absent (a part that does not need
/// it; a gradient that is not wanted).
struct ProfileOperand {
  bool present = false;
  DType dtype = DType::f32;
  int rank = 0;
  int64_t full[kMaxRank] = {};
  int64_t lo[kMaxRank] = {};
  int64_t size[kMaxRank] = {};
  int64_t classes = 0;  ///< i64 operands: ids and labels are drawn in [0, classes)
};

/// A present operand: a dense buffer of the box [lo, lo + size) of a tensor with extents `full`.
ProfileOperand operand(DType dtype, std::initializer_list<int64_t> full, std::initializer_list<int64_t> lo,
                       std::initializer_list<int64_t> size, int64_t classes = 0);
/// An absent operand with the tensor's extents and the box the part would have read.
ProfileOperand absent(DType dtype, std::initializer_list<int64_t> full, std::initializer_list<int64_t> lo,
                      std::initializer_list<int64_t> size);
/// An absent gradient (OpViews' nullopt).
ProfileOperand absent();

/// One distinct kernel instruction.
struct ProfileKernel {
  enum Kind { forward = 0, forward_stats, backward_stats, backward };
  std::string key;  ///< its key in the cost table (ffc's kernel_key)
  Kind kind = forward;
  int op = 0;       ///< index into ProfileInfo::ops
  std::vector<ProfileOperand> in, out, params, saved, dout, din, dparams;
  ProfileOperand stats;
  bool update_state = true;
  uint32_t overwrite = 0;
};

/// Everything generated code tells the driver.
struct ProfileInfo {
  std::string name;   ///< the model's
  std::string about;  ///< what the kernels were collected from, printed at start
  std::string card;   ///< the card to file the times under; empty: the backend's device (device_name)
  bool tf32 = false;  ///< the default --math
  std::vector<OpDesc> ops;
  std::vector<ProfileKernel> kernels;  ///< sorted by key: the table comes out in the order ffc prints one
};

/// A one-word card name from a device's name: the first word holding a digit, lowercased
/// ("NVIDIA H100 80GB HBM3" -> "h100", "NVIDIA A100-SXM4-80GB" -> "a100"), else the whole name
/// lowercased with other characters than letters and digits as '-' ("cpu"). The presets of
/// ffc simulate --machine name their cards so ("h100", "h200").
std::string card_name(const std::string& device);

/// The emitted program's main: flags, then every kernel measured, the table written. Returns the
/// exit code.
int profile_main(int argc, char** argv, const ProfileInfo& p);

}  // namespace ffrt
