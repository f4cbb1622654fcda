// Communication over NCCL: the cuda backend's transfers and collectives (include/ffrt/comm.h).
//
// Every device group gets an NCCL communicator (groups with the same members share one), and one
// over all ranks carries the point-to-point transfers; MPI joins the job and hands out the
// communicators' ids. A phase issues all its operations inside one ncclGroupStart/ncclGroupEnd on
// the context's stream: ranks meet the phases in the same order, and a group's collectives come in
// the same order on its members, but two groups' collectives may come in different orders on ranks
// in both, which one NCCL group call tolerates. run() returns once the operations are enqueued:
// later kernels on the stream see their results, and the host waits for nothing.
//
// Views are used in place when they are dense and no other operation of the phase touches their
// memory; otherwise they are packed into dense temporaries (copy_box) before the group and unpacked
// after it. A reduce-scatter is ncclReduceScatter where its pieces allow, which its members, each
// seeing only its own piece, settle with one small MPI all-reduce on the host.
//
// A dead or hung peer must never hang the job silently. The communicators are blocking (a phase's
// launch costs a few microseconds of host time; non-blocking ones hand it to a thread of NCCL's and
// cost a hundred), so NCCL calls that wait for peers on the host (creating a communicator, the
// first transfers' connections, finalizing) run under a watchdog thread's eye, and an enqueued
// operation may wait forever on the GPU, where the host would only block in a later
// synchronization: the watchdog also follows each phase's completion (a CUDA event) and NCCL's
// asynchronous errors, and ends the job with a message naming the call or the phase's operations
// and the rank when one has not completed within FFRT_NCCL_TIMEOUT seconds (default 300). A call
// that fails throws ffrt::Error with the same names.
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "context.h"
#include "ffrt/comm.h"
#include "ffrt/npy.h"
#include "mpi_common.h"

namespace ffrt {

namespace {

using Clock = std::chrono::steady_clock;

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::i64: return ncclInt64;
    case DType::f64: return ncclFloat64;
  }
  throw Error("comm: unknown element type");
}

std::string nccl_status(ncclResult_t r, ncclComm_t c) {
  std::string s = ncclGetErrorString(r);
  const char* last = ncclGetLastError(c);
  if (last && *last) s += std::string(" (") + last + ")";
  return s;
}

/// FFRT_NCCL_TIMEOUT, in seconds: how long a phase may wait for its peers.
double timeout_seconds() {
  const char* text = std::getenv("FFRT_NCCL_TIMEOUT");
  if (!text || !*text) return 300;
  char* end = nullptr;
  const double t = std::strtod(text, &end);
  if (*end != '\0' || !(t > 0))
    throw Error(std::string("FFRT_NCCL_TIMEOUT must be a positive number of seconds, not '") + text + "'");
  return std::min(t, 1e9);
}

