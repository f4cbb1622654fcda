// cpu backend: losses — softmax cross-entropy over the last (class) dim and mean squared error.
//
// A loss part covers a box of the per-sample input (the labels' box, or the prediction's) and
// writes `scale` times its sum into a one-element view; with scale = 1 / (global count) the parts'
// losses add up to the mean, which the caller reduces. The cross-entropy uses a numerically stable
// log-softmax (max-shifted, log-sum-exp in double); sums are accumulated in double per thread and
// combined in thread order, so a result does not depend on scheduling.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "loops.h"

namespace ffrt {

namespace {

using namespace cpu;  // the shared loops and checks (loops.h)

/// The sum of f(g) over the lines of `box` (g: a line's first element), in double.
template <typename F>
double sum_lines(Context& ctx, const View& box, F&& f) {
  return line_sums(ctx, box, 1, [&](const int64_t* g, double* s) { s[0] += f(g); })[0];
}

/// The loss's gradient: 1 without a view, else its one element.
float loss_gradient(const View* dloss, const std::string& kernel) {
  if (!dloss) return 1.f;
  require(dloss->dtype == DType::f32 && dloss->volume() == 1, (kernel + ": dloss must be a one-element f32 view").c_str());
  return dloss->f32()[dloss->offset_of(dloss->lo)];
}

/// Writes a loss into a one-element view.
void write_loss(const View& loss, double value, const char* what) {
  require(loss.dtype == DType::f32 && loss.volume() == 1, what);
  *loss.f32() = static_cast<float>(value);
}

// ---- softmax cross-entropy ----------------------------------------------------------------------

/// The rows of the logits that `box` (a box of the logits' global tensor) lies in, all classes.
View logit_rows(const View& box) {
  View rows = box;
  const int last = box.rank - 1;
  rows.lo[last] = 0;
  rows.size[last] = box.full[last];
  return rows;
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

/// Checks that logits and labels hold the box of logit rows `rows` (all classes) and that every
/// label in it is a class: throws ffrt::Error naming the first one out of range.
void check_rows(const View& logits, const View& labels, const View& rows, const std::string& kernel) {
  if (!holds(logits, rows, rows)) throw Error(kernel + ": logits do not hold whole rows of the box");
  View label_box = rows;
  label_box.rank = labels.rank;
  if (!box_inside(label_box, labels)) throw Error(kernel + ": labels do not hold the box's rows");
  const int64_t classes = logits.full[logits.rank - 1];
  for_each_index(label_box, [&](const int64_t* g) {
    const int64_t label = labels.i64()[labels.offset_of(g)];
    if (label >= 0 && label < classes) return;
    std::string at;
    for (int d = 0; d < labels.rank; ++d) at += (d ? ", " : "") + std::to_string(g[d]);
    throw Error(kernel + ": label " + std::to_string(label) + " at [" + at + "] is out of range [0, " +
                std::to_string(classes) + ")");
  });
}

/// max and log(sum(exp(x - max))) of a row of `n` logits (the sum in double).
inline void log_sum_exp(const float* p, int64_t step, int64_t n, float& max, double& lse) {
  max = -INFINITY;
  for (int64_t i = 0; i < n; ++i) max = std::max(max, p[i * step]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(p[i * step] - max);
  lse = std::log(sum);
}

}  // namespace

void softmax_cross_entropy_forward(Context& ctx, float scale, const View& logits, const View& labels,
                                   const View& loss) {
  const std::string kernel = "softmax_cross_entropy_forward";
  check_operands(logits, labels, kernel);
  // The box: the labels' rows of the logits, all classes.
  View rows = logits;
  for (int d = 0; d < labels.rank; ++d) rows.lo[d] = labels.lo[d], rows.size[d] = labels.size[d];
  rows = logit_rows(rows);
  check_rows(logits, labels, rows, kernel);
  const int last = logits.rank - 1;
  const int64_t classes = logits.full[last], step = logits.stride[last];
  // -log softmax(x)[label] = (max - x[label]) + lse.
  const double sum = sum_lines(ctx, rows, [&](const int64_t* g) {
    const float* p = logits.f32() + logits.offset_of(g);
    const int64_t label = labels.i64()[labels.offset_of(g)];
    float max;
    double lse;
    log_sum_exp(p, step, classes, max, lse);
    return (max - p[label * step]) + lse;
  });
  write_loss(loss, scale * sum, "softmax_cross_entropy_forward: loss must be a one-element f32 view");
}

void softmax_cross_entropy_backward(Context& ctx, float scale, const View& logits, const View& labels,
                                    const View& dlogits, bool accumulate, const View* dloss) {
  scale *= loss_gradient(dloss, "softmax_cross_entropy_backward");
  const std::string kernel = "softmax_cross_entropy_backward";
  check_operands(logits, labels, kernel);
  require(dlogits.dtype == DType::f32 && dlogits.rank == logits.rank,
          "softmax_cross_entropy_backward: dlogits must be an f32 view of the logits' rank");
  if (dlogits.volume() == 0) return;
  const View rows = logit_rows(dlogits);
  check_rows(logits, labels, rows, kernel);
  const int last = logits.rank - 1;
  const int64_t classes = logits.full[last], step = logits.stride[last], ostep = dlogits.stride[last];
  const int64_t c0 = dlogits.lo[last], nc = dlogits.size[last];
  for_lines(dlogits, threads_for(ctx, rows.volume(), dlogits.volume() / nc), [&](const int64_t* g) {
    int64_t row[kMaxRank];
    std::copy(g, g + logits.rank, row);
    row[last] = 0;
    const float* p = logits.f32() + logits.offset_of(row);
    const int64_t label = labels.i64()[labels.offset_of(g)];
    float max;
    double lse;
    log_sum_exp(p, step, classes, max, lse);
    const float lsef = static_cast<float>(lse);  // softmax = exp((x - max) - lse), x - max exact
    float* out = dlogits.f32() + dlogits.offset_of(g);
    for (int64_t i = 0; i < nc; ++i) {
      const int64_t c = c0 + i;
      const float prob = std::exp((p[c * step] - max) - lsef);
      store(out + i * ostep, scale * (prob - (c == label ? 1.f : 0.f)), accumulate);
    }
  });
}

void count_correct(Context&, const View& logits, const View& labels, int64_t valid_rows, const View& count) {
  const std::string kernel = "count_correct";
  check_operands(logits, labels, kernel);
  require(count.dtype == DType::f64 && count.volume() == 1, "count_correct: count must be a one-element f64 view");
  View rows = labels;  // the labels' box as rows of the logits
  rows.rank = logits.rank;
  rows.lo[rows.rank - 1] = 0;
  rows.size[rows.rank - 1] = logits.full[logits.rank - 1];
  rows.full[rows.rank - 1] = logits.full[logits.rank - 1];
  if (labels.volume() == 0) return;
  if (!holds(logits, rows, rows)) throw Error(kernel + ": logits do not hold whole rows of the labels' box");
  const int last = logits.rank - 1;
  const int64_t classes = logits.full[last], step = logits.stride[last];
  int64_t correct = 0;
  for_each_index(labels, [&](const int64_t* g) {
    if (g[0] >= valid_rows) return;
    int64_t row[kMaxRank];
    std::copy(g, g + labels.rank, row);
    row[last] = 0;
    const float* p = logits.f32() + logits.offset_of(row);
    int64_t best = 0;
    for (int64_t c = 1; c < classes; ++c)
      if (p[c * step] > p[best * step]) best = c;
    if (best == labels.i64()[labels.offset_of(g)]) ++correct;
  });
  count.f64()[count.offset_of(count.lo)] += static_cast<double>(correct);
}

void mse_forward(Context& ctx, float scale, const View& pred, const View& target, const View& loss) {
  require(pred.dtype == DType::f32 && target.dtype == DType::f32 && holds(target, pred, pred),
          "mse_forward: target does not hold pred's box");
  const int last = pred.rank - 1;
  const int64_t n = pred.rank > 0 ? pred.size[last] : 1;
  const int64_t sp = pred.rank > 0 ? pred.stride[last] : 0, st = target.rank > 0 ? target.stride[last] : 0;
  const double sum = pred.volume() == 0 ? 0.0 : sum_lines(ctx, pred, [&](const int64_t* g) {
    const float* p = pred.f32() + pred.offset_of(g);
    const float* q = target.f32() + target.offset_of(g);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double e = static_cast<double>(p[i * sp]) - q[i * st];
      s += e * e;
    }
    return s;
  });
  write_loss(loss, scale * sum, "mse_forward: loss must be a one-element f32 view");
}

void mse_backward(Context& ctx, float scale, const View& pred, const View& target, const View& dpred, bool accumulate,
                  const View* dloss) {
  scale *= loss_gradient(dloss, "mse_backward");
  require(dpred.dtype == DType::f32, "mse_backward: dpred must be an f32 view");
  if (dpred.volume() == 0) return;
  require(pred.dtype == DType::f32 && holds(pred, dpred, dpred) && target.dtype == DType::f32 &&
              holds(target, dpred, dpred),
          "mse_backward: pred and target do not hold dpred's box");
  const int last = dpred.rank - 1;
  const int64_t n = dpred.rank > 0 ? dpred.size[last] : 1;
  const int64_t sp = dpred.rank > 0 ? pred.stride[last] : 0, st = dpred.rank > 0 ? target.stride[last] : 0;
  const int64_t so = dpred.rank > 0 ? dpred.stride[last] : 0;
  const float k = 2.f * scale;
  for_lines(dpred, threads_for(ctx, dpred.volume(), dpred.volume() / n), [&](const int64_t* g) {
    const float* p = pred.f32() + pred.offset_of(g);
    const float* q = target.f32() + target.offset_of(g);
    float* out = dpred.f32() + dpred.offset_of(g);
    for (int64_t i = 0; i < n; ++i) store(out + i * so, k * (p[i * sp] - q[i * st]), accumulate);
  });
}

}  // namespace ffrt
