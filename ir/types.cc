// Element types, dimensions and tensor types of the Graph IR.
#include "ir/types.h"

#include <fmt/format.h>

namespace ffc {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i64: return "i64";
    case DType::f64: return "f64";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view s) {
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::i64})
    if (dtype_name(t) == s) return t;
  return std::nullopt;
}

int dtype_bytes(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::bf16:
    case DType::f16: return 2;
    case DType::i64:
    case DType::f64: return 8;
  }
  return 0;
}

std::string Dim::str() const { return batch ? "N" : std::to_string(value); }

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ',';
    out += s[i].str();
  }
  return out + "]";
}

int64_t num_elements(const Shape& s, int64_t batch_size) {
  int64_t n = 1;
  for (const Dim& d : s) n *= d.bind(batch_size);
  return n;
}

std::vector<int64_t> bind_shape(const Shape& s, int64_t batch_size) {
  std::vector<int64_t> out;
  out.reserve(s.size());
  for (const Dim& d : s) out.push_back(d.bind(batch_size));
  return out;
}

uint32_t batch_dims(const Shape& s) {
  uint32_t mask = 0;
  for (size_t d = 0; d < s.size(); ++d)
    if (s[d].batch) mask |= 1u << d;
  return mask;
}

bool has_batch(const Shape& s) {
  for (const Dim& d : s)
    if (d.batch) return true;
  return false;
}

std::string TensorType::str() const { return fmt::format("{}{}", dtype_name(dtype), shape_str(shape)); }

}  // namespace ffc
