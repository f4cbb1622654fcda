// The kernel interface of libffrt: forward and backward of every op, on parts.
//
// One interface, two backends (cpu now, cuda later): generated programs and ffc's in-process
// executors call these functions and link one backend. Every kernel computes the box of its output
// view and reads the boxes of its input views (see view.h): operands are boxes of global tensors,
// so the same call computes a whole tensor (boxes = whole tensors) or one part of a split op.
//
// Conventions:
// - A kernel computes exactly the box of the view it writes. Input views must contain what that
//   box needs (the op table's input-box rule); borders are global (padding only where the box
//   touches the global tensor's edge).
// - Backward kernels take `accumulate`: false overwrites the output view, true adds to it. A part's
//   gradient contribution to an input box it shares with other parts (halos, replicated weights,
//   broadcast operands) is a partial sum; reducing partial sums is the caller's job.
// - Fused activations are applied by forward kernels (`Act`); backward kernels take the gradient
//   after the activation's backward (activation_backward) has been applied.
// - Data errors (a label or token id out of range) throw ffrt::Error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ffrt/view.h"

namespace ffrt {

/// An error in the data a kernel was given (ids or labels out of range, mismatched views).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Backend state: threads on the cpu; stream, library handles and workspace on cuda.
struct Context;
struct ContextOptions {
  int threads = 0;   ///< cpu worker threads; 0: all cores
  int device = 0;    ///< cuda device
  int rank = 0;      ///< the job's rank (error messages)
  bool tf32 = false; ///< cuda: tensor cores may round inputs to tf32 (convolutions, GEMMs), as PyTorch allows
};
std::unique_ptr<Context, void (*)(Context*)> make_context(const ContextOptions& opts = {});
/// The backend's name: "cpu" or "cuda".
const char* backend_name();
/// The device the context runs on: "cpu", or the GPU's name ("NVIDIA H100 80GB HBM3").
std::string device_name(Context& ctx);
/// Names the op whose kernels run next (the cuda backend's error messages name it). `name` must
/// outlive the kernels' calls.
void set_op(Context& ctx, const char* name);

// ---- memory ----------------------------------------------------------------------------------

/// Memory the kernels address ("backend memory"): host memory on the cpu backend, device memory on
/// cuda. Views passed to kernels point into it; views of host memory (`HostArray`, data files) reach
/// it only through upload and download.
///
/// `bytes` bytes, aligned to 256, zero-filled unless `zeroed` is false (a temporary the next kernel
/// overwrites). The cuda backend keeps freed blocks for reuse, so a training loop that asks for the
/// same temporaries every iteration allocates nothing after the first.
std::shared_ptr<std::byte> allocate(Context& ctx, size_t bytes, bool zeroed = true);
/// Copies the intersection of a host view's box (dense, row-major) and dst's box into dst.
void upload(Context& ctx, const View& host_src, const View& dst);
/// Copies host_dst's box (dense, row-major host memory; it must lie inside src's box) out of src.
/// Returns when the data is on the host.
void download(Context& ctx, const View& src, const View& host_dst);
/// Waits for every kernel issued on the context (cuda); returns at once on the cpu.
void synchronize(Context& ctx);

// ---- timing (--trace) --------------------------------------------------------------------------

/// The context's streams: kernels run on `compute`; the communication of phases that overlap
/// compute (ffrt/comm.h) on `comm`. The cpu backend has one of each in name only.
enum class Lane : int { compute = 0, comm = 1 };
/// Records a timestamp on a stream after everything issued on it so far (cuda: an event; cpu: the
/// host clock, the kernels having run). Returns its index among the marks since mark_times().
/// Made while a graph is recorded, the mark is part of the graph: each replay records it anew.
int mark(Context& ctx, Lane lane = Lane::compute);
/// Waits for every mark and returns their times in microseconds after the first mark recorded;
/// forgets them.
std::vector<double> mark_times(Context& ctx);

// ---- CUDA graphs (--cuda-graph) ----------------------------------------------------------------

/// A recorded sequence of the context's kernels (both streams), replayed as one launch.
struct Graph;
/// Whether the backend records graphs (cuda: yes; cpu: no).
bool graphs_supported();
/// Kernels issued from now until end_capture() are recorded, not run. Nothing may synchronize with
/// the host meanwhile, nor allocate memory the cache does not hold already.
void begin_capture(Context& ctx);
std::shared_ptr<Graph> end_capture(Context& ctx);
/// Runs a recorded graph on the context's stream, after what was issued before it.
void replay(Context& ctx, const Graph& g);
/// The device launches a recorded graph holds: its kernel, memset and memcpy nodes (what each
/// pays a launch latency between dependent nodes).
int graph_launches(Context& ctx, const Graph& g);

enum class Act : int { none = 0, relu, sigmoid, tanh, gelu };

// ---- element-wise ------------------------------------------------------------------------------

/// y = act(x) over y's box.
void activation_forward(Context& ctx, Act act, const View& x, const View& y);
/// dx = dy * act'(.) over dx's box. `x` is the activation's input (needed for gelu; may be an empty
/// view for the others), `y` its output (needed for relu, sigmoid, tanh).
void activation_backward(Context& ctx, Act act, const View& x, const View& y, const View& dy, const View& dx,
                         bool accumulate);

enum class Binary : int { add = 0, sub, mul };
/// y = a (op) b over y's box. a and b broadcast like NumPy: aligned from the right, a dim whose
/// global extent (`full`) is 1 stretches.
void binary_forward(Context& ctx, Binary op, const View& a, const View& b, const View& y);
/// Gradients of a binary op over the boxes of da and db (either may be null), summing dy over the
/// dims an operand was broadcast along (over dy's box: a partial sum where y is split along them).
/// `a` and `b` are needed for mul only.
void binary_backward(Context& ctx, Binary op, const View& a, const View& b, const View& dy, const View* da,
                     const View* db, bool accumulate);

/// y = min(max(x, lo), hi) over y's box (ReLU6 is clip to [0, 6]).
void clip_forward(Context& ctx, float lo, float hi, const View& x, const View& y);
/// dx = dy where lo < x < hi, else 0 (PyTorch's hardtanh gradient).
void clip_backward(Context& ctx, float lo, float hi, const View& x, const View& dy, const View& dx, bool accumulate);

/// y = x * mask / (1 - rate), the mask drawn by Philox from (key, global element index).
void dropout_forward(Context& ctx, float rate, uint64_t key, const View& x, const View& y);
void dropout_backward(Context& ctx, float rate, uint64_t key, const View& dy, const View& dx, bool accumulate);

// ---- convolution and pooling ---------------------------------------------------------------------

struct Conv2dAttrs {
  int64_t kernel[2], stride[2], padding[2], dilation[2];
  int64_t groups = 1;
};
/// y = act(conv(x, w) + b) over y's box [n, c, h, w]. `w` holds output channels y.lo[1].. of the
/// weight [O, C/groups, kh, kw]; `b` (nullable) the same channels of the bias.
void conv2d_forward(Context& ctx, const Conv2dAttrs& a, Act act, const View& x, const View& w, const View* b,
                    const View& y);
/// dx over dx's box: the contribution of dy's box (a partial sum where parts' halos overlap).
void conv2d_backward_data(Context& ctx, const Conv2dAttrs& a, const View& dy, const View& w, const View& dx,
                          bool accumulate);
/// dw (and db, nullable) over their boxes from x and dy: a partial sum over dy's n, h, w range.
void conv2d_backward_weight(Context& ctx, const Conv2dAttrs& a, const View& x, const View& dy, const View& dw,
                            const View* db, bool accumulate);

struct Pool2dAttrs {
  int64_t kernel[2], stride[2], padding[2];
  bool max = true;
  bool count_include_pad = true;  ///< avg: divide by the window's size including padding (PyTorch's rule)
};
void pool2d_forward(Context& ctx, const Pool2dAttrs& a, Act act, const View& x, const View& y);
/// dx over dx's box. Max pooling routes each gradient to the first maximum of its window (x is
/// needed; the cpu backend finds the maximum in x and does not read y, which holds act(max) when
/// the forward fused an activation); avg spreads it (needs neither).
void pool2d_backward(Context& ctx, const Pool2dAttrs& a, const View& x, const View& y, const View& dy,
                     const View& dx, bool accumulate);

// ---- contractions --------------------------------------------------------------------------------

/// y[..., o] = act(sum_k x[..., k] w[o, k] + b[o]) over y's box; x holds whole rows (all of K), w
/// the rows o of y's last-dim range.
void linear_forward(Context& ctx, Act act, const View& x, const View& w, const View* b, const View& y);
/// dx[..., k] = sum_o dy[..., o] w[o, k]: a partial sum over dy's range of o.
void linear_backward_data(Context& ctx, const View& dy, const View& w, const View& dx, bool accumulate);
/// dw[o, k] = sum_rows dy[r, o] x[r, k], db[o] = sum_rows dy[r, o] (nullable): partial over rows.
void linear_backward_weight(Context& ctx, const View& x, const View& dy, const View& dw, const View* db,
                            bool accumulate);

struct MatmulAttrs {
  bool transpose_a = false, transpose_b = false;
};
/// y = op(a) @ op(b) over y's box, leading dims broadcast like NumPy.
void matmul_forward(Context& ctx, const MatmulAttrs& m, const View& a, const View& b, const View& y);
/// da and db (either nullable) over their boxes, summing over broadcast leading dims.
void matmul_backward(Context& ctx, const MatmulAttrs& m, const View& a, const View& b, const View& dy,
                     const View* da, const View* db, bool accumulate);

/// y[..., d] = w[ids[...], d] over y's box; w holds all rows and y's range of d.
void embedding_forward(Context& ctx, const View& ids, const View& w, const View& y);
/// dw[ids[...], d] += dy[..., d]: a partial sum over dy's rows.
void embedding_backward_weight(Context& ctx, const View& ids, const View& dy, const View& dw, bool accumulate);

// ---- normalization ---------------------------------------------------------------------------

/// Batch-norm statistics (`stats` below) are f64 [2, C] views: the parts' partial sums are exchanged
/// and added across parts in double without rounding to float, because the variance
/// sumsq / count - mean^2 loses the precision of a float sum to cancellation when a channel's mean
/// is large next to its spread. Mean, invstd, weight, bias and the running statistics are f32 [C].
///
/// Partial batch-norm statistics of x's box: stats is an f64 [2, C] view of the channels of x's box;
/// row 0 gets the sum, row 1 the sum of squares, per channel (summed in double, unrounded). Parts
/// sharing channels add theirs.
void batch_norm_stats(Context& ctx, const View& x, const View& stats);
/// y = act((x - mean) * invstd * weight + bias) over y's box, from whole-batch `stats` (f64 [2, C],
/// both rows) over `count` elements per channel. Writes mean and invstd (f32 [C] views, over their
/// boxes) for the backward. weight and bias are null when the op is not affine.
void batch_norm_forward(Context& ctx, Act act, float eps, int64_t count, const View& x, const View& stats,
                        const View* weight, const View* bias, const View& y, const View& mean, const View& invstd);
/// running = (1 - momentum) * running + momentum * batch statistic (the variance unbiased), the batch
/// statistics from whole-batch `stats` (f64 [2, C], both rows).
void batch_norm_update_running(Context& ctx, float momentum, int64_t count, const View& stats,
                               const View& running_mean, const View& running_var);
/// Partial backward sums over dy's box (x holds it) into `stats`, an f64 [2, C] view: row 0 sum(dy),
/// row 1 sum(dy * xhat), per channel of stats' box (unrounded, added across parts in double). Once
/// reduced, they are the bias and weight gradients (in double).
void batch_norm_backward_stats(Context& ctx, const View& x, const View& dy, const View& mean, const View& invstd,
                               const View& stats);
/// The bias and weight gradients from reduced backward sums: dbias += row 0, dweight += row 1 of
/// `stats` (f64 [2, C]) over their boxes (either nullable).
void batch_norm_param_grads(Context& ctx, const View& stats, const View* dweight, const View* dbias);
/// Inference statistics: `stats` (f64 [2, C], over its box of channels) gets the running mean and
/// variance posed as sums over `count` elements (sum = mean * count, sumsq = (var + mean^2) * count),
/// so batch_norm_forward normalizes with them.
void batch_norm_running_stats(Context& ctx, int64_t count, const View& running_mean, const View& running_var,
                              const View& stats);
/// dx over dx's box from the whole-batch backward sums `stats` (f64 [2, C], both rows).
void batch_norm_backward_data(Context& ctx, int64_t count, const View& x, const View& dy, const View& mean,
                              const View& invstd, const View* weight, const View& stats, const View& dx,
                              bool accumulate);

/// Layer norm over the last dim (whole in every part). mean and invstd are views over the rows (x's
/// dims but the last), written for y's rows.
void layer_norm_forward(Context& ctx, float eps, const View& x, const View* weight, const View* bias, const View& y,
                        const View& mean, const View& invstd);
/// dx over its box; dw and db (nullable) over their boxes, partial over dy's rows.
void layer_norm_backward(Context& ctx, const View& x, const View& dy, const View& mean, const View& invstd,
                         const View* weight, const View& dx, const View* dw, const View* db, bool accumulate);

/// Softmax along `axis` (whole in every part).
void softmax_forward(Context& ctx, int axis, const View& x, const View& y);
void softmax_backward(Context& ctx, int axis, const View& y, const View& dy, const View& dx, bool accumulate);

/// Log-softmax along `axis` (whole in every part).
void log_softmax_forward(Context& ctx, int axis, const View& x, const View& y);
/// dx = dy - exp(y) * sum(dy) along the axis.
void log_softmax_backward(Context& ctx, int axis, const View& y, const View& dy, const View& dx, bool accumulate);

// ---- losses ------------------------------------------------------------------------------------

/// loss (a 1-element view, overwritten) = scale * sum over the labels' box of -log softmax(logits)[label]. With
/// scale = 1 / (global label count) the parts' losses add up to the mean.
void softmax_cross_entropy_forward(Context& ctx, float scale, const View& logits, const View& labels,
                                   const View& loss);
/// dlogits = scale * dloss * (softmax(logits) - onehot(label)) over dlogits' box; `dloss` (nullable:
/// 1) is the loss's gradient, a one-element view read where it lives.
void softmax_cross_entropy_backward(Context& ctx, float scale, const View& logits, const View& labels,
                                    const View& dlogits, bool accumulate, const View* dloss = nullptr);
/// Evaluation: adds to `count` (a one-element f64 view) how many labels of the labels' box, among
/// those whose sample index (dim 0) is below `valid_rows`, are the logits' largest class (the first
/// of equal ones). The logits hold whole rows of classes for the labels' box.
void count_correct(Context& ctx, const View& logits, const View& labels, int64_t valid_rows, const View& count);

/// loss = scale * sum (pred - target)^2 over pred's box.
void mse_forward(Context& ctx, float scale, const View& pred, const View& target, const View& loss);
/// dpred = 2 * scale * dloss * (pred - target) over dpred's box (dloss as above).
void mse_backward(Context& ctx, float scale, const View& pred, const View& target, const View& dpred,
                  bool accumulate, const View* dloss = nullptr);

// ---- layout: pack, unpack, accumulate ------------------------------------------------------------

/// Copies (or adds, with accumulate) the intersection of src's and dst's boxes, in global coordinates.
void copy_box(Context& ctx, const View& src, const View& dst, bool accumulate);
/// Copies by global row-major element index: element i of dst's tensor gets element i of src's
/// tensor (the two tensors have equally many elements), over the elements of dst's box that src's
/// box holds (a part's backward scatters its box into an input box that may hold more). Reshape and
/// flat, forward and backward.
void reshape_copy(Context& ctx, const View& src, const View& dst, bool accumulate);
/// Sets every element of the view's box.
void fill(Context& ctx, const View& v, float value);
/// v *= factor over the box.
void scale(Context& ctx, const View& v, float factor);

// ---- parameters and optimizers -------------------------------------------------------------------

enum class Init : int { zeros = 0, ones, uniform_fan_in, normal };
/// Fills the box with values drawn by Philox from (key, global element index): the same values
/// whatever the partition. uniform_fan_in is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's default
/// for conv and linear weights and biases); normal is N(0, 1) (PyTorch's embedding).
void init_param(Context& ctx, Init init, int64_t fan_in, uint64_t key, const View& v);
/// Synthetic data: U(-1, 1) floats, or labels uniform in [0, classes) when v is i64.
void fill_synthetic(Context& ctx, uint64_t key, int64_t classes, const View& v);

struct SgdAttrs {
  float lr = 0.01f, momentum = 0.f, dampening = 0.f, weight_decay = 0.f;
  bool nesterov = false;
};
/// One torch.optim.SGD step over the box. `buf` (null without momentum) is the momentum buffer;
/// `first` says it has no history yet (PyTorch then sets it to the gradient).
void sgd_step(Context& ctx, const SgdAttrs& a, const View& w, const View& g, const View* buf, bool first);

struct AdamAttrs {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.f;
  bool decoupled = false;  ///< AdamW
  int64_t step = 1;        ///< 1 for the first step
};
/// One torch.optim.Adam (or AdamW) step over the box.
void adam_step(Context& ctx, const AdamAttrs& a, const View& w, const View& g, const View& m, const View& v);

}  // namespace ffrt
