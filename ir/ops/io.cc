// Op table: the input op, a tensor fed from outside (samples, labels, token ids).
#include "ir/ops/families.h"
#include "ir/ops/helpers.h"

namespace ffc::ops {

const OpInfo& io_input() {
  static const OpInfo info{
      .kind = OpKind::input,
      .name = "input",
      .min_inputs = 0,
      .max_inputs = 0,
      .attrs = {},
      .infer = [](const Op& op, std::span<const TensorType>, std::span<const TensorType> declared) {
        if (declared.empty() || declared[0].shape.empty())
          fail(op, "an input needs its type written after it, e.g. `: f32[N,3,224,224]`");
        const Shape& s = declared[0].shape;
        for (size_t d = 0; d < s.size(); ++d) {
          if (!s[d].batch && s[d].value < 1) fail(op, "dim {} of its type has extent {}", d, s[d].value);
          if (s[d].batch && d != 0) fail(op, "the batch N may only be dim 0 of an input, not dim {}", d);
        }
        return std::vector<TensorType>{declared[0]};
      },
  };
  return info;
}

}  // namespace ffc::ops
