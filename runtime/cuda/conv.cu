// conv2d on cuDNN: forward (with bias and a fused activation), backward-data and backward-weight,
// each on parts.
//
// Every call works on the boxes its views hold, in global coordinates (see kernels.h), as the cpu
// backend does. A call plans each spatial dim from the output box: the input range its windows
// read, clipped to the tensor, and the padding they need before and after it (only at the global
// borders). cuDNN pads symmetrically, so it runs on the input view itself (a strided sub-view) when
// that padding fits, and otherwise on a zero-padded dense copy of the range with padding 0.
// cuDNN's backward-filter takes only dense tensors: views that are not are copied for it.
// Backward-data runs cuDNN into dx's box when the range lies inside it (beta = 1 accumulates),
// else into a temporary that is then added to the part of dx's box it overlaps. An output channel
// block that cuts groups runs as up to three calls: the cut first group, the whole groups
// (cudnnSetConvolutionGroupCount), the cut last group.
//
// Algorithms are chosen once per shape by measurement (cudnnFind*AlgorithmEx; for short calls the
// fastest few again by the wall clock, host time included) and kept, with their descriptors, in
// the context's plans. With ctx.tf32 the first engines that cuDNN's graph API proposes for the
// call are timed as well, and the fastest of all runs (an execution plan, keyed also by beta,
// which a graph fixes). Without ctx.tf32 the math is strict fp32 (CUDNN_FMA_MATH), only legacy
// algorithms run, and the FFT and Winograd ones, whose rounding differs most from a direct sum,
// are left out. The bias and activation follow the convolution as one in-place pass (dnn.h); the bias
// gradient is a per-channel sum in double.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dnn.h"

