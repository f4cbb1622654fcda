// C++ and CMake text that the emitters share.
#include "codegen/cxx.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "exec/op_kernels.h"
#include "ir/op_table.h"

namespace ffc {

std::string c_string(const std::string& text) {
  std::string s = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') s += '\\';
    s += c;
  }
  return s + "\"";
}

std::string ints(const std::vector<int64_t>& v) { return fmt::format("{{{}}}", fmt::join(v, ", ")); }

std::string dtype_expr(DType t) {
  return t == DType::i64 ? "ffrt::DType::i64" : t == DType::f64 ? "ffrt::DType::f64" : "ffrt::DType::f32";
}

std::string float_lit(double x) {
  std::string s = fmt::format("{:.9g}", x);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s + "f";
}

std::vector<int64_t> lo_of(const Box& b) {
  std::vector<int64_t> v;
  for (const Range& r : b.r) v.push_back(r.lo);
  return v;
}
std::vector<int64_t> size_of(const Box& b) {
  std::vector<int64_t> v;
  for (const Range& r : b.r) v.push_back(r.size());
  return v;
}

std::string op_desc_fn(const Op& op, size_t index) {
  const ffrt::OpDesc d = op_desc(op), def;
  std::string s = fmt::format("ffrt::OpDesc op_{}() {{  // {} ({})\n  ffrt::OpDesc d;\n", index, op.name, op.info().name);
  s += fmt::format("  d.kind = ffrt::OpKind::{};\n  d.name = \"{}\";\n", op.info().name, op.name);
  if (d.act != def.act) s += fmt::format("  d.act = static_cast<ffrt::Act>({});\n", static_cast<int>(d.act));
  if (d.saves_pre_activation) s += "  d.saves_pre_activation = true;\n";
  if (op.kind == OpKind::conv2d)
    s += fmt::format("  d.conv = {{{{{}, {}}}, {{{}, {}}}, {{{}, {}}}, {{{}, {}}}, {}}};\n", d.conv.kernel[0],
                     d.conv.kernel[1], d.conv.stride[0], d.conv.stride[1], d.conv.padding[0], d.conv.padding[1],
                     d.conv.dilation[0], d.conv.dilation[1], d.conv.groups);
  if (op.kind == OpKind::pool2d)
    s += fmt::format("  d.pool = {{{{{}, {}}}, {{{}, {}}}, {{{}, {}}}, {}, {}}};\n", d.pool.kernel[0], d.pool.kernel[1],
                     d.pool.stride[0], d.pool.stride[1], d.pool.padding[0], d.pool.padding[1],
                     d.pool.max ? "true" : "false", d.pool.count_include_pad ? "true" : "false");
  if (op.kind == OpKind::matmul)
    s += fmt::format("  d.matmul = {{{}, {}}};\n", d.matmul.transpose_a ? "true" : "false",
                     d.matmul.transpose_b ? "true" : "false");
  if (d.eps != def.eps) s += fmt::format("  d.eps = {};\n", float_lit(d.eps));
  if (d.momentum != def.momentum) s += fmt::format("  d.momentum = {};\n", float_lit(d.momentum));
  if (d.affine) s += "  d.affine = true;\n";
  if (d.rate != def.rate) s += fmt::format("  d.rate = {};\n", float_lit(d.rate));
  if (d.lo != def.lo) s += fmt::format("  d.lo = {};\n", float_lit(d.lo));
  if (d.hi != def.hi) s += fmt::format("  d.hi = {};\n", float_lit(d.hi));
  if (d.factor != def.factor) s += fmt::format("  d.factor = {};\n", float_lit(d.factor));
  if (d.axis != def.axis) s += fmt::format("  d.axis = {};\n", d.axis);
  if (!d.perm.empty()) s += fmt::format("  d.perm = {{{}}};\n", fmt::join(d.perm, ", "));
  return s + "  return d;\n}\n\n";
}

