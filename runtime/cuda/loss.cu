// cuda backend: losses — softmax cross-entropy over the last (class) dim and mean squared error,
// with the cpu backend's semantics and precision (runtime/cpu/loss.cc).
//
// A loss part writes `scale` times its sum over its box into a one-element device view. The sum
// is deterministic: each block adds its rows' (or elements') values in double in a fixed order
// into a partial, and one block adds the partials in order. The backward kernels read the loss's
// gradient `dloss` on the device, so nothing waits for the host.
//
// A label out of range cannot throw from the device without a synchronization in the training
// loop. Instead its row contributes NaN, so the loss is NaN (the driver stops on a non-finite loss
// and says so), and the backward writes NaN into its row of dlogits; no out-of-range element is
// ever read.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "rows.cuh"

namespace ffrt {

namespace {

using namespace cuda;  // the shared checks, rows and reductions (rows.cuh)

/// Adds a block's per-thread values (one per group of G threads, identical across the group) in a
/// fixed order; thread 0 writes the sum to partials[blockIdx.x].
template <int G>
__device__ void block_partial(double v, double* partials) {
  __shared__ double sm[kThreads / G];
  if (threadIdx.x % G == 0) sm[threadIdx.x / G] = v;
  __syncthreads();
  if (threadIdx.x != 0) return;
  double s = sm[0];
  for (int g = 1; g < kThreads / G; ++g) s += sm[g];
  partials[blockIdx.x] = s;
}

/// loss = scale * (the sum of the n partials), by one block in a fixed order.
__global__ void __launch_bounds__(kThreads) write_loss(const double* partials, uint32_t n, float scale, float* loss) {
  __shared__ double sm[kThreads / 32];
  double s = 0;
  for (uint32_t i = threadIdx.x; i < n; i += kThreads) s += partials[i];
  s = group_reduce<kThreads>(s, sm, Add{});
  if (threadIdx.x == 0) *loss = static_cast<float>(scale * s);
}

/// Partials of `blocks` blocks, then the loss from them.
struct LossSum {
  std::shared_ptr<std::byte> mem;
  double* partials = nullptr;
  unsigned blocks = 0;
  LossSum(Context& ctx, unsigned b) : mem(allocate(ctx, sizeof(double) * (b > 0 ? b : 1))), blocks(b) {
    partials = reinterpret_cast<double*>(mem.get());
  }
  void finish(Context& ctx, float scale, const View& loss) const {
    write_loss<<<1, kThreads, 0, ctx.stream>>>(partials, blocks, scale, loss.f32());
    FFRT_LAUNCHED(&ctx);
  }
};

/// The loss's gradient on the device: dloss's one element, or null for 1.
const float* loss_gradient(const View* dloss, const char* what) {
  if (!dloss) return nullptr;
  require(dloss->dtype == DType::f32 && dloss->volume() == 1, what);
  return dloss->f32();
}

// ---- softmax cross-entropy ----------------------------------------------------------------------

/// Rows of logits (all classes) with their labels: rows' offsets in logits, labels and (backward)
/// dlogits, from each view's element at the rows' origin.
struct Rows {
  RowIndex<3> rows;
  uint32_t nrows, classes;
  const float* logits;
  const int64_t* labels;
  int64_t step;  // along the classes
};

/// max and log(sum(exp(x - max))) (the sum in double) of a row, across a group of G threads.
template <int G>
__device__ void log_sum_exp(const float* p, int64_t step, uint32_t n, float& mx, double& lse) {
  __shared__ float smf[G > 32 ? G / 32 : 1];
  __shared__ double smd[G > 32 ? G / 32 : 1];
  const uint32_t lane = threadIdx.x % G;
  mx = -INFINITY;
  for (uint32_t i = lane; i < n; i += G) mx = fmaxf(mx, p[i * step]);
  mx = group_reduce<G>(mx, smf, Max{});
  double sum = 0;
  for (uint32_t i = lane; i < n; i += G) sum += expf(p[i * step] - mx);
  lse = log(group_reduce<G>(sum, smd, Add{}));
}

/// Per block: the sum over its rows of -log softmax(x)[label] = (max - x[label]) + lse.
template <int G>
__global__ void __launch_bounds__(kThreads) cross_entropy_rows(Rows r, double* partials) {
  const uint32_t groups = gridDim.x * (kThreads / G);
  double acc = 0;
  for (uint32_t row = blockIdx.x * (kThreads / G) + threadIdx.x / G; row < r.nrows; row += groups) {
    int64_t off[3];
    r.rows.offsets(row, off);
    const float* p = r.logits + off[0];
    const int64_t label = r.labels[off[1]];
    float mx;
    double lse;
    log_sum_exp<G>(p, r.step, r.classes, mx, lse);
    acc += label >= 0 && label < r.classes ? (mx - p[label * r.step]) + lse : NAN;
  }
  block_partial<G>(acc, partials);
}

/// dlogits = k * (softmax(x) - onehot(label)) over classes [c0, c0 + nc) of each row, k = scale *
/// dloss.
template <int G>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_grad_rows(Rows r, float* dlogits, int64_t ostep, int64_t c0, uint32_t nc, float scale,
                            const float* dloss, bool accumulate) {
  const float k = dloss ? scale * *dloss : scale;
  const uint32_t lane = threadIdx.x % G, groups = gridDim.x * (kThreads / G);
  for (uint32_t row = blockIdx.x * (kThreads / G) + threadIdx.x / G; row < r.nrows; row += groups) {
    int64_t off[3];
    r.rows.offsets(row, off);
    const float* p = r.logits + off[0];
    const int64_t label = r.labels[off[1]];
    float mx;
    double lse;
    log_sum_exp<G>(p, r.step, r.classes, mx, lse);
    const float lsef = static_cast<float>(lse);  // softmax = exp((x - max) - lse), x - max exact
    const bool valid = label >= 0 && label < r.classes;
    float* out = dlogits + off[2];
    for (uint32_t i = lane; i < nc; i += G) {
      const int64_t c = c0 + i;
      const float prob = expf((p[c * r.step] - mx) - lsef);
      put(out + i * ostep, valid ? k * (prob - (c == label ? 1.f : 0.f)) : NAN, accumulate);
    }
  }
}

/// Checks the logits and labels (types, ranks, extents).
void check_operands(const View& logits, const View& labels, const std::string& kernel) {
  auto need = [&](bool cond, const char* what) {
    if (!cond) throw Error(kernel + ": " + what);
  };
  need(logits.dtype == DType::f32 && logits.rank >= 2, "logits must be an f32 view of rank >= 2");
  need(labels.dtype == DType::i64 && labels.rank == logits.rank - 1,
       "labels must be an i64 view of the logits' rank minus one");
  for (int d = 0; d < labels.rank; ++d) need(labels.full[d] == logits.full[d], "labels and logits differ in shape");
}

/// Checks that logits and labels hold the rows of `box` (a box of the logits' tensor), all classes,
/// and makes their Rows (offsets also in `out`, when given).
Rows rows_of(const View& logits, const View& labels, const View& box, const View* out, const std::string& kernel) {
  View rows = box;  // all classes
  const int last = box.rank - 1;
  rows.lo[last] = 0, rows.size[last] = box.full[last];
  if (!holds(logits, rows, rows)) throw Error(kernel + ": logits do not hold whole rows of the box");
  View label_box = rows;
  label_box.rank = labels.rank;
  if (!box_inside(label_box, labels)) throw Error(kernel + ": labels do not hold the box's rows");
  const int64_t classes = logits.full[last];
  require_index_space(rows.volume(), (kernel + ": too many elements for the cuda kernels").c_str());
  int64_t size[kMaxRank] = {}, strides[3][kMaxRank] = {};
  for (int d = 0; d < last; ++d) {
    size[d] = box.size[d];
    strides[0][d] = logits.stride[d], strides[1][d] = labels.stride[d], strides[2][d] = out ? out->stride[d] : 0;
  }
  Rows r;
  r.rows = make_row_index<3>(last, size, strides);
  r.classes = static_cast<uint32_t>(classes);
  r.nrows = static_cast<uint32_t>(classes > 0 ? rows.volume() / classes : 0);
  r.logits = logits.f32() + origin_offset(logits, rows);
  r.labels = labels.i64() + origin_offset(labels, rows);
  r.step = logits.stride[last];
  return r;
}

/// A warp per row, or a block for long ones.
int group_for_classes(int64_t classes) { return classes > 1024 ? kThreads : 32; }

}  // namespace

void softmax_cross_entropy_forward(Context& ctx, float scale, const View& logits, const View& labels,
                                   const View& loss) {
  const std::string kernel = "softmax_cross_entropy_forward";
  check_operands(logits, labels, kernel);
  require(loss.dtype == DType::f32 && loss.volume() == 1,
          "softmax_cross_entropy_forward: loss must be a one-element f32 view");
  // The box: the labels' rows of the logits, all classes.
  View box = logits;
  for (int d = 0; d < labels.rank; ++d) box.lo[d] = labels.lo[d], box.size[d] = labels.size[d];
  const Rows r = rows_of(logits, labels, box, nullptr, kernel);
  const int g = group_for_classes(r.classes);
  const LossSum sum(ctx, r.nrows > 0 ? blocks_for_groups(ctx, r.nrows, g) : 0);
  if (r.nrows > 0) {
    with_group(g, [&](auto G) {
      cross_entropy_rows<decltype(G)::value><<<sum.blocks, kThreads, 0, ctx.stream>>>(r, sum.partials);
    });
    FFRT_LAUNCHED(&ctx);
  }
  sum.finish(ctx, scale, loss);
}

void softmax_cross_entropy_backward(Context& ctx, float scale, const View& logits, const View& labels,
                                    const View& dlogits, bool accumulate, const View* dloss) {
  const float* dl = loss_gradient(dloss, "softmax_cross_entropy_backward: dloss must be a one-element f32 view");
  const std::string kernel = "softmax_cross_entropy_backward";
  check_operands(logits, labels, kernel);
  require(dlogits.dtype == DType::f32 && dlogits.rank == logits.rank,
          "softmax_cross_entropy_backward: dlogits must be an f32 view of the logits' rank");
  if (dlogits.volume() == 0) return;
  const Rows r = rows_of(logits, labels, dlogits, &dlogits, kernel);
  const int last = dlogits.rank - 1;
  const int g = group_for_classes(r.classes);
  with_group(g, [&](auto G) {
    cross_entropy_grad_rows<decltype(G)::value><<<blocks_for_groups(ctx, r.nrows, g), kThreads, 0, ctx.stream>>>(
        r, dlogits.f32(), dlogits.stride[last], dlogits.lo[last], static_cast<uint32_t>(dlogits.size[last]), scale, dl,
        accumulate);
  });
  FFRT_LAUNCHED(&ctx);
}

// ---- mean squared error ---------------------------------------------------------------------------

namespace {

/// Elements of a box in pred, target and (backward) dpred.
struct Elements {
  RowIndex<3> at;
  uint32_t n;
  const float* pred;
  const float* target;
};

Elements elements_of(const View& box, const View& pred, const View& target, const View* dpred) {
  require_index_space(box.volume(), "mse: too many elements for the cuda kernels");
  int64_t strides[3][kMaxRank] = {};
  for (int d = 0; d < box.rank; ++d)
    strides[0][d] = pred.stride[d], strides[1][d] = target.stride[d], strides[2][d] = dpred ? dpred->stride[d] : 0;
  return {make_row_index<3>(box.rank, box.size, strides), static_cast<uint32_t>(box.volume()),
          pred.f32() + origin_offset(pred, box), target.f32() + origin_offset(target, box)};
}

/// Per block: the sum of (pred - target)^2 in double.
__global__ void __launch_bounds__(kThreads) squared_error(Elements e, double* partials) {
  double s = 0;
  FFRT_GRID_LOOP(i, e.n) {
    int64_t off[3];
    e.at.offsets(static_cast<uint32_t>(i), off);
    const double d = static_cast<double>(e.pred[off[0]]) - e.target[off[1]];
    s += d * d;
  }
  block_partial<1>(s, partials);
}

/// dpred = 2 * scale * dloss * (pred - target).
__global__ void squared_error_grad(Elements e, float* dpred, float scale, const float* dloss, bool accumulate) {
  const float k = 2.f * (dloss ? scale * *dloss : scale);
  FFRT_GRID_LOOP(i, e.n) {
    int64_t off[3];
    e.at.offsets(static_cast<uint32_t>(i), off);
    put(dpred + off[2], k * (e.pred[off[0]] - e.target[off[1]]), accumulate);
  }
}

}  // namespace

void mse_forward(Context& ctx, float scale, const View& pred, const View& target, const View& loss) {
  require(pred.dtype == DType::f32 && target.dtype == DType::f32 && holds(target, pred, pred),
          "mse_forward: target does not hold pred's box");
  require(loss.dtype == DType::f32 && loss.volume() == 1, "mse_forward: loss must be a one-element f32 view");
  const int64_t n = pred.volume();
  const LossSum sum(ctx, n > 0 ? std::min(blocks_for(n), static_cast<unsigned>(sm_count(ctx) * 8)) : 0);
  if (n > 0) {
    squared_error<<<sum.blocks, kThreads, 0, ctx.stream>>>(elements_of(pred, pred, target, nullptr), sum.partials);
    FFRT_LAUNCHED(&ctx);
  }
  sum.finish(ctx, scale, loss);
}

void mse_backward(Context& ctx, float scale, const View& pred, const View& target, const View& dpred, bool accumulate,
                  const View* dloss) {
  const float* dl = loss_gradient(dloss, "mse_backward: dloss must be a one-element f32 view");
  require(dpred.dtype == DType::f32, "mse_backward: dpred must be an f32 view");
  if (dpred.volume() == 0) return;
  require(pred.dtype == DType::f32 && holds(pred, dpred, dpred) && target.dtype == DType::f32 &&
              holds(target, dpred, dpred),
          "mse_backward: pred and target do not hold dpred's box");
  squared_error_grad<<<blocks_for(dpred.volume()), kThreads, 0, ctx.stream>>>(elements_of(dpred, pred, target, &dpred),
                                                                              dpred.f32(), scale, dl, accumulate);
  FFRT_LAUNCHED(&ctx);
}

// ---- evaluation -------------------------------------------------------------------------------------

namespace {

/// A thread per label: whether the first largest logit of its row is the label. Counts are whole
/// numbers, so adding them atomically in double is exact and order-free.
__global__ void count_correct_labels(ffrt::cuda::DView logits, ffrt::cuda::DView labels, int64_t n, int64_t valid_rows,
                                     double* count) {
  FFRT_GRID_LOOP(i, n) {
    int64_t g[kMaxRank];
    ffrt::cuda::coords_of(labels, i, g);
    if (g[0] >= valid_rows) continue;
    const int last = logits.rank - 1;
    g[last] = 0;
    const float* p = static_cast<const float*>(logits.data) + ffrt::cuda::offset_of(logits, g);
    const int64_t classes = logits.full[last], step = logits.stride[last];
    int64_t best = 0;
    for (int64_t c = 1; c < classes; ++c)
      if (p[c * step] > p[best * step]) best = c;
    if (best == static_cast<const int64_t*>(labels.data)[ffrt::cuda::offset_of(labels, g)]) atomicAdd(count, 1.0);
  }
}

}  // namespace

void count_correct(Context& ctx, const View& logits, const View& labels, int64_t valid_rows, const View& count) {
  const std::string kernel = "count_correct";
  check_operands(logits, labels, kernel);
  require(count.dtype == DType::f64 && count.volume() == 1, "count_correct: count must be a one-element f64 view");
  const int64_t n = labels.volume();
  if (n == 0) return;
  View rows = logits;  // the labels' rows, all classes
  for (int d = 0; d < labels.rank; ++d) rows.lo[d] = labels.lo[d], rows.size[d] = labels.size[d];
  rows.lo[rows.rank - 1] = 0, rows.size[rows.rank - 1] = logits.full[logits.rank - 1];
  if (!holds(logits, rows, rows)) throw Error(kernel + ": logits do not hold whole rows of the labels' box");
  count_correct_labels<<<ffrt::cuda::blocks_for(n), ffrt::cuda::kThreads, 0, ctx.stream>>>(
      ffrt::cuda::dview(logits), ffrt::cuda::dview(labels), n, valid_rows, count.f64() + count.offset_of(count.lo));
  FFRT_LAUNCHED(&ctx);
}

}  // namespace ffrt
