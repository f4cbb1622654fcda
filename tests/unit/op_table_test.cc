// The op table: shape inference for each op kind, parameters, splittable dims, and the input-box
// rules, the latter checked against brute force (the box must hold every input element the part's
// outputs read).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>

#include "ir/op_table.h"
#include "tests/unit/testing.h"

namespace ffc {
namespace {

using testing::bounding_box;
using testing::box;
using testing::input_box;
using testing::model;
using testing::op_named;
using testing::out_type;
using testing::param_box;
using testing::points;

// ---- shape inference -----------------------------------------------------------------------------

TEST(ShapeInference, Conv2dStridePaddingDilationGroups) {
  Graph g = model(
      "x = input() : f32[N,4,32,30]\n"
      "plain = conv2d(x, out_channels=8, kernel=3)\n"
      "strided = conv2d(x, out_channels=8, kernel=3, stride=2, padding=1)\n"
      "dilated = conv2d(x, out_channels=8, kernel=3, dilation=2)\n"
      "grouped = conv2d(x, out_channels=6, kernel=[5,1], stride=[1,3], padding=[2,0], groups=2)\n"
      "whole = conv2d(x, out_channels=4, kernel=32, padding=[0,1])\n");
  EXPECT_EQ(out_type(g, "plain"), "f32[N,8,30,28]");
  EXPECT_EQ(out_type(g, "strided"), "f32[N,8,16,15]");  // floor((32+2-3)/2)+1, floor((30+2-3)/2)+1
  EXPECT_EQ(out_type(g, "dilated"), "f32[N,8,28,26]");  // the window spans 5
  EXPECT_EQ(out_type(g, "grouped"), "f32[N,6,32,10]");
  EXPECT_EQ(out_type(g, "whole"), "f32[N,4,1,1]");
}

/// PyTorch's output extent of a window op (aten's pooling_output_shape; conv is the floor case).
int64_t torch_window_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  int64_t num = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

TEST(ShapeInference, Conv2dMatchesPyTorchOverAGrid) {
  for (int64_t in = 1; in <= 12; ++in)
    for (int64_t k = 1; k <= 5; ++k)
      for (int64_t s = 1; s <= 3; ++s)
        for (int64_t p = 0; p <= 2; ++p)
          for (int64_t d = 1; d <= 2; ++d) {
            std::string text = fmt::format(
                "x = input() : f32[N,2,{},7]\nc = conv2d(x, out_channels=2, kernel=[{},1], stride=[{},1], "
                "padding=[{},0], dilation=[{},1])\n",
                in, k, s, p, d);
            int64_t want = torch_window_out(in, k, s, p, d, false);
            SCOPED_TRACE(text);
            if (want < 1) {
              EXPECT_THROW(model(text), UserError);
            } else {
              EXPECT_EQ(out_type(model(text), "c"), fmt::format("f32[N,2,{},7]", want));
            }
          }
}

TEST(ShapeInference, Pool2dCeilModeMatchesPyTorchOverAGrid) {
  int checked = 0;
  for (int64_t in = 1; in <= 12; ++in)
    for (int64_t k = 1; k <= 5; ++k)
      for (int64_t s = 1; s <= 4; ++s)
        for (int64_t p = 0; 2 * p <= k; ++p)
          for (bool ceil_mode : {false, true}) {
            std::string text = fmt::format(
                "x = input() : f32[N,3,{},5]\np = pool2d(x, type=max, kernel=[{},1], stride=[{},1], padding=[{},0], "
                "ceil_mode={})\n",
                in, k, s, p, ceil_mode);
            int64_t want = torch_window_out(in, k, s, p, 1, ceil_mode);
            SCOPED_TRACE(text);
            if (want < 1) {
              EXPECT_THROW(model(text), UserError);
            } else {
              EXPECT_EQ(out_type(model(text), "p"), fmt::format("f32[N,3,{},5]", want));
              ++checked;
            }
          }
  EXPECT_GT(checked, 500);
}

TEST(ShapeInference, Pool2dCeilModeExamples) {
  Graph g = model(
      "x = input() : f32[N,8,7,2]\n"
      "floor = pool2d(x, type=max, kernel=2, stride=2)\n"
      "ceil = pool2d(x, type=max, kernel=2, stride=2, ceil_mode=true)\n"
      // The last window would start in the right padding: PyTorch drops it (4, not 5).
      "padded = pool2d(x, type=avg, kernel=2, stride=2, padding=1, ceil_mode=true)\n"
      // A window wider than the input is fine with ceil_mode, as in PyTorch.
      "wide = pool2d(x, type=max, kernel=[1,3], stride=[1,2], ceil_mode=true)\n");
  EXPECT_EQ(out_type(g, "floor"), "f32[N,8,3,1]");
  EXPECT_EQ(out_type(g, "ceil"), "f32[N,8,4,1]");
  EXPECT_EQ(out_type(g, "padded"), "f32[N,8,4,2]");
  EXPECT_EQ(out_type(g, "wide"), "f32[N,8,7,1]");
}

TEST(ShapeInference, Linear2d3d4d) {
  Graph g = model(
      "a = input() : f32[N,10]\n"
      "b = input() : f32[N,7,10]\n"
      "c = input() : f32[N,2,3,10]\n"
      "la = linear(a, out_features=4)\n"
      "lb = linear(b, out_features=4, bias=false)\n"
      "lc = linear(c, out_features=1)\n");
  EXPECT_EQ(out_type(g, "la"), "f32[N,4]");
  EXPECT_EQ(out_type(g, "lb"), "f32[N,7,4]");
  EXPECT_EQ(out_type(g, "lc"), "f32[N,2,3,1]");
}

TEST(ShapeInference, MatmulTransposesAndBroadcastBatchDims) {
  Graph g = model(
      "a = input() : f32[N,3,4]\n"
      "at = input() : f32[N,4,3]\n"
      "b = input() : f32[N,4,5]\n"
      "bt = input() : f32[N,5,4]\n"
      "w = input() : f32[4,5]\n"
      "a1 = input() : f32[N,1,3,4]\n"
      "b6 = input() : f32[6,4,5]\n"
      "plain = matmul(a, b)\n"
      "ta = matmul(at, b, transpose_a=true)\n"
      "tb = matmul(a, bt, transpose_b=true)\n"
      "tab = matmul(at, bt, transpose_a=true, transpose_b=true)\n"
      "weights = matmul(a, w)\n"
      "broadcast = matmul(a1, b6)\n"
      "rows = matmul(at, a, transpose_a=true, transpose_b=true)\n");
  EXPECT_EQ(out_type(g, "plain"), "f32[N,3,5]");
  EXPECT_EQ(out_type(g, "ta"), "f32[N,3,5]");
  EXPECT_EQ(out_type(g, "tb"), "f32[N,3,5]");
  EXPECT_EQ(out_type(g, "tab"), "f32[N,3,5]");
  EXPECT_EQ(out_type(g, "weights"), "f32[N,3,5]");
  EXPECT_EQ(out_type(g, "broadcast"), "f32[N,6,3,5]");
  EXPECT_EQ(out_type(g, "rows"), "f32[N,3,3]");
}

TEST(ShapeInference, Embedding) {
  Graph g = model(
      "ids = input() : i64[N,8]\n"
      "e = embedding(ids, num_embeddings=100, embedding_dim=16)\n"
      "flat_ids = input() : i64[N]\n"
      "e1 = embedding(flat_ids, num_embeddings=5, embedding_dim=3)\n");
  EXPECT_EQ(out_type(g, "e"), "f32[N,8,16]");
  EXPECT_EQ(out_type(g, "e1"), "f32[N,3]");
}

TEST(ShapeInference, Concat) {
  Graph g = model(
      "a = input() : f32[N,3,8,8]\n"
      "b = input() : f32[N,5,8,8]\n"
      "c = input() : f32[N,3,8,2]\n"
      "channels = concat(a, b, a)\n"
      "last = concat(a, c, axis=-1)\n"
      "one = concat(b)\n");
  EXPECT_EQ(out_type(g, "channels"), "f32[N,11,8,8]");
  EXPECT_EQ(out_type(g, "last"), "f32[N,3,8,10]");
  EXPECT_EQ(out_type(g, "one"), "f32[N,5,8,8]");
}

TEST(ShapeInference, ReshapeWithMinusOneAndN) {
  Graph g = model(
      "x = input() : f32[N,3,8,8]\n"
      "flat = reshape(x, shape=[N,-1])\n"
      "split = reshape(x, shape=[N,8,-1,4])\n"
      "same = reshape(x, shape=[N,192])\n"
      "fixed = input() : f32[6,4]\n"
      "rows = reshape(fixed, shape=[4,6])\n"
      "all = reshape(fixed, shape=[-1])\n");
  EXPECT_EQ(out_type(g, "flat"), "f32[N,192]");
  EXPECT_EQ(out_type(g, "split"), "f32[N,8,6,4]");
  EXPECT_EQ(out_type(g, "same"), "f32[N,192]");
  EXPECT_EQ(out_type(g, "rows"), "f32[4,6]");
  EXPECT_EQ(out_type(g, "all"), "f32[24]");
}

TEST(ShapeInference, TransposeAndFlat) {
  Graph g = model(
      "x = input() : f32[N,3,8,5]\n"
      "t = transpose(x, perm=[0,2,3,1])\n"
      "back = transpose(t, perm=[0,3,1,2])\n"
      "f = flat(x)\n"
      "v = input() : f32[N,5]\n"
      "fv = flat(v)\n");
  EXPECT_EQ(out_type(g, "t"), "f32[N,8,5,3]");
  EXPECT_EQ(out_type(g, "back"), "f32[N,3,8,5]");
  EXPECT_EQ(out_type(g, "f"), "f32[N,120]");
  EXPECT_EQ(out_type(g, "fv"), "f32[N,5]");
}

TEST(ShapeInference, LossesAreScalarsSplitLikeTheirPerSampleInput) {
  Graph g = model(
      "logits = input() : f32[N,10]\n"
      "label = input() : i64[N]\n"
      "ce = softmax_cross_entropy(logits, label)\n"
      "seq = input() : f32[N,7,100]\n"
      "tokens = input() : i64[N,7]\n"
      "lm = softmax_cross_entropy(seq, tokens)\n"
      "target = input() : f32[N,10]\n"
      "mse = mse_loss(logits, target)\n");
  EXPECT_EQ(out_type(g, "ce"), "f32[]");
  EXPECT_EQ(out_type(g, "lm"), "f32[]");
  EXPECT_EQ(out_type(g, "mse"), "f32[]");
  EXPECT_EQ(shape_str(op_parallel_shape(g, op_named(g, "ce"))), "[N]");
  EXPECT_EQ(shape_str(op_parallel_shape(g, op_named(g, "lm"))), "[N,7]");
  EXPECT_EQ(shape_str(op_parallel_shape(g, op_named(g, "mse"))), "[N,10]");
}

TEST(ShapeInference, BinaryOpsBroadcastLikeNumPy) {
  Graph g = model(
      "x = input() : f32[N,3,8,8]\n"
      "bias = input() : f32[3,1,1]\n"
      "row = input() : f32[N,1,8]\n"
      "col = input() : f32[4,1]\n"
      "one = input() : f32[1]\n"
      "a = add(x, bias)\n"
      "b = mul(row, col)\n"
      "c = sub(one, x)\n"
      "d = add(x, x)\n");
  EXPECT_EQ(out_type(g, "a"), "f32[N,3,8,8]");
  EXPECT_EQ(out_type(g, "b"), "f32[N,4,8]");
  EXPECT_EQ(out_type(g, "c"), "f32[N,3,8,8]");
  EXPECT_EQ(out_type(g, "d"), "f32[N,3,8,8]");
}

TEST(ShapeInference, ElementwiseAndNormsKeepTheirInputType) {
  Graph g = model(
      "x = input() : bf16[N,3,8,8]\n"
      "r = relu(x)\n"
      "s = sigmoid(r)\n"
      "t = tanh(s)\n"
      "u = gelu(t)\n"
      "d = dropout(u, rate=0.0)\n"
      "bn = batch_norm(d)\n"
      "ln = layer_norm(bn)\n"
      "sm = softmax(ln, axis=1)\n");
  for (const char* name : {"r", "s", "t", "u", "d", "bn", "ln", "sm"}) EXPECT_EQ(out_type(g, name), "bf16[N,3,8,8]") << name;
}

TEST(ShapeInference, ClipScaleLogSoftmaxSplit) {
  Graph g = model(
      "x = input() : f32[N,6,4]\n"
      "c = clip(x, min=0.0, max=6.0)\n"
      "s = scale(c, factor=0.125)\n"
      "l = log_softmax(s, axis=1)\n"
      "parts = split(l, sizes=[1,2,3])\n"
      "last = split(x, axis=-1, sizes=[3,1])\n");
  EXPECT_EQ(out_type(g, "c"), "f32[N,6,4]");
  EXPECT_EQ(out_type(g, "s"), "f32[N,6,4]");
  EXPECT_EQ(out_type(g, "l"), "f32[N,6,4]");
  EXPECT_EQ(op_named(g, "parts").outputs.size(), 3u);
  EXPECT_EQ(out_type(g, "parts", 0), "f32[N,1,4]");
  EXPECT_EQ(out_type(g, "parts", 2), "f32[N,3,4]");
  EXPECT_EQ(out_type(g, "last", 0), "f32[N,6,3]");
  EXPECT_EQ(out_type(g, "last", 1), "f32[N,6,1]");
  // split is split like its input, whole along the split axis.
  EXPECT_EQ(shape_str(op_parallel_shape(g, op_named(g, "parts"))), "[N,6,4]");
  EXPECT_EQ(op_splittable(g, op_named(g, "parts")), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(op_splittable(g, op_named(g, "l")), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(input_box(g, "parts", 0, box({{0, 2}, {0, 6}, {1, 3}}), 4), box({{0, 2}, {0, 6}, {1, 3}}));
}

// ---- parameters ----------------------------------------------------------------------------------

std::string params_str(const Graph& g, std::string_view name) {
  std::string s;
  for (const ParamSpec& p : op_params(g, op_named(g, name)))
    s += fmt::format("{}{}{}{}", s.empty() ? "" : " ", p.name, shape_str(p.shape), p.trainable ? "" : "(state)");
  return s;
}

TEST(Params, ShapesFollowTheOp) {
  Graph g = model(
      "x = input() : f32[N,4,8,8]\n"
      "conv = conv2d(x, out_channels=6, kernel=[3,5], groups=2)\n"
      "nobias = conv2d(x, out_channels=6, kernel=1, bias=false)\n"
      "bn = batch_norm(x)\n"
      "bn_plain = batch_norm(x, affine=false)\n"
      "f = flat(x)\n"
      "fc = linear(f, out_features=10)\n"
      "ln = layer_norm(f)\n"
      "ln_plain = layer_norm(f, affine=false)\n"
      "ids = input() : i64[N,3]\n"
      "emb = embedding(ids, num_embeddings=50, embedding_dim=7)\n");
  EXPECT_EQ(params_str(g, "conv"), "weight[6,2,3,5] bias[6]");
  EXPECT_EQ(params_str(g, "nobias"), "weight[6,4,1,1]");
  EXPECT_EQ(params_str(g, "bn"), "weight[4] bias[4] running_mean[4](state) running_var[4](state)");
  EXPECT_EQ(params_str(g, "bn_plain"), "running_mean[4](state) running_var[4](state)");
  EXPECT_EQ(params_str(g, "fc"), "weight[10,256] bias[10]");
  EXPECT_EQ(params_str(g, "ln"), "weight[256] bias[256]");
  EXPECT_EQ(params_str(g, "ln_plain"), "");
  EXPECT_EQ(params_str(g, "emb"), "weight[50,7]");
  EXPECT_EQ(params_str(g, "f"), "");
  // Fan-in: what PyTorch's default init divides by.
  EXPECT_EQ(op_params(g, op_named(g, "conv"))[0].fan_in, 2 * 3 * 5);
  EXPECT_EQ(op_params(g, op_named(g, "fc"))[1].fan_in, 256);
}

// ---- splittable dims -----------------------------------------------------------------------------

std::vector<bool> splittable(const Graph& g, std::string_view name) { return op_splittable(g, op_named(g, name)); }

TEST(Splittable, DimsEachOpMaySplit) {
  Graph g = model(
      "x = input() : f32[N,4,8,8]\n"
      "conv = conv2d(x, out_channels=4, kernel=3)\n"
      "f = flat(x)\n"
      "sm = softmax(f)\n"
      "sm0 = softmax(f, axis=0)\n"
      "seq = input() : f32[N,5,6]\n"
      "ln = layer_norm(seq)\n"
      "keep = reshape(seq, shape=[N,30])\n"
      "t = transpose(seq, perm=[1,0,2])\n"
      "moved = reshape(t, shape=[5,N,2,3])\n"
      "label = input() : i64[N,5]\n"
      "loss = softmax_cross_entropy(seq, label)\n");
  using V = std::vector<bool>;
  EXPECT_EQ(splittable(g, "conv"), (V{true, true, true, true}));
  EXPECT_EQ(splittable(g, "f"), (V{true, true}));
  EXPECT_EQ(splittable(g, "sm"), (V{true, false}));
  EXPECT_EQ(splittable(g, "sm0"), (V{false, true}));
  EXPECT_EQ(splittable(g, "ln"), (V{true, true, false}));
  EXPECT_EQ(splittable(g, "keep"), (V{true, false}));  // only a leading N of both shapes
  EXPECT_EQ(splittable(g, "moved"), (V{false, false, false, false}));  // N not leading
  EXPECT_EQ(splittable(g, "t"), (V{true, true, true}));
  EXPECT_EQ(splittable(g, "loss"), (V{true, true}));  // the labels' dims
}

TEST(Splittable, ParallelDimNames) {
  EXPECT_EQ(parallel_dim_names(4), (std::vector<std::string>{"n", "c", "h", "w"}));
  EXPECT_EQ(parallel_dim_names(3), (std::vector<std::string>{"n", "s", "c"}));
  EXPECT_EQ(parallel_dim_names(2), (std::vector<std::string>{"n", "c"}));
  EXPECT_EQ(parallel_dim_names(1), (std::vector<std::string>{"n"}));
  EXPECT_EQ(parallel_dim_names(5), (std::vector<std::string>{"n", "d1", "d2", "d3", "d4"}));
}

// ---- input boxes ---------------------------------------------------------------------------------

/// Every split of [0, extent) into one range: all [lo, hi) with lo < hi.
std::vector<Range> all_ranges(int64_t extent) {
  std::vector<Range> out;
  for (int64_t lo = 0; lo < extent; ++lo)
    for (int64_t hi = lo + 1; hi <= extent; ++hi) out.push_back({lo, hi});
  return out;
}

TEST(InputBox, Conv2dHaloMatchesBruteForce) {
  // For every output range, the input rows a conv reads are its windows' taps that fall inside the
  // input. The rule's box must hold all of them, lie in the input, and be exact without padding.
  for (int64_t in : {7, 10})
    for (int64_t k : {1, 2, 3})
      for (int64_t s : {1, 2, 3})
        for (int64_t p : {0, 1, 2})
          for (int64_t d : {1, 2}) {
            if (torch_window_out(in, k, s, p, d, false) < 1) continue;
            Graph g = model(fmt::format(
                "x = input() : f32[N,2,{},3]\nc = conv2d(x, out_channels=2, kernel=[{},1], stride=[{},1], padding=[{},0], "
                "dilation=[{},1])\n",
                in, k, s, p, d));
            int64_t out = bind_shape(g.type(op_named(g, "c").outputs[0]).shape, 1)[2];
            for (Range r : all_ranges(out)) {
              Box got = input_box(g, "c", 0, box({{0, 1}, {0, 2}, {r.lo, r.hi}, {0, 3}}), 1);
              std::vector<std::vector<int64_t>> read;
              for (int64_t o = r.lo; o < r.hi; ++o)
                for (int64_t t = 0; t < k; ++t) {
                  int64_t i = o * s - p + t * d;
                  if (i >= 0 && i < in) read.push_back({0, 0, i, 0});
                }
              SCOPED_TRACE(fmt::format("in={} k={} s={} p={} d={} rows {}:{} -> {}", in, k, s, p, d, r.lo, r.hi, got.str()));
              Box need = bounding_box(read, 4);
              need.r[1] = {0, 2};
              need.r[3] = {0, 3};
              EXPECT_TRUE(got.contains(need));
              EXPECT_TRUE(Box::whole({1, 2, in, 3}).contains(got));
              if (p == 0) {
                EXPECT_EQ(got, need);
              }
            }
          }
}

TEST(InputBox, Conv2dExamples) {
  Graph g = model(
      "x = input() : f32[N,3,13,13]\n"
      "c = conv2d(x, out_channels=8, kernel=3, stride=2, padding=1)\n");  // out 7x7
  // Output rows 0..3 read input rows 2*0-1 .. 2*3-1+2, clamped to [0, 8); all input channels.
  EXPECT_EQ(input_box(g, "c", 0, box({{0, 4}, {0, 8}, {0, 4}, {4, 7}}), 4), box({{0, 4}, {0, 3}, {0, 8}, {7, 13}}));
  // A channel split needs every input channel and its block of the weight and bias.
  EXPECT_EQ(input_box(g, "c", 0, box({{2, 4}, {4, 8}, {0, 7}, {0, 7}}), 4), box({{2, 4}, {0, 3}, {0, 13}, {0, 13}}));
  EXPECT_EQ(param_box(g, "c", 0, box({{2, 4}, {4, 8}, {0, 7}, {0, 7}}), 4), box({{4, 8}, {0, 3}, {0, 3}, {0, 3}}));
  EXPECT_EQ(param_box(g, "c", 1, box({{2, 4}, {4, 8}, {0, 7}, {0, 7}}), 4), box({{4, 8}}));
}

TEST(InputBox, GroupedConvReadsItsGroupsChannelBlocks) {
  // 12 input channels, 8 output channels, 4 groups: output channels 2g, 2g+1 read inputs 3g..3g+2.
  Graph g = model(
      "x = input() : f32[N,12,5,5]\n"
      "c = conv2d(x, out_channels=8, kernel=1, groups=4)\n");
  for (Range r : all_ranges(8)) {
    std::vector<std::vector<int64_t>> read;
    for (int64_t oc = r.lo; oc < r.hi; ++oc)
      for (int64_t ic = oc / 2 * 3; ic < oc / 2 * 3 + 3; ++ic) read.push_back({0, ic, 0, 0});
    Box need = bounding_box(read, 4);
    need.r[2] = {0, 5};
    need.r[3] = {0, 5};
    EXPECT_EQ(input_box(g, "c", 0, box({{0, 1}, {r.lo, r.hi}, {0, 5}, {0, 5}}), 1), need) << r.lo << ":" << r.hi;
    // The weight [8, 3, 1, 1]: the part's output channels, every in-group channel.
    EXPECT_EQ(param_box(g, "c", 0, box({{0, 1}, {r.lo, r.hi}, {0, 5}, {0, 5}}), 1),
              box({{r.lo, r.hi}, {0, 3}, {0, 1}, {0, 1}}));
  }
}

TEST(InputBox, Pool2dHaloIsClampedToTheInput) {
  Graph g = model(
      "x = input() : f32[N,4,7,7]\n"
      "p = pool2d(x, type=max, kernel=3, stride=2, padding=1, ceil_mode=true)\n");  // out 4x4
  EXPECT_EQ(out_type(g, "p"), "f32[N,4,4,4]");
  // The last output row's window is rows 5..7 of the padded input: 5 and 6 exist, 7 does not.
  EXPECT_EQ(input_box(g, "p", 0, box({{0, 2}, {1, 3}, {3, 4}, {0, 4}}), 2), box({{0, 2}, {1, 3}, {5, 7}, {0, 7}}));
  EXPECT_EQ(input_box(g, "p", 0, box({{0, 2}, {0, 4}, {0, 1}, {1, 2}}), 2), box({{0, 2}, {0, 4}, {0, 2}, {1, 4}}));
}

TEST(InputBox, LinearReadsFullRowsAndItsWeightSlice) {
  Graph g = model(
      "x = input() : f32[N,20]\n"
      "fc = linear(x, out_features=10)\n"
      "s = input() : f32[N,6,20]\n"
      "fs = linear(s, out_features=10)\n");
  Box part = box({{0, 4}, {3, 7}});
  EXPECT_EQ(input_box(g, "fc", 0, part, 8), box({{0, 4}, {0, 20}}));
  EXPECT_EQ(param_box(g, "fc", 0, part, 8), box({{3, 7}, {0, 20}}));
  EXPECT_EQ(param_box(g, "fc", 1, part, 8), box({{3, 7}}));
  Box seq = box({{1, 2}, {2, 5}, {0, 3}});
  EXPECT_EQ(input_box(g, "fs", 0, seq, 8), box({{1, 2}, {2, 5}, {0, 20}}));
  EXPECT_EQ(param_box(g, "fs", 0, seq, 8), box({{0, 3}, {0, 20}}));
}

TEST(InputBox, FlatBoxIsTheBoundingBoxOfTheElementsItMapsTo) {
  // Exhaustive over every feature range of a [B,3,4,5] input flattened to [B,60]: the rule's box
  // must be the bounding box of the input elements the range covers.
  Graph g = model(
      "x = input() : f32[N,3,4,5]\n"
      "f = flat(x)\n");
  for (Range r : all_ranges(60)) {
    std::vector<std::vector<int64_t>> read;
    for (int64_t i = r.lo; i < r.hi; ++i) read.push_back({1, i / 20, i / 5 % 4, i % 5});
    Box need = bounding_box(read, 4);
    need.r[0] = {1, 3};
    EXPECT_EQ(input_box(g, "f", 0, box({{1, 3}, {r.lo, r.hi}}), 4), need) << r.lo << ":" << r.hi;
  }
}

TEST(InputBox, FlatRandomRangesOfDeeperTensors) {
  Graph g = model(
      "x = input() : f32[N,2,3,2,4,3]\n"
      "f = flat(x)\n");
  const std::vector<int64_t> dims{2, 3, 2, 4, 3};
  std::mt19937 rng(7);
  for (int it = 0; it < 500; ++it) {
    int64_t a = rng() % 144, b = rng() % 144;
    Range r{std::min(a, b), std::max(a, b) + 1};
    std::vector<std::vector<int64_t>> read;
    for (int64_t i = r.lo; i < r.hi; ++i) {
      std::vector<int64_t> p(6, 0);
      int64_t rest = i;
      for (int d = 5; d >= 1; --d) {
        p[d] = rest % dims[d - 1];
        rest /= dims[d - 1];
      }
      read.push_back(p);
    }
    Box got = input_box(g, "f", 0, box({{0, 1}, {r.lo, r.hi}}), 1);
    for (const auto& p : read) EXPECT_TRUE(got.contains(bounding_box({p}, 6))) << r.lo << ":" << r.hi << " " << got.str();
    EXPECT_EQ(got, bounding_box(read, 6));
  }
}

TEST(InputBox, ConcatGivesEachInputItsShareOfTheAxis) {
  Graph g = model(
      "a = input() : f32[N,3,4]\n"
      "b = input() : f32[N,5,4]\n"
      "c = input() : f32[N,2,4]\n"
      "cat = concat(a, b, c)\n");
  const int64_t offset[] = {0, 3, 8}, extent[] = {3, 5, 2};
  for (Range r : all_ranges(10))
    for (int i = 0; i < 3; ++i) {
      Box got = input_box(g, "cat", i, box({{0, 2}, {r.lo, r.hi}, {1, 3}}), 2);
      std::vector<std::vector<int64_t>> read;
      for (int64_t ch = r.lo; ch < r.hi; ++ch)
        if (ch >= offset[i] && ch < offset[i] + extent[i]) read.push_back({0, ch - offset[i], 1});
      if (read.empty()) {
        EXPECT_TRUE(got.empty()) << i << " " << r.lo << ":" << r.hi;
      } else {
        Box need = bounding_box(read, 3);
        need.r[0] = {0, 2};
        need.r[2] = {1, 3};
        EXPECT_EQ(got, need) << i << " " << r.lo << ":" << r.hi;
      }
    }
  Graph last = model(
      "a = input() : f32[N,3,4]\n"
      "b = input() : f32[N,3,2]\n"
      "cat = concat(a, b, axis=-1)\n");
  EXPECT_EQ(input_box(last, "cat", 1, box({{0, 1}, {0, 3}, {3, 6}}), 1), box({{0, 1}, {0, 3}, {0, 2}}));
  EXPECT_EQ(input_box(last, "cat", 0, box({{0, 1}, {0, 3}, {3, 6}}), 1), box({{0, 1}, {0, 3}, {3, 4}}));
}

TEST(InputBox, TransposeMovesEachRangeToItsInputDim) {
  Graph g = model(
      "x = input() : f32[N,3,8,5]\n"
      "t = transpose(x, perm=[0,2,3,1])\n");  // [N,8,5,3]
  Box part = box({{1, 2}, {2, 6}, {0, 3}, {1, 3}});
  Box got = input_box(g, "t", 0, part, 2);
  EXPECT_EQ(got, box({{1, 2}, {1, 3}, {2, 6}, {0, 3}}));
  const int64_t perm[] = {0, 2, 3, 1};
  for (const auto& p : points(part)) {
    std::vector<int64_t> q(4);
    for (int i = 0; i < 4; ++i) q[perm[i]] = p[i];
    EXPECT_TRUE(got.contains(bounding_box({q}, 4)));
  }
  EXPECT_EQ(got.volume(), part.volume());
}

TEST(InputBox, MatmulMatchesBruteForceWithTransposesAndBroadcast) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      // a [N,1,M=3,K=4] (or [N,1,4,3] transposed) times b [6,4,5] (or [6,5,4]): out [N,6,3,5].
      Graph g = model(fmt::format(
          "a = input() : f32[N,1,{}]\n"
          "b = input() : f32[6,{}]\n"
          "m = matmul(a, b, transpose_a={}, transpose_b={})\n",
          ta ? "4,3" : "3,4", tb ? "5,4" : "4,5", ta, tb));
      ASSERT_EQ(out_type(g, "m"), "f32[N,6,3,5]");
      std::mt19937 rng(ta * 2 + tb);
      for (int it = 0; it < 50; ++it) {
        const int64_t ext[] = {2, 6, 3, 5};
        Box part;
        for (int64_t e : ext) {
          int64_t x = rng() % e, y = rng() % e;
          part.r.push_back({std::min(x, y), std::max(x, y) + 1});
        }
        std::vector<std::vector<int64_t>> ra, rb;
        for (const auto& o : points(part))
          for (int64_t k = 0; k < 4; ++k) {
            ra.push_back(ta ? std::vector<int64_t>{o[0], 0, k, o[2]} : std::vector<int64_t>{o[0], 0, o[2], k});
            rb.push_back(tb ? std::vector<int64_t>{o[1], o[3], k} : std::vector<int64_t>{o[1], k, o[3]});
          }
        SCOPED_TRACE(fmt::format("ta={} tb={} part {}", ta, tb, part.str()));
        EXPECT_EQ(input_box(g, "m", 0, part, 2), bounding_box(ra, 4));
        EXPECT_EQ(input_box(g, "m", 1, part, 2), bounding_box(rb, 3));
      }
    }
}

TEST(InputBox, BinaryBroadcastReadsTheStretchedDimOnce) {
  Graph g = model(
      "x = input() : f32[N,3,8,8]\n"
      "bias = input() : f32[3,1,1]\n"
      "a = add(x, bias)\n");
  Box part = box({{1, 3}, {1, 2}, {0, 4}, {4, 8}});
  EXPECT_EQ(input_box(g, "a", 0, part, 4), part);
  EXPECT_EQ(input_box(g, "a", 1, part, 4), box({{1, 2}, {0, 1}, {0, 1}}));
}

TEST(InputBox, EmbeddingLossesAndReshape) {
  Graph g = model(
      "ids = input() : i64[N,8]\n"
      "e = embedding(ids, num_embeddings=100, embedding_dim=16)\n"
      "logits = input() : f32[N,10]\n"
      "label = input() : i64[N]\n"
      "ce = softmax_cross_entropy(logits, label)\n"
      "x = input() : f32[N,6]\n"
      "r = reshape(x, shape=[N,2,3])\n"
      "fixed = input() : f32[6,4]\n"
      "rows = reshape(fixed, shape=[4,6])\n");
  Box part = box({{0, 2}, {3, 5}, {8, 16}});
  EXPECT_EQ(input_box(g, "e", 0, part, 4), box({{0, 2}, {3, 5}}));
  EXPECT_EQ(param_box(g, "e", 0, part, 4), box({{0, 100}, {8, 16}}));
  EXPECT_EQ(input_box(g, "ce", 0, box({{2, 4}}), 4), box({{2, 4}, {0, 10}}));
  EXPECT_EQ(input_box(g, "ce", 1, box({{2, 4}}), 4), box({{2, 4}}));
  EXPECT_EQ(input_box(g, "r", 0, box({{1, 3}, {0, 2}, {0, 3}}), 4), box({{1, 3}, {0, 6}}));
  // Dim 0 of [6,4] is not dim 0 of [4,6]: the (only) part reads the whole input.
  EXPECT_EQ(input_box(g, "rows", 0, box({{0, 4}, {0, 6}}), 4), box({{0, 6}, {0, 4}}));
}

// ---- properties ----------------------------------------------------------------------------------

TEST(Property, PartsTileTheTensor) {
  // For random extents and degrees, the parts' boxes are disjoint, lie in the tensor and cover
  // every element exactly once.
  std::mt19937 rng(2024);
  for (int it = 0; it < 300; ++it) {
    int rank = 1 + rng() % 4;
    std::vector<int64_t> extents, degrees;
    for (int d = 0; d < rank; ++d) {
      extents.push_back(1 + rng() % 7);
      degrees.push_back(1 + rng() % extents.back());
    }
    Box whole = Box::whole(extents);
    std::vector<int> hits(whole.volume(), 0);
    for (int64_t i = 0; i < num_parts(degrees); ++i) {
      Box b = part_box(extents, degrees, i);
      ASSERT_TRUE(whole.contains(b));
      EXPECT_FALSE(b.empty());  // a degree never exceeds its extent, so no part is empty
      for (const auto& p : points(b)) {
        int64_t flat = 0;
        for (int d = 0; d < rank; ++d) flat = flat * extents[d] + p[d];
        ++hits[flat];
      }
    }
    for (int h : hits) ASSERT_EQ(h, 1) << fmt::format("extents [{}] degrees [{}]", fmt::join(extents, ","), fmt::join(degrees, ","));
  }
}

TEST(Property, InputBoxesLieInTheirInputsForRandomConfigs) {
  // Every op of a model with one op of each kind, every random config over its splittable dims:
  // each part's input boxes lie inside the inputs, and the parts of same-box ops read all of them.
  Graph g = model(
      "img = input() : f32[N,6,9,9]\n"
      "conv = conv2d(img, out_channels=4, kernel=3, stride=2, padding=2, dilation=2, groups=2)\n"
      "pool = pool2d(conv, type=max, kernel=3, stride=2, padding=1, ceil_mode=true)\n"
      "bn = batch_norm(pool)\n"
      "f = flat(bn)\n"
      "fc = linear(f, out_features=7)\n"
      "sm = softmax(fc)\n"
      "ids = input() : i64[N,5]\n"
      "emb = embedding(ids, num_embeddings=11, embedding_dim=6)\n"
      "ln = layer_norm(emb)\n"
      "t = transpose(ln, perm=[0,2,1])\n"
      "mm = matmul(ln, t)\n"
      "cat = concat(mm, ln, axis=2)\n"
      "r = reshape(cat, shape=[N,-1])\n"
      "d = dropout(r)\n"
      "b = input() : f32[55]\n"
      "s = add(d, b)\n"
      "fc2 = linear(s, out_features=7)\n"
      "both = mul(fc2, sm)\n"
      "label = input() : i64[N]\n"
      "ce = softmax_cross_entropy(both, label)\n"
      "mse = mse_loss(fc2, sm)\n");
  std::mt19937 rng(99);
  const int64_t batch = 5;
  for (const Op& op : g.ops) {
    if (!op.info().input_box) continue;
    std::vector<int64_t> extents = bind_shape(op_parallel_shape(g, op), batch);
    std::vector<bool> split = op_splittable(g, op);
    for (int it = 0; it < 20; ++it) {
      std::vector<int64_t> degrees;
      for (size_t dim = 0; dim < extents.size(); ++dim) degrees.push_back(split[dim] ? 1 + rng() % extents[dim] : 1);
      BoundOp bound = bind_op(g, op, batch);
      std::vector<std::vector<std::vector<int64_t>>> covered(op.inputs.size());
      for (int64_t i = 0; i < num_parts(degrees); ++i) {
        Box part = part_box(extents, degrees, i);
        for (size_t in = 0; in < op.inputs.size(); ++in) {
          Box got = op.info().input_box(bound, static_cast<int>(in), part);
          ASSERT_EQ(got.rank(), static_cast<int>(bound.in[in].size())) << op.name;
          EXPECT_TRUE(Box::whole(bound.in[in]).contains(got)) << op.name << " input " << in << " " << got.str();
        }
        for (size_t p = 0; p < op_params(g, op).size(); ++p) {
          if (!op.info().param_box) continue;
          Box got = op.info().param_box(bound, static_cast<int>(p), part);
          EXPECT_TRUE(Box::whole(bind_shape(op_params(g, op)[p].shape, batch)).contains(got)) << op.name << " param " << p;
        }
      }
    }
  }
}

TEST(OpTable, EveryKindHasAnEntryThatNamesItself) {
  for (OpKind k : all_op_kinds()) {
    const OpInfo& info = op_info(k);
    EXPECT_EQ(info.kind, k);
    OpKind parsed;
    ASSERT_TRUE(parse_op_kind(info.name, &parsed)) << info.name;
    EXPECT_EQ(parsed, k);
    EXPECT_NE(info.infer, nullptr) << info.name;
    // Every op a strategy can split says what its parts read.
    if (info.min_inputs > 0) {
      EXPECT_NE(info.input_box, nullptr) << info.name;
    }
  }
  OpKind k;
  EXPECT_FALSE(parse_op_kind("softplus", &k));
}

}  // namespace
}  // namespace ffc
