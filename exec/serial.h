// The serial executor: trains a model in one process on the cpu kernels, whole tensors, no
// partitioning. It is the reference every partitioned program is compared with (ffc verify), and
// `ffc run` trains with it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "exec/host_tensor.h"
#include "exec/op_kernels.h"
#include "ir/graph.h"
#include "ir/op_table.h"

namespace ffc {

enum class OptimizerKind { sgd, adam, adamw };

struct TrainOptions {
  int64_t batch = 64;
  uint64_t seed = 0;
  OptimizerKind optimizer = OptimizerKind::sgd;
  float lr = 0.01f;
  float momentum = 0.f;
  float weight_decay = 0.f;
  bool nesterov = false;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  int threads = 0;
};

/// Supplies the inputs of step k: fills the whole-batch tensor of an `input` op. Returns false
/// when it has no data for that input (then synthetic data is used).
using InputSource = std::function<bool(const Op& input, int64_t step, HostTensor& tensor)>;

/// One parameter (or state tensor) of the model.
struct ParamSlot {
  int op = -1;            ///< the op that owns it
  int index = 0;          ///< its position in op_params
  std::string name;       ///< `<op>.<param>` or the external (ONNX) name
  bool trainable = true;
  HostTensor value, grad;
  HostTensor buf1, buf2;  ///< optimizer state: momentum, or Adam's m and v
  bool has_history = false;
};

class SerialTrainer {
 public:
  /// `g` must have a loss op (see passes/add_loss.h) and pass the verifier.
  SerialTrainer(const Graph& g, const TrainOptions& opts);
  ~SerialTrainer();

  void set_input_source(InputSource src) { source_ = std::move(src); }
  /// Also computes the gradients of f32 inputs (for checking kernels against a reference).
  void set_input_grads(bool on);

  /// Runs the forward of step `step` (training: batch statistics, dropout, running-stat updates;
  /// otherwise evaluation); returns the loss.
  float forward(int64_t step, bool training);
  /// Runs forward and backward of step `step` without updating weights; returns the loss.
  float forward_backward(int64_t step);
  /// Applies the optimizer to the gradients of the last forward_backward.
  void update();
  /// forward_backward then update: one training step.
  float train_step(int64_t step);

  const Graph& graph() const { return g_; }
  const TrainOptions& options() const { return opts_; }
  std::vector<ParamSlot>& params() { return params_; }
  /// Optimizer updates made so far (Adam's bias correction counts them); a loaded checkpoint sets it.
  int64_t optimizer_steps() const { return optimizer_steps_; }
  void set_optimizer_steps(int64_t n) { optimizer_steps_ = n; }
  HostTensor& tensor(TensorId t) { return values_[t]; }
  /// The gradient of a tensor; empty when it has none.
  HostTensor& grad(TensorId t) { return grads_[t]; }
  bool has_grad(TensorId t) const { return needs_grad_[t]; }

 private:
  void fill_inputs(int64_t step);
  void compute_needs_grad();
  OpViews views_for(int op, bool backward);

  Graph g_;
  TrainOptions opts_;
  std::unique_ptr<ffrt::Context, void (*)(ffrt::Context*)> ctx_;
  InputSource source_;
  int loss_op_ = -1;
  bool input_grads_ = false;
  std::vector<HostTensor> values_, grads_;
  std::vector<std::vector<HostTensor>> saved_;  ///< per op
  std::vector<HostTensor> stats_;               ///< per op: batch-norm statistics
  std::vector<ffrt::OpDesc> descs_;             ///< per op
  std::vector<bool> needs_grad_;
  std::vector<ParamSlot> params_;
  std::vector<std::vector<int>> op_params_;  ///< per op: indices into params_
  int64_t optimizer_steps_ = 0;
};

/// Fills the whole-batch tensor of input op `input` for step `step`: from `source` when it supplies
/// it, else synthetic data indexed by global sample (the same under every partition).
void fill_input(ffrt::Context& ctx, const Graph& g, const Op& input, int64_t step, int64_t batch, uint64_t seed,
                const InputSource& source, HostTensor& t);

/// The initial values of a parameter block: `v` is a box of the parameter.
void init_param_block(ffrt::Context& ctx, const ParamSpec& spec, const std::string& name, uint64_t seed,
                      const ffrt::View& v);

/// The optimizer step of one parameter block. `first` is true on the block's first step.
void optimizer_step(ffrt::Context& ctx, const TrainOptions& opts, int64_t step_count, bool first, const ffrt::View& w,
                    const ffrt::View& g, const ffrt::View* state1, const ffrt::View* state2);

/// Synthetic labels or ids for an i64 input: the class count its consumers accept.
int64_t synthetic_classes(const Graph& g, const Op& input);

}  // namespace ffc
