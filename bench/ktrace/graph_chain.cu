// A chain of small kernels recorded in a CUDA graph, timed per variant: alone, with a second
// stream's branch, beside an NCCL all-reduce (one float) in or after the chain, and once a
// communicator exists. One MPI rank per GPU; every rank runs each variant at the same time.
//   graph_chain [KERNELS [FLOATS [BUFFERS]]]   (PROBE_BIG_ALLREDUCE=1: a 64 MiB all-reduce first)
// On 4 x H200 (2026-11-28) none of them lengthened the chain's gaps (median 0.08 us under ktrace on
// 1 and on 4 ranks), where ffc's 4-rank programs have 0.45 us (docs/simulator.md).
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <string>
#include <algorithm>

#define CK(x) do { cudaError_t err_ = (x); if (err_ != cudaSuccess) { std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(err_)); std::exit(1);} } while (0)
#define NK(x) do { ncclResult_t err_ = (x); if (err_ != ncclSuccess) { std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, ncclGetErrorString(err_)); std::exit(1);} } while (0)

__global__ void axpb(const float* x, float* y, int n, float a, float b) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + b;
}
__global__ void tiny(float* p) { if (threadIdx.x == 0) p[0] += 1.0f; }

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int K = argc > 1 ? std::atoi(argv[1]) : 300;       // kernels in the chain
  const int n = argc > 2 ? std::atoi(argv[2]) : (1 << 19);  // floats per kernel
  CK(cudaSetDevice(rank));
  const int nbuf = argc > 3 ? std::atoi(argv[3]) : 2;  // distinct buffers the chain walks through
  std::vector<float*> buf(nbuf);
  for (auto& b : buf) { CK(cudaMalloc(&b, size_t(n) * 4)); CK(cudaMemset(b, 0, size_t(n) * 4)); }
  float* small;
  CK(cudaMalloc(&small, 1024)); CK(cudaMemset(small, 0, 1024));
  cudaStream_t s0, s1;
  CK(cudaStreamCreateWithFlags(&s0, cudaStreamNonBlocking));
  CK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
  std::vector<cudaEvent_t> ev(8);
  for (auto& e : ev) CK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  ncclComm_t comm = nullptr;
  auto init_comm = [&] {
    ncclUniqueId id;
    if (rank == 0) NK(ncclGetUniqueId(&id));
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    NK(ncclCommInitRank(&comm, size, id, rank));
  };
  auto chain = [&](int from, int to) {
    for (int k = from; k < to; ++k)
      axpb<<<(n + 255) / 256, 256, 0, s0>>>(buf[k % nbuf], buf[(k + 1) % nbuf], n, 0.5f, 1.0f);
  };
  auto fork = [&](int e) { CK(cudaEventRecord(ev[e], s0)); CK(cudaStreamWaitEvent(s1, ev[e], 0)); };
  auto join = [&](int e) { CK(cudaEventRecord(ev[e], s1)); CK(cudaStreamWaitEvent(s0, ev[e], 0)); };
  // variants: what the graph holds besides the chain
  auto build = [&](const std::string& v) {
    cudaGraph_t g; cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(s0, cudaStreamCaptureModeThreadLocal));
    if (v == "chain" || v == "chain_comm_exists") {
      chain(0, K);
    } else if (v == "fork_start_join_end") {  // a second branch open for the whole chain
      fork(0); tiny<<<1, 32, 0, s1>>>(small); chain(0, K); join(1);
    } else if (v == "fork_join_middle") {  // a short branch in the middle, joined at once
      chain(0, K / 2); fork(0); tiny<<<1, 32, 0, s1>>>(small); join(1); chain(K / 2, K);
    } else if (v == "fork_join_3") {  // three branches like dp's phases: loss, bucket at the end
      chain(0, K / 2); fork(0); tiny<<<1, 32, 0, s1>>>(small); join(1); chain(K / 2, K - 10);
      fork(2); tiny<<<1, 32, 0, s1>>>(small); chain(K - 10, K); join(3);
    } else if (v == "nccl_same_stream") {  // an all-reduce of one float inside the chain, on s0
      chain(0, K / 2); NK(ncclAllReduce(small, small, 1, ncclFloat, ncclSum, comm, s0)); chain(K / 2, K);
    } else if (v == "nccl_branch") {  // the same all-reduce on a forked branch (ffc's phases)
      chain(0, K / 2); fork(0); NK(ncclAllReduce(small, small, 1, ncclFloat, ncclSum, comm, s1)); join(1);
      chain(K / 2, K);
    } else if (v == "nccl_end") {  // an all-reduce after the chain only
      chain(0, K); NK(ncclAllReduce(small, small, 1, ncclFloat, ncclSum, comm, s0));
    }
    CK(cudaStreamEndCapture(s0, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    return std::make_pair(g, ge);
  };
  cudaEvent_t t0, t1;
  CK(cudaEventCreate(&t0)); CK(cudaEventCreate(&t1));
  auto time_variant = [&](const std::string& v) {
    auto [g, ge] = build(v);
    for (int i = 0; i < 20; ++i) CK(cudaGraphLaunch(ge, s0));
    CK(cudaStreamSynchronize(s0));
    MPI_Barrier(MPI_COMM_WORLD);
    const int R = 200;
    CK(cudaEventRecord(t0, s0));
    for (int i = 0; i < R; ++i) CK(cudaGraphLaunch(ge, s0));
    CK(cudaEventRecord(t1, s0));
    CK(cudaEventSynchronize(t1));
    float ms; CK(cudaEventElapsedTime(&ms, t0, t1));
    double us = ms * 1000.0 / R;
    std::vector<double> all(size);
    MPI_Gather(&us, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (rank == 0) {
      std::printf("np=%d K=%d n=%d nbuf=%d %-22s step", size, K, n, nbuf, v.c_str());
      for (double a : all) std::printf(" %8.1f", a);
      std::printf(" us  per kernel %.3f us\n", *std::max_element(all.begin(), all.end()) / K);
      std::fflush(stdout);
    }
    CK(cudaGraphExecDestroy(ge)); CK(cudaGraphDestroy(g));
  };
  for (const char* v : {"chain", "fork_start_join_end", "fork_join_middle", "fork_join_3"}) time_variant(v);
  init_comm();
  if (std::getenv("PROBE_BIG_ALLREDUCE")) {  // connect every protocol first, as a large all-reduce does
    float* big;
    CK(cudaMalloc(&big, size_t(16) << 22));
    CK(cudaMemset(big, 0, size_t(16) << 22));
    NK(ncclAllReduce(big, big, size_t(4) << 22, ncclFloat, ncclSum, comm, s0));
    CK(cudaStreamSynchronize(s0));
  }
  for (const char* v : {"chain_comm_exists", "nccl_end", "nccl_same_stream", "nccl_branch", "chain"}) time_variant(v);
  ncclCommDestroy(comm);
  MPI_Finalize();
  return 0;
}