std::string ranks_str(const std::vector<int>& ranks) {
  std::string s;
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

std::string box_str(const View& v) {
  std::string s = "[";
  for (int d = 0; d < v.rank; ++d) s += (d ? ", " : "") + std::to_string(v.lo[d]) + ":" + std::to_string(v.hi(d));
  return s + "] " + dtype_name(v.dtype);
}

/// The bytes a view's elements lie within (empty for an empty box).
struct Span {
  const std::byte* lo = nullptr;
  const std::byte* hi = nullptr;
  bool meets(const Span& o) const { return lo < o.hi && o.lo < hi; }
};

Span span_of(const View& v) {
  if (v.volume() == 0) return {};
  int64_t last = 0;
  for (int d = 0; d < v.rank; ++d) last += (v.size[d] - 1) * v.stride[d];
  const auto* p = static_cast<const std::byte*>(v.data);
  return {p, p + (last + 1) * dtype_size(v.dtype)};
}

/// Whether `inner`'s box lies in `outer`'s and fills one run of the row-major order of outer's box
/// (laid out densely); `offset` gets where the run starts, in elements.
bool flat_run(const View& outer, const View& inner, int64_t& offset) {
  if (inner.rank != outer.rank) return false;
  offset = 0;
  int64_t stride = 1, expect = 1;
  bool run = true;
  for (int d = outer.rank - 1; d >= 0; --d) {
    if (inner.lo[d] < outer.lo[d] || inner.hi(d) > outer.hi(d)) return false;
    offset += (inner.lo[d] - outer.lo[d]) * stride;
    if (inner.size[d] != 1 && stride != expect) run = false;
    expect *= inner.size[d];
    stride *= outer.size[d];
  }
  return run;
}

/// What the program asked of one operation (Comm::Phase::Op is this, named privately).
struct OpData {
  enum Kind { send, recv, all_reduce, all_gather, reduce_scatter } kind = send;
  View a, b;  ///< send/all_reduce/all_gather/reduce_scatter: a = source (all_reduce's buffer); recv: b = destination
  int peer = -1, group = -1;
  std::vector<View> pieces;
};

std::string describe(const OpData& op, const std::vector<std::vector<int>>& members) {
  auto group = [&] {
    std::string s = "group " + std::to_string(op.group);
    if (op.group >= 0 && op.group < static_cast<int>(members.size()))
      s += " (ranks " + ranks_str(members[op.group]) + ")";
    return s;
  };
  switch (op.kind) {
    case OpData::send: return "send " + box_str(op.a) + " to rank " + std::to_string(op.peer);
    case OpData::recv: return "recv " + box_str(op.b) + " from rank " + std::to_string(op.peer);
    case OpData::all_reduce: return "all_reduce " + box_str(op.a) + " over " + group();
    case OpData::all_gather: return "all_gather " + box_str(op.a) + " into " + box_str(op.b) + " over " + group();
    case OpData::reduce_scatter:
      return "reduce_scatter " + box_str(op.a) + " into " + box_str(op.b) + " over " + group();
  }
  return "?";
}

}  // namespace

struct Comm::Phase::Op : OpData {};

struct Comm::Groups {
  int rank = 0;
  int device = 0;
  Clock::duration timeout{};              ///< FFRT_NCCL_TIMEOUT
  std::string within;                     ///< "within T s (FFRT_NCCL_TIMEOUT): ...", for messages
  ncclComm_t world = nullptr;             ///< every rank, in rank order: the point-to-point transfers
  std::vector<ncclComm_t> nccl;           ///< per group: its communicator; null where this rank is not a member
  std::vector<MPI_Comm> mpi;              ///< per group: its MPI communicator; MPI_COMM_NULL likewise
  std::vector<std::vector<int>> members;  ///< per group, in group order
  std::vector<int> position;              ///< per group: this rank's place in it, or -1
  /// Each communicator once, in the order created (the same on every rank), with its members.
  std::vector<std::pair<ncclComm_t, std::vector<int>>> owned;

  /// A phase enqueued on the GPU that the watchdog waits for.
  struct InFlight {
    cudaEvent_t done;
    Clock::time_point since;           ///< when the GPU could have reached it, as far as the host knows
    std::function<std::string()> ops;  ///< the phase's operations, for the message
  };
  std::mutex mu;  ///< guards `owned` (aborts) and the watchdog's state
  std::condition_variable wake;
  bool stopping = false;
  std::deque<InFlight> in_flight;
  std::vector<cudaEvent_t> spare_events;
  std::thread watchdog;
  /// A blocking NCCL call in progress on the main thread (mu): the watchdog ends the job when it
  /// has not returned within the timeout.
  struct HostCall {
    bool busy = false;
    Clock::time_point since;
    std::function<std::string()> what;  ///< evaluated only for the message
  } host;
  /// Marks a blocking call for the watchdog while it lives.
  class Blocking {
   public:
    Blocking(Groups& g, std::function<std::string()> what) : g_(g) {
      std::lock_guard<std::mutex> lock(g_.mu);
      g_.host = {true, Clock::now(), std::move(what)};
    }
    ~Blocking() {
      std::lock_guard<std::mutex> lock(g_.mu);
      g_.host.busy = false;
    }
    Blocking(const Blocking&) = delete;
    Blocking& operator=(const Blocking&) = delete;

   private:
    Groups& g_;
  };
  bool capturing = false;  ///< a CUDA graph is being recorded (main thread only)
  /// Events that order the two streams (main thread only), reused.
  std::vector<cudaEvent_t> order_events;
  cudaEvent_t order_event(Context& ctx);

