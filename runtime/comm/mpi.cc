// Communication over MPI: the cpu backend's transfers and collectives (include/ffrt/comm.h).
//
// Views are packed into dense host arrays (copy_box) before they leave and unpacked after they
// arrive. A phase posts its sends and receives as nonblocking operations when they are added, runs
// its collectives in the order they were added when run() is called, then waits for the transfers
// and unpacks what arrived. MPI keeps the messages between two ranks in order, which is what the
// Rank IR's phases rely on.
#include <mpi.h>

#include <cstdint>

#include "ffrt/comm.h"
#include "ffrt/npy.h"
#include "mpi_common.h"

namespace ffrt {

namespace {

using mpi::check;

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::i64: return MPI_INT64_T;
    case DType::f64: return MPI_DOUBLE;
  }
  throw Error("comm: unknown element type");
}

std::vector<int64_t> sizes_of(const View& v) { return std::vector<int64_t>(v.size, v.size + v.rank); }

/// A dense array holding the box of `like`, and a view of it as that box.
struct Packed {
  HostArray data;
  View view;
  explicit Packed(const View& like) : data(like.dtype, sizes_of(like)) {
    view = make_view(data.bytes.data(), like.dtype, like.rank, like.full, like.lo, like.size);
  }
  int count() const {
    if (data.numel() > INT32_MAX) throw Error("comm: a message of more than 2^31 elements");
    return static_cast<int>(data.numel());
  }
};

}  // namespace

struct Comm::Groups {
  std::vector<MPI_Comm> comms;              ///< MPI_COMM_NULL where this rank is not a member
  std::vector<std::vector<int>> members;
};

struct Comm::Phase::Op {
  enum Kind { send, recv, all_reduce, all_gather, reduce_scatter } kind;
  View a, b;  ///< send/all_reduce/all_gather/reduce_scatter: a = source; recv: b = destination
  int peer = -1, group = -1;
  std::vector<View> pieces;
  std::unique_ptr<Packed> packed;
  MPI_Request request = MPI_REQUEST_NULL;
};

std::unique_ptr<Comm> Comm::init(int* argc, char*** argv) {
  std::unique_ptr<Comm> c(new Comm());
  const mpi::Job job = mpi::join(argc, argv);
  c->rank_ = job.rank;
  c->size_ = job.size;
  c->local_rank_ = job.local_rank;
  c->owns_mpi_ = job.owns_mpi;
  c->groups_ = std::make_unique<Groups>();
  return c;
}

Comm::~Comm() {
  if (groups_)
    for (MPI_Comm& m : groups_->comms)
      if (m != MPI_COMM_NULL) MPI_Comm_free(&m);
  if (owns_mpi_) MPI_Finalize();
}

void Comm::create_groups(const std::vector<std::vector<int>>& groups) {
  for (const std::vector<int>& g : groups) {
    groups_->comms.push_back(mpi::split(g, rank_, size_));
    groups_->members.push_back(g);
  }
}

void Comm::abort(const std::string& message) { mpi::abort_job(rank_, message); }

void Comm::Phase::send(const View& src, int peer) {
  auto op = std::make_shared<Op>();
  op->kind = Op::send;
  op->a = src;
  op->peer = peer;
  op->packed = std::make_unique<Packed>(src);
  copy_box(ctx_, src, op->packed->view, false);
  check(MPI_Isend(op->packed->data.bytes.data(), op->packed->count(), mpi_type(src.dtype), peer, 0, MPI_COMM_WORLD,
                  &op->request),
        "MPI_Isend");
  ops_.push_back(std::move(op));
}

void Comm::Phase::recv(const View& dst, int peer) {
  auto op = std::make_shared<Op>();
  op->kind = Op::recv;
  op->b = dst;
  op->peer = peer;
  op->packed = std::make_unique<Packed>(dst);
  check(MPI_Irecv(op->packed->data.bytes.data(), op->packed->count(), mpi_type(dst.dtype), peer, 0, MPI_COMM_WORLD,
                  &op->request),
        "MPI_Irecv");
  ops_.push_back(std::move(op));
}

