// What both communication backends do with MPI (mpi_common.h).
#include "mpi_common.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "ffrt/comm.h"
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

namespace ffrt {

// Both backends join the job with MPI: gathering text needs nothing of theirs.
std::vector<std::string> Comm::gather(const std::string& text) {
  int len = static_cast<int>(text.size());
  std::vector<int> lens(rank_ == 0 ? size_ : 0);
  mpi::check(MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Gather");
  std::vector<int> at(lens.size() + 1, 0);
  for (size_t r = 0; r < lens.size(); ++r) at[r + 1] = at[r] + lens[r];
  std::string all(static_cast<size_t>(at.back()), '\0');
  mpi::check(MPI_Gatherv(text.data(), len, MPI_CHAR, all.data(), lens.data(), at.data(), MPI_CHAR, 0, MPI_COMM_WORLD),
             "MPI_Gatherv");
  std::vector<std::string> out;
  for (size_t r = 0; r < lens.size(); ++r) out.push_back(all.substr(static_cast<size_t>(at[r]), static_cast<size_t>(lens[r])));
  return out;
}

}  // namespace ffrt
