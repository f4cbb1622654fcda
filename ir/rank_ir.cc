// The Rank IR: names, the printer and the verifier.
#include "ir/rank_ir.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "ir/diag.h"
#include "ir/graph.h"

namespace ffc {

const char* buffer_role_name(BufferRole r) {
  switch (r) {
    case BufferRole::activation: return "activation";
    case BufferRole::gradient: return "gradient";
    case BufferRole::param: return "param";
    case BufferRole::param_grad: return "param_grad";
    case BufferRole::optim_state: return "optim_state";
    case BufferRole::saved: return "saved";
    case BufferRole::stats: return "stats";
    case BufferRole::staging: return "staging";
    case BufferRole::loss: return "loss";
  }
  return "?";
}

bool is_persistent(BufferRole r) {
  return r == BufferRole::param || r == BufferRole::param_grad || r == BufferRole::optim_state;
}

int64_t Buffer::bytes() const { return box.volume() * dtype_bytes(dtype); }

const char* instr_kind_name(InstrKind k) {
  switch (k) {
    case InstrKind::init_param: return "init_param";
    case InstrKind::fill: return "fill";
    case InstrKind::load_input: return "load_input";
    case InstrKind::forward: return "forward";
    case InstrKind::forward_stats: return "forward_stats";
    case InstrKind::backward_stats: return "backward_stats";
    case InstrKind::backward: return "backward";
    case InstrKind::copy: return "copy";
    case InstrKind::comm: return "comm";
    case InstrKind::update: return "update";
  }
  return "?";
}

const char* comm_kind_name(CommKind k) {
  switch (k) {
    case CommKind::send: return "send";
    case CommKind::recv: return "recv";
    case CommKind::all_reduce: return "all_reduce";
    case CommKind::all_gather: return "all_gather";
    case CommKind::reduce_scatter: return "reduce_scatter";
  }
  return "?";
}

std::string operand_str(const RankProgram& r, const Operand& o) {
  if (!o.present()) return "-";
  const Buffer& b = r.buffers.at(o.buffer);
  if (o.box == b.box) return b.name;
  return fmt::format("{}{}", b.name, o.box.str());
}

namespace {

std::string operands(const RankProgram& r, const char* what, const std::vector<Operand>& v) {
  if (v.empty()) return "";
  std::vector<std::string> s;
  for (const Operand& o : v) s.push_back(operand_str(r, o));
  return fmt::format(" {}=({})", what, fmt::join(s, ", "));
}

std::string comm_str(const RankProgram& r, const CommOp& c) {
  switch (c.kind) {
    case CommKind::send: return fmt::format("send {} -> rank {}", operand_str(r, c.src), c.peer);
    case CommKind::recv: return fmt::format("recv {} <- rank {}", operand_str(r, c.dst), c.peer);
    case CommKind::all_reduce: return fmt::format("all_reduce {} group {}", operand_str(r, c.dst), c.group);
    case CommKind::all_gather:
      return fmt::format("all_gather {} -> {} group {}", operand_str(r, c.src), operand_str(r, c.dst), c.group);
    case CommKind::reduce_scatter:
      return fmt::format("reduce_scatter {} -> {} group {}", operand_str(r, c.src), operand_str(r, c.dst), c.group);
  }
  return "?";
}

}  // namespace

std::string instr_title(const Graph& g, const Program& p, const RankProgram& r, const Instr& in) {
  auto buf = [&](const Operand& o) { return o.present() ? r.buffers[o.buffer].name : std::string("-"); };
  switch (in.kind) {
    case InstrKind::forward:
    case InstrKind::forward_stats:
    case InstrKind::backward_stats:
    case InstrKind::backward:
    case InstrKind::load_input:
      return fmt::format("{} {} part {}", instr_kind_name(in.kind), g.ops.at(in.op).name, in.part);
    case InstrKind::copy: return fmt::format("copy {} {}= {}", buf(in.dst), in.accumulate ? "+" : "", buf(in.src));
    case InstrKind::fill:
    case InstrKind::init_param: return fmt::format("{} {}", instr_kind_name(in.kind), buf(in.dst));
    case InstrKind::update:
      return fmt::format("update {}", in.param >= 0 ? p.params.at(in.param).name : buf(in.w));
    case InstrKind::comm: {
      const std::string& note = p.phases.at(in.phase).note;
      return note.empty() ? fmt::format("phase {}", in.phase) : fmt::format("phase {}: {}", in.phase, note);
    }
  }
  return "?";
}


std::string print_instr(const Graph& g, const RankProgram& r, const Instr& in) {
  std::string s = instr_kind_name(in.kind);
  auto op_name = [&] { return in.op >= 0 ? g.ops.at(in.op).name : std::string("?"); };
  switch (in.kind) {
    case InstrKind::init_param:
      s += fmt::format(" {}", operand_str(r, in.dst));
      break;
    case InstrKind::fill:
      s += fmt::format(" {} = {}", operand_str(r, in.dst), in.value);
      break;
    case InstrKind::load_input:
      s += fmt::format(" {} part {}: {}", op_name(), in.part, operand_str(r, in.dst));
      break;
    case InstrKind::forward:
    case InstrKind::forward_stats:
    case InstrKind::backward_stats:
    case InstrKind::backward:
      s += fmt::format(" {} part {}:", op_name(), in.part);
      s += operands(r, "in", in.in) + operands(r, "out", in.out) + operands(r, "params", in.params) +
           operands(r, "saved", in.saved) + operands(r, "dout", in.dout) + operands(r, "din", in.din) +
           operands(r, "dparams", in.dparams);
      if (in.stats.present()) s += fmt::format(" stats={}", operand_str(r, in.stats));
      if (in.kind == InstrKind::forward && !in.update_state) s += " no_state_update";
      if (in.overwrite) s += fmt::format(" overwrite={:#x}", in.overwrite);
      break;
    case InstrKind::copy:
      s += fmt::format(" {} {}= {}", operand_str(r, in.dst), in.accumulate ? "+" : "", operand_str(r, in.src));
      break;
    case InstrKind::comm: {
      std::vector<std::string> ops;
      for (const CommOp& c : in.comm) ops.push_back(comm_str(r, c));
      s += fmt::format(" phase {}: {}", in.phase, fmt::join(ops, "; "));
      if (in.finish >= 0) s += fmt::format(" finish_before {}", in.finish);
      break;
    }
    case InstrKind::update:
      s += fmt::format(" {} grad={}", operand_str(r, in.w), operand_str(r, in.grad));
      if (in.state1.present()) s += fmt::format(" state=({}", operand_str(r, in.state1));
      if (in.state2.present()) s += fmt::format(", {}", operand_str(r, in.state2));
      if (in.state1.present()) s += ")";
      break;
  }
  if (!in.note.empty()) s += "  # " + in.note;
  return s;
}

std::string print_program(const Graph& g, const Program& p, int only_rank) {
  std::string s = fmt::format("program {} ranks={} batch={}\n", p.model, p.num_ranks, p.batch);
  for (size_t i = 0; i < p.groups.size(); ++i) s += fmt::format("group {} = [{}]\n", i, fmt::join(p.groups[i], " "));
  for (size_t i = 0; i < p.phases.size(); ++i)
    s += fmt::format("phase {}: {} ({}) ranks [{}]\n", i, p.phases[i].note, p.phases[i].pattern,
                     fmt::join(p.phases[i].ranks, " "));
  for (const RankProgram& r : p.ranks) {
    if (only_rank >= 0 && r.rank != only_rank) continue;
    s += fmt::format("\nrank {}: persistent {} B, arena {} B\n", r.rank, r.persistent_bytes, r.arena_bytes);
    for (const Buffer& b : r.buffers)
      s += fmt::format("  buffer {} {} {}{} of [{}] {} B @{}\n", b.name, buffer_role_name(b.role), dtype_name(b.dtype),
                       b.box.str(), fmt::join(b.full, ", "), b.bytes(), b.offset);
    s += "  setup:\n";
    for (const Instr& in : r.setup) s += "    " + print_instr(g, r, in) + "\n";
    s += "  step:\n";
    for (const Instr& in : r.step) s += "    " + print_instr(g, r, in) + "\n";
    s += fmt::format("  loss {}\n", operand_str(r, r.loss));
  }
  return s;
}

namespace {

void check_operand(const RankProgram& r, const Operand& o, const char* what) {
  if (!o.present()) return;
  if (o.buffer >= static_cast<int>(r.buffers.size()))
    FFC_INTERNAL_ERROR("rank {}: {} names buffer {} of {}", r.rank, what, o.buffer, r.buffers.size());
  const Buffer& b = r.buffers[o.buffer];
  if (o.box.rank() != b.box.rank() || !(o.box.empty() || b.box.contains(o.box)))
    FFC_INTERNAL_ERROR("rank {}: {} box {} is not inside buffer {} {}", r.rank, what, o.box.str(), b.name, b.box.str());
}

}  // namespace

namespace {

/// A step phase that finishes later (Instr::finish) finishes within its function (the forward's
/// phases before its end) and, once memory is planned, no instruction it overlaps touches the
/// planned bytes of its operands.
void check_finishes(const RankProgram& r) {
  const int n = static_cast<int>(r.step.size()), forward_end = static_cast<int>(r.forward_end);
  for (const Instr& in : r.setup) FFC_CHECK(in.finish < 0);
  for (int i = 0; i < n; ++i) {
    const Instr& in = r.step[i];
    if (in.finish < 0) continue;
    if (in.kind != InstrKind::comm || in.finish <= i + 1 || in.finish > (i < forward_end ? forward_end : n))
      FFC_INTERNAL_ERROR("rank {}: step instruction {} finishes before instruction {}", r.rank, i, in.finish);
    struct Bytes {
      bool persistent;
      int64_t lo, hi;
    };
    auto bytes_of = [&](const Operand& o) {
      const Buffer& b = r.buffers.at(o.buffer);
      return Bytes{is_persistent(b.role), b.offset, b.offset + std::max<int64_t>(b.bytes(), 1)};
    };
    std::vector<Bytes> mine;
    for (const CommOp& c : in.comm)
      for (const Operand* o : {&c.src, &c.dst})
        if (o->present()) {
          if (r.buffers.at(o->buffer).offset < 0) return;  // not planned yet
          mine.push_back(bytes_of(*o));
        }
    for (int j = i + 1; j < in.finish; ++j) {
      const Instr& x = r.step[j];
      if (x.kind == InstrKind::load_input)
        FFC_INTERNAL_ERROR("rank {}: phase {} is still running at a data load (step instruction {})", r.rank, in.phase, j);
      if (x.kind == InstrKind::comm) continue;  // phases run in order on their stream
      auto check = [&](const Operand& o) {
        if (!o.present()) return;
        const Bytes b = bytes_of(o);
        for (const Bytes& m : mine)
          if (m.persistent == b.persistent && m.lo < b.hi && b.lo < m.hi)
            FFC_INTERNAL_ERROR("rank {}: phase {} is still running at step instruction {}, which touches its memory ({})",
                               r.rank, in.phase, j, r.buffers.at(o.buffer).name);
      };
      for (const auto* v : {&x.in, &x.out, &x.params, &x.saved, &x.dout, &x.din, &x.dparams})
        for (const Operand& o : *v) check(o);
      for (const Operand* o : {&x.stats, &x.src, &x.dst, &x.w, &x.grad, &x.state1, &x.state2}) check(*o);
    }
  }
}

}  // namespace

void verify_program(const Program& p) {
  for (const auto& g : p.groups)
    for (size_t i = 1; i < g.size(); ++i) FFC_CHECK(g[i - 1] < g[i]);
  for (const RankProgram& r : p.ranks) {
    int last_phase = -1;
    for (const auto* list : {&r.setup, &r.step})
      for (const Instr& in : *list) {
        for (const auto* v : {&in.in, &in.out, &in.params, &in.saved, &in.dout, &in.din, &in.dparams})
          for (const Operand& o : *v) check_operand(r, o, "an operand");
        for (const Operand* o : {&in.stats, &in.src, &in.dst, &in.w, &in.grad, &in.state1, &in.state2})
          check_operand(r, *o, "an operand");
        if (in.kind == InstrKind::comm) {
          if (in.phase <= last_phase)
            FFC_INTERNAL_ERROR("rank {}: phase {} after phase {}", r.rank, in.phase, last_phase);
          last_phase = in.phase;
          for (const CommOp& c : in.comm) {
            check_operand(r, c.src, "a comm source");
            check_operand(r, c.dst, "a comm destination");
            if (c.group >= 0) FFC_CHECK(c.group < static_cast<int>(p.groups.size()));
          }
        }
      }
    check_operand(r, r.loss, "the loss");
    check_finishes(r);
  }
  // Every phase matches across ranks: what rank a sends rank b, in order, is what b receives from a,
  // in order (boxes and element types), and every member of a collective's group takes part in it
  // with the same kind, in the same order.
  struct Sent {
    Box box;
    DType dtype;
    bool operator==(const Sent&) const = default;
  };
  std::map<std::tuple<int, int, int>, std::vector<Sent>> sends, recvs;   // (phase, from, to)
  std::map<std::pair<int, int>, std::vector<std::vector<CommKind>>> colls;  // (phase, group) -> per member
  for (const RankProgram& r : p.ranks)
    for (const Instr& in : r.step) {
      if (in.kind != InstrKind::comm) continue;
      std::map<int, std::vector<CommKind>> mine;
      for (const CommOp& c : in.comm) {
        if (c.kind == CommKind::send)
          sends[{in.phase, r.rank, c.peer}].push_back({c.src.box, r.buffers.at(c.src.buffer).dtype});
        else if (c.kind == CommKind::recv)
          recvs[{in.phase, c.peer, r.rank}].push_back({c.dst.box, r.buffers.at(c.dst.buffer).dtype});
        else
          mine[c.group].push_back(c.kind);
      }
      for (auto& [group, kinds] : mine) {
        const auto& members = p.groups.at(group);
        if (std::find(members.begin(), members.end(), r.rank) == members.end())
          FFC_INTERNAL_ERROR("rank {} phase {}: a collective of group {}, which it is not in", r.rank, in.phase, group);
        colls[{in.phase, group}].push_back(std::move(kinds));
      }
    }
  if (sends != recvs) FFC_INTERNAL_ERROR("the sends and receives of some phase do not match");
  for (const auto& [key, per_member] : colls) {
    if (per_member.size() != p.groups.at(key.second).size())
      FFC_INTERNAL_ERROR("phase {}: {} of the {} ranks of group {} take part in its collectives", key.first,
                         per_member.size(), p.groups.at(key.second).size(), key.second);
    for (const auto& kinds : per_member)
      if (kinds != per_member.front())
        FFC_INTERNAL_ERROR("phase {}: the members of group {} post different collectives", key.first, key.second);
  }
}

}  // namespace ffc
