// The cuda backend's context and memory: the stream and library handles, checked-call failures,
// the workspace, the caching allocator, and moving boxes between host and device.
//
// One stream per context runs every kernel in call order, so a freed block can be handed out again
// at once: whatever used it was issued before whatever uses it next.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "context.h"
#include "ffrt/npy.h"
#include "pointwise.cuh"

namespace ffrt {

namespace cuda {

void fail(const Context* ctx, const char* call, const std::string& status, const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  std::string msg;
  if (ctx) msg = "rank " + std::to_string(ctx->rank) + ", op " + (*ctx->op ? ctx->op : "(none)") + ": ";
  msg += std::string(call) + " failed: " + status + " (" + (base ? base + 1 : file) + ":" + std::to_string(line) + ")";
  throw Error(msg);
}

}  // namespace cuda

namespace {

constexpr size_t kAlign = 256;

/// Returns the cached free blocks to the driver (after the stream has finished with them).
void release_cached(Context& ctx) {
  if (ctx.free_blocks.empty()) return;
  FFRT_CUDA(&ctx, cudaStreamSynchronize(ctx.stream));
  for (auto& [bytes, p] : ctx.free_blocks) FFRT_CUDA(&ctx, cudaFree(p));
  ctx.free_blocks.clear();
}

/// cudaMalloc; when the device is out of memory, frees the cached blocks and tries once more.
void* device_malloc(Context& ctx, size_t bytes) {
  void* p = nullptr;
  cudaError_t status = cudaMalloc(&p, bytes);
  if (status == cudaErrorMemoryAllocation && !ctx.free_blocks.empty()) {
    (void)cudaGetLastError();  // else the next launch check would report it
    release_cached(ctx);
    status = cudaMalloc(&p, bytes);
  }
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    cuda::fail(&ctx, ("cudaMalloc(" + std::to_string(bytes) + " bytes)").c_str(), cudaGetErrorString(status),
               __FILE__, __LINE__);
  }
  return p;
}

/// The offset in bytes of global coordinates g (inside v's box) in v's buffer.
size_t byte_offset(const View& v, const int64_t* g) {
  return static_cast<size_t>(v.offset_of(g) * dtype_size(v.dtype));
}

/// Whether host memory is page-locked: a copy from it runs after cudaMemcpyAsync returns, so the
/// caller may reuse it only once the stream has reached the copy.
bool pinned(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeHost;
}

}  // namespace