  ~Groups();
  /// The communicator of the ranks listed (this one at `pos`; `m` is their MPI communicator).
  ncclComm_t create(MPI_Comm m, int pos, const std::vector<int>& ranks);
  /// ncclCommAbort on every communicator (mu held); later phases fail.
  void abort_all();
  /// Aborts the communicators and throws ffrt::Error: "rank R: WHAT; phase: OPS".
  [[noreturn]] void fail(const std::string& what, const std::function<std::string()>& ops);
  std::string name_of(ncclComm_t c) const;
  /// The watchdog thread.
  void watch();
  /// Hands what `stream` has issued so far (`what`, for the message) to the watchdog.
  void watch_stream(Context& ctx, cudaStream_t stream, std::function<std::string()> what);
};

std::string Comm::Groups::name_of(ncclComm_t c) const {
  for (const auto& [comm, ranks] : owned)
    if (comm == c) return "the communicator of ranks " + ranks_str(ranks);
  return "an aborted communicator";
}

void Comm::Groups::abort_all() {
  for (auto& [comm, ranks] : owned) (void)ncclCommAbort(comm);
  owned.clear();
  std::fill(nccl.begin(), nccl.end(), nullptr);
  world = nullptr;
}

void Comm::Groups::fail(const std::string& what, const std::function<std::string()>& ops) {
  {
    std::lock_guard<std::mutex> lock(mu);
    abort_all();
  }
  throw Error("rank " + std::to_string(rank) + ": " + what + (ops ? "; phase: " + ops() : std::string()));
}

ncclComm_t Comm::Groups::create(MPI_Comm m, int pos, const std::vector<int>& ranks) {
  ncclUniqueId id{};
  if (pos == 0) {
    const ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) fail("ncclGetUniqueId failed: " + nccl_status(r, nullptr), nullptr);
  }
  mpi::check(MPI_Bcast(&id, static_cast<int>(sizeof id), MPI_BYTE, 0, m), "MPI_Bcast (the NCCL id)");
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 1;
  const std::string call = "ncclCommInitRankConfig for the communicator of ranks " + ranks_str(ranks);
  ncclComm_t c = nullptr;
  ncclResult_t r = ncclSuccess;
  {
    Blocking watched(*this, [&call] { return call; });
    r = ncclCommInitRankConfig(&c, static_cast<int>(ranks.size()), id, pos, &config);
  }
  if (r != ncclSuccess) {
    const std::string status = nccl_status(r, c);
    if (c) (void)ncclCommAbort(c);
    fail(call + " failed: " + status, nullptr);
  }
  std::lock_guard<std::mutex> lock(mu);
  owned.emplace_back(c, ranks);
  return c;
}

// The watchdog only reports and ends the job: the main thread may be blocked in a stream
// synchronization, so nothing can be thrown to it, and ncclCommAbort can itself hang on a broken
// communicator, while ending the process frees the device.
void Comm::Groups::watch() {
  (void)cudaSetDevice(device);
  std::unique_lock<std::mutex> lock(mu);
  auto die = [&](const std::string& what, const std::string& ops) {
    mpi::abort_job(rank, what + (ops.empty() ? std::string() : "; phase: " + ops));
  };
  while (!stopping) {
    wake.wait_for(lock, std::chrono::milliseconds(200));
    if (stopping) break;
    const Clock::time_point now = Clock::now();
    if (host.busy && now - host.since > timeout) die(host.what() + " did not return " + within, std::string());
    while (!in_flight.empty()) {
      InFlight& f = in_flight.front();
      const cudaError_t q = cudaEventQuery(f.done);
      if (q == cudaErrorNotReady) {
        if (now - f.since > timeout)
          die("the NCCL operations of a phase did not complete " + within, f.ops());
        break;
      }
      if (q != cudaSuccess) die(std::string("cudaEventQuery after a phase failed: ") + cudaGetErrorString(q), f.ops());
      spare_events.push_back(f.done);
      in_flight.pop_front();
      // Phases complete in order on the stream: the next one's clock starts now.
      if (!in_flight.empty()) in_flight.front().since = std::max(in_flight.front().since, now);
    }
    for (const auto& [comm, ranks] : owned) {
      ncclResult_t state = ncclSuccess;
      if (ncclCommGetAsyncError(comm, &state) == ncclSuccess && state != ncclSuccess && state != ncclInProgress)
        die("NCCL reported an error on " + name_of(comm) + ": " + nccl_status(state, comm),
            in_flight.empty() ? std::string() : in_flight.front().ops());
    }
  }
}

