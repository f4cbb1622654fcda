// Codegen: the Rank IR as a standalone CMake project (ffc compile).
//
// One `rank_K.cc` per rank — its buffers at their planned offsets and its set-up and step as
// straight-line runtime calls, a comment per step naming the op and part — a `model.cc` with the op
// descriptors, parameters, inputs and groups, a `model.h` declaring them, a `main.cc` calling the
// runtime's driver (ffrt/program.h), and a `CMakeLists.txt` that builds libffrt from the ffc source
// tree with the program. The same inputs give byte-identical files.
#pragma once

#include <map>
#include <string>

#include "ir/graph.h"
#include "ir/rank_ir.h"

namespace ffc {

struct EmitOptions {
  std::string name;           ///< the executable's name
  std::string model_path;     ///< for the headers: what the program was generated from
  std::string strategy_path;  ///< empty: data parallel
  std::string strategy_table; ///< printed by the program at start
  std::string source_dir;     ///< the ffc source tree whose runtime/ the project builds
};

/// The project's files: relative path -> contents.
std::map<std::string, std::string> emit_project(const Graph& g, const Program& p, const EmitOptions& opts);

/// Writes the files under `dir` (created if needed); a UserError names a file it cannot write.
void write_project(const std::map<std::string, std::string>& files, const std::string& dir);

}  // namespace ffc
