// Communicate.
#include "passes/communicate.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "ir/op_table.h"
#include "passes/reshard.h"

namespace ffc {

namespace {

/// A box of a tensor or parameter on a rank: the key of the lowerer's look-ups, hashed (they are
/// never iterated, so their order cannot reach the output).
struct BlockKey {
  int id = 0;  ///< the tensor or parameter; -1 where the map is of one tensor
  int rank = 0;
  Box box;
  bool operator==(const BlockKey&) const = default;
};

struct BlockKeyHash {
  size_t operator()(const BlockKey& k) const {
    uint64_t h = static_cast<uint64_t>(static_cast<uint32_t>(k.id)) << 32 | static_cast<uint32_t>(k.rank);
    for (const Range& r : k.box.r)
      h = (h ^ static_cast<uint64_t>(r.lo)) * 0x100000001b3ull ^ static_cast<uint64_t>(r.hi) * 31;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

template <typename V>
using BlockMap = std::unordered_map<BlockKey, V, BlockKeyHash>;

/// A box of a tensor held on a rank.
struct Src {
  int rank = 0;
  Operand op;
};

/// How to name and type the buffers a reshard creates for its dests.
struct DestSpec {
  BufferRole role = BufferRole::activation;
  DType dtype = DType::f32;
  std::vector<int64_t> full;
  int tensor = -1;
  int param = -1;
  std::string name;  ///< base name; ranks make it unique
};

class Lowerer {
 public:
  Lowerer(const Graph& g, const Partition& p, const Backward& b, const CommunicateOptions& opts)
      : g_(g), p_(p), b_(b), opts_(opts) {}

  Lowered run();

 private:
  // ---- buffers -----------------------------------------------------------------------------------
  int new_buffer(int rank, const std::string& name, BufferRole role, DType dtype, std::vector<int64_t> full, Box box,
                 int tensor = -1, int param = -1, uint32_t batch_dims = 0) {
    RankProgram& r = out_.ranks[rank];
    std::string unique = name;
    for (int i = 2; !names_[rank].insert(unique).second; ++i) unique = fmt::format("{}.{}", name, i);
    Buffer b;
    b.name = std::move(unique);
    b.role = role;
    b.dtype = dtype;
    b.full = std::move(full);
    b.box = std::move(box);
    b.tensor = tensor;
    b.param = param;
    b.batch_dims = batch_dims;
    if (tensor >= 0) {
      FFC_CHECK(g_.type(tensor).shape.size() == b.full.size());
      b.batch_dims |= ffc::batch_dims(g_.type(tensor).shape);
    }
    r.buffers.push_back(std::move(b));
    return static_cast<int>(r.buffers.size()) - 1;
  }
  Operand whole(int rank, int buffer) const { return Operand{buffer, out_.ranks[rank].buffers[buffer].box}; }
  int new_operand_buffer(int rank, const DestSpec& d, const Box& box) {
    return new_buffer(rank, d.name, d.role, d.dtype, d.full, box, d.tensor, d.param);
  }

  const std::vector<int64_t>& tensor_extents(TensorId t) const { return extents_[t]; }

  // ---- steps -------------------------------------------------------------------------------------
  /// A new step on a rank, its instruction to fill in place (a step is large: no copy).
  Instr& compute(int rank) {
    GlobalStep& s = out_.steps.emplace_back();
    s.rank = rank;
    return s.instr;
  }
  void compute(int rank, Instr in) { compute(rank) = std::move(in); }
  void fill(int rank, const Operand& o, float value, std::string note) {
    Instr& in = compute(rank);
    in.kind = InstrKind::fill;
    in.dst = o;
    in.value = value;
    in.note = std::move(note);
  }
  void copy(int rank, const Operand& src, const Operand& dst, bool accumulate, std::string note) {
    Instr& in = compute(rank);
    in.kind = InstrKind::copy;
    in.src = src;
    in.dst = dst;
    in.accumulate = accumulate;
    in.note = std::move(note);
  }

  std::vector<Operand> reshard(ReshardMode mode, const std::vector<Src>& srcs, const std::vector<Piece>& dests,
                               const DestSpec& spec, const std::string& note);
  /// Adds each rank's sources that share a box into the first of them, so that at most one source
  /// per (rank, box) remains, as the reshard table requires.
  std::vector<Src> combine_local(const std::vector<Src>& srcs, const std::string& note);

  // ---- the passes over the graph -----------------------------------------------------------------
  void forward_op(int o);
  void backward_op(int o);
  void reduce_param_grads(int o);
  void optimizer_steps();
  /// The operand of a parameter block on a rank, created (and initialized in the set-up) on first use.
  Operand param_block(int o, int j, int rank, const Box& box);
  Operand grad_block(int param, int rank, const Box& box);
  /// `k`: the part of op `o` that makes the contribution, which names its buffer.
  Operand contribution(TensorId t, int rank, const Box& box, int o, size_t k);
  std::vector<Operand> statistics(int o, bool backward, std::vector<Instr> parts);

  const Graph& g_;
  const Partition& p_;
  const Backward& b_;
  CommunicateOptions opts_;
  Lowered out_;
  std::vector<std::unordered_set<std::string>> names_;
  std::vector<std::vector<int64_t>> extents_;                      ///< per tensor: its extents at the batch
  std::vector<std::vector<Src>> held_;                             ///< per tensor: the producer's parts
  BlockMap<Operand> gathered_;                                     ///< (tensor, rank, box) -> read operand
  std::vector<std::vector<Src>> contrib_;                          ///< per tensor: gradient contributions
  BlockMap<size_t> contrib_index_;                                 ///< (tensor, rank, box) -> contrib_ index
  std::vector<std::vector<int>> param_of_;                         ///< per op, per op_params entry
  BlockMap<int> param_buf_;                                        ///< (param, rank, box) -> buffer
  BlockMap<int> grad_buf_;                                         ///< (param, rank, box) -> buffer
  std::vector<std::vector<Src>> grads_;                            ///< per param: its gradient blocks
  std::vector<std::vector<Instr>> fwd_;                            ///< per op, per part: the forward
  std::vector<Operand> seed_;                                      ///< per rank: the loss's gradient (1)
};

std::vector<Src> Lowerer::combine_local(const std::vector<Src>& srcs, const std::string& note) {
  BlockMap<size_t> first;
  std::vector<Src> out;
  for (const Src& s : srcs) {
    auto [it, fresh] = first.try_emplace({-1, s.rank, s.op.box}, out.size());
    if (fresh) out.push_back(s);
    else copy(s.rank, s.op, out[it->second].op, true, note);
  }
  return out;
}

std::vector<Operand> Lowerer::reshard(ReshardMode mode, const std::vector<Src>& srcs, const std::vector<Piece>& dests,
                                      const DestSpec& spec, const std::string& note) {
  std::vector<Piece> pieces;
  pieces.reserve(srcs.size());
  for (const Src& s : srcs) pieces.push_back(Piece{s.rank, s.op.box});
  ReshardPlan plan = plan_reshard(mode, pieces, dests);
  const bool sum = mode == ReshardMode::sum;

  std::vector<Operand> result(dests.size());
  for (size_t d = 0; d < dests.size(); ++d) {
    const DestPlan& dp = plan.dests[d];
    if (dp.storage == DestStorage::view) {
      result[d] = Operand{srcs.at(dp.source).op.buffer, dests[d].box};
      FFC_CHECK(srcs[dp.source].rank == dests[d].device);
    } else if (dests[d].box.empty()) {
      result[d] = Operand{-1, dests[d].box};
    } else {
      result[d] = whole(dests[d].device, new_operand_buffer(dests[d].device, spec, dests[d].box));
      if (sum) fill(dests[d].device, result[d], 0.f, "zero " + note);
    }
  }

  GlobalStep phase;
  phase.is_comm = true;
  phase.note = note;
  bool used[5] = {};  // per MoveKind: the phase's pattern names those used
  std::vector<std::pair<int, Instr>> after;  // local moves, after the phase
  // Sum mode adds into some sources' buffers in place; a local move that reads such a buffer reads a
  // copy taken before any of the plan's writes (the reshard table's read-before-write rule).
  std::set<std::pair<int, int>> written;  // (rank, buffer)
  if (sum)
    for (const Move& m : plan.moves)
      if (m.kind == MoveKind::transfer && plan.dests.at(m.dst).storage == DestStorage::view)
        written.insert({dests[m.dst].device, result[m.dst].buffer});
  std::vector<std::pair<int, Instr>> before;  // those copies
  auto transfer = [&](const Move& m) {
    const Src& s = srcs.at(m.src);
    const Piece& d = dests.at(m.dst);
    Operand from{s.op.buffer, m.box};
    Operand to{result[m.dst].buffer, m.box};
    Instr local;
    local.kind = InstrKind::copy;
    local.accumulate = sum;
    local.note = note;
    if (s.rank == d.device) {
      local.src = from;
      local.dst = to;
      if (written.count({s.rank, s.op.buffer})) {
        DestSpec staging = spec;
        staging.role = BufferRole::staging;
        staging.name = spec.name + ".before";
        Instr early;
        early.kind = InstrKind::copy;
        early.src = from;
        early.dst = whole(s.rank, new_operand_buffer(s.rank, staging, m.box));
        early.note = note + " (read before the in-place sums)";
        local.src = early.dst;
        before.emplace_back(s.rank, std::move(early));
      }
      after.emplace_back(d.device, std::move(local));
      return;
    }
    GlobalComm c;
    c.kind = GlobalComm::transfer;
    c.src_rank = s.rank;
    c.dst_rank = d.device;
    c.src = from;
    const bool direct = !sum && plan.dests[m.dst].storage == DestStorage::own && m.box == d.box;
    if (direct) {
      c.dst = to;
    } else {
      DestSpec staging = spec;
      staging.role = BufferRole::staging;
      staging.name = spec.name + ".recv";
      c.dst = whole(d.device, new_operand_buffer(d.device, staging, m.box));
      local.src = c.dst;
      local.dst = to;
      after.emplace_back(d.device, std::move(local));
    }
    phase.comms.push_back(std::move(c));
  };
  for (const Move& m : plan.moves) {
    used[static_cast<int>(m.kind)] = true;
    switch (m.kind) {
      case MoveKind::transfer: transfer(m); break;
      case MoveKind::all_to_all:
        for (const Move& t : m.transfers) transfer(t);
        break;
      case MoveKind::all_reduce:
      case MoveKind::all_gather:
      case MoveKind::reduce_scatter: {
        GlobalComm c;
        c.kind = m.kind == MoveKind::all_reduce   ? GlobalComm::all_reduce
                 : m.kind == MoveKind::all_gather ? GlobalComm::all_gather
                                                  : GlobalComm::reduce_scatter;
        for (size_t i = 0; i < m.srcs.size(); ++i) {
          const Src& s = srcs.at(m.srcs[i]);
          FFC_CHECK(s.op.box == out_.ranks[s.rank].buffers[s.op.buffer].box);  // collectives take whole buffers
          c.ranks.push_back(s.rank);
          c.srcs.push_back(s.op);
          c.dsts.push_back(m.kind == MoveKind::all_reduce ? s.op : result.at(m.dsts.at(i)));
          c.pieces.push_back(m.kind == MoveKind::all_gather ? s.op.box : dests.at(m.dsts.at(i)).box);
        }
        phase.comms.push_back(std::move(c));
        break;
      }
    }
  }
  if (!phase.comms.empty()) {
    std::vector<std::string_view> names;
    for (int k = 0; k < 5; ++k)
      if (used[k]) names.push_back(move_kind_name(static_cast<MoveKind>(k)));
    std::sort(names.begin(), names.end());
    phase.pattern = fmt::format("{}", fmt::join(names, "+"));
    out_.steps.push_back(std::move(phase));
  }
  for (auto& [rank, in] : before) compute(rank, std::move(in));
  for (auto& [rank, in] : after) compute(rank, std::move(in));
  return result;
}

Operand Lowerer::param_block(int o, int j, int rank, const Box& box) {
  const int param = param_of_[o][j];
  auto [it, fresh] = param_buf_.try_emplace({param, rank, box}, -1);
  if (fresh) {
    const ParamInfo& info = out_.params[param];
    it->second = new_buffer(rank, info.name, BufferRole::param, DType::f32, info.shape, box, -1, param);
    Instr init;
    init.kind = InstrKind::init_param;
    init.op = o;
    init.param = param;
    init.dst = whole(rank, it->second);
    out_.ranks[rank].setup.push_back(std::move(init));
    out_.params[param].replicas.push_back({rank, it->second, {}});
  }
  return whole(rank, it->second);
}

Operand Lowerer::grad_block(int param, int rank, const Box& box) {
  auto [it, fresh] = grad_buf_.try_emplace({param, rank, box}, -1);
  if (fresh) {
    const ParamInfo& info = out_.params[param];
    it->second = new_buffer(rank, "d." + info.name, BufferRole::param_grad, DType::f32, info.shape, box, -1, param);
    fill(rank, whole(rank, it->second), 0.f, "zero d." + info.name);
    grads_[param].push_back(Src{rank, whole(rank, it->second)});
  }
  return whole(rank, it->second);
}

Operand Lowerer::contribution(TensorId t, int rank, const Box& box, int o, size_t k) {
  auto [it, fresh] = contrib_index_.try_emplace({t, rank, box}, contrib_[t].size());
  if (fresh) {
    int buf = new_buffer(rank, fmt::format("d.{}.from.{}.p{}", g_.tensors[t].name, g_.ops[o].name, k),
                         BufferRole::gradient, DType::f32, tensor_extents(t), box, t);
    fill(rank, whole(rank, buf), 0.f, "zero d." + g_.tensors[t].name);
    contrib_[t].push_back(Src{rank, whole(rank, buf)});
  }
  return contrib_[t][it->second].op;
}

// The statistics of a split-statistics op: each part's partial sums (written by the instructions
// `parts`, which the caller emits with these operands), summed over the parts that share a channel
// block. Returns, per part, the operand of the summed statistics on its rank.
std::vector<Operand> Lowerer::statistics(int o, bool backward, std::vector<Instr> parts) {
  const Op& op = g_.ops[o];
  const OpParts& op_parts = p_.ops[o];
  std::vector<Src> partial;
  for (size_t k = 0; k < parts.size(); ++k) {
    partial.push_back(Src{op_parts.parts[k].device, parts[k].stats});
    compute(op_parts.parts[k].device, std::move(parts[k]));
  }
  const std::string what = backward ? "backward statistics" : "statistics";
  std::vector<Src> sources = combine_local(partial, fmt::format("{} {}", op.name, what));
  std::vector<Piece> dests;
  BlockMap<size_t> index;
  std::vector<size_t> part_dest;
  for (const Part& part : op_parts.parts) {
    Box box = op_stats_box(part.box);
    auto [it, fresh] = index.try_emplace({-1, part.device, box}, dests.size());
    if (fresh) dests.push_back(Piece{part.device, box});
    part_dest.push_back(it->second);
  }
  DestSpec spec;
  spec.role = BufferRole::stats;
  spec.dtype = DType::f64;
  spec.full = {2, bind_op(g_, op, p_.batch).out[0][1]};
  spec.name = fmt::format("{}.{}", op.name, backward ? "dstats" : "stats");
  std::vector<Operand> summed =
      reshard(ReshardMode::sum, sources, dests, spec, fmt::format("{} {}", op.name, what));
  std::vector<Operand> out;
  for (size_t k = 0; k < op_parts.parts.size(); ++k) out.push_back(summed[part_dest[k]]);
  return out;
}

void Lowerer::forward_op(int o) {
  const Op& op = g_.ops[o];
  const OpInfo& info = op.info();
  const OpParts& parts = p_.ops[o];
  BoundOp bound = bind_op(g_, op, p_.batch);
  const size_t n = parts.parts.size();
  std::vector<Instr> instrs(n);
  for (size_t k = 0; k < n; ++k) {
    instrs[k].kind = InstrKind::forward;
    instrs[k].op = o;
    instrs[k].part = static_cast<int>(k);
  }

  // Inputs: resharded from their producers' parts to the boxes the parts read.
  for (size_t i = 0; i < op.inputs.size(); ++i) {
    const TensorId t = op.inputs[i];
    std::vector<Piece> dests;
    std::vector<BlockKey> keys;
    for (const Part& part : parts.parts) {
      BlockKey key{t, part.device, part.in[i]};
      if (part.in[i].empty() || gathered_.count(key)) continue;
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
      dests.push_back(Piece{part.device, part.in[i]});
      keys.push_back(std::move(key));
    }
    if (!dests.empty()) {
      DestSpec spec;
      spec.dtype = g_.type(t).dtype;
      spec.full = tensor_extents(t);
      spec.tensor = t;
      spec.name = fmt::format("{}.for.{}", g_.tensors[t].name, op.name);
      std::vector<Operand> got =
          reshard(ReshardMode::copy, held_[t], dests, spec, fmt::format("forward {}.in{} ({})", op.name, i, g_.tensors[t].name));
      for (size_t d = 0; d < dests.size(); ++d) gathered_[keys[d]] = got[d];
    }
    for (size_t k = 0; k < n; ++k) {
      const Part& part = parts.parts[k];
      instrs[k].in.push_back(part.in[i].empty() ? Operand{-1, part.in[i]}
                                                : gathered_.at({t, part.device, part.in[i]}));
    }
  }

  // Parameters, saved state and outputs.
  std::vector<std::vector<int64_t>> saved_full = op_saved_extents(bound);
  // Saved state has no graph tensor: its batch dims are those that double with the batch.
  std::vector<uint32_t> saved_batch(saved_full.size(), 0);
  const std::vector<std::vector<int64_t>> doubled = op_saved_extents(bind_op(g_, op, 2 * p_.batch));
  for (size_t j = 0; j < saved_full.size(); ++j)
    for (size_t d = 0; d < saved_full[j].size(); ++d)
      if (doubled.at(j).at(d) != saved_full[j][d]) {
        FFC_CHECK(doubled[j][d] == 2 * saved_full[j][d]);
        saved_batch[j] |= 1u << d;
      }
  const std::vector<ParamSpec> specs = op_params(g_, op);
  std::unordered_set<BlockKey, BlockKeyHash> state_owner;  // (param, rank, block) already updated by a part
  for (size_t k = 0; k < n; ++k) {
    const Part& part = parts.parts[k];
    const int r = part.device;
    bool owns_state = true;
    for (size_t j = 0; j < part.params.size(); ++j) {
      instrs[k].params.push_back(param_block(o, static_cast<int>(j), r, part.params[j]));
      if (!specs[j].trainable && !state_owner.insert({static_cast<int>(j), r, part.params[j]}).second)
        owns_state = false;
    }
    instrs[k].update_state = owns_state;
    for (size_t j = 0; j < part.saved.size(); ++j)
      instrs[k].saved.push_back(whole(r, new_buffer(r, fmt::format("{}.p{}.saved{}", op.name, k, j), BufferRole::saved,
                                                    DType::f32, saved_full[j], part.saved[j], -1, -1,
                                                    saved_batch[j])));
    for (size_t j = 0; j < op.outputs.size(); ++j) {
      const TensorId t = op.outputs[j];
      BufferRole role = info.partial_output ? BufferRole::loss : BufferRole::activation;
      instrs[k].out.push_back(whole(r, new_buffer(r, fmt::format("{}.p{}", g_.tensors[t].name, k), role,
                                                  g_.type(t).dtype, tensor_extents(t), part.out[j], t)));
    }
  }

  if (op.kind == OpKind::input) {
    for (size_t k = 0; k < n; ++k) {
      instrs[k].kind = InstrKind::load_input;
      instrs[k].dst = instrs[k].out[0];
      compute(parts.parts[k].device, instrs[k]);
    }
  } else if (info.split_statistics) {
    std::vector<Instr> stats(n);
    for (size_t k = 0; k < n; ++k) {
      const int r = parts.parts[k].device;
      stats[k].kind = InstrKind::forward_stats;  // reads its input box, writes partial sums
      stats[k].op = o;
      stats[k].part = static_cast<int>(k);
      stats[k].in = instrs[k].in;
      stats[k].stats = whole(r, new_buffer(r, fmt::format("{}.p{}.stats", op.name, k), BufferRole::stats, DType::f64,
                                           {2, bound.out[0][1]}, op_stats_box(parts.parts[k].box)));
    }
    std::vector<Operand> summed = statistics(o, false, std::move(stats));
    for (size_t k = 0; k < n; ++k) {
      instrs[k].stats = summed[k];
      compute(parts.parts[k].device, instrs[k]);
    }
  } else {
    for (size_t k = 0; k < n; ++k) compute(parts.parts[k].device, instrs[k]);
  }

  for (size_t j = 0; j < op.outputs.size(); ++j)
    for (size_t k = 0; k < n; ++k)
      if (!info.partial_output) held_[op.outputs[j]].push_back(Src{parts.parts[k].device, instrs[k].out[j]});

  if (info.partial_output) {
    // The loss: every part's partial sum, summed onto every rank.
    std::vector<Src> partial;
    for (size_t k = 0; k < n; ++k) partial.push_back(Src{parts.parts[k].device, instrs[k].out[0]});
    const TensorId t = op.outputs[0];
    std::vector<Src> sources = combine_local(partial, "sum the loss's parts");
    std::vector<Piece> dests;
    for (int r = 0; r < p_.num_devices; ++r) dests.push_back(Piece{r, Box{}});
    DestSpec spec;
    spec.role = BufferRole::loss;
    spec.tensor = t;
    spec.name = g_.tensors[t].name + ".total";
    std::vector<Operand> total = reshard(ReshardMode::sum, sources, dests, spec, "the loss");
    for (int r = 0; r < p_.num_devices; ++r) out_.ranks[r].loss = total[r];
  }
  fwd_[o] = std::move(instrs);  // for the backward, its one reader
}

void Lowerer::backward_op(int o) {
  const Op& op = g_.ops[o];
  const OpInfo& info = op.info();
  const OpParts& parts = p_.ops[o];
  const size_t n = parts.parts.size();
  std::vector<Instr> instrs = std::move(fwd_[o]);
  for (Instr& in : instrs) in.kind = InstrKind::backward;

  // The gradients of the outputs: the loss's seed, or the sum of the consumers' contributions.
  for (size_t j = 0; j < op.outputs.size(); ++j) {
    const TensorId t = op.outputs[j];
    if (o == b_.loss_op) {
      for (size_t k = 0; k < n; ++k) instrs[k].dout.push_back(seed_[parts.parts[k].device]);
      continue;
    }
    if (!b_.needs_grad[t]) {
      for (size_t k = 0; k < n; ++k) instrs[k].dout.push_back(Operand{-1, parts.parts[k].out[j]});
      continue;
    }
    std::vector<Piece> dests;
    BlockMap<size_t> index;
    std::vector<size_t> part_dest;
    for (const Part& part : parts.parts) {
      auto [it, fresh] = index.try_emplace({-1, part.device, part.out[j]}, dests.size());
      if (fresh) dests.push_back(Piece{part.device, part.out[j]});
      part_dest.push_back(it->second);
    }
    DestSpec spec;
    spec.role = BufferRole::gradient;
    spec.full = tensor_extents(t);
    spec.tensor = t;
    spec.name = "d." + g_.tensors[t].name;
    std::vector<Operand> got =
        reshard(ReshardMode::sum, contrib_[t], dests, spec, fmt::format("backward d{}", g_.tensors[t].name));
    for (size_t k = 0; k < n; ++k) instrs[k].dout.push_back(got[part_dest[k]]);
  }

  // Where the parts add their gradients: input contributions and parameter-gradient blocks.
  for (size_t k = 0; k < n; ++k) {
    const Part& part = parts.parts[k];
    for (size_t i = 0; i < op.inputs.size(); ++i) {
      const TensorId t = op.inputs[i];
      if (b_.needs_grad[t] && !part.in[i].empty())
        instrs[k].din.push_back(contribution(t, part.device, part.in[i], o, k));
      else
        instrs[k].din.push_back(Operand{-1, part.in[i]});
    }
    for (size_t j = 0; j < part.params.size(); ++j) {
      if (b_.trainable[o][j]) instrs[k].dparams.push_back(grad_block(param_of_[o][j], part.device, part.params[j]));
      else instrs[k].dparams.push_back(Operand{-1, part.params[j]});
    }
  }

  if (info.split_statistics) {
    BoundOp bound = bind_op(g_, op, p_.batch);
    std::vector<Instr> stats(n);
    for (size_t k = 0; k < n; ++k) {
      const int r = parts.parts[k].device;
      stats[k] = instrs[k];
      stats[k].kind = InstrKind::backward_stats;
      stats[k].stats = whole(r, new_buffer(r, fmt::format("{}.p{}.dstats", op.name, k), BufferRole::stats, DType::f64,
                                           {2, bound.out[0][1]}, op_stats_box(parts.parts[k].box)));
    }
    std::vector<Operand> summed = statistics(o, true, std::move(stats));
    for (size_t k = 0; k < n; ++k) {
      instrs[k].stats = summed[k];
      instrs[k].dparams.assign(instrs[k].dparams.size(), Operand{});  // added by backward_stats
      compute(parts.parts[k].device, std::move(instrs[k]));
    }
  } else {
    for (size_t k = 0; k < n; ++k) compute(parts.parts[k].device, std::move(instrs[k]));
  }
  reduce_param_grads(o);
}

void Lowerer::reduce_param_grads(int o) {
  for (size_t j = 0; j < param_of_[o].size(); ++j) {
    if (!b_.trainable[o][j]) continue;
    const int param = param_of_[o][j];
    ParamInfo& info = out_.params[param];
    std::vector<Piece> dests;
    for (const ParamInfo::Replica& r : info.replicas)
      dests.push_back(Piece{r.rank, out_.ranks[r.rank].buffers[r.buffer].box});
    DestSpec spec;
    spec.role = BufferRole::param_grad;
    spec.full = info.shape;
    spec.param = param;
    spec.name = "d." + info.name + ".sum";
    std::vector<Operand> got = reshard(ReshardMode::sum, grads_[param], dests, spec, "grad " + info.name);
    for (size_t i = 0; i < dests.size(); ++i) info.replicas[i].grad = got[i];
  }
}

void Lowerer::optimizer_steps() {
  for (size_t param = 0; param < out_.params.size(); ++param) {
    const ParamInfo& info = out_.params[param];
    if (!info.trainable) continue;
    for (const ParamInfo::Replica& r : info.replicas) {
      const Buffer& w = out_.ranks[r.rank].buffers[r.buffer];
      Instr in;
      in.kind = InstrKind::update;
      in.param = static_cast<int>(param);
      in.op = info.op;
      in.w = whole(r.rank, r.buffer);
      in.grad = r.grad;
      std::string wname = w.name;
      Box box = w.box;
      if (opts_.optimizer_states >= 1)
        in.state1 = whole(r.rank, new_buffer(r.rank, wname + ".state1", BufferRole::optim_state, DType::f32, info.shape,
                                             box, -1, static_cast<int>(param)));
      if (opts_.optimizer_states >= 2)
        in.state2 = whole(r.rank, new_buffer(r.rank, wname + ".state2", BufferRole::optim_state, DType::f32, info.shape,
                                             box, -1, static_cast<int>(param)));
      compute(r.rank, std::move(in));
    }
  }
}

Lowered Lowerer::run() {
  const int ranks = p_.num_devices;
  out_.ranks.resize(ranks);
  for (int r = 0; r < ranks; ++r) out_.ranks[r].rank = r;
  names_.resize(ranks);
  extents_.reserve(g_.tensors.size());
  for (size_t t = 0; t < g_.tensors.size(); ++t) extents_.push_back(bind_shape(g_.tensors[t].type.shape, p_.batch));
  held_.resize(g_.tensors.size());
  contrib_.resize(g_.tensors.size());
  fwd_.resize(g_.ops.size());
  param_of_.resize(g_.ops.size());
  for (size_t o = 0; o < g_.ops.size(); ++o) {
    const Op& op = g_.ops[o];
    std::vector<ParamSpec> specs = op_params(g_, op);
    for (size_t j = 0; j < specs.size(); ++j) {
      ParamInfo info;
      info.name = op.param_names.empty() ? fmt::format("{}.{}", op.name, specs[j].name) : op.param_names[j];
      info.op = static_cast<int>(o);
      info.index = static_cast<int>(j);
      info.shape = bind_shape(specs[j].shape, p_.batch);
      info.trainable = specs[j].trainable;
      param_of_[o].push_back(static_cast<int>(out_.params.size()));
      out_.params.push_back(std::move(info));
    }
  }
  grads_.resize(out_.params.size());

  for (size_t o = 0; o <= static_cast<size_t>(b_.loss_op); ++o) forward_op(static_cast<int>(o));
  out_.forward_steps = out_.steps.size();

  // The seed: the loss's gradient is 1 on every rank that computes a part of the loss.
  seed_.resize(ranks);
  const TensorId loss = g_.ops[b_.loss_op].outputs[0];
  for (const Part& part : p_.ops[b_.loss_op].parts) {
    if (seed_[part.device].present()) continue;
    seed_[part.device] = whole(part.device, new_buffer(part.device, "d." + g_.tensors[loss].name, BufferRole::loss,
                                                       DType::f32, {}, Box{}, loss));
    fill(part.device, seed_[part.device], 1.f, "seed the backward");
  }
  for (int o : b_.order) backward_op(o);
  optimizer_steps();
  return std::move(out_);
}

}  // namespace

Lowered communicate(const Graph& g, const Partition& p, const Backward& b, const CommunicateOptions& opts) {
  return Lowerer(g, p, b, opts).run();
}

std::string print_lowered(const Graph& g, const Lowered& l) {
  std::string s = fmt::format("global steps of {} ({} ranks)\n", g.name, l.ranks.size());
  for (const GlobalStep& step : l.steps) {
    if (!step.is_comm) {
      s += fmt::format("  rank {}: {}\n", step.rank, print_instr(g, l.ranks[step.rank], step.instr));
      continue;
    }
    s += fmt::format("  comm {} [{}]\n", step.note, step.pattern);
    for (const GlobalComm& c : step.comms) {
      switch (c.kind) {
        case GlobalComm::transfer:
          s += fmt::format("    transfer {} rank {} -> {} rank {}\n", operand_str(l.ranks[c.src_rank], c.src), c.src_rank,
                           operand_str(l.ranks[c.dst_rank], c.dst), c.dst_rank);
          break;
        default: {
          const char* kind = c.kind == GlobalComm::all_reduce   ? "all_reduce"
                             : c.kind == GlobalComm::all_gather ? "all_gather"
                                                                : "reduce_scatter";
          std::vector<std::string> members;
          for (size_t i = 0; i < c.ranks.size(); ++i)
            members.push_back(fmt::format("rank {}: {} -> {}", c.ranks[i], operand_str(l.ranks[c.ranks[i]], c.srcs[i]),
                                          operand_str(l.ranks[c.ranks[i]], c.dsts[i])));
          s += fmt::format("    {} {}\n", kind, fmt::join(members, "; "));
        }
      }
    }
  }
  return s;
}

}  // namespace ffc