std::unique_ptr<Context, void (*)(Context*)> make_context(const ContextOptions& opts) {
  std::unique_ptr<Context, void (*)(Context*)> ctx(new Context, [](Context* p) { delete p; });
  Context* c = ctx.get();
  c->device = opts.device;
  c->rank = opts.rank;
  c->tf32 = opts.tf32;
  c->self = std::make_shared<Context*>(c);
  FFRT_CUDA(c, cudaSetDevice(opts.device));
  FFRT_CUDA(c, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
  FFRT_CUDA(c, cudaStreamCreateWithFlags(&c->comm_stream, cudaStreamNonBlocking));
  FFRT_CUDNN(c, cudnnCreate(&c->cudnn));
  FFRT_CUDNN(c, cudnnSetStream(c->cudnn, c->stream));
  FFRT_CUBLAS(c, cublasCreate(&c->cublas));
  FFRT_CUBLAS(c, cublasSetStream(c->cublas, c->stream));
  FFRT_CUBLAS(c, cublasSetMathMode(c->cublas, opts.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  // FFRT_CUBLAS_WORKSPACE_MB=N (an experiment, off by default): give cuBLAS N MiB of its own, so a
  // recorded graph holds no allocation nodes for its GEMMs (after cublasSetStream, which resets it).
  if (const char* mb = std::getenv("FFRT_CUBLAS_WORKSPACE_MB"); mb && *mb) {
    char* end = nullptr;
    const long n = std::strtol(mb, &end, 10);
    if (*end != '\0' || n <= 0 || n > 4096)
      throw Error(std::string("FFRT_CUBLAS_WORKSPACE_MB must be a number of MiB from 1 to 4096, not '") + mb + "'");
    const size_t bytes = static_cast<size_t>(n) << 20;
    FFRT_CUDA(c, cudaMalloc(&c->cublas_workspace, bytes));
    FFRT_CUBLAS(c, cublasSetWorkspace(c->cublas, c->cublas_workspace, bytes));
  }
  FFRT_CUBLAS(c, cublasLtCreate(&c->lt));
  return ctx;
}

// Errors are ignored here: a destructor must not throw, and the process is usually exiting.
Context::~Context() {
  if (self) *self = nullptr;
  if (stream) (void)cudaStreamSynchronize(stream);
  if (comm_stream) (void)cudaStreamSynchronize(comm_stream);
  // Plans first: cuDNN's execution plans are released while its handle still lives.
  plans.clear();
  for (cudaEvent_t e : mark_events) (void)cudaEventDestroy(e);
  for (auto& [bytes, p] : free_blocks) (void)cudaFree(p);
  if (workspace_ptr) (void)cudaFree(workspace_ptr);
  if (lt) (void)cublasLtDestroy(lt);
  if (cublas) (void)cublasDestroy(cublas);
  if (cublas_workspace) (void)cudaFree(cublas_workspace);
  if (cudnn) (void)cudnnDestroy(cudnn);
  if (stream) (void)cudaStreamDestroy(stream);
  if (comm_stream) (void)cudaStreamDestroy(comm_stream);
  (void)cudaGetLastError();
}

void* Context::workspace(size_t bytes) {
  if (bytes <= workspace_bytes) return workspace_ptr;
  constexpr size_t kGrain = size_t{1} << 20;  // grow in MiB steps: fewer regrowths
  const size_t want = (bytes + kGrain - 1) / kGrain * kGrain;
  if (workspace_ptr) {
    // Kernels issued earlier may still be using the old block.
    FFRT_CUDA(this, cudaStreamSynchronize(stream));
    FFRT_CUDA(this, cudaFree(workspace_ptr));
    workspace_ptr = nullptr;
    workspace_bytes = 0;
  }
  workspace_ptr = device_malloc(*this, want);
  workspace_bytes = want;
  return workspace_ptr;
}

const char* backend_name() { return "cuda"; }

std::string device_name(Context& ctx) {
  cudaDeviceProp prop{};
  FFRT_CUDA(&ctx, cudaGetDeviceProperties(&prop, ctx.device));
  return prop.name;
}

void set_op(Context& ctx, const char* name) { ctx.op = name ? name : ""; }

std::shared_ptr<std::byte> allocate(Context& ctx, size_t bytes, bool zeroed) {
  const size_t want = bytes == 0 ? kAlign : (bytes + kAlign - 1) / kAlign * kAlign;
  // A cached block of exactly this size, else the smallest larger one up to twice as big.
  void* p = nullptr;
  size_t have = want;
  auto it = ctx.free_blocks.lower_bound(want);
  if (it != ctx.free_blocks.end() && it->first <= 2 * want) {
    have = it->first;
    p = it->second;
    ctx.free_blocks.erase(it);
  } else {
    p = device_malloc(ctx, want);
  }
  if (zeroed) FFRT_CUDA(&ctx, cudaMemsetAsync(p, 0, want, ctx.stream));
  std::shared_ptr<Context*> owner = ctx.self;
  return {static_cast<std::byte*>(p), [owner, have](std::byte* q) {
            if (Context* c = owner ? *owner : nullptr)
              c->free_blocks.emplace(have, q);
            else
              (void)cudaFree(q);
          }};
}

void upload(Context& ctx, const View& host_src, const View& dst) {
  cuda::require(host_src.dtype == dst.dtype && host_src.rank == dst.rank, "upload: src and dst differ in type or rank");
  cuda::require(host_src.contiguous(), "upload: the host view must be dense row-major");
  const int64_t n = host_src.volume();
  if (n == 0 || dst.volume() == 0) return;
  const size_t bytes = static_cast<size_t>(n * dtype_size(host_src.dtype));
  bool same_box = true;
  for (int d = 0; d < dst.rank; ++d) same_box = same_box && host_src.lo[d] == dst.lo[d] && host_src.size[d] == dst.size[d];
  const bool wait = pinned(host_src.data);
  if (same_box && dst.contiguous()) {
    for (int d = 0; d < dst.rank; ++d) cuda::require(host_src.full[d] == dst.full[d], "upload: src and dst differ in shape");
    FFRT_CUDA(&ctx, cudaMemcpyAsync(dst.data, host_src.data, bytes, cudaMemcpyHostToDevice, ctx.stream));
  } else {
    // Through a device copy of the host box, then on the device into dst's layout.
    const std::shared_ptr<std::byte> tmp = allocate(ctx, bytes);
    FFRT_CUDA(&ctx, cudaMemcpyAsync(tmp.get(), host_src.data, bytes, cudaMemcpyHostToDevice, ctx.stream));
    View staged = host_src;
    staged.data = tmp.get();
    copy_box(ctx, staged, dst, false);
  }
  if (wait) FFRT_CUDA(&ctx, cudaStreamSynchronize(ctx.stream));
}

void download(Context& ctx, const View& src, const View& host_dst) {
  cuda::require(src.dtype == host_dst.dtype && src.rank == host_dst.rank, "download: src and dst differ in type or rank");
  for (int d = 0; d < src.rank; ++d) cuda::require(src.full[d] == host_dst.full[d], "download: src and dst differ in shape");
  cuda::require(host_dst.contiguous(), "download: the host view must be dense row-major");
  cuda::require(cuda::box_inside(host_dst, src), "download: the host view's box is not inside src's box");
  const int64_t n = host_dst.volume();
  if (n == 0) return;
  const size_t bytes = static_cast<size_t>(n * dtype_size(host_dst.dtype));
  View part = src;  // host_dst's box in src's buffer
  for (int d = 0; d < src.rank; ++d) part.lo[d] = host_dst.lo[d], part.size[d] = host_dst.size[d];
  if (part.contiguous()) {
    const auto* from = static_cast<const std::byte*>(src.data) + byte_offset(src, host_dst.lo);
    FFRT_CUDA(&ctx, cudaMemcpyAsync(host_dst.data, from, bytes, cudaMemcpyDeviceToHost, ctx.stream));
  } else {
    const std::shared_ptr<std::byte> tmp = allocate(ctx, bytes);
    View packed = host_dst;
    packed.data = tmp.get();
    copy_box(ctx, src, packed, false);
    FFRT_CUDA(&ctx, cudaMemcpyAsync(host_dst.data, tmp.get(), bytes, cudaMemcpyDeviceToHost, ctx.stream));
  }
  FFRT_CUDA(&ctx, cudaStreamSynchronize(ctx.stream));
}

void synchronize(Context& ctx) {
  FFRT_CUDA(&ctx, cudaStreamSynchronize(ctx.comm_stream));
  FFRT_CUDA(&ctx, cudaStreamSynchronize(ctx.stream));
}

int mark(Context& ctx, Lane lane) {
  if (ctx.marks_used == ctx.mark_events.size()) {
    cudaEvent_t e = nullptr;
    FFRT_CUDA(&ctx, cudaEventCreate(&e));
    ctx.mark_events.push_back(e);
  }
  cudaStream_t stream = lane == Lane::comm ? ctx.comm_stream : ctx.stream;
  // While a graph is recorded, an external record becomes a node of the graph: every replay
  // records the event, so a replayed step is timed as it runs (--trace with --cuda-graph).
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  FFRT_CUDA(&ctx, cudaStreamIsCapturing(stream, &capturing));
  FFRT_CUDA(&ctx, cudaEventRecordWithFlags(ctx.mark_events[ctx.marks_used], stream,
                                           capturing == cudaStreamCaptureStatusActive ? cudaEventRecordExternal
                                                                                       : cudaEventRecordDefault));
  return static_cast<int>(ctx.marks_used++);
}

std::vector<double> mark_times(Context& ctx) {
  std::vector<double> t;
  for (size_t i = 0; i < ctx.marks_used; ++i) {
    FFRT_CUDA(&ctx, cudaEventSynchronize(ctx.mark_events[i]));
    float ms = 0;
    FFRT_CUDA(&ctx, cudaEventElapsedTime(&ms, ctx.mark_events[0], ctx.mark_events[i]));
    t.push_back(static_cast<double>(ms) * 1e3);
  }
  ctx.marks_used = 0;
  return t;
}

// A graph records both streams: the communication stream joins the capture through the events
// that order it after the compute stream, and every phase has finished (the compute stream waited
// for it) before the capture ends.
struct Graph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ~Graph() {
    if (exec) (void)cudaGraphExecDestroy(exec);
    if (graph) (void)cudaGraphDestroy(graph);
  }
};

bool graphs_supported() { return true; }

void begin_capture(Context& ctx) {
  // Relaxed: the caching allocator may still call cudaMalloc for a block it lacks.
  FFRT_CUDA(&ctx, cudaStreamBeginCapture(ctx.stream, cudaStreamCaptureModeRelaxed));
}

namespace {

/// A graph's nodes by kind (cudaGraphNodeType).
std::map<int, int> node_kinds(Context& ctx, cudaGraph_t graph) {
  size_t n = 0;
  FFRT_CUDA(&ctx, cudaGraphGetNodes(graph, nullptr, &n));
  std::vector<cudaGraphNode_t> nodes(n);
  FFRT_CUDA(&ctx, cudaGraphGetNodes(graph, nodes.data(), &n));
  std::map<int, int> kinds;
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType t;
    FFRT_CUDA(&ctx, cudaGraphNodeGetType(node, &t));
    ++kinds[static_cast<int>(t)];
  }
  return kinds;
}

/// FFRT_GRAPH_LOG=1: a line per recorded graph on stderr (its nodes by kind, edges, roots);
/// FFRT_GRAPH_DOT=PREFIX also writes it as PREFIX.r<rank>.g<n>.dot (cudaGraphDebugDotPrint).
void log_graph(Context& ctx, cudaGraph_t graph) {
  static std::atomic<int> count{0};
  const int n = count++;
  const char* dot = std::getenv("FFRT_GRAPH_DOT");
  if (dot && !*dot) dot = nullptr;
  if (!std::getenv("FFRT_GRAPH_LOG") && !dot) return;
  size_t edges = 0, roots = 0;
  FFRT_CUDA(&ctx, cudaGraphGetRootNodes(graph, nullptr, &roots));
#if CUDART_VERSION >= 13000
  FFRT_CUDA(&ctx, cudaGraphGetEdges(graph, nullptr, nullptr, nullptr, &edges));
#else
  FFRT_CUDA(&ctx, cudaGraphGetEdges(graph, nullptr, nullptr, &edges));
#endif
  static const char* names[] = {"kernel", "memcpy", "memset", "host", "graph", "empty", "wait_event", "event_record",
                                "ext_signal", "ext_wait", "mem_alloc", "mem_free", "batch_memop", "conditional"};
  int nodes = 0;
  std::string kinds;
  for (auto [k, c] : node_kinds(ctx, graph)) {
    nodes += c;
    kinds += (k >= 0 && k < 14 ? std::string(names[k]) : "type " + std::to_string(k)) + " " + std::to_string(c) + ", ";
  }
  std::fprintf(stderr, "ffrt: rank %d graph %d: %d nodes (%s%zu edges, %zu roots)\n", ctx.rank, n, nodes,
               kinds.c_str(), edges, roots);
  if (dot) {
    const std::string path = std::string(dot) + ".r" + std::to_string(ctx.rank) + ".g" + std::to_string(n) + ".dot";
    FFRT_CUDA(&ctx, cudaGraphDebugDotPrint(graph, path.c_str(), cudaGraphDebugDotFlagsVerbose));
  }
}

}  // namespace

std::shared_ptr<Graph> end_capture(Context& ctx) {
  auto g = std::make_shared<Graph>();
  FFRT_CUDA(&ctx, cudaStreamEndCapture(ctx.stream, &g->graph));
  log_graph(ctx, g->graph);
  FFRT_CUDA(&ctx, cudaGraphInstantiate(&g->exec, g->graph, 0));
  return g;
}

void replay(Context& ctx, const Graph& g) { FFRT_CUDA(&ctx, cudaGraphLaunch(g.exec, ctx.stream)); }

int graph_launches(Context& ctx, const Graph& g) {
  const std::map<int, int> kinds = node_kinds(ctx, g.graph);
  int n = 0;
  for (const cudaGraphNodeType t : {cudaGraphNodeTypeKernel, cudaGraphNodeTypeMemset, cudaGraphNodeTypeMemcpy}) {
    const auto it = kinds.find(static_cast<int>(t));
    if (it != kinds.end()) n += it->second;
  }
  return n;
}

}  // namespace ffrt
