// How ffc runs an op of its Graph IR on libffrt: the op's descriptor for the runtime's op kernels
// (ffrt/ops.h), from its attributes. The runtime holds the kernels, so that ffc's executors and the
// programs it emits run the same code; the IR does not depend on the runtime.
#pragma once

#include <vector>

#include "ffrt/ops.h"
#include "ir/graph.h"

namespace ffc {

using OpViews = ffrt::OpViews;
using StepInfo = ffrt::StepInfo;

/// The runtime's descriptor of an op.
ffrt::OpDesc op_desc(const Op& op);

/// The descriptors of every op of a graph, in graph order.
std::vector<ffrt::OpDesc> op_descs(const Graph& g);

}  // namespace ffc
