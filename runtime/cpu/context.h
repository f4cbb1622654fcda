// The cpu backend's context. The helpers its kernel files share are in loops.h.
#pragma once

#include "ffrt/kernels.h"

namespace ffrt {

struct Context {
  int threads = 1;
};

}  // namespace ffrt
