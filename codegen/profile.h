// Codegen for ffc profile: a standalone CMake project whose program measures a set of kernel
// instructions on one device and writes them as a cost table (sim/cost_table.h).
//
// The kernels are copied out of the Rank IR programs the strategies compile to (a ProfileSample
// each, keyed by kernel_key); the project is `kernels.cc` — the ops' descriptors, each kernel's
// operands as boxes of global tensors, its key — a `main.cc` calling the runtime's profiling driver
// (ffrt/profile.h), and the same `CMakeLists.txt` as ffc compile's (codegen/cxx.h). The same
// inputs give byte-identical files.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/rank_ir.h"

namespace ffc {

/// An operand of a kernel to measure: a box of a global tensor, or absent.
struct ProfileOperand {
  bool present = false;
  DType dtype = DType::f32;
  std::vector<int64_t> full;  ///< the global tensor's extents
  Box box;
  int64_t classes = 0;  ///< i64 operands: ids and labels lie in [0, classes)
};

/// One kernel instruction, self-contained: it outlives the program it was taken from.
struct ProfileSample {
  std::string key;    ///< its cost-table key (kernel_key)
  InstrKind kind = InstrKind::forward;
  int op_index = -1;  ///< the op's index in the model's graph (the same in every compiled program)
  Op op;
  std::string where;  ///< for the generated comment: the part, rank and program it was found in
  std::vector<ProfileOperand> in, out, params, saved, dout, din, dparams;
  ProfileOperand stats;
  bool update_state = true;
  uint32_t overwrite = 0;
};

/// Copies a kernel instruction (forward, forward_stats, backward_stats, backward) of rank `r` out
/// of program `p`.
ProfileSample sample_kernel(const Graph& g, const Program& p, const RankProgram& r, const Instr& in, std::string key,
                            std::string where);

struct ProfileEmitOptions {
  std::string name;        ///< the executable's name
  std::string model;       ///< the model's name
  std::string model_path;  ///< for the headers
  std::string about;       ///< what the kernels were collected from (lines), printed by the program
  std::string card;        ///< the card to file times under; empty: the device's (ffrt::card_name)
  bool tf32 = false;       ///< the program's default --math
  std::string source_dir;  ///< the ffc source tree whose runtime/ the project builds
};

/// The project's files: relative path -> contents. `kernels` are distinct by key.
std::map<std::string, std::string> emit_profile_project(const std::vector<ProfileSample>& kernels,
                                                        const ProfileEmitOptions& o);

}  // namespace ffc
