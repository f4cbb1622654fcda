// The cpu backend's context. The helpers its kernel files share are in loops.h.
#pragma once

#include <chrono>
#include <vector>

#include "ffrt/kernels.h"

namespace ffrt {

struct Context {
  int threads = 1;
  std::vector<std::chrono::steady_clock::time_point> marks;  ///< mark(): host times
};

}  // namespace ffrt