namespace ffrt {

namespace {

using cuda::Block4;
using cuda::require;

/// cuDNN's algorithm search may use up to this much workspace (less when the device is short:
/// half of what is free). Explicit-GEMM algorithms need an im2col buffer: AlexNet's 11x11 stride-4
/// first convolution at batch 256 needs 1.2 GB for it; under a 512 MiB cap it took 1.8 ms where
/// PyTorch's (whose search offers what its allocator can give) took 0.8 ms.
constexpr size_t kMaxFindWorkspace = size_t{4} << 30;
/// Below this GPU time (ms) per call, the fastest few algorithms are timed again by the wall clock:
/// cuDNN's legacy API spends 20 to 90 us of host time per call, by algorithm, which then matters.
constexpr float kRetimeBelowMs = 1.f;

// ---- geometry ------------------------------------------------------------------------------------

/// One spatial dim of the window: kernel extent, stride, padding, dilation.
struct Win {
  int64_t k, s, p, d;
};

int64_t conv_out(int64_t in, Win w) {
  int64_t span = in + 2 * w.p - w.d * (w.k - 1) - 1;
  return span < 0 ? 0 : span / w.s + 1;
}

/// The global shape of a convolution, checked against its attributes.
struct Geom {
  int64_t N, C, H, W, O, OH, OW, G, Cg, Og;
  Win wh, ww;
};

void check_view(const View& v, int rank, const char* what) { require(v.rank == rank && v.dtype == DType::f32, what); }

Geom geometry(const Conv2dAttrs& a, const int64_t* xfull, const int64_t* yfull, const int64_t* wfull) {
  Geom g;
  g.N = xfull[0], g.C = xfull[1], g.H = xfull[2], g.W = xfull[3];
  g.O = yfull[1], g.OH = yfull[2], g.OW = yfull[3];
  g.G = a.groups;
  g.wh = {a.kernel[0], a.stride[0], a.padding[0], a.dilation[0]};
  g.ww = {a.kernel[1], a.stride[1], a.padding[1], a.dilation[1]};
  for (const Win& w : {g.wh, g.ww})
    require(w.k >= 1 && w.s >= 1 && w.p >= 0 && w.d >= 1, "conv2d: invalid kernel, stride, padding or dilation");
  require(g.G >= 1 && g.C % g.G == 0 && g.O % g.G == 0, "conv2d: channels are not divisible by groups");
  g.Cg = g.C / g.G, g.Og = g.O / g.G;
  require(yfull[0] == g.N, "conv2d: input and output batch extents differ");
  require(g.OH == conv_out(g.H, g.wh) && g.OW == conv_out(g.W, g.ww),
          "conv2d: output extents do not match the input extents and attributes");
  require(wfull[0] == g.O && wfull[1] == g.Cg && wfull[2] == g.wh.k && wfull[3] == g.ww.k,
          "conv2d: weight extents are not [O, C/groups, kh, kw]");
  return g;
}

/// Whether v's box contains the box [lo, lo + size).
bool holds(const View& v, std::initializer_list<int64_t> lo, std::initializer_list<int64_t> size) {
  return static_cast<int>(lo.size()) == v.rank && cuda::box_holds(v, lo.begin(), size.begin());
}

/// The input range [lo, hi) that outputs [o0, o1) read through taps [t0, t1), clamped to [0, in),
/// and the padding the windows need around it: `before` positions before lo, `after` after hi.
struct Range {
  int64_t lo, hi, before, after;
  int64_t size() const { return hi - lo; }
  bool empty() const { return hi <= lo; }
};

Range input_range(int64_t o0, int64_t o1, int64_t t0, int64_t t1, int64_t in, Win w) {
  const int64_t start = o0 * w.s - w.p + t0 * w.d, end = (o1 - 1) * w.s - w.p + (t1 - 1) * w.d + 1;
  const int64_t lo = std::clamp<int64_t>(start, 0, in), hi = std::clamp<int64_t>(end, lo, in);
  return {lo, hi, lo - start, end - hi};
}

/// How cuDNN sees one spatial dim of the input side: the extent of its operand, where the range
/// starts in it, and the (symmetric) padding. With padding `before` on both sides cuDNN makes
/// exactly the outputs wanted, and never reads the padding it adds after the range, when
/// 0 <= before - after < stride: then the operand is the range itself. Otherwise it is the range
/// with its padding as zeros (a copy), and cuDNN pads nothing.
struct DimPlan {
  int64_t extent, offset, pad;
  bool in_place;
};

/// Plans a dim of range r. An in-place range that needs no padding after it is widened up to
/// `box_hi` (the end of the view's box) when cuDNN still makes the same outputs, reading nothing of
/// the extra input (or writing zeros there, for backward-data): a view then more often covers its
/// buffer's rows whole, which cuDNN's faster algorithms (and its backward-filter at all) need.
DimPlan plan_dim(Range& r, int64_t stride, int64_t box_hi) {
  const int64_t skew = r.before - r.after;
  if (skew < 0 || skew >= stride) return {r.before + r.size() + r.after, r.before, 0, false};
  if (r.after == 0 && box_hi > r.hi && box_hi - r.hi <= stride - 1 - skew) r.hi = box_hi;
  return {r.size(), 0, r.before, true};
}

/// Output channels [o0, o1) of one cuDNN call and how many groups they make: one (a possibly cut
/// group) or several whole ones.
struct Segment {
  int64_t o0, o1, groups;
};

/// The calls for output channels [o0, o1): the cut first group, the whole groups, the cut last
/// group; with `single`, one call per group.
std::vector<Segment> segments(int64_t o0, int64_t o1, int64_t og, bool single) {
  std::vector<Segment> out;
  int64_t o = o0;
  while (o < o1) {
    const int64_t group_end = (o / og + 1) * og;
    if (o % og != 0 || group_end > o1 || single) {
      const int64_t e = std::min(o1, group_end);
      out.push_back({o, e, 1});
      o = e;
      continue;
    }
    const int64_t whole = (o1 - o) / og;
    out.push_back({o, o + whole * og, whole});
    o += whole * og;
  }
  return out;
}

// ---- cuDNN operands ------------------------------------------------------------------------------

/// A 4-D tensor operand of a cuDNN call: extents n, element strides s.
struct Tensor {
  float* p;
  int64_t n[4], s[4];
  /// Channels [c, c + count), counted from its first.
  Tensor channels(int64_t c, int64_t count) const {
    Tensor t = *this;
    t.p += c * s[1];
    t.n[1] = count;
    return t;
  }
  /// Whether it is dense NCHW (cuDNN's backward-filter takes nothing else); extent-1 dims' strides
  /// do not matter.
  bool packed() const {
    int64_t dense = 1;
    for (int d = 3; d >= 0; --d) {
      if (n[d] != 1 && s[d] != dense) return false;
      dense *= n[d];
    }
    return true;
  }
  /// Elements from the first to the last, inclusive.
  int64_t span() const {
    int64_t e = 1;
    for (int d = 0; d < 4; ++d) e += (n[d] - 1) * s[d];
    return e;
  }
};

/// The box [lo, lo + size) of v (inside its box).
Tensor tensor_of(const View& v, std::initializer_list<int64_t> lo, std::initializer_list<int64_t> size) {
  Tensor t;
  t.p = v.f32() + v.offset_of(lo.begin());
  for (int d = 0; d < 4; ++d) t.n[d] = size.begin()[d], t.s[d] = v.stride[d];
  return t;
}

Block4 block_of(const View& v) {
  return {v.f32(), {v.size[0], v.size[1], v.size[2], v.size[3]}, {v.stride[0], v.stride[1], v.stride[2], v.stride[3]}};
}

/// The input-side operand of a call: a range of an input box, in place or as a zero-padded copy.
/// `first` is the channel `t` starts at.
struct Input {
  Tensor t;
  int64_t first;
  std::shared_ptr<std::byte> mem;  ///< the copy's memory
  View inner;                      ///< the copy's range as a view of the global tensor
};

/// Images [n0, n0 + nn) and channels [c0, c0 + nc) of the ranges rh x rw of `v`'s global tensor, as
/// ph and pw plan them: in place in v when both dims are, `in_v`, and (with `packed`) the view is
/// dense; else a zero-padded dense buffer, filled from v when `load`.
Input input_operand(Context& ctx, const View& v, bool in_v, int64_t n0, int64_t nn, int64_t c0, int64_t nc,
                    const Range& rh, const Range& rw, const DimPlan& ph, const DimPlan& pw, bool load,
                    bool packed = false) {
  Input in;
  in.first = c0;
  if (in_v && ph.in_place && pw.in_place) {
    in.t = tensor_of(v, {n0, c0, rh.lo, rw.lo}, {nn, nc, rh.size(), rw.size()});
    if (!packed || in.t.packed()) return in;
  }
  const int64_t eh = ph.extent, ew = pw.extent;
  in.mem = allocate(ctx, static_cast<size_t>(nn * nc * eh * ew) * sizeof(float));
  float* base = reinterpret_cast<float*>(in.mem.get());
  in.t = {base, {nn, nc, eh, ew}, {nc * eh * ew, eh * ew, ew, 1}};
  const int64_t lo[4] = {n0, c0, rh.lo, rw.lo}, size[4] = {nn, nc, rh.size(), rw.size()};
  in.inner = make_view(base + ph.offset * ew + pw.offset, DType::f32, 4, v.full, lo, size);
  for (int d = 0; d < 4; ++d) in.inner.stride[d] = in.t.s[d];
  if (load) copy_box(ctx, v, in.inner, false);
  return in;
}

/// A dense filter [o, c, kh, kw].
struct Filter {
  float* p;
  int64_t n[4];
};

/// Output channels [o0, o0 + no) of the weight (all their input channels and taps), dense: in w
/// when its rows are, else packed into `keep`.
float* dense_weight(Context& ctx, const View& w, int64_t o0, int64_t no, std::shared_ptr<std::byte>& keep) {
  const int64_t lo[4] = {o0, 0, 0, 0}, size[4] = {no, w.full[1], w.full[2], w.full[3]};
  const View rows = sub_view(w, lo, size);
  if (rows.contiguous()) return rows.f32();
  cuda::Temp t(ctx, w, lo, size);
  copy_box(ctx, w, t.view, false);
  keep = t.mem;
  return t.view.f32();
}

// ---- descriptors and plans -----------------------------------------------------------------------

int to_int(int64_t v) {
  if (v > INT_MAX || v < 0) throw Error("conv2d: a tensor extent or stride exceeds cuDNN's int range");
  return static_cast<int>(v);
}

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc() { FFRT_CUDNN(nullptr, cudnnCreateTensorDescriptor(&d)); }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  void set(Context& ctx, const Tensor& t) {
    // The stride of an extent-1 dim is never used; cuDNN gets the dense one.
    int64_t s[4];
    int64_t dense = 1;
    for (int k = 3; k >= 0; --k) {
      s[k] = t.n[k] == 1 ? dense : t.s[k];
      dense = s[k] * t.n[k];
    }
    FFRT_CUDNN(&ctx, cudnnSetTensor4dDescriptorEx(d, CUDNN_DATA_FLOAT, to_int(t.n[0]), to_int(t.n[1]),
                                                     to_int(t.n[2]), to_int(t.n[3]), to_int(s[0]), to_int(s[1]),
                                                     to_int(s[2]), to_int(s[3])));
  }
};

struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDesc() { FFRT_CUDNN(nullptr, cudnnCreateFilterDescriptor(&d)); }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
};

struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ConvDesc() { FFRT_CUDNN(nullptr, cudnnCreateConvolutionDescriptor(&d)); }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
};

enum class Dir : int { forward = 0, data, filter };

/// One cuDNN call: x is the input side (x, or dx for backward-data), y the output side (y or dy),
/// w the filter (w, or dw for backward-weight).
struct Call {
  Dir dir;
  Tensor x, y;
  Filter w;
  int64_t pad[2], groups;
};

// ---- cuDNN's graph API ---------------------------------------------------------------------------