std::string cmake_project(const std::string& header, const std::string& name, const std::vector<std::string>& sources,
                          const std::string& source_dir) {
  return fmt::format(
      "{}"
      "cmake_minimum_required(VERSION 3.25)\nproject({} LANGUAGES C CXX)\n\n"
      "set(CMAKE_CXX_STANDARD 20)\nset(CMAKE_CXX_STANDARD_REQUIRED ON)\n"
      "if(NOT CMAKE_BUILD_TYPE)\n  set(CMAKE_BUILD_TYPE Release CACHE STRING \"Build type\" FORCE)\nendif()\n\n"
      "# libffrt: a build of it (-Dffrt_DIR=<ffc build>/runtime), or built here from the ffc source tree this\n"
      "# program was generated with. A parent project that builds several programs provides it once.\n"
      "set(FFC_SOURCE_DIR \"{}\" CACHE PATH \"the ffc source tree\")\n"
      "if(NOT TARGET ffrt_program)\n"
      "  if(DEFINED ffrt_DIR)\n"
      "    find_package(ffrt REQUIRED CONFIG)\n"
      "  else()\n"
      "    # The backend: cuda where nvcc is found, else cpu; -DFFRT_BACKEND=cpu|cuda chooses.\n"
      "    if(NOT DEFINED FFRT_BACKEND)\n"
      "      include(CheckLanguage)\n"
      "      check_language(CUDA)\n"
      "      if(CMAKE_CUDA_COMPILER)\n        set(FFRT_BACKEND cuda)\n      else()\n        set(FFRT_BACKEND cpu)\n      endif()\n"
      "    endif()\n"
      "    if(FFRT_BACKEND STREQUAL \"cuda\")\n"
      "      if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)\n"
      "        set(CMAKE_CUDA_ARCHITECTURES 90)  # H100 / H200\n"
      "      endif()\n"
      "      enable_language(CUDA)\n"
      "    endif()\n"
      "    add_subdirectory(${{FFC_SOURCE_DIR}}/runtime ffrt)\n"
      "  endif()\n"
      "endif()\n"
      "if(NOT DEFINED FFRT_BACKEND)\n"
      "  if(TARGET ffrt_program_cuda)\n    set(FFRT_BACKEND cuda)\n  else()\n    set(FFRT_BACKEND cpu)\n  endif()\n"
      "endif()\n"
      "set(FFRT_BACKEND ${{FFRT_BACKEND}} CACHE STRING \"the runtime backend: cpu or cuda\")\n"
      "if(FFRT_BACKEND STREQUAL \"cuda\" AND NOT TARGET ffrt_program_cuda)\n"
      "  message(FATAL_ERROR \"FFRT_BACKEND=cuda, but this libffrt was built without CUDA\")\n"
      "elseif(NOT FFRT_BACKEND MATCHES \"^(cpu|cuda)$\")\n"
      "  message(FATAL_ERROR \"FFRT_BACKEND=${{FFRT_BACKEND}}: the backends are cpu and cuda\")\n"
      "endif()\n\n"
      "add_executable({} {})\n"
      "# The rank programs are long straight-line calls into libffrt, where the work is done: -O1\n"
      "# compiles them in half the time -O3 takes.\n"
      "get_target_property(ffc_rank_sources {} SOURCES)\n"
      "list(FILTER ffc_rank_sources INCLUDE REGEX \"^rank_\")\n"
      "if(ffc_rank_sources)\n"
      "  set_source_files_properties(${{ffc_rank_sources}} PROPERTIES COMPILE_OPTIONS -O1)\n"
      "endif()\n"
      "if(FFRT_BACKEND STREQUAL \"cuda\")\n"
      "  target_link_libraries({} PRIVATE ffrt_program_cuda)\n"
      "else()\n"
      "  target_link_libraries({} PRIVATE ffrt_program)\n"
      "endif()\n",
      header, name, source_dir, name, fmt::join(sources, " "), name, name, name);
}

}  // namespace ffc
