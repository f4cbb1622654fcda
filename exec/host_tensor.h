// Host tensors for ffc's in-process executors: libffrt's HostArray, and views of it as a box of a
// larger tensor.
#pragma once

#include <cstdint>
#include <vector>

#include "ffrt/npy.h"
#include "ir/types.h"

namespace ffc {

using HostTensor = ffrt::HostArray;

/// The runtime's element type of an IR element type (the IR's f16/bf16 do not reach the kernels).
inline ffrt::DType rt_dtype(DType t) {
  return t == DType::i64 ? ffrt::DType::i64 : t == DType::f64 ? ffrt::DType::f64 : ffrt::DType::f32;
}

/// A view of the whole array as the box [lo, lo + shape) of a tensor with extents `full`.
inline ffrt::View box_view(HostTensor& t, const std::vector<int64_t>& lo, const std::vector<int64_t>& full) {
  return ffrt::make_view(t.bytes.data(), t.dtype, static_cast<int>(t.shape.size()), full.data(), lo.data(),
                         t.shape.data());
}

}  // namespace ffc