/// A descriptor of cuDNN's graph (backend) API, destroyed with its owner.
class BackendDesc {
 public:
  BackendDesc() = default;
  /// A new descriptor of `type`; check ok() (creation fails only when cuDNN is short of memory).
  explicit BackendDesc(cudnnBackendDescriptorType_t type) {
    if (cudnnBackendCreateDescriptor(type, &d_) != CUDNN_STATUS_SUCCESS) d_ = nullptr;
  }
  ~BackendDesc() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  BackendDesc(BackendDesc&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  BackendDesc& operator=(BackendDesc&& o) noexcept {
    std::swap(d_, o.d_);
    return *this;
  }
  BackendDesc(const BackendDesc&) = delete;
  BackendDesc& operator=(const BackendDesc&) = delete;
  bool ok() const { return d_ != nullptr; }
  cudnnBackendDescriptor_t get() const { return d_; }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

/// Accumulates the statuses of a sequence of graph-API calls: any failure makes it false. The
/// graph API is an alternative to the legacy algorithms, so a call it does not support is not an
/// error: the legacy algorithm runs.
struct Status {
  bool ok = true;
  void operator()(cudnnStatus_t s) { ok = ok && s == CUDNN_STATUS_SUCCESS; }
};

/// The operand ids of a call's graph (its variant pack maps them to addresses).
enum : int64_t { kUidX = 1, kUidW = 2, kUidY = 3 };

/// An execution plan of the graph API for one call, with every descriptor it was built from, and
/// the variant pack of the addresses it last ran on.
struct GraphPlan {
  std::vector<BackendDesc> parts;
  BackendDesc plan;
  size_t workspace = 0;
  BackendDesc pack;
  void* pack_ptrs[4] = {};  ///< x, w, y, workspace
};

/// A call's descriptors and the algorithm measured fastest for them: a legacy algorithm, or an
/// engine of the graph API (`graph`) when one measured faster.
struct Plan {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  int algo = 0;
  size_t workspace = 0;
  std::unique_ptr<GraphPlan> graph;
};

/// The algorithms whose results round like a direct sum, allowed in strict fp32.
bool strict_algo(Dir dir, int algo) {
  switch (dir) {
    case Dir::forward:
      return algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
             algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM || algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM ||
             algo == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
    case Dir::data:
      return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 || algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
    case Dir::filter:
      return algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ||
             algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
  }
  return false;
}

/// The workspace algorithm `algo` needs with the plan's descriptors (false: not supported).
bool workspace_of(Context& ctx, const Plan& p, Dir dir, int algo, size_t& bytes) {
  cudnnStatus_t st = CUDNN_STATUS_NOT_SUPPORTED;
  switch (dir) {
    case Dir::forward:
      st = cudnnGetConvolutionForwardWorkspaceSize(ctx.cudnn, p.x.d, p.w.d, p.conv.d, p.y.d,
                                                   static_cast<cudnnConvolutionFwdAlgo_t>(algo), &bytes);
      break;
    case Dir::data:
      st = cudnnGetConvolutionBackwardDataWorkspaceSize(ctx.cudnn, p.w.d, p.y.d, p.conv.d, p.x.d,
                                                        static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), &bytes);
      break;
    case Dir::filter:
      st = cudnnGetConvolutionBackwardFilterWorkspaceSize(ctx.cudnn, p.x.d, p.y.d, p.conv.d, p.w.d,
                                                          static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), &bytes);
      break;
  }
  return st == CUDNN_STATUS_SUCCESS;
}

/// Device memory standing in for a call's output while cuDNN measures algorithms (the output may
/// hold what a backward call accumulates onto): `elems` floats at the address's offset modulo 256,
/// so the algorithms measured are those that run at its alignment.
struct Scratch {
  std::shared_ptr<std::byte> mem;
  void* p;
  Scratch(Context& ctx, const void* like, int64_t elems) {
    const size_t off = reinterpret_cast<uintptr_t>(like) % 256;
    mem = allocate(ctx, static_cast<size_t>(elems) * sizeof(float) + 256);
    p = mem.get() + off;
  }
};

/// Runs a graph plan on the call's operands, `out` standing for the direction's result; the
/// variant pack is rebuilt only when an address changed.
cudnnStatus_t execute_graph(Context& ctx, const Call& c, GraphPlan& g, void* out) {
  void* ws = g.workspace ? ctx.workspace(g.workspace) : nullptr;
  void* x = c.dir == Dir::data ? out : static_cast<void*>(c.x.p);
  void* w = c.dir == Dir::filter ? out : static_cast<void*>(c.w.p);
  void* y = c.dir == Dir::forward ? out : static_cast<void*>(c.y.p);
  void* const ptrs[4] = {x, w, y, ws};
  if (!g.pack.ok() || !std::equal(ptrs, ptrs + 4, g.pack_ptrs)) {
    BackendDesc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    const int64_t uids[3] = {kUidX, kUidW, kUidY};
    Status st{pack.ok()};
    if (st.ok) {
      st(cudnnBackendSetAttribute(pack.get(), CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids));
      st(cudnnBackendSetAttribute(pack.get(), CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, ptrs));
      st(cudnnBackendSetAttribute(pack.get(), CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ptrs[3]));
      st(cudnnBackendFinalize(pack.get()));
    }
    if (!st.ok) return CUDNN_STATUS_NOT_SUPPORTED;
    g.pack = std::move(pack);
    std::copy(ptrs, ptrs + 4, g.pack_ptrs);
  }
  return cudnnBackendExecute(ctx.cudnn, g.plan.get(), g.pack.get());
}

/// Issues a call with the plan's descriptors, algorithm and workspace: out = conv(...) + beta * out,
/// `out` being where the direction's result goes (y, dx or dw). A graph plan has its beta built in
/// (plans are kept per beta).
void execute(Context& ctx, const Call& c, const Plan& p, void* out, float beta) {
  if (p.graph) {
    FFRT_CUDNN(&ctx, execute_graph(ctx, c, *p.graph, out));
    return;
  }
  void* ws = p.workspace ? ctx.workspace(p.workspace) : nullptr;
  const float one = 1.f;
  switch (c.dir) {
    case Dir::forward:
      FFRT_CUDNN(&ctx, cudnnConvolutionForward(ctx.cudnn, &one, p.x.d, c.x.p, p.w.d, c.w.p, p.conv.d,
                                               static_cast<cudnnConvolutionFwdAlgo_t>(p.algo), ws, p.workspace, &beta,
                                               p.y.d, out));
      break;
    case Dir::data:
      FFRT_CUDNN(&ctx, cudnnConvolutionBackwardData(ctx.cudnn, &one, p.w.d, c.w.p, p.y.d, c.y.p, p.conv.d,
                                                    static_cast<cudnnConvolutionBwdDataAlgo_t>(p.algo), ws,
                                                    p.workspace, &beta, p.x.d, out));
      break;
    case Dir::filter:
      FFRT_CUDNN(&ctx, cudnnConvolutionBackwardFilter(ctx.cudnn, &one, p.x.d, c.x.p, p.y.d, c.y.p, p.conv.d,
                                                      static_cast<cudnnConvolutionBwdFilterAlgo_t>(p.algo), ws,
                                                      p.workspace, &beta, p.w.d, out));
      break;
  }
}

/// Sets p to run `algo` with math type `math`; false when cuDNN does not support it there.
bool use_algorithm(Context& ctx, Dir dir, Plan& p, int algo, cudnnMathType_t math) {
  FFRT_CUDNN(&ctx, cudnnSetConvolutionMathType(p.conv.d, math));
  size_t bytes = 0;
  if (!workspace_of(ctx, p, dir, algo, bytes)) return false;
  p.algo = algo;
  p.workspace = bytes;
  return true;
}

/// Wall-clock microseconds of `calls` back-to-back runs of f after one more, on ctx.stream: GPU
/// time, or host time where the host is slower (what an eager step pays). When that first run
/// alone takes more than `give_up_us`, it is not worth timing: `calls` times its time comes back.
template <typename F>
double time_calls(Context& ctx, int calls, F&& f, double give_up_us = 1e30) {
  const auto t_first = std::chrono::steady_clock::now();
  f();
  FFRT_CUDA(&ctx, cudaStreamSynchronize(ctx.stream));
  const double first =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t_first).count();
  if (first > give_up_us) return first * calls;
  const auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < calls; ++k) f();
  FFRT_CUDA(&ctx, cudaStreamSynchronize(ctx.stream));
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

