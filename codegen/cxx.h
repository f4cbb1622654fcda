// C++ and CMake text that the emitters share (codegen/emit.cc for ffc compile, codegen/profile.cc
// for ffc profile): literals, op descriptors, and the CMakeLists.txt that links libffrt.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/box.h"
#include "ir/graph.h"

namespace ffc {

/// A C++ string literal holding `text`.
std::string c_string(const std::string& text);
/// A braced list of integers: `{2, 1, 8, 8}`.
std::string ints(const std::vector<int64_t>& v);
/// The ffrt::DType constant of a dtype.
std::string dtype_expr(DType t);
/// A float literal that reads back as the same float.
std::string float_lit(double x);
/// A box's low corner and extents.
std::vector<int64_t> lo_of(const Box& b);
std::vector<int64_t> size_of(const Box& b);

/// A function `ffrt::OpDesc op_<index>()` returning the op's descriptor (the attributes its kernels
/// read), then a blank line.
std::string op_desc_fn(const Op& op, size_t index);

/// A program's CMakeLists.txt: `header` (comment lines saying what generated it and how to build
/// it), then a project `name` whose executable of that name builds from `sources` and links libffrt
/// — a build of it (-Dffrt_DIR) or built from the ffc source tree `source_dir` — on the backend
/// -DFFRT_BACKEND names (cuda where nvcc is found, else cpu).
std::string cmake_project(const std::string& header, const std::string& name, const std::vector<std::string>& sources,
                          const std::string& source_dir);

}  // namespace ffc
