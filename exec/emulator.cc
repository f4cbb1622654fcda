// The emulator.
#include "exec/emulator.h"

#include <deque>
#include <map>

#include "ir/op_table.h"

namespace ffc {

namespace {

/// A view with no data over `box` of a tensor of extents `full`: an operand a part does not need.
ffrt::View absent_view(const Box& box, const std::vector<int64_t>& full, ffrt::DType dtype) {
  std::vector<int64_t> lo, size;
  for (const Range& r : box.r) {
    lo.push_back(r.lo);
    size.push_back(r.size());
  }
  ffrt::View v = ffrt::make_view(nullptr, dtype, box.rank(), full.data(), lo.data(), size.data());
  v.data = nullptr;
  return v;
}

/// A dense temporary holding `box` of a tensor of extents `full`.
struct Packed {
  HostTensor t;
  ffrt::View v;
  Packed(ffrt::DType dtype, const ffrt::View& like) {
    std::vector<int64_t> lo(like.lo, like.lo + like.rank), full(like.full, like.full + like.rank),
        size(like.size, like.size + like.rank);
    t = HostTensor(dtype, size);
    v = box_view(t, lo, full);
  }
};

}  // namespace

struct Emulator::Message {
  Box box;
  std::unique_ptr<Packed> data;
};

struct Emulator::Collective {
  struct Member {
    int rank;
    const CommOp* op;
  };
  std::vector<Member> members;
  bool done = false;
};

struct Emulator::Rank {
  std::unique_ptr<std::byte[]> persistent, arena;
  size_t pc = 0;
  // Progress through the comm instruction at pc:
  bool posted = false;
  std::vector<bool> op_done;
  std::vector<std::pair<int, int64_t>> coll_key;  ///< per op: (group, sequence) of a collective
  std::vector<int64_t> coll_seq;                  ///< per communicator: collectives reached
  std::map<int, bool> first_update;               ///< per update instruction's buffer
};

struct Emulator::State {
  std::map<std::pair<int, int>, std::deque<Message>> channels;  ///< (from, to) -> messages in order
  std::map<std::pair<int, int64_t>, Collective> collectives;
  std::vector<std::vector<std::vector<int64_t>>> in_ext, out_ext;  ///< per op
};

Emulator::Emulator(const Graph& g, const Program& p, const TrainOptions& opts)
    : g_(g), p_(p), opts_(opts), ctx_(ffrt::make_context({opts.threads, 0})), state_(std::make_unique<State>()) {
  FFC_CHECK(opts_.batch == p.batch);
  descs_ = op_descs(g_);
  for (const Op& op : g_.ops) {
    BoundOp b = bind_op(g_, op, p.batch);
    state_->in_ext.push_back(b.in);
    state_->out_ext.push_back(b.out);
  }
  for (const RankProgram& rp : p_.ranks) {
    auto r = std::make_unique<Rank>();
    r->persistent = std::make_unique<std::byte[]>(static_cast<size_t>(rp.persistent_bytes) + 1);
    r->arena = std::make_unique<std::byte[]>(static_cast<size_t>(rp.arena_bytes) + 1);
    r->coll_seq.assign(p_.groups.size(), 0);
    ranks_.push_back(std::move(r));
  }
  inputs_.resize(g_.ops.size());
  setup();
}

Emulator::~Emulator() = default;

ffrt::View Emulator::view(int rank, const Operand& o) const {
  const Buffer& b = p_.ranks.at(rank).buffers.at(o.buffer);
  FFC_CHECK(b.offset >= 0);
  std::byte* base = (is_persistent(b.role) ? ranks_[rank]->persistent.get() : ranks_[rank]->arena.get()) + b.offset;
  std::vector<int64_t> buf_lo, buf_size, lo, size;
  for (const Range& r : b.box.r) buf_lo.push_back(r.lo), buf_size.push_back(r.size());
  for (const Range& r : o.box.r) lo.push_back(r.lo), size.push_back(r.size());
  const ffrt::View whole = ffrt::make_view(base, rt_dtype(b.dtype), b.box.rank(), b.full.data(), buf_lo.data(),
                                           buf_size.data());
  return ffrt::sub_view(whole, lo.data(), size.data());
}

void Emulator::setup() {
  for (size_t r = 0; r < p_.ranks.size(); ++r)
    for (const Instr& in : p_.ranks[r].setup) {
      FFC_CHECK(in.kind == InstrKind::init_param);
      const ParamInfo& info = p_.params.at(in.param);
      ParamSpec spec = op_params(g_, g_.ops[info.op]).at(info.index);
      init_param_block(*ctx_, spec, info.name, opts_.seed, view(static_cast<int>(r), in.dst));
    }
}

OpViews Emulator::kernel_views(int r, const Instr& in) const {
  OpViews v;
  const Op& op = g_.ops[in.op];
  auto dtype_of = [&](TensorId t) { return rt_dtype(g_.type(t).dtype); };
  for (size_t i = 0; i < in.in.size(); ++i)
    v.in.push_back(in.in[i].present() ? view(r, in.in[i])
                                      : absent_view(in.in[i].box, state_->in_ext[in.op][i], dtype_of(op.inputs[i])));
  for (size_t j = 0; j < in.out.size(); ++j) v.out.push_back(view(r, in.out[j]));
  for (const Operand& o : in.params) v.params.push_back(view(r, o));
  for (const Operand& o : in.saved) v.saved.push_back(view(r, o));
  for (size_t j = 0; j < in.dout.size(); ++j)
    v.dout.push_back(in.dout[j].present() ? view(r, in.dout[j])
                                          : absent_view(in.dout[j].box, state_->out_ext[in.op][j], ffrt::DType::f32));
  for (const Operand& o : in.din) v.din.push_back(o.present() ? std::optional<ffrt::View>(view(r, o)) : std::nullopt);
  for (const Operand& o : in.dparams)
    v.dparams.push_back(o.present() ? std::optional<ffrt::View>(view(r, o)) : std::nullopt);
  if (in.stats.present()) v.stats = view(r, in.stats);
  v.update_state = in.update_state;
  v.overwrite = in.overwrite;
  return v;
}

void Emulator::execute(int r, const Instr& in) {
  StepInfo info{opts_.seed, step_, true};
  switch (in.kind) {
    case InstrKind::init_param: FFC_INTERNAL_ERROR("init_param in a step"); break;
    case InstrKind::fill: ffrt::fill(*ctx_, view(r, in.dst), in.value); break;
    case InstrKind::copy: ffrt::copy_box(*ctx_, view(r, in.src), view(r, in.dst), in.accumulate); break;
    case InstrKind::load_input: {
      HostTensor& whole = inputs_.at(in.op);
      ffrt::copy_box(*ctx_, whole.view(), view(r, in.dst), false);
      break;
    }
    case InstrKind::forward:
    case InstrKind::forward_stats:
    case InstrKind::backward_stats:
    case InstrKind::backward: {
      const ffrt::OpDesc& op = descs_.at(in.op);
      auto* run = in.kind == InstrKind::forward         ? ffrt::op_forward
                  : in.kind == InstrKind::forward_stats  ? ffrt::op_forward_stats
                  : in.kind == InstrKind::backward_stats ? ffrt::op_backward_stats
                                                         : ffrt::op_backward;
      OpViews v = kernel_views(r, in);
      run(*ctx_, op, info, v);
      break;
    }
    case InstrKind::update: {
      ffrt::View w = view(r, in.w), grad = view(r, in.grad);
      ffrt::View s1 = in.state1.present() ? view(r, in.state1) : ffrt::View{};
      ffrt::View s2 = in.state2.present() ? view(r, in.state2) : ffrt::View{};
      bool& first = ranks_[r]->first_update.try_emplace(in.w.buffer, true).first->second;
      optimizer_step(*ctx_, opts_, optimizer_steps_, first, w, grad, in.state1.present() ? &s1 : nullptr,
                     in.state2.present() ? &s2 : nullptr);
      first = false;
      break;
    }
    case InstrKind::comm: FFC_INTERNAL_ERROR("comm executed as a kernel"); break;
  }
}

bool Emulator::try_comm(int r, const Instr& in) {
  Rank& rank = *ranks_[r];
  const size_t n = in.comm.size();
  if (!rank.posted) {
    if (hook_) hook_(r, in, true);
    rank.posted = true;
    rank.op_done.assign(n, false);
    rank.coll_key.assign(n, {-1, -1});
    for (size_t i = 0; i < n; ++i) {
      const CommOp& c = in.comm[i];
      if (c.kind == CommKind::send) {
        ffrt::View src = view(r, c.src);
        Message m;
        m.box = c.src.box;
        m.data = std::make_unique<Packed>(src.dtype, src);
        ffrt::copy_box(*ctx_, src, m.data->v, false);
        state_->channels[{r, c.peer}].push_back(std::move(m));
        rank.op_done[i] = true;
      } else if (c.kind != CommKind::recv) {
        const int64_t seq = rank.coll_seq.at(c.group)++;
        rank.coll_key[i] = {c.group, seq};
        state_->collectives[{c.group, seq}].members.push_back({r, &c});
      }
    }
  }
  bool all = true;
  for (size_t i = 0; i < n; ++i) {
    if (rank.op_done[i]) continue;
    const CommOp& c = in.comm[i];
    if (c.kind == CommKind::recv) {
      auto& q = state_->channels[{c.peer, r}];
      if (q.empty()) {
        all = false;
        continue;
      }
      Message m = std::move(q.front());
      q.pop_front();
      if (m.box != c.dst.box)
        FFC_INTERNAL_ERROR("rank {} phase {}: received {} from rank {}, expected {}", r, in.phase, m.box.str(), c.peer,
                           c.dst.box.str());
      ffrt::copy_box(*ctx_, m.data->v, view(r, c.dst), false);
      rank.op_done[i] = true;
      continue;
    }
    Collective& coll = state_->collectives.at(rank.coll_key[i]);
    const std::vector<int>& group = p_.groups.at(c.group);
    if (!coll.done && coll.members.size() == group.size()) {
      // Every member has arrived: run it, members in group order.
      std::sort(coll.members.begin(), coll.members.end(),
                [](const Collective::Member& a, const Collective::Member& b) { return a.rank < b.rank; });
      for (size_t m = 0; m < group.size(); ++m) {
        FFC_CHECK(coll.members[m].rank == group[m]);
        FFC_CHECK(coll.members[m].op->kind == c.kind);
      }
      if (c.kind == CommKind::all_gather) {
        for (const auto& to : coll.members)
          for (const auto& from : coll.members)
            ffrt::copy_box(*ctx_, view(from.rank, from.op->src), view(to.rank, to.op->dst), false);
      } else {
        // all_reduce (in place: src is dst) and reduce_scatter: sum the sources, then hand out.
        ffrt::View like = view(coll.members[0].rank, coll.members[0].op->src);
        Packed sum(like.dtype, like);
        for (const auto& from : coll.members) ffrt::copy_box(*ctx_, view(from.rank, from.op->src), sum.v, true);
        for (const auto& to : coll.members) ffrt::copy_box(*ctx_, sum.v, view(to.rank, to.op->dst), false);
      }
      coll.done = true;
    }
    if (coll.done) rank.op_done[i] = true;
    else all = false;
  }
  if (!all) return false;
  rank.posted = false;
  if (hook_) hook_(r, in, false);
  return true;
}

bool Emulator::try_run(int r) {
  const Instr& in = p_.ranks[r].step[ranks_[r]->pc];
  if (in.kind == InstrKind::comm) return try_comm(r, in);
  if (hook_) hook_(r, in, true);
  execute(r, in);
  if (hook_) hook_(r, in, false);
  return true;
}

float Emulator::run_step(int64_t step) {
  step_ = step;
  ++optimizer_steps_;
  for (size_t i = 0; i < g_.ops.size(); ++i) {
    const Op& op = g_.ops[i];
    if (op.kind != OpKind::input) continue;
    inputs_[i] = HostTensor(rt_dtype(g_.type(op.outputs[0]).dtype), bind_shape(g_.type(op.outputs[0]).shape, p_.batch));
    fill_input(*ctx_, g_, op, step, p_.batch, opts_.seed, source_, inputs_[i]);
  }
  for (auto& r : ranks_) r->pc = 0;
  state_->collectives.clear();
  for (;;) {
    bool progress = false, finished = true;
    for (size_t r = 0; r < ranks_.size(); ++r) {
      const size_t n = p_.ranks[r].step.size();
      while (ranks_[r]->pc < n && try_run(static_cast<int>(r))) {
        ++ranks_[r]->pc;
        progress = true;
      }
      if (ranks_[r]->pc < n) finished = false;
    }
    if (finished) break;
    if (!progress) {
      std::string where;
      for (size_t r = 0; r < ranks_.size(); ++r) {
        const auto& st = p_.ranks[r].step;
        where += fmt::format("\n  rank {}: {}", r,
                             ranks_[r]->pc < st.size() ? print_instr(g_, p_.ranks[r], st[ranks_[r]->pc]) : "done");
      }
      FFC_INTERNAL_ERROR("the ranks' programs deadlock:{}", where);
    }
  }
  for (const auto& [key, q] : state_->channels)
    if (!q.empty()) FFC_INTERNAL_ERROR("{} unreceived messages from rank {} to rank {}", q.size(), key.first, key.second);
  const RankProgram& r0 = p_.ranks[0];
  FFC_CHECK(r0.loss.present());
  return view(0, r0.loss).f32()[0];
}

HostTensor Emulator::gather_param(int param, float* replica_diff) const {
  const ParamInfo& info = p_.params.at(param);
  HostTensor whole(ffrt::DType::f32, info.shape);
  for (const ParamInfo::Replica& rep : info.replicas)
    ffrt::copy_box(*ctx_, view(rep.rank, Operand{rep.buffer, p_.ranks[rep.rank].buffers[rep.buffer].box}), whole.view(),
                   false);
  if (replica_diff) {
    *replica_diff = 0;
    for (const ParamInfo::Replica& rep : info.replicas) {
      ffrt::View v = view(rep.rank, Operand{rep.buffer, p_.ranks[rep.rank].buffers[rep.buffer].box});
      Packed mine(ffrt::DType::f32, v), ref(ffrt::DType::f32, v);
      ffrt::copy_box(*ctx_, v, mine.v, false);
      ffrt::copy_box(*ctx_, whole.view(), ref.v, false);
      for (int64_t i = 0; i < mine.t.numel(); ++i)
        *replica_diff = std::max(*replica_diff, std::abs(mine.t.f32()[i] - ref.t.f32()[i]));
    }
  }
  return whole;
}

void Emulator::scatter_param(int param, HostTensor& whole) {
  const ParamInfo& info = p_.params.at(param);
  for (const ParamInfo::Replica& rep : info.replicas)
    ffrt::copy_box(*ctx_, whole.view(), view(rep.rank, Operand{rep.buffer, p_.ranks[rep.rank].buffers[rep.buffer].box}),
                   false);
}

}  // namespace ffc