/// A 4-D tensor of the graph API: extents n, element strides s (an extent-1 dim's stride made the
/// dense one, as TensorDesc does), at addresses aligned to `align` bytes.
BackendDesc graph_tensor(int64_t uid, const int64_t* n, const int64_t* s, int64_t align, Status& st) {
  BackendDesc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  st(t.ok() ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_NOT_INITIALIZED);
  if (!st.ok) return t;
  int64_t dims[4], strides[4], dense = 1;
  for (int k = 3; k >= 0; --k) {
    dims[k] = n[k];
    strides[k] = n[k] == 1 ? dense : s[k];
    dense = strides[k] * n[k];
  }
  const cudnnDataType_t type = CUDNN_DATA_FLOAT;
  st(cudnnBackendSetAttribute(t.get(), CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type));
  st(cudnnBackendSetAttribute(t.get(), CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims));
  st(cudnnBackendSetAttribute(t.get(), CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides));
  st(cudnnBackendSetAttribute(t.get(), CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid));
  st(cudnnBackendSetAttribute(t.get(), CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align));
  st(cudnnBackendFinalize(t.get()));
  return t;
}

/// The operation graph of a call, out = conv(...) + beta * out, appended to `parts` (its last
/// element); false when the graph API does not take it.
bool build_graph(Context& ctx, const Call& c, const Geom& g, float beta, std::vector<BackendDesc>& parts) {
  Status st;
  const int64_t wstride[4] = {c.w.n[1] * c.w.n[2] * c.w.n[3], c.w.n[2] * c.w.n[3], c.w.n[3], 1};
  const auto align = [](const void* q) { return static_cast<int64_t>(std::min(cuda::alignment(q), 16)); };
  parts.push_back(graph_tensor(kUidX, c.x.n, c.x.s, align(c.x.p), st));
  parts.push_back(graph_tensor(kUidW, c.w.n, wstride, align(c.w.p), st));
  parts.push_back(graph_tensor(kUidY, c.y.n, c.y.s, align(c.y.p), st));
  if (!st.ok) return false;
  cudnnBackendDescriptor_t x = parts[parts.size() - 3].get(), w = parts[parts.size() - 2].get(),
                           y = parts[parts.size() - 1].get();

  BackendDesc conv(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  if (!conv.ok()) return false;
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const int64_t dims = 2, pad[2] = {c.pad[0], c.pad[1]}, stride[2] = {g.wh.s, g.ww.s}, dilation[2] = {g.wh.d, g.ww.d};
  st(cudnnBackendSetAttribute(conv.get(), CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute));
  st(cudnnBackendSetAttribute(conv.get(), CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode));
  st(cudnnBackendSetAttribute(conv.get(), CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims));
  st(cudnnBackendSetAttribute(conv.get(), CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pad));
  st(cudnnBackendSetAttribute(conv.get(), CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pad));
  st(cudnnBackendSetAttribute(conv.get(), CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, stride));
  st(cudnnBackendSetAttribute(conv.get(), CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dilation));
  st(cudnnBackendFinalize(conv.get()));
  if (!st.ok) return false;
  cudnnBackendDescriptor_t cd = conv.get();
  parts.push_back(std::move(conv));

  // The operation's attributes, by direction: x side, filter, y side, descriptor, alpha, beta.
  static constexpr cudnnBackendAttributeName_t kAttrs[3][6] = {
      {CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
       CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
       CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA},
      {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
       CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
       CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA},
      {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
       CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
       CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA}};
  static constexpr cudnnBackendDescriptorType_t kOps[3] = {CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
                                                           CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
                                                           CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR};
  const int d = static_cast<int>(c.dir);
  BackendDesc op(kOps[d]);
  if (!op.ok()) return false;
  const float alpha = 1.f;
  st(cudnnBackendSetAttribute(op.get(), kAttrs[d][0], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x));
  st(cudnnBackendSetAttribute(op.get(), kAttrs[d][1], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w));
  st(cudnnBackendSetAttribute(op.get(), kAttrs[d][2], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y));
  st(cudnnBackendSetAttribute(op.get(), kAttrs[d][3], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cd));
  st(cudnnBackendSetAttribute(op.get(), kAttrs[d][4], CUDNN_TYPE_FLOAT, 1, &alpha));
  st(cudnnBackendSetAttribute(op.get(), kAttrs[d][5], CUDNN_TYPE_FLOAT, 1, &beta));
  st(cudnnBackendFinalize(op.get()));
  if (!st.ok) return false;
  cudnnBackendDescriptor_t od = op.get();
  parts.push_back(std::move(op));

  BackendDesc graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  if (!graph.ok()) return false;
  st(cudnnBackendSetAttribute(graph.get(), CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &ctx.cudnn));
  st(cudnnBackendSetAttribute(graph.get(), CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &od));
  st(cudnnBackendFinalize(graph.get()));
  parts.push_back(std::move(graph));
  return st.ok;
}

/// What an engine configuration's engine notes about itself.
struct EngineNotes {
  int64_t index = -1;            ///< the engine's global index (for FFRT_CONV_LOG)
  bool below_tf32 = false;       ///< inputs converted down or reductions in reduced precision
  bool compiled_at_run = false;  ///< built by runtime compilation (slow to build)
};

EngineNotes notes_of(cudnnBackendDescriptor_t cfg) {
  EngineNotes n;
  BackendDesc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  int64_t got = 0;
  cudnnBackendDescriptor_t e = engine.get();
  if (!engine.ok() ||
      cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got, &e) !=
          CUDNN_STATUS_SUCCESS) {
    n.below_tf32 = true;  // unknown numerics: not taken
    return n;
  }
  (void)cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &got, &n.index);
  cudnnBackendNumericalNote_t numerical[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  if (cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                               CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &got, numerical) != CUDNN_STATUS_SUCCESS) {
    n.below_tf32 = true;
    return n;
  }
  for (int64_t i = 0; i < got; ++i)
    n.below_tf32 = n.below_tf32 || numerical[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS ||
                   numerical[i] == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION;
  cudnnBackendBehaviorNote_t behavior[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
  if (cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
                               CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &got, behavior) == CUDNN_STATUS_SUCCESS) {
    for (int64_t i = 0; i < got; ++i)
      n.compiled_at_run = n.compiled_at_run || behavior[i] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION;
  }
  return n;
}

/// Engines of the graph API tried per call: the first of cuDNN's heuristics (in its order: on
/// AlexNet, ResNet-50 and Inception-v3 on an H200 the first won 139 of 185 shapes, none past the
/// sixth) and of its fallback list (3 wins); and the GPU time per run (us) from which
/// runtime-compiled ones are worth their build time.
constexpr int kMaxHeuristicEngines = 6, kMaxFallbackEngines = 4;
constexpr double kCompileFromUs = 500;

