// The op table: everything ffc knows about an op kind, in one entry.
//
// Adding an op means adding one line to FFRT_OPS (ffrt/op_list.h), one OpInfo in the family file
// under ir/ops/ (its operands, attributes, shape inference, verifier, parameters, splittable dims,
// box rules and saved state) and its kernels to the runtime (ffrt/ops.h). Passes ask the table; they
// do not switch on op kinds.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ffrt/op_list.h"
#include "ir/attr.h"
#include "ir/box.h"
#include "ir/graph.h"
#include "ir/types.h"

namespace ffc {

// X(identifier, family): every op kind, in the order ffc documents them (the list the runtime's
// kernels dispatch on too).
#define FFC_OPS(X) FFRT_OPS(X)

enum class OpKind : int {
#define FFC_OP_ENUM(id, family) id,
  FFC_OPS(FFC_OP_ENUM)
#undef FFC_OP_ENUM
};

/// How a parameter's initial values are drawn (by the runtime's counter-based generator).
enum class Init {
  zeros,
  ones,
  uniform_fan_in,  ///< U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for conv/linear weights and biases
  normal,          ///< N(0, 1): PyTorch's embedding
};

/// A parameter or persistent state tensor of an op.
struct ParamSpec {
  std::string_view name;  ///< `weight`, `bias`, `running_mean`, ...
  Shape shape;            ///< Fixed extents only.
  Init init = Init::zeros;
  int64_t fan_in = 1;
  bool trainable = true;  ///< false for running statistics
};

/// An op with its tensor extents bound to a concrete batch size: what box rules work on.
struct BoundOp {
  const Op& op;
  std::vector<std::vector<int64_t>> in;   ///< extents of each input
  std::vector<std::vector<int64_t>> out;  ///< extents of each output
};

class GradBuilder;  // autodiff's builder (passes/autodiff)

/// The table entry of one op kind.
struct OpInfo {
  OpKind kind;
  std::string_view name;
  int min_inputs = 1;
  int max_inputs = 1;  ///< -1: any number
  int num_outputs = 1;
  std::vector<AttrSpec> attrs;

  /// The number of outputs, for kinds where the attributes decide it (split's `sizes`); null:
  /// `num_outputs`. Called on ops whose attribute values have their specs' kinds.
  int (*outputs_from_attrs)(const Op& op) = nullptr;

  /// Infers the output types from the input types and attributes, checking everything the op
  /// requires of them; throws UserError naming the op. `declared` holds the outputs' current types
  /// (the `input` op takes its type from there).
  std::vector<TensorType> (*infer)(const Op& op, std::span<const TensorType> inputs,
                                   std::span<const TensorType> declared) = nullptr;

  /// The op's parameters and state, in a fixed order; none when null.
  std::vector<ParamSpec> (*params)(const Op& op, std::span<const TensorType> inputs) = nullptr;

  /// The shape a parallel config splits: the output's, except for ops whose iteration space
  /// differs from their output (a loss is split like its per-sample input). Null: output 0.
  Shape (*parallel_shape)(const Op& op, std::span<const TensorType> inputs,
                          std::span<const TensorType> outputs) = nullptr;

  /// Which dims of the parallel shape a config may split (a degree above 1). Null: all of them.
  std::vector<bool> (*splittable)(const Op& op, std::span<const TensorType> inputs,
                                  std::span<const TensorType> outputs) = nullptr;

  /// The box of input `i` a part needs to compute `part` (a box of the parallel shape). May be a
  /// superset of what is read; empty when the part reads nothing of that input.
  Box (*input_box)(const BoundOp& op, int i, const Box& part) = nullptr;

  /// The box of parameter `p` a part needs. Null: the whole parameter.
  Box (*param_box)(const BoundOp& op, int p, const Box& part) = nullptr;

  /// The box of output `j` a part computes. Null: the part's box (output 0 is the parallel shape).
  Box (*output_box)(const BoundOp& op, int j, const Box& part) = nullptr;

  /// Whether each part's output is a partial sum to be reduced over the parts (the losses: a
  /// part's loss is its samples' share of the mean).
  bool partial_output = false;

  /// Whether an evaluation scores the op's predictions: input 0 holds a part's logits (whole rows
  /// of classes), input 1 its labels, and the part counts the labels its logits' largest class
  /// matches (ffrt::count_correct).
  bool scores_predictions = false;

  /// Whether the op's kernels draw new random numbers every training step (dropout's masks), so
  /// that a recorded step (the emitted program's --cuda-graph) cannot be replayed.
  bool random_per_step = false;

  /// The state a part's forward saves for its backward (statistics, pre-activations), as boxes of
  /// tensors whose extents are those of the whole op's (the part = the whole parallel shape).
  /// Null: none.
  std::vector<Box> (*saved)(const BoundOp& op, const Box& part) = nullptr;

  /// Whether the op's forward and backward each need a reduction across the parts that share a
  /// block of its parameters between a statistics kernel and the rest (batch norm): the forward
  /// runs `forward_stats`, the statistics are summed over those parts, then `forward`; the backward
  /// likewise with `backward_stats`.
  bool split_statistics = false;

  /// The gradient rule, used by autodiff: emits the backward ops of this op. Null: not
  /// differentiable (inputs, integer paths).
  void (*grad)(GradBuilder& b, const Op& op) = nullptr;
};

/// The entry of an op kind.
const OpInfo& op_info(OpKind kind);
/// The kind with this textual name; false when there is none.
bool parse_op_kind(std::string_view name, OpKind* kind);
/// Every kind, in table order.
std::span<const OpKind> all_op_kinds();

/// The number of outputs an op has: OpInfo::outputs_from_attrs when set, else num_outputs.
int op_num_outputs(const Op& op);
/// Parameters of op `op_index` of the graph.
std::vector<ParamSpec> op_params(const Graph& g, const Op& op);
/// The parallel shape of an op (see OpInfo::parallel_shape).
Shape op_parallel_shape(const Graph& g, const Op& op);
/// The splittable dims of an op's parallel shape.
std::vector<bool> op_splittable(const Graph& g, const Op& op);
/// The op bound to a batch size.
BoundOp bind_op(const Graph& g, const Op& op, int64_t batch);

/// The box of output `j` a part computes (OpInfo::output_box).
Box op_output_box(const BoundOp& op, int j, const Box& part);
/// The saved state of a part (OpInfo::saved); the whole op's when `part` is its whole parallel box.
std::vector<Box> op_saved_boxes(const BoundOp& op, const Box& part);
/// The extents of the op's saved state tensors.
std::vector<std::vector<int64_t>> op_saved_extents(const BoundOp& op);
/// The batch-bound parallel shape of an op.
std::vector<int64_t> op_parallel_extents(const Graph& g, const Op& op, int64_t batch);
/// The statistics box of a split-statistics op's part: [2, channels of the part].
Box op_stats_box(const Box& part);

/// Conventional names of the dims of a parallel shape: `n c h w` for rank 4, `n s c` for 3,
/// `n c` for 2, `n` for 1.
std::vector<std::string> parallel_dim_names(int rank);

}  // namespace ffc
