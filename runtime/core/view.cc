// Views: construction and index arithmetic.
#include "ffrt/view.h"

#include <cstddef>

#include "ffrt/npy.h"

namespace ffrt {

int64_t View::volume() const {
  int64_t v = 1;
  for (int d = 0; d < rank; ++d) v *= size[d];
  return v;
}

bool View::contiguous() const {
  int64_t expect = 1;
  for (int d = rank - 1; d >= 0; --d) {
    if (size[d] != 1 && stride[d] != expect) return false;
    expect *= size[d];
  }
  return true;
}

int64_t View::offset_of(const int64_t* g) const {
  int64_t off = 0;
  for (int d = 0; d < rank; ++d) off += (g[d] - lo[d]) * stride[d];
  return off;
}

View make_view(void* data, DType dtype, int rank, const int64_t* full, const int64_t* lo, const int64_t* size) {
  View v;
  v.data = data;
  v.dtype = dtype;
  v.rank = rank;
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; --d) {
    v.full[d] = full[d];
    v.lo[d] = lo[d];
    v.size[d] = size[d];
    v.stride[d] = s;
    s *= size[d];
  }
  return v;
}

View make_view(void* data, DType dtype, std::initializer_list<int64_t> full, std::initializer_list<int64_t> lo,
               std::initializer_list<int64_t> size) {
  return make_view(data, dtype, static_cast<int>(full.size()), full.begin(), lo.begin(), size.begin());
}

View whole_view(void* data, DType dtype, std::initializer_list<int64_t> full) {
  int64_t zeros[kMaxRank] = {};
  return make_view(data, dtype, static_cast<int>(full.size()), full.begin(), zeros, full.begin());
}

View sub_view(const View& v, const int64_t* lo, const int64_t* size) {
  View out = v;
  for (int d = 0; d < v.rank; ++d) {
    out.lo[d] = lo[d];
    out.size[d] = size[d];
  }
  if (v.data && out.volume() > 0)
    out.data = static_cast<std::byte*>(v.data) + v.offset_of(lo) * dtype_size(v.dtype);
  return out;
}

View permute(const View& v, const int* perm) {
  View out = v;
  for (int d = 0; d < v.rank; ++d) {
    out.lo[d] = v.lo[perm[d]];
    out.size[d] = v.size[perm[d]];
    out.stride[d] = v.stride[perm[d]];
    out.full[d] = v.full[perm[d]];
  }
  return out;
}

}  // namespace ffrt