/// With TF32 allowed: times the first engines cuDNN's heuristics propose for the call and puts
/// the fastest in p.graph when it beats p's legacy algorithm (by more than the noise). cuDNN's
/// legacy algorithms are a fixed subset of its engines; AlexNet's 11x11 stride-4 first
/// convolution (3 input channels) ran in 1.48 ms on one they miss, 1.73 ms on their best (H200).
/// Strict fp32 keeps the legacy algorithms, whose math type is set explicitly.
void try_graph_engines(Context& ctx, const Call& c, const Geom& g, float beta, Plan& p, void* out, size_t limit) {
  std::vector<BackendDesc> parts;
  std::string log;
  const bool logging = std::getenv("FFRT_CONV_LOG") != nullptr;
  if (logging) {
    static const char* const kDir[3] = {"forward", "backward-data", "backward-filter"};
    const auto extents = [](const int64_t* n, int rank) {
      std::string s = std::to_string(n[0]);
      for (int d = 1; d < rank; ++d) s += "x" + std::to_string(n[d]);
      return s;
    };
    log = std::string("conv2d ") + kDir[static_cast<int>(c.dir)] + " x=" + extents(c.x.n, 4) +
          " y=" + extents(c.y.n, 4) + " k=" + extents(c.w.n + 2, 2) + " beta=" + std::to_string(static_cast<int>(beta)) +
          ":";
  }
  const auto finish = [&](const char* outcome) {
    if (logging) std::fprintf(stderr, "%s %s\n", log.c_str(), outcome);
  };
  if (!build_graph(ctx, c, g, beta, parts)) return finish("the graph API does not take it");
  cudnnBackendDescriptor_t graph = parts.back().get();

  // The configurations of cuDNN's heuristics (mode A, the first few) and of its fallback list.
  std::vector<BackendDesc> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (const cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    BackendDesc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    if (!heur.ok()) continue;
    Status st;
    st(cudnnBackendSetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                &graph));
    st(cudnnBackendSetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode));
    st(cudnnBackendFinalize(heur.get()));
    int64_t count = 0;
    if (st.ok)
      st(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                                  nullptr));
    if (!st.ok || count <= 0) continue;
    count = std::min<int64_t>(count, mode == CUDNN_HEUR_MODE_A ? kMaxHeuristicEngines : kMaxFallbackEngines);
    const size_t first = configs.size();
    std::vector<cudnnBackendDescriptor_t> these;
    for (int64_t i = 0; i < count; ++i) {
      configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
      these.push_back(configs.back().get());
    }
    int64_t got = 0;
    if (std::find(these.begin(), these.end(), nullptr) != these.end() ||
        cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got,
                                 these.data()) != CUDNN_STATUS_SUCCESS) {
      configs.resize(first);
      continue;
    }
    raw.insert(raw.end(), these.begin(), these.begin() + got);
    configs.push_back(std::move(heur));  // the configurations may refer to it
  }
  if (raw.empty()) return finish("no engine configurations");

  constexpr int kCalls = 5;
  const double legacy_us = time_calls(ctx, kCalls, [&] { execute(ctx, c, p, out, beta); });
  if (logging) log += " legacy algo " + std::to_string(p.algo) + " " + std::to_string(legacy_us / kCalls) + " us;";
  double best_us = legacy_us;
  std::unique_ptr<GraphPlan> best;
  for (cudnnBackendDescriptor_t config : raw) {
    const EngineNotes notes = notes_of(config);
    if (logging) log += " engine " + std::to_string(notes.index);
    if (notes.below_tf32 || (notes.compiled_at_run && legacy_us / kCalls < kCompileFromUs)) {
      if (logging) log += notes.below_tf32 ? " below tf32," : " runtime-compiled,";
      continue;
    }
    auto cand = std::make_unique<GraphPlan>();
    cand->plan = BackendDesc(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    if (!cand->plan.ok()) continue;
    Status ps;
    ps(cudnnBackendSetAttribute(cand->plan.get(), CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &ctx.cudnn));
    ps(cudnnBackendSetAttribute(cand->plan.get(), CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &config));
    ps(cudnnBackendFinalize(cand->plan.get()));
    int64_t ws = 0, got = 0;
    if (ps.ok)
      ps(cudnnBackendGetAttribute(cand->plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &got,
                                  &ws));
    if (!ps.ok || ws < 0 || static_cast<size_t>(ws) > limit) {
      if (logging) log += ps.ok ? " workspace too large," : " no plan,";
      continue;
    }
    cand->workspace = static_cast<size_t>(ws);
    // An engine that fails to run is passed over (its error is not sticky: a launch failure is).
    if (execute_graph(ctx, c, *cand, out) != CUDNN_STATUS_SUCCESS) {
      if (logging) log += " failed to run,";
      continue;
    }
    FFRT_CUDA(&ctx, cudaStreamSynchronize(ctx.stream));
    // Some fallback engines run 10 to 100 times slower than the best: one call tells.
    const double us = time_calls(
        ctx, kCalls, [&] { FFRT_CUDNN(&ctx, execute_graph(ctx, c, *cand, out)); }, 3 * best_us / kCalls);
    if (logging) log += " " + std::to_string(us / kCalls) + " us,";
    // Only a clear win replaces the legacy algorithm: the two measure within a few per cent of
    // each other run to run.
    if (us < 0.97 * best_us) best_us = us, best = std::move(cand);
  }
  if (!best) return finish("legacy kept");
  best->parts = std::move(parts);
  for (BackendDesc& d : configs) best->parts.push_back(std::move(d));
  p.graph = std::move(best);
  finish(("graph engine chosen, " + std::to_string(best_us / kCalls) + " us").c_str());
}