Comm::Groups::~Groups() {
  // Finalizing waits for the communicator's operations (the watchdog still watching); a
  // communicator that fails to finalize is aborted.
  while (!owned.empty()) {
    const auto [comm, ranks] = owned.back();
    ncclResult_t r = ncclSuccess;
    {
      Blocking watched(*this, [&] { return "ncclCommFinalize for the communicator of ranks " + ranks_str(ranks); });
      r = ncclCommFinalize(comm);
    }
    std::lock_guard<std::mutex> lock(mu);
    if (r == ncclSuccess) {
      (void)ncclCommDestroy(comm);
    } else {
      std::fprintf(stderr, "rank %d: finalizing the communicator of ranks %s: %s; aborting it\n", rank,
                   ranks_str(ranks).c_str(), nccl_status(r, comm).c_str());
      (void)ncclCommAbort(comm);
    }
    owned.pop_back();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
  }
  wake.notify_all();
  if (watchdog.joinable()) watchdog.join();
  for (MPI_Comm& m : mpi)
    if (m != MPI_COMM_NULL) (void)MPI_Comm_free(&m);
  for (const InFlight& f : in_flight) (void)cudaEventDestroy(f.done);
  for (cudaEvent_t e : spare_events) (void)cudaEventDestroy(e);
  for (cudaEvent_t e : order_events) (void)cudaEventDestroy(e);
}

std::unique_ptr<Comm> Comm::init(int* argc, char*** argv) {
  std::unique_ptr<Comm> c(new Comm());
  const mpi::Job job = mpi::join(argc, argv);
  c->rank_ = job.rank;
  c->size_ = job.size;
  c->local_rank_ = job.local_rank;
  c->owns_mpi_ = job.owns_mpi;
  c->groups_ = std::make_unique<Groups>();
  Groups& g = *c->groups_;
  g.rank = c->rank_;
  const double seconds = timeout_seconds();
  g.timeout = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  char text[64];
  std::snprintf(text, sizeof text, "%g", seconds);
  g.within = std::string("within ") + text + " s (FFRT_NCCL_TIMEOUT): a peer may have died or hung";
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0)
    throw Error("rank " + std::to_string(c->rank_) + ": no CUDA device" +
                (e != cudaSuccess ? std::string(" (cudaGetDeviceCount: ") + cudaGetErrorString(e) + ")"
                                  : std::string()) +
                "; the cuda backend runs each rank on a GPU");
  g.device = c->local_rank_ % count;
  FFRT_CUDA(nullptr, cudaSetDevice(g.device));
  return c;
}

Comm::~Comm() {
  groups_.reset();  // frees MPI communicators: before MPI_Finalize
  if (owns_mpi_) MPI_Finalize();
}

void Comm::create_groups(const std::vector<std::vector<int>>& groups) {
  Groups& g = *groups_;
  std::vector<int> all(size_);
  std::iota(all.begin(), all.end(), 0);
  std::map<std::vector<int>, ncclComm_t> made;
  g.watchdog = std::thread([&g] { g.watch(); });
  g.world = made[all] = g.create(MPI_COMM_WORLD, rank_, all);
  // Creating in the program's order, which every rank shares, cannot deadlock.
  for (const std::vector<int>& members : groups) {
    const MPI_Comm m = mpi::split(members, rank_, size_);
    const auto at = std::find(members.begin(), members.end(), rank_);
    const int pos = m == MPI_COMM_NULL ? -1 : static_cast<int>(at - members.begin());
    ncclComm_t c = nullptr;
    if (pos >= 0) {
      const auto same = made.find(members);
      c = same != made.end() ? same->second : (made[members] = g.create(m, pos, members));
    }
    g.mpi.push_back(m);
    g.members.push_back(members);
    g.position.push_back(pos);
    g.nccl.push_back(c);
  }
}

void Comm::set_capturing(bool on) { groups_->capturing = on; }

