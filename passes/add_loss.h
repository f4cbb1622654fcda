// Adds the training loss to a model that ends at its network output.
//
// A model from ONNX, or a .ff model without a loss op, ends at its output (logits, or the softmax
// of them). Training needs a loss and an input for the labels; this pass appends both.
#pragma once

#include <optional>
#include <string>

#include "ir/graph.h"

namespace ffc {

enum class LossKind { cross_entropy, mse };

/// Parses `cross_entropy` or `mse`; nullopt otherwise.
std::optional<LossKind> parse_loss_kind(const std::string& s);

/// The loss op of a graph (a softmax_cross_entropy or mse_loss op), or -1.
int find_loss(const Graph& g);

/// The network output: the one f32 tensor nothing reads (inputs aside). A UserError when there
/// are none or several.
TensorId network_output(const Graph& g);

/// Ensures the graph has a loss. A graph with a loss op is left as it is. Otherwise appends an
/// input `labels` and a loss on the network output: cross entropy (the default for outputs of rank
/// 2 or more) takes i64 labels of the output's shape without its class dim — on the logits when the
/// output is a softmax over its last dim, as FlexFlow does; mse takes f32 targets of its shape.
/// Returns the loss op's index.
int add_loss(Graph& g, std::optional<LossKind> kind);

}  // namespace ffc