/// Measures the algorithms for a call and records the fastest in p (with its math type and
/// workspace).
void choose_algorithm(Context& ctx, const Call& c, const Geom& g, float beta, Plan& p) {
  const cudnnMathType_t math = ctx.tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  int count = 0;
  switch (c.dir) {
    case Dir::forward: FFRT_CUDNN(&ctx, cudnnGetConvolutionForwardAlgorithmMaxCount(ctx.cudnn, &count)); break;
    case Dir::data: FFRT_CUDNN(&ctx, cudnnGetConvolutionBackwardDataAlgorithmMaxCount(ctx.cudnn, &count)); break;
    case Dir::filter: FFRT_CUDNN(&ctx, cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(ctx.cudnn, &count)); break;
  }
  const auto allowed = [&](int algo) { return ctx.tf32 || strict_algo(c.dir, algo); };

  // The workspace to measure with: what the most demanding allowed algorithm needs, within limits.
  size_t free_bytes = 0, total_bytes = 0;
  FFRT_CUDA(&ctx, cudaMemGetInfo(&free_bytes, &total_bytes));
  const size_t limit = std::min(kMaxFindWorkspace, free_bytes / 2);
  size_t find_bytes = 0;
  for (int algo = 0; algo < count; ++algo) {
    size_t b = 0;
    if (allowed(algo) && workspace_of(ctx, p, c.dir, algo, b) && b <= limit) find_bytes = std::max(find_bytes, b);
  }
  void* ws = find_bytes ? ctx.workspace(find_bytes) : nullptr;

  // The measurements, sorted by time: those that ran, are allowed and fit the workspace.
  struct Found {
    int algo;
    cudnnStatus_t status;
    float time;
    size_t memory;
    cudnnMathType_t math;
  };
  std::vector<Found> found;
  std::optional<Scratch> scratch;
  if (c.dir == Dir::data) scratch.emplace(ctx, c.x.p, c.x.span());
  if (c.dir == Dir::filter) scratch.emplace(ctx, c.w.p, c.w.n[0] * c.w.n[1] * c.w.n[2] * c.w.n[3]);
  void* out = scratch ? scratch->p : c.y.p;
  int n = 0;
  switch (c.dir) {
    case Dir::forward: {
      std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<size_t>(count));
      FFRT_CUDNN(&ctx, cudnnFindConvolutionForwardAlgorithmEx(ctx.cudnn, p.x.d, c.x.p, p.w.d, c.w.p, p.conv.d, p.y.d,
                                                              out, count, &n, perf.data(), ws, find_bytes));
      for (int i = 0; i < n; ++i)
        found.push_back({perf[i].algo, perf[i].status, perf[i].time, perf[i].memory, perf[i].mathType});
      break;
    }
    case Dir::data: {
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(static_cast<size_t>(count));
      FFRT_CUDNN(&ctx, cudnnFindConvolutionBackwardDataAlgorithmEx(ctx.cudnn, p.w.d, c.w.p, p.y.d, c.y.p, p.conv.d,
                                                                   p.x.d, out, count, &n, perf.data(), ws,
                                                                   find_bytes));
      for (int i = 0; i < n; ++i)
        found.push_back({perf[i].algo, perf[i].status, perf[i].time, perf[i].memory, perf[i].mathType});
      break;
    }
    case Dir::filter: {
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(static_cast<size_t>(count));
      FFRT_CUDNN(&ctx, cudnnFindConvolutionBackwardFilterAlgorithmEx(ctx.cudnn, p.x.d, c.x.p, p.y.d, c.y.p, p.conv.d,
                                                                     p.w.d, out, count, &n, perf.data(), ws,
                                                                     find_bytes));
      for (int i = 0; i < n; ++i)
        found.push_back({perf[i].algo, perf[i].status, perf[i].time, perf[i].memory, perf[i].mathType});
      break;
    }
  }
  found.erase(std::remove_if(found.begin(), found.end(),
                             [&](const Found& f) {
                               return f.status != CUDNN_STATUS_SUCCESS || f.memory > find_bytes ||
                                      !allowed(f.algo) || (!ctx.tf32 && f.math != CUDNN_FMA_MATH);
                             }),
              found.end());
  // Short calls: the fastest few again, by the wall clock of back-to-back calls (host time too).
  const Found* best = nullptr;
  if (found.size() > 1 && found[0].time < kRetimeBelowMs) {
    constexpr int kCandidates = 4, kCalls = 10;
    double best_us = 0;
    for (size_t i = 0; i < found.size() && i < kCandidates; ++i) {
      if (!use_algorithm(ctx, c.dir, p, found[i].algo, found[i].math)) continue;
      const double us = time_calls(ctx, kCalls, [&] { execute(ctx, c, p, out, 0.f); });
      if (!best || us < best_us) best = &found[i], best_us = us;
    }
  }
  for (size_t i = 0; !best && i < found.size(); ++i)
    if (use_algorithm(ctx, c.dir, p, found[i].algo, found[i].math)) best = &found[i];
  // Algorithm 0 (an implicit GEMM) is the fallback.
  const bool ok = best ? use_algorithm(ctx, c.dir, p, best->algo, best->math) : use_algorithm(ctx, c.dir, p, 0, math);
  if (!ok) cuda::fail(&ctx, "choosing a cuDNN convolution algorithm", "none supports this shape", __FILE__, __LINE__);
  if (ctx.tf32 && c.groups == 1) try_graph_engines(ctx, c, g, beta, p, out, limit);
}

