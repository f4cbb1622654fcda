// Communication between the ranks of a job: point-to-point transfers of boxes and collectives over
// device groups, issued one phase at a time (DESIGN.md §5).
//
// A generated program's `comm` instruction becomes one Phase: it posts the phase's sends and
// receives and runs its collectives, then completes them all, so every rank issues its operations
// of a phase as one group and ranks that meet the phases in the same order cannot deadlock. A
// phase whose results are not needed at once (the middle end's overlap pass says until where)
// starts, and finishes later: its communication overlaps the kernels in between. The cpu
// backend implements it with MPI (one communicator per device group, created once), the cuda
// backend with NCCL (comm/nccl.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ffrt/kernels.h"
#include "ffrt/view.h"

namespace ffrt {

class Comm {
 public:
  /// Joins the job (MPI_Init when MPI is not initialized yet). Throws ffrt::Error on failure.
  static std::unique_ptr<Comm> init(int* argc, char*** argv);
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  /// This rank's place among the job's ranks on its node (0 for the first). The cuda backend runs
  /// on device local_rank() % (the node's device count).
  int local_rank() const { return local_rank_; }

  /// Creates the communicator of each group (sorted rank lists, in the program's order): a
  /// collective call of every rank, once, before the first phase.
  void create_groups(const std::vector<std::vector<int>>& groups);

  /// While a CUDA graph is being recorded: phases are recorded with it, and the watchdog follows
  /// its replays (track) instead of each phase.
  void set_capturing(bool on);
  /// Hands what `ctx` has issued so far (a replayed graph, `what`) to the watchdog: it ends the job
  /// when that has not completed within FFRT_NCCL_TIMEOUT (cuda; the cpu backend's phases complete
  /// on the host).
  void track(Context& ctx, const std::string& what);

  /// Rank 0 gets every rank's `text`, in rank order; the others get nothing. A collective call.
  std::vector<std::string> gather(const std::string& text);

  /// Ends the job on every rank with a message (a rank that fails must not leave the others
  /// waiting forever).
  [[noreturn]] void abort(const std::string& message);

  /// The operations of one phase. Views may be any boxes of buffers (they are packed and unpacked);
  /// they must stay valid until run() returns.
  class Phase {
   public:
    explicit Phase(Comm& comm, Context& ctx) : comm_(comm), ctx_(ctx) {}
    /// Sends src's box to `peer`.
    void send(const View& src, int peer);
    /// Receives into dst's box from `peer` (what that peer sends in the same phase, in order).
    void recv(const View& dst, int peer);
    /// Sums `buf` in place over the members of group `group`.
    void all_reduce(const View& buf, int group);
    /// Each member's `src` lands in every member's `dst`: `pieces[i]` gives the box (only the box
    /// is read) that member i, in group order, contributes; src holds exactly this member's.
    void all_gather(const View& src, const View& dst, const std::vector<View>& pieces, int group);
    /// `src` (equal boxes on every member) summed over the group; `dst` gets this member's piece.
    void reduce_scatter(const View& src, const View& dst, int group);
    /// Issues every operation posted, after the kernels issued so far, on the communication side
    /// (cuda: Lane::comm, the communication stream): kernels issued after start() run alongside
    /// them until finish(). The phase must live until finish().
    void start();
    /// Orders the kernels issued from now on after the operations started (cuda: the compute
    /// stream waits for them; the host does not).
    void finish();
    /// start(), then finish().
    void run() {
      start();
      finish();
    }

    /// --trace: with `timed` set before start(), start() records a mark (ffrt/kernels.h) on the
    /// communication lane where the operations begin and one where they end.
    bool timed = false;
    int marks[2] = {-1, -1};

   private:
    struct Op;
    Comm& comm_;
    Context& ctx_;
    std::vector<std::shared_ptr<Op>> ops_;
    std::shared_ptr<void> started_;  ///< what the started operations need until finish()
  };

 private:
  Comm() = default;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  bool owns_mpi_ = false;
  struct Groups;
  std::unique_ptr<Groups> groups_;
};

}  // namespace ffrt
