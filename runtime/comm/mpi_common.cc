// What both communication backends do with MPI (mpi_common.h).
#include "mpi_common.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "ffrt/kernels.h"

namespace ffrt::mpi {

void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(std::string(call) + ": " + std::string(text, static_cast<size_t>(len)));
}

Job join(int* argc, char*** argv) {
  Job job;
  int initialized = 0;
  check(MPI_Initialized(&initialized), "MPI_Initialized");
  if (!initialized) {
    check(MPI_Init(argc, argv), "MPI_Init");
    job.owns_mpi = true;
  }
  check(MPI_Comm_rank(MPI_COMM_WORLD, &job.rank), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &job.size), "MPI_Comm_size");
  MPI_Comm node = MPI_COMM_NULL;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, job.rank, MPI_INFO_NULL, &node),
        "MPI_Comm_split_type");
  check(MPI_Comm_rank(node, &job.local_rank), "MPI_Comm_rank");
  check(MPI_Comm_free(&node), "MPI_Comm_free");
  return job;
}

MPI_Comm split(const std::vector<int>& members, int rank, int size) {
  for (int r : members)
    if (r < 0 || r >= size)
      throw Error("comm: group names rank " + std::to_string(r) + " of a job of " + std::to_string(size));
  const auto at = std::find(members.begin(), members.end(), rank);
  const bool member = at != members.end();
  MPI_Comm m = MPI_COMM_NULL;
  check(MPI_Comm_split(MPI_COMM_WORLD, member ? 0 : MPI_UNDEFINED, member ? static_cast<int>(at - members.begin()) : 0,
                       &m),
        "MPI_Comm_split");
  return m;
}

void abort_job(int rank, const std::string& message) {
  // Messages that name their rank already (the cuda backend's) are printed as they are.
  const std::string prefix = "rank " + std::to_string(rank);
  if (message.rfind(prefix + ":", 0) == 0 || message.rfind(prefix + ",", 0) == 0)
    std::fprintf(stderr, "%s\n", message.c_str());
  else
    std::fprintf(stderr, "%s: %s\n", prefix.c_str(), message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();
}

}  // namespace ffrt::mpi