/// Runs a call: out = conv(...) + beta * out, out being y, x or w as the direction has it.
void run(Context& ctx, const Call& c, const Geom& g, float beta) {
  cuda::Key key("conv2d");
  key << static_cast<int64_t>(c.dir) << c.groups << c.pad[0] << c.pad[1] << g.wh.s << g.ww.s << g.wh.d << g.ww.d
      << (ctx.tf32 ? 1 : 0) << (beta != 0.f ? 1 : 0);
  for (int d = 0; d < 4; ++d) key << c.x.n[d] << c.x.s[d] << c.y.n[d] << c.y.s[d] << c.w.n[d];
  key << std::min(cuda::alignment(c.x.p), 16) << std::min(cuda::alignment(c.y.p), 16)
      << std::min(cuda::alignment(c.w.p), 16);
  Plan& p = cuda::cached<Plan>(ctx, key, [&](Plan& p) {
    p.x.set(ctx, c.x);
    p.y.set(ctx, c.y);
    FFRT_CUDNN(&ctx, cudnnSetFilter4dDescriptor(p.w.d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, to_int(c.w.n[0]),
                                                to_int(c.w.n[1]), to_int(c.w.n[2]), to_int(c.w.n[3])));
    FFRT_CUDNN(&ctx, cudnnSetConvolution2dDescriptor(p.conv.d, to_int(c.pad[0]), to_int(c.pad[1]), to_int(g.wh.s),
                                                     to_int(g.ww.s), to_int(g.wh.d), to_int(g.ww.d),
                                                     CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    FFRT_CUDNN(&ctx, cudnnSetConvolutionGroupCount(p.conv.d, to_int(c.groups)));
    FFRT_CUDNN(&ctx, cudnnSetConvolutionMathType(p.conv.d, ctx.tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    choose_algorithm(ctx, c, g, beta, p);
  });
  execute(ctx, c, p, c.dir == Dir::forward ? c.y.p : c.dir == Dir::data ? static_cast<void*>(c.x.p) : c.w.p, beta);
}

// ---- the bias gradient ---------------------------------------------------------------------------

/// The sum of v over the block's threads (every thread gets it; blockDim.x a multiple of 32).
__device__ double block_sum(double v) {
  __shared__ double warp_sums[32];
  for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  __syncthreads();
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  double s = 0.0;
  for (unsigned k = 0; k < warps; ++k) s += warp_sums[k];
  return s;
}

/// partial[chunk * nc + c] = the sum in double of channel c of dy ([n, nc, h, w]) over the chunk
/// `chunk` (blockIdx.x) of its (n, h, w) positions, `per_chunk` positions each.
template <typename I>
__global__ void channel_partials(Block4 dy, I per_chunk, double* partial) {
  const I hw = static_cast<I>(dy.n[2] * dy.n[3]), w = static_cast<I>(dy.n[3]);
  const I total = static_cast<I>(dy.n[0]) * hw;
  const I begin = static_cast<I>(blockIdx.x) * per_chunk;
  const I end = total - begin < per_chunk ? total : begin + per_chunk;  // begin < total
  for (int64_t c = blockIdx.y; c < dy.n[1]; c += gridDim.y) {
    const float* p = dy.p + c * dy.s[1];
    double s = 0.0;
    for (I j = begin + threadIdx.x; j < end; j += blockDim.x) {
      const I n = j / hw, r = j % hw;
      s += p[n * dy.s[0] + (r / w) * dy.s[2] + (r % w) * dy.s[3]];
    }
    s = block_sum(s);
    if (threadIdx.x == 0) partial[blockIdx.x * dy.n[1] + c] = s;
  }
}

/// out[c * os] (=, or += with accumulate) the sum over chunks of partial[chunk * n + c], rounded
/// to float.
__global__ void finish_sums(const double* partial, int64_t chunks, int64_t n, float* out, int64_t os,
                            bool accumulate) {
  FFRT_GRID_LOOP(c, n) {
    double s = 0.0;
    for (int64_t k = 0; k < chunks; ++k) s += partial[k * n + c];
    const float v = static_cast<float>(s);
    out[c * os] = accumulate ? out[c * os] + v : v;
  }
}

/// db (=, or +=) the sum of dy's box over its images and positions, per channel of db's box.
void bias_gradient(Context& ctx, const View& dy, const View& db, bool accumulate) {
  const int64_t nc = db.size[0];
  Block4 b = block_of(dy);
  b.p = dy.f32() + (db.lo[0] - dy.lo[1]) * dy.stride[1];
  b.n[1] = nc;
  const int64_t total = b.n[0] * b.n[2] * b.n[3];
  // Enough blocks to fill the device, each a run of at least 4096 positions.
  const int64_t want = std::clamp<int64_t>((total + 4095) / 4096, 1, std::max<int64_t>(1, 2048 / nc));
  const int64_t per_chunk = (total + want - 1) / want, chunks = (total + per_chunk - 1) / per_chunk;
  auto partial = allocate(ctx, static_cast<size_t>(chunks * nc) * sizeof(double));
  double* part = reinterpret_cast<double*>(partial.get());
  const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(std::min<int64_t>(nc, 65535)));
  if (total < (int64_t{1} << 31))
    channel_partials<uint32_t><<<grid, cuda::kThreads, 0, ctx.stream>>>(b, static_cast<uint32_t>(per_chunk), part);
  else
    channel_partials<int64_t><<<grid, cuda::kThreads, 0, ctx.stream>>>(b, per_chunk, part);
  FFRT_LAUNCHED(&ctx);
  finish_sums<<<cuda::blocks_for(nc), cuda::kThreads, 0, ctx.stream>>>(part, chunks, nc, db.f32(), db.stride[0],
                                                                        accumulate);
  FFRT_LAUNCHED(&ctx);
}

}  // namespace

void conv2d_forward(Context& ctx, const Conv2dAttrs& a, Act act, const View& x, const View& w, const View* b,
                    const View& y) {
  check_view(x, 4, "conv2d_forward: x must be a 4-D f32 view");
  check_view(w, 4, "conv2d_forward: w must be a 4-D f32 view");
  check_view(y, 4, "conv2d_forward: y must be a 4-D f32 view");
  const Geom g = geometry(a, x.full, y.full, w.full);
  if (y.volume() == 0) return;
  const int64_t g_lo = y.lo[1] / g.Og, g_hi = (y.hi(1) - 1) / g.Og + 1;
  Range rh = input_range(y.lo[2], y.hi(2), 0, g.wh.k, g.H, g.wh);
  Range rw = input_range(y.lo[3], y.hi(3), 0, g.ww.k, g.W, g.ww);
  require(holds(x, {y.lo[0], g_lo * g.Cg, rh.lo, rw.lo}, {y.size[0], (g_hi - g_lo) * g.Cg, rh.size(), rw.size()}),
          "conv2d_forward: x does not hold the input box y's box needs");
  require(holds(w, {y.lo[1], 0, 0, 0}, {y.size[1], g.Cg, g.wh.k, g.ww.k}),
          "conv2d_forward: w does not hold the output channels of y's box");
  if (b) {
    check_view(*b, 1, "conv2d_forward: b must be a 1-D f32 view");
    require(b->full[0] == g.O && holds(*b, {y.lo[1]}, {y.size[1]}), "conv2d_forward: b does not hold y's channels");
  }
  if (rh.empty() || rw.empty()) {
    // Every window lies in the padding.
    fill(ctx, y, 0.f);
  } else {
    const DimPlan ph = plan_dim(rh, g.wh.s, x.hi(2)), pw = plan_dim(rw, g.ww.s, x.hi(3));
    const Input in =
        input_operand(ctx, x, true, y.lo[0], y.size[0], g_lo * g.Cg, (g_hi - g_lo) * g.Cg, rh, rw, ph, pw, true);
    std::shared_ptr<std::byte> wkeep;
    float* wp = dense_weight(ctx, w, y.lo[1], y.size[1], wkeep);
    const int64_t per_out = g.Cg * g.wh.k * g.ww.k;
    for (const Segment& s : segments(y.lo[1], y.hi(1), g.Og, false)) {
      Call c;
      c.dir = Dir::forward;
      c.x = in.t.channels((s.o0 / g.Og) * g.Cg - in.first, s.groups * g.Cg);
      c.y = tensor_of(y, {y.lo[0], s.o0, y.lo[2], y.lo[3]}, {y.size[0], s.o1 - s.o0, y.size[2], y.size[3]});
      c.w = {wp + (s.o0 - y.lo[1]) * per_out, {s.o1 - s.o0, g.Cg, g.wh.k, g.ww.k}};
      c.pad[0] = ph.pad, c.pad[1] = pw.pad;
      c.groups = s.groups;
      run(ctx, c, g, 0.f);
    }
  }
  const float* bias = b ? b->f32() + (y.lo[1] - b->lo[0]) * b->stride[0] : nullptr;
  cuda::bias_act(ctx, act, block_of(y), bias, b ? b->stride[0] : 0, 1);
}

void conv2d_backward_data(Context& ctx, const Conv2dAttrs& a, const View& dy, const View& w, const View& dx,
                          bool accumulate) {
  check_view(dy, 4, "conv2d_backward_data: dy must be a 4-D f32 view");
  check_view(w, 4, "conv2d_backward_data: w must be a 4-D f32 view");
  check_view(dx, 4, "conv2d_backward_data: dx must be a 4-D f32 view");
  const Geom g = geometry(a, dx.full, dy.full, w.full);
  require(holds(w, {dy.lo[1], 0, 0, 0}, {dy.size[1], g.Cg, g.wh.k, g.ww.k}),
          "conv2d_backward_data: w does not hold the output channels of dy's box");
  if (dx.volume() == 0) return;
  const int64_t n0 = std::max(dy.lo[0], dx.lo[0]), n1 = std::min(dy.hi(0), dx.hi(0));
  Range rh = input_range(dy.lo[2], dy.hi(2), 0, g.wh.k, g.H, g.wh);
  Range rw = input_range(dy.lo[3], dy.hi(3), 0, g.ww.k, g.W, g.ww);
  if (dy.volume() == 0 || n1 <= n0 || rh.empty() || rw.empty()) {
    if (!accumulate) fill(ctx, dx, 0.f);
    return;
  }
  const DimPlan ph = plan_dim(rh, g.wh.s, dx.hi(2)), pw = plan_dim(rw, g.ww.s, dx.hi(3));
  const std::vector<Segment> segs = segments(dy.lo[1], dy.hi(1), g.Og, false);
  // The box a segment's call makes: images [n0, n1), the input channels of its groups, rh x rw.
  auto inside = [&](const Segment& s, bool contains) {
    const int64_t lo[4] = {n0, (s.o0 / g.Og) * g.Cg, rh.lo, rw.lo}, hi[4] = {n1, lo[1] + s.groups * g.Cg, rh.hi, rw.hi};
    for (int d = 0; d < 4; ++d) {
      if (contains ? (lo[d] > dx.lo[d] || hi[d] < dx.hi(d)) : (lo[d] < dx.lo[d] || hi[d] > dx.hi(d))) return false;
    }
    return true;
  };
  // Unless one call's box covers dx's, the calls add to a zeroed dx.
  bool add = accumulate;
  if (!accumulate && !(segs.size() == 1 && inside(segs[0], true))) {
    fill(ctx, dx, 0.f);
    add = true;
  }
  std::shared_ptr<std::byte> wkeep;
  float* wp = dense_weight(ctx, w, dy.lo[1], dy.size[1], wkeep);
  const int64_t per_out = g.Cg * g.wh.k * g.ww.k;
  for (const Segment& s : segs) {
    const int64_t c0 = (s.o0 / g.Og) * g.Cg, nc = s.groups * g.Cg;
    Call c;
    c.dir = Dir::data;
    c.y = tensor_of(dy, {n0, s.o0, dy.lo[2], dy.lo[3]}, {n1 - n0, s.o1 - s.o0, dy.size[2], dy.size[3]});
    // cuDNN's backward data takes dense NCHW operands only: a strided dy block is packed first.
    std::shared_ptr<std::byte> ykeep;
    if (!c.y.packed()) {
      const int64_t lo[4] = {n0, s.o0, dy.lo[2], dy.lo[3]}, size[4] = {n1 - n0, s.o1 - s.o0, dy.size[2], dy.size[3]};
      cuda::Temp t(ctx, dy, lo, size);
      copy_box(ctx, dy, t.view, false);
      ykeep = t.mem;
      c.y = tensor_of(t.view, {n0, s.o0, dy.lo[2], dy.lo[3]}, {size[0], size[1], size[2], size[3]});
    }
    c.w = {wp + (s.o0 - dy.lo[1]) * per_out, {s.o1 - s.o0, g.Cg, g.wh.k, g.ww.k}};
    c.pad[0] = ph.pad, c.pad[1] = pw.pad;
    c.groups = s.groups;
    // Straight into dx's box when the call's box is a dense block of it (cuDNN's backward data
    // takes dense operands only); else into a temporary added to dx.
    const Input out = input_operand(ctx, dx, inside(s, false), n0, n1 - n0, c0, nc, rh, rw, ph, pw, false, true);
    c.x = out.t;
    if (!out.mem) {
      run(ctx, c, g, add ? 1.f : 0.f);
      continue;
    }
    run(ctx, c, g, 0.f);
    copy_box(ctx, out.inner, dx, add);
  }
}

void conv2d_backward_weight(Context& ctx, const Conv2dAttrs& a, const View& x, const View& dy, const View& dw,
                            const View* db, bool accumulate) {
  check_view(x, 4, "conv2d_backward_weight: x must be a 4-D f32 view");
  check_view(dy, 4, "conv2d_backward_weight: dy must be a 4-D f32 view");
  check_view(dw, 4, "conv2d_backward_weight: dw must be a 4-D f32 view");
  const Geom g = geometry(a, x.full, dy.full, dw.full);
  require(dw.size[0] == 0 || (dw.lo[0] >= dy.lo[1] && dw.hi(0) <= dy.hi(1)),
          "conv2d_backward_weight: dy does not hold the output channels of dw's box");
  if (db) {
    check_view(*db, 1, "conv2d_backward_weight: db must be a 1-D f32 view");
    require(db->full[0] == g.O, "conv2d_backward_weight: db's extent is not the output channel count");
    require(db->size[0] == 0 || (db->lo[0] >= dy.lo[1] && db->hi(0) <= dy.hi(1)),
            "conv2d_backward_weight: dy does not hold the output channels of db's box");
  }
  const bool no_positions = dy.size[0] == 0 || dy.size[2] == 0 || dy.size[3] == 0;
  if (db && db->size[0] > 0) {
    if (!no_positions)
      bias_gradient(ctx, dy, *db, accumulate);
    else if (!accumulate)
      fill(ctx, *db, 0.f);
  }

  if (dw.volume() == 0) return;
  Range rh = input_range(dy.lo[2], dy.hi(2), dw.lo[2], dw.hi(2), g.H, g.wh);
  Range rw = input_range(dy.lo[3], dy.hi(3), dw.lo[3], dw.hi(3), g.W, g.ww);
  if (no_positions || rh.empty() || rw.empty()) {
    // No positions, or every tap of dw's box reads only padding.
    if (!accumulate) fill(ctx, dw, 0.f);
    return;
  }
  const int64_t g_lo = dw.lo[0] / g.Og, g_hi = (dw.hi(0) - 1) / g.Og + 1;
  const int64_t c_lo = g_lo * g.Cg + dw.lo[1], c_hi = (g_hi - 1) * g.Cg + dw.hi(1);
  require(holds(x, {dy.lo[0], c_lo, rh.lo, rw.lo}, {dy.size[0], c_hi - c_lo, rh.size(), rw.size()}),
          "conv2d_backward_weight: x does not hold the input box dy's box needs");
  const DimPlan ph = plan_dim(rh, g.wh.s, x.hi(2)), pw = plan_dim(rw, g.ww.s, x.hi(3));
  // Several groups make one call only with all their input channels (cuDNN's filter is dense).
  const bool whole_c = dw.lo[1] == 0 && dw.size[1] == g.Cg;
  const bool direct = dw.contiguous();
  const int64_t per_out = dw.size[1] * dw.size[2] * dw.size[3];
  for (const Segment& s : segments(dw.lo[0], dw.hi(0), g.Og, !whole_c)) {
    const int64_t no = s.o1 - s.o0;
    // cuDNN's backward-filter takes only dense tensors: x's range and dy's channels are copied
    // when their views are not.
    const int64_t c0 = (s.o0 / g.Og) * g.Cg + dw.lo[1], nc = s.groups == 1 ? dw.size[1] : s.groups * g.Cg;
    const Input in = input_operand(ctx, x, true, dy.lo[0], dy.size[0], c0, nc, rh, rw, ph, pw, true, true);
    const int64_t ylo[4] = {dy.lo[0], s.o0, dy.lo[2], dy.lo[3]}, ysize[4] = {dy.size[0], no, dy.size[2], dy.size[3]};
    Call c;
    c.dir = Dir::filter;
    c.x = in.t;
    c.y = tensor_of(dy, {ylo[0], ylo[1], ylo[2], ylo[3]}, {ysize[0], ysize[1], ysize[2], ysize[3]});
    std::optional<cuda::Temp> dense_dy;
    if (!c.y.packed()) {
      dense_dy.emplace(ctx, dy, ylo, ysize);
      copy_box(ctx, dy, dense_dy->view, false);
      c.y = tensor_of(dense_dy->view, {ylo[0], ylo[1], ylo[2], ylo[3]}, {ysize[0], ysize[1], ysize[2], ysize[3]});
    }
    c.pad[0] = ph.pad, c.pad[1] = pw.pad;
    c.groups = s.groups;
    if (direct) {
      c.w = {dw.f32() + (s.o0 - dw.lo[0]) * per_out, {no, dw.size[1], dw.size[2], dw.size[3]}};
      run(ctx, c, g, accumulate ? 1.f : 0.f);
      continue;
    }
    const int64_t lo[4] = {s.o0, dw.lo[1], dw.lo[2], dw.lo[3]}, size[4] = {no, dw.size[1], dw.size[2], dw.size[3]};
    const cuda::Temp t(ctx, dw, lo, size);
    c.w = {t.view.f32(), {no, dw.size[1], dw.size[2], dw.size[3]}};
    run(ctx, c, g, 0.f);
    copy_box(ctx, t.view, dw, accumulate);
  }
}

}  // namespace ffrt