void Comm::Groups::watch_stream(Context& ctx, cudaStream_t stream, std::function<std::string()> what) {
  std::lock_guard<std::mutex> lock(mu);
  cudaEvent_t done = nullptr;
  if (spare_events.empty()) {
    FFRT_CUDA(&ctx, cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  } else {
    done = spare_events.back();
    spare_events.pop_back();
  }
  FFRT_CUDA(&ctx, cudaEventRecord(done, stream));
  in_flight.push_back({done, Clock::now(), std::move(what)});
}

void Comm::track(Context& ctx, const std::string& what) {
  groups_->watch_stream(ctx, ctx.stream, [what] { return what; });
}

void Comm::abort(const std::string& message) {
  if (groups_) {
    std::lock_guard<std::mutex> lock(groups_->mu);
    groups_->abort_all();
  }
  mpi::abort_job(rank_, message);
}

void Comm::Phase::send(const View& src, int peer) {
  auto op = std::make_shared<Op>();
  op->kind = Op::send;
  op->a = src;
  op->peer = peer;
  ops_.push_back(std::move(op));
}

void Comm::Phase::recv(const View& dst, int peer) {
  auto op = std::make_shared<Op>();
  op->kind = Op::recv;
  op->b = dst;
  op->peer = peer;
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

namespace {

/// While it lives, the context's kernels (copies, memsets, allocations' zero-fill) go to its
/// communication stream: a phase packs and unpacks its operands there.
class OnCommStream {
 public:
  explicit OnCommStream(Context& ctx) : ctx_(ctx), compute_(ctx.stream) { ctx.stream = ctx.comm_stream; }
  ~OnCommStream() { ctx_.stream = compute_; }
  OnCommStream(const OnCommStream&) = delete;
  OnCommStream& operator=(const OnCommStream&) = delete;

 private:
  Context& ctx_;
  cudaStream_t compute_;
};

}  // namespace

/// What a started phase holds until finish(): the event its operations end with on the
/// communication stream, and its temporaries (handed back to the cache only once the compute
/// stream is ordered after them).
struct Started {
  std::vector<cudaEvent_t>* pool = nullptr;  ///< where `done` goes back
  cudaEvent_t done = nullptr;
  std::vector<std::shared_ptr<std::byte>> temps;
};

cudaEvent_t Comm::Groups::order_event(Context& ctx) {
  if (!order_events.empty()) {
    cudaEvent_t e = order_events.back();
    order_events.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  FFRT_CUDA(&ctx, cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return e;
}

void Comm::Phase::finish() {
  if (!started_) return;
  auto* s = static_cast<Started*>(started_.get());
  FFRT_CUDA(&ctx_, cudaStreamWaitEvent(ctx_.stream, s->done, 0));
  s->pool->push_back(s->done);
  started_.reset();
}

void Comm::Phase::start() {
  if (started_) throw Error("comm: a phase started twice");
  if (ops_.empty()) return;
  Groups& g = *comm_.groups_;
  const std::vector<std::shared_ptr<Op>> ops = std::move(ops_);
  ops_.clear();
  const std::function<std::string()> what = [ops, &members = g.members] {
    std::string s;
    for (size_t i = 0; i < ops.size(); ++i) s += (i ? "; " : "") + describe(*ops[i], members);
    return s;
  };
  const std::string rank_str = "rank " + std::to_string(comm_.rank_);
  if (!g.world) g.fail("comm: no communicators (create_groups was not called, or they were aborted)", what);

  // Check the operations; note the memory each reads and writes.
  struct Use {
    Span reads, writes;  // all_reduce writes its buffer
    int pos = -1;        // collectives: this rank's place in the group
  };
  std::vector<Use> uses(ops.size());
  for (size_t k = 0; k < ops.size(); ++k) {
    const Op& op = *ops[k];
    Use& u = uses[k];
    if (op.kind == Op::send || op.kind == Op::recv) {
      if (op.peer < 0 || op.peer >= comm_.size_)
        throw Error("comm: " + rank_str + ": no rank " + std::to_string(op.peer) + " in a job of " +
                    std::to_string(comm_.size_));
    } else {
      if (op.group < 0 || op.group >= static_cast<int>(g.position.size()) || g.position[op.group] < 0)
        throw Error("comm: " + rank_str + " is not in group " + std::to_string(op.group));
      u.pos = g.position[op.group];
    }
    switch (op.kind) {
      case Op::send: u.reads = span_of(op.a); break;
      case Op::recv: u.writes = span_of(op.b); break;
      case Op::all_reduce: u.writes = span_of(op.a); break;
      case Op::all_gather:
      case Op::reduce_scatter:
        if (op.a.dtype != op.b.dtype)
          throw Error("comm: " + describe(op, g.members) + ": source and destination types differ");
        u.reads = span_of(op.a);
        u.writes = span_of(op.b);
        break;
    }
    if (op.kind == Op::all_gather) {
      const std::vector<int>& members = g.members[op.group];
      if (op.pieces.size() != members.size())
        throw Error("comm: " + describe(op, g.members) + ": " + std::to_string(op.pieces.size()) + " pieces for " +
                    std::to_string(members.size()) + " members");
      for (const View& p : op.pieces)
        if (p.rank != op.b.rank) throw Error("comm: " + describe(op, g.members) + ": a piece of the wrong rank");
      if (op.pieces[u.pos].volume() != op.a.volume())
        throw Error("comm: " + describe(op, g.members) + ": the source is not this member's piece " +
                    box_str(op.pieces[u.pos]));
    }
  }
  // Whether `v` may be used in place by operation k: no other operation writes the memory it lies in
  // (nor, when k writes it, reads it).
  auto exclusive = [&](size_t k, const View& v, bool write) {
    const Span s = span_of(v);
    for (size_t j = 0; j < ops.size(); ++j)
      if (j != k && (s.meets(uses[j].writes) || (write && s.meets(uses[j].reads)))) return false;
    return true;
  };

  // A reduce-scatter whose pieces are the members' runs of the packed source, in member order, is
  // ncclReduceScatter; otherwise an all-reduce of the whole source. Each member sees only its own
  // piece, so the members agree (MPI, on the host) before any of them issues it. The simulator
  // prices the same choice (sim/cost.cc, scatters_directly): a change here changes it there.
  std::vector<int> fast(ops.size(), 0);
  std::vector<MPI_Request> agreeing;
  for (size_t k = 0; k < ops.size(); ++k) {
    const Op& op = *ops[k];
    if (op.kind != Op::reduce_scatter || op.a.volume() == 0) continue;
    const int64_t n = static_cast<int64_t>(g.members[op.group].size()), volume = op.a.volume();
    int64_t offset = 0;
    fast[k] = volume % n == 0 && op.b.volume() == volume / n && flat_run(op.a, op.b, offset) &&
              offset == uses[k].pos * (volume / n);
    agreeing.emplace_back();
    mpi::check(MPI_Iallreduce(MPI_IN_PLACE, &fast[k], 1, MPI_INT, MPI_MIN, g.mpi[op.group], &agreeing.back()),
               "MPI_Iallreduce");
  }
  if (!agreeing.empty()) {
    const Clock::time_point deadline = Clock::now() + g.timeout;
    for (int done = 0;;) {
      mpi::check(MPI_Testall(static_cast<int>(agreeing.size()), agreeing.data(), &done, MPI_STATUSES_IGNORE),
                 "MPI_Testall");
      if (done) break;
      if (Clock::now() > deadline)
        g.fail("MPI_Iallreduce (the members of a reduce_scatter agreeing on its layout) got no answer " + g.within,
               what);
      std::this_thread::yield();
    }
  }

  // Plan the NCCL calls: their buffers are the views themselves or dense temporaries.
  struct Call {
    OpData::Kind kind;
    int order;  // issue order: transfers first, then by group (see below)
    const void* src;
    void* dst;
    size_t count;
    ncclDataType_t type;
    ncclComm_t comm;
    int peer;
  };
  std::vector<Call> calls;
  auto started = std::make_shared<Started>();
  started->pool = &g.order_events;
  std::vector<std::shared_ptr<std::byte>>& temps = started->temps;
  // The communication stream starts after every kernel issued so far; the phase's own kernels
  // (packing, unpacking) and its NCCL operations run there.
  const cudaEvent_t ready = g.order_event(ctx_);
  FFRT_CUDA(&ctx_, cudaEventRecord(ready, ctx_.stream));
  FFRT_CUDA(&ctx_, cudaStreamWaitEvent(ctx_.comm_stream, ready, 0));
  g.order_events.push_back(ready);
  OnCommStream on_comm(ctx_);
  if (timed) marks[0] = mark(ctx_, Lane::comm);
  std::vector<std::pair<View, View>> unpack;  // after the group: copy_box(first, second)
  // Temporaries are not zero-filled: packing, or NCCL itself, writes every element of each before
  // anything reads it (a memset each would cost a launch and a pass over its bytes, in every step).
  auto dense = [&](const View& like) {
    temps.push_back(allocate(ctx_, static_cast<size_t>(like.volume() * dtype_size(like.dtype)), false));
    return make_view(temps.back().get(), like.dtype, like.rank, like.full, like.lo, like.size);
  };
  auto packed = [&](const View& v) {
    const View t = dense(v);
    copy_box(ctx_, v, t, false);
    return t;
  };
  for (size_t k = 0; k < ops.size(); ++k) {
    const Op& op = *ops[k];
    const int64_t es = dtype_size(op.kind == Op::recv ? op.b.dtype : op.a.dtype);
    const ncclDataType_t type = nccl_type(op.kind == Op::recv ? op.b.dtype : op.a.dtype);
    const ncclComm_t comm = op.group >= 0 ? g.nccl[op.group] : g.world;
    switch (op.kind) {
      case Op::send: {
        if (op.a.volume() == 0) break;
        const View s = op.a.contiguous() && exclusive(k, op.a, false) ? op.a : packed(op.a);
        calls.push_back({Op::send, -1, s.data, nullptr, static_cast<size_t>(op.a.volume()), type, comm, op.peer});
        break;
      }
      case Op::recv: {
        if (op.b.volume() == 0) break;
        const bool direct = op.b.contiguous() && exclusive(k, op.b, true);
        const View d = direct ? op.b : dense(op.b);
        if (!direct) unpack.emplace_back(d, op.b);
        calls.push_back({Op::recv, -1, nullptr, d.data, static_cast<size_t>(op.b.volume()), type, comm, op.peer});
        break;
      }
      case Op::all_reduce: {
        if (op.a.volume() == 0) break;
        const bool direct = op.a.contiguous() && exclusive(k, op.a, true);
        const View d = direct ? op.a : packed(op.a);
        if (!direct) unpack.emplace_back(d, op.a);
        calls.push_back({Op::all_reduce, op.group, d.data, d.data, static_cast<size_t>(op.a.volume()), type, comm, -1});
        break;
      }
      case Op::all_gather: {
        const int n = static_cast<int>(op.pieces.size()), me = uses[k].pos;
        std::vector<int64_t> at(n + 1, 0);  // where each member's piece lands in the gathered array
        for (int i = 0; i < n; ++i) at[i + 1] = at[i] + op.pieces[i].volume();
        if (at[n] == 0) break;
        bool equal = true;
        for (int i = 0; i < n; ++i) equal = equal && op.pieces[i].volume() == op.pieces[0].volume();
        // Gather straight into dst when the pieces lie in it one after another, in member order.
        bool direct = op.b.contiguous() && exclusive(k, op.b, true);
        for (int i = 0; i < n && direct; ++i) {
          int64_t offset = 0;
          direct = op.pieces[i].volume() == 0 || (flat_run(op.b, op.pieces[i], offset) && offset == at[i]);
        }
        std::byte* target = static_cast<std::byte*>(op.b.data);
        if (!direct) {
          temps.push_back(allocate(ctx_, static_cast<size_t>(at[n] * es), false));  // the pieces fill it
          target = temps.back().get();
          for (int i = 0; i < n; ++i)
            if (op.pieces[i].volume() > 0)
              unpack.emplace_back(make_view(target + at[i] * es, op.b.dtype, op.b.rank, op.b.full, op.pieces[i].lo,
                                            op.pieces[i].size),
                                  op.b);
        }
        std::byte* own = target + at[me] * es;
        const bool in_place = direct && op.a.contiguous() && op.a.data == own;
        const bool src_free = op.a.contiguous() && exclusive(k, op.a, false) && !uses[k].reads.meets(uses[k].writes);
        const View s = in_place || src_free ? op.a : packed(op.a);
        const size_t mine = static_cast<size_t>(op.a.volume());
        if (equal) {
          calls.push_back({Op::all_gather, op.group, s.data, target, mine, type, comm, -1});
          break;
        }
        // Uneven pieces: every member sends its piece to every other, inside the same group call.
        if (!in_place && mine > 0)
          FFRT_CUDA(&ctx_, cudaMemcpyAsync(own, s.data, mine * static_cast<size_t>(es), cudaMemcpyDeviceToDevice,
                                           ctx_.stream));
        for (int j = 0; j < n; ++j) {
          if (j == me) continue;
          const size_t theirs = static_cast<size_t>(op.pieces[j].volume());
          if (theirs > 0) calls.push_back({Op::recv, op.group, nullptr, target + at[j] * es, theirs, type, comm, j});
          if (mine > 0) calls.push_back({Op::send, op.group, s.data, nullptr, mine, type, comm, j});
        }
        break;
      }
      case Op::reduce_scatter: {
        const int64_t volume = op.a.volume();
        if (volume == 0) break;
        if (!fast[k]) {
          const View sum = packed(op.a);
          calls.push_back({Op::all_reduce, op.group, sum.data, sum.data, static_cast<size_t>(volume), type, comm, -1});
          unpack.emplace_back(sum, op.b);
          break;
        }
        const int64_t piece = op.b.volume();
        const bool src_free = op.a.contiguous() && exclusive(k, op.a, false);
        const bool dst_free = op.b.contiguous() && exclusive(k, op.b, true);
        const bool in_place =
            src_free && dst_free && op.b.data == static_cast<std::byte*>(op.a.data) + uses[k].pos * piece * es;
        const View s = in_place || (src_free && !uses[k].reads.meets(uses[k].writes)) ? op.a : packed(op.a);
        const View d = dst_free ? op.b : dense(op.b);
        if (!dst_free) unpack.emplace_back(d, op.b);
        calls.push_back({Op::reduce_scatter, op.group, s.data, d.data, static_cast<size_t>(piece), type, comm, -1});
        break;
      }
    }
  }

  // Groups with the same members share a communicator, on which every rank must issue the same
  // sequence: transfers first (each pair of ranks posts them in the same order), then the
  // collectives group by group (each group's in the same order on all its members).
  std::stable_sort(calls.begin(), calls.end(), [](const Call& x, const Call& y) { return x.order < y.order; });
  const cudaStream_t stream = ctx_.comm_stream;
  ncclResult_t r = ncclGroupStart();
  if (r != ncclSuccess) g.fail("ncclGroupStart failed: " + nccl_status(r, nullptr), what);
  for (const Call& c : calls) {
    const char* call = "";
    switch (c.kind) {
      case Op::send: call = "ncclSend", r = ncclSend(c.src, c.count, c.type, c.peer, c.comm, stream); break;
      case Op::recv: call = "ncclRecv", r = ncclRecv(c.dst, c.count, c.type, c.peer, c.comm, stream); break;
      case Op::all_reduce:
        call = "ncclAllReduce", r = ncclAllReduce(c.src, c.dst, c.count, c.type, ncclSum, c.comm, stream);
        break;
      case Op::all_gather:
        call = "ncclAllGather", r = ncclAllGather(c.src, c.dst, c.count, c.type, c.comm, stream);
        break;
      case Op::reduce_scatter:
        call = "ncclReduceScatter", r = ncclReduceScatter(c.src, c.dst, c.count, c.type, ncclSum, c.comm, stream);
        break;
    }
    if (r != ncclSuccess) {
      (void)ncclGroupEnd();
      g.fail(std::string(call) + " on " + g.name_of(c.comm) + " failed: " + nccl_status(r, c.comm), what);
    }
  }
  {
    // The first transfers between two ranks connect them, waiting for the peer.
    Groups::Blocking watched(g, [&what] { return "ncclGroupEnd of a phase: " + what(); });
    r = ncclGroupEnd();
  }
  if (r != ncclSuccess) g.fail("ncclGroupEnd failed: " + nccl_status(r, nullptr), what);
  for (const auto& [from, to] : unpack) copy_box(ctx_, from, to, false);
  if (timed) marks[1] = mark(ctx_, Lane::comm);
  started->done = g.order_event(ctx_);
  FFRT_CUDA(&ctx_, cudaEventRecord(started->done, stream));
  started_ = std::move(started);

  // Hand the phase to the watchdog (a graph being recorded is handed over when replayed).
  if (!calls.empty() && !g.capturing) g.watch_stream(ctx_, stream, what);
}

}  // namespace ffrt
