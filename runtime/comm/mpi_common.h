// What both communication backends (comm/mpi.cc, comm/nccl.cc) do with MPI: joining the job,
// checked calls, the communicators of device groups, ending the job.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

namespace ffrt::mpi {

/// Throws ffrt::Error naming `call` and MPI's message unless `rc` is MPI_SUCCESS.
void check(int rc, const char* call);

/// This process's place in the job.
struct Job {
  int rank = 0, size = 1;
  int local_rank = 0;     ///< among the ranks on this node (MPI_COMM_TYPE_SHARED), in rank order
  bool owns_mpi = false;  ///< MPI was initialized here, so it is finalized here too
};

/// Joins the job: MPI_Init unless MPI is initialized already. Throws ffrt::Error on failure.
Job join(int* argc, char*** argv);

/// The communicator of the group `members` (ranks of a job of `size`), ranked in the order listed;
/// MPI_COMM_NULL on a rank outside it. A collective call of every rank.
MPI_Comm split(const std::vector<int>& members, int rank, int size);

/// Prints "rank R: message" and ends the job on every rank.
[[noreturn]] void abort_job(int rank, const std::string& message);

}  // namespace ffrt::mpi
