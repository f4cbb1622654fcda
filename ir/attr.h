// Op attributes: typed values and the specs an op table entry declares for them.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ir/types.h"

namespace ffc {

/// The kind of an attribute's value.
enum class AttrKind {
  Int,     ///< `groups=2`
  Float,   ///< `eps=1e-05`
  Bool,    ///< `bias=false`
  Enum,    ///< `activation=relu`, one of the spec's names
  Ints,    ///< `kernel=[3,3]`; with a fixed length, a single number stands for all of them
  Dims,    ///< `shape=[N,16,64]`: integers or the batch symbol N
  String,  ///< `"text"`
};

/// An attribute's value; which alternative is used follows from the spec's kind (Enum and String
/// are both strings).
using AttrValue = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>, Shape>;

/// One attribute an op accepts.
struct AttrSpec {
  std::string_view name;
  AttrKind kind;
  /// The default; an attribute without one is required.
  std::optional<AttrValue> default_value;
  /// For Enum: the accepted names.
  std::vector<std::string_view> enum_values = {};
  /// For Ints: the required length (0: any length).
  int length = 0;
};

/// Prints a value in `.ff` syntax.
std::string attr_value_str(const AttrValue& v, AttrKind kind);

}  // namespace ffc
