// The cuda backend's context and what its kernel files share: checked calls, backend memory (a
// caching allocator on the context's stream), the library handles, a workspace for cuDNN and
// cuBLASLt.
//
// Every kernel runs on ctx.stream, in the order it was called; nothing synchronizes with the host
// except download() and synchronize(). A failed call throws ffrt::Error naming the call, its
// status, the op (set_op) and the rank.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "ffrt/kernels.h"

namespace ffrt {

namespace cuda {

/// Throws ffrt::Error: "rank R, op OP: CALL failed: STATUS (FILE:LINE)". ctx may be null.
[[noreturn]] void fail(const Context* ctx, const char* call, const std::string& status, const char* file, int line);

}  // namespace cuda

/// Checked calls; `ctx` (a Context*, may be null) says which op and rank failed.
#define FFRT_CUDA(ctx, call)                                                                        \
  do {                                                                                              \
    const cudaError_t ffrt_status_ = (call);                                                        \
    if (ffrt_status_ != cudaSuccess)                                                                \
      ::ffrt::cuda::fail((ctx), #call, cudaGetErrorString(ffrt_status_), __FILE__, __LINE__);       \
  } while (0)
#define FFRT_CUDNN(ctx, call)                                                                       \
  do {                                                                                              \
    const cudnnStatus_t ffrt_status_ = (call);                                                      \
    if (ffrt_status_ != CUDNN_STATUS_SUCCESS)                                                       \
      ::ffrt::cuda::fail((ctx), #call, cudnnGetErrorString(ffrt_status_), __FILE__, __LINE__);      \
  } while (0)
#define FFRT_CUBLAS(ctx, call)                                                                      \
  do {                                                                                              \
    const cublasStatus_t ffrt_status_ = (call);                                                     \
    if (ffrt_status_ != CUBLAS_STATUS_SUCCESS)                                                      \
      ::ffrt::cuda::fail((ctx), #call, cublasGetStatusString(ffrt_status_), __FILE__, __LINE__);    \
  } while (0)
/// After a kernel launch: checks the launch (not the kernel's completion).
#define FFRT_LAUNCHED(ctx) FFRT_CUDA(ctx, cudaGetLastError())

struct Context {
  int device = 0;
  int rank = 0;
  bool tf32 = false;
  const char* op = "";  ///< set_op: the op whose kernels run now
  cudaStream_t stream = nullptr;       ///< the kernels (Lane::compute)
  cudaStream_t comm_stream = nullptr;  ///< communication that overlaps the kernels (Lane::comm, comm/nccl.cc)
  cudnnHandle_t cudnn = nullptr;
  cublasHandle_t cublas = nullptr;
  cublasLtHandle_t lt = nullptr;

  /// Scratch memory for cuDNN and cuBLASLt on ctx.stream, grown (never shrunk) to `bytes`. Valid
  /// until the next call of workspace().
  void* workspace(size_t bytes);

  /// Free blocks of the caching allocator, by size (rounded up to 256 bytes).
  std::multimap<size_t, void*> free_blocks;
  /// Shared with the blocks handed out: this context while it lives, null after, so a block that
  /// outlives its context is freed instead of cached.
  std::shared_ptr<Context*> self;
  void* workspace_ptr = nullptr;
  size_t workspace_bytes = 0;
  /// FFRT_CUBLAS_WORKSPACE_MB: cuBLAS's own workspace (cublasSetWorkspace); null: cuBLAS's default,
  /// which under graph capture allocates stream-ordered (the graphs' mem_alloc / mem_free nodes).
  void* cublas_workspace = nullptr;

  /// Per-call-site caches (the convolution algorithms chosen by measurement, descriptors), keyed by
  /// the kernel files as they need.
  std::map<std::string, int> algo_cache;
  /// Per-shape objects built once and reused (cuDNN descriptors with their measured algorithm,
  /// cuBLASLt plans), keyed by the kernel files; each owns what it holds (host-side descriptors
  /// only, released without the library handles).
  std::map<std::string, std::shared_ptr<void>> plans;

  /// mark(): timing events, created once and reused; the first `marks_used` are recorded.
  std::vector<cudaEvent_t> mark_events;
  size_t marks_used = 0;

  ~Context();
};

}  // namespace ffrt