void Comm::Phase::all_reduce(const View& buf, int group) {
  auto op = std::make_shared<Op>();
  op->kind = Op::all_reduce;
  op->a = buf;
  op->group = group;
  ops_.push_back(std::move(op));
}

void Comm::Phase::all_gather(const View& src, const View& dst, const std::vector<View>& pieces, int group) {
  auto op = std::make_shared<Op>();
  op->kind = Op::all_gather;
  op->a = src;
  op->b = dst;
  op->pieces = pieces;
  op->group = group;
  ops_.push_back(std::move(op));
}

void Comm::Phase::reduce_scatter(const View& src, const View& dst, int group) {
  auto op = std::make_shared<Op>();
  op->kind = Op::reduce_scatter;
  op->a = src;
  op->b = dst;
  op->group = group;
  ops_.push_back(std::move(op));
}

void Comm::Phase::start() {
  const Groups& groups = *comm_.groups_;
  auto group_comm = [&](int g) {
    if (g < 0 || g >= static_cast<int>(groups.comms.size()) || groups.comms[g] == MPI_COMM_NULL)
      throw Error("comm: rank " + std::to_string(comm_.rank_) + " is not in group " + std::to_string(g));
    return groups.comms[g];
  };
  if (timed) marks[0] = mark(ctx_, Lane::comm);
  for (const auto& op : ops_) {
    switch (op->kind) {
      case Op::send:
      case Op::recv: break;  // posted already
      case Op::all_reduce:
      case Op::reduce_scatter: {
        Packed sum(op->a);
        copy_box(ctx_, op->a, sum.view, false);
        check(MPI_Allreduce(MPI_IN_PLACE, sum.data.bytes.data(), sum.count(), mpi_type(op->a.dtype), MPI_SUM,
                            group_comm(op->group)),
              "MPI_Allreduce");
        copy_box(ctx_, sum.view, op->kind == Op::all_reduce ? op->a : op->b, false);
        break;
      }
      case Op::all_gather: {
        Packed mine(op->a);
        copy_box(ctx_, op->a, mine.view, false);
        std::vector<int> counts, displs;
        int total = 0;
        for (const View& p : op->pieces) {
          counts.push_back(static_cast<int>(p.volume()));
          displs.push_back(total);
          total += counts.back();
        }
        std::vector<std::byte> all(static_cast<size_t>(total) * static_cast<size_t>(dtype_size(op->a.dtype)));
        check(MPI_Allgatherv(mine.data.bytes.data(), mine.count(), mpi_type(op->a.dtype), all.data(), counts.data(),
                             displs.data(), mpi_type(op->a.dtype), group_comm(op->group)),
              "MPI_Allgatherv");
        for (size_t i = 0; i < op->pieces.size(); ++i) {
          const View& p = op->pieces[i];
          View from = make_view(all.data() + static_cast<size_t>(displs[i]) * static_cast<size_t>(dtype_size(p.dtype)),
                                p.dtype, p.rank, p.full, p.lo, p.size);
          copy_box(ctx_, from, op->b, false);
        }
        break;
      }
    }
  }
  for (const auto& op : ops_) {
    if (op->kind != Op::send && op->kind != Op::recv) continue;
    check(MPI_Wait(&op->request, MPI_STATUS_IGNORE), op->kind == Op::send ? "MPI_Wait (send)" : "MPI_Wait (recv)");
    if (op->kind == Op::recv) copy_box(ctx_, op->packed->view, op->b, false);
  }
  ops_.clear();
  if (timed) marks[1] = mark(ctx_, Lane::comm);
}

// MPI completes a phase in start(); the cpu backend's kernels run on the host, in order.
void Comm::Phase::finish() {}

// The cpu backend records no graphs, and its phases complete in start().
void Comm::set_capturing(bool) {}
void Comm::track(Context&, const std::string&) {}

}  // namespace ffrt
