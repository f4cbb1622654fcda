// The simulator: cost formulas on hand-computed cases (a linear's and a convolution's FLOPs, the
// roofline, transfers inside and between nodes, ring collectives of known bytes), the event
// simulation's properties (a phase waits for its slowest member; data parallelism speeds up a
// compute-bound model; memory over a GPU's is rejected), machine files and cost tables.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>

#include "frontend/ff_parser.h"
#include "passes/parallel.h"
#include "passes/pipeline.h"
#include "sim/cost.h"
#include "sim/cost_table.h"
#include "sim/flops.h"
#include "sim/machine.h"
#include "sim/simulate.h"

namespace ffc {
namespace {

Compiled compile(const std::string& ff, int devices, int64_t batch) {
  Graph g = parse_ff(ff, "test.ff");
  run_graph_pipeline(g, PipelineOptions{});
  ParallelOptions po;
  po.devices = devices;
  po.batch = batch;
  return compile_parallel(std::move(g), Strategy{}, po);
}

/// The first instruction of rank 0 of this kind for the op named `op`.
const Instr& find(const Compiled& c, InstrKind kind, const std::string& op, int rank = 0) {
  const int o = c.graph.find_op(op);
  for (const Instr& in : c.program.ranks.at(rank).step)
    if (in.kind == kind && in.op == o) return in;
  ADD_FAILURE() << "no " << instr_kind_name(kind) << " of " << op;
  static const Instr none;
  return none;
}

const char* kLinear = R"(model lin
x = input() : f32[N,64]
fc = linear(x, out_features=32) : f32[N,32]
)";

TEST(SimCost, LinearFlops) {
  Compiled c = compile(kLinear, 1, 16);
  const RankProgram& r = c.program.ranks[0];
  // Forward: 2·M·N·K for the GEMM plus M·N for the bias.
  KernelWork fwd = kernel_work(c.graph, r, find(c, InstrKind::forward, "fc"));
  EXPECT_DOUBLE_EQ(fwd.flops, 2.0 * 16 * 32 * 64 + 16 * 32);
  EXPECT_TRUE(fwd.contraction);
  EXPECT_EQ(fwd.launches, 1);
  // in 16x64, out 16x32, weight 32x64, bias 32 (f32), each once.
  EXPECT_DOUBLE_EQ(fwd.bytes, 4.0 * (16 * 64 + 16 * 32 + 32 * 64 + 32));
  // Backward: the input is a model input (no gradient), so the weight's GEMM and the bias's sum.
  KernelWork bwd = kernel_work(c.graph, r, find(c, InstrKind::backward, "fc"));
  EXPECT_DOUBLE_EQ(bwd.flops, 2.0 * 16 * 32 * 64 + 16 * 32);
  EXPECT_EQ(bwd.launches, 2);
}

TEST(SimCost, LinearSplitOnFeaturesHalvesTheFlops) {
  const char* ff = R"(model lin
x = input() : f32[N,64]
fc = linear(x, out_features=32) : f32[N,32]
)";
  Graph g = parse_ff(ff, "test.ff");
  run_graph_pipeline(g, PipelineOptions{});
  Strategy s = parse_strategy_text(R"(ops { name: "fc" device_type: GPU dims: [2, 1] device_ids: [0, 1] })", "s.pbtxt");
  ParallelOptions po;
  po.devices = 2;
  po.batch = 16;
  Compiled c = compile_parallel(std::move(g), s, po);
  for (int r = 0; r < 2; ++r) {
    KernelWork w = kernel_work(c.graph, c.program.ranks[r], find(c, InstrKind::forward, "fc", r));
    EXPECT_DOUBLE_EQ(w.flops, 2.0 * 16 * 16 * 64 + 16 * 16) << "rank " << r;
  }
}

TEST(SimCost, ConvFlops) {
  const char* ff = R"(model conv
x = input() : f32[N,3,32,32]
c = conv2d(x, out_channels=8, kernel=[3,3], padding=[1,1], activation=relu) : f32[N,8,32,32]
d = conv2d(c, out_channels=8, kernel=[3,3], padding=[1,1], groups=2, bias=false) : f32[N,8,32,32]
)";
  Compiled c = compile(ff, 1, 2);
  const RankProgram& r = c.program.ranks[0];
  const double out = 2.0 * 8 * 32 * 32;
  // 2·|out|·C·kh·kw, plus the bias and the ReLU per output element.
  EXPECT_DOUBLE_EQ(kernel_work(c.graph, r, find(c, InstrKind::forward, "c")).flops, 2 * out * 3 * 9 + 2 * out);
  // groups=2: each output reads C/g = 4 input channels; no bias, no activation.
  EXPECT_DOUBLE_EQ(kernel_work(c.graph, r, find(c, InstrKind::forward, "d")).flops, 2 * out * 4 * 9);
  // d's backward: its input's gradient and its weight's, one contraction each.
  KernelWork bd = kernel_work(c.graph, r, find(c, InstrKind::backward, "d"));
  EXPECT_DOUBLE_EQ(bd.flops, 2 * (2 * out * 4 * 9));
  EXPECT_EQ(bd.launches, 2);
}

TEST(SimCost, RooflineAndMath) {
  Compiled c = compile(kLinear, 1, 4096);
  const RankProgram& r = c.program.ranks[0];
  const Instr& fwd = find(c, InstrKind::forward, "fc");
  Machine m;
  const KernelWork w = kernel_work(c.graph, r, fwd);
  AnalyticalCostModel fp32(m, Math::fp32), tf32(m, Math::tf32);
  EXPECT_DOUBLE_EQ(fp32.kernel(c.graph, r, fwd),
                   std::max(w.flops / m.fp32_flops, w.bytes / m.memory_bandwidth) + m.launch);
  EXPECT_DOUBLE_EQ(tf32.kernel(c.graph, r, fwd),
                   std::max(w.flops / m.tf32_flops, w.bytes / m.memory_bandwidth) + m.launch);
  // A fill: its bytes over the memory bandwidth, plus the floor.
  for (const Instr& in : r.step)
    if (in.kind == InstrKind::fill) {
      EXPECT_DOUBLE_EQ(fp32.instr(c.graph, r, in), operand_bytes(r, in.dst) / m.memory_bandwidth + m.launch);
      break;
    }
}

TEST(SimCost, RingCollectives) {
  // 1 GB over 4 ranks at 300 GB/s and 5 us: 2·3/4 · 1e9/300e9 + 6 · 5e-6.
  EXPECT_NEAR(ring_all_reduce_time(1e9, 4, 300e9, 5e-6), 0.005 + 30e-6, 1e-12);
  EXPECT_NEAR(ring_gather_time(1e9, 4, 300e9, 5e-6), 0.0025 + 15e-6, 1e-12);
  EXPECT_EQ(ring_all_reduce_time(1e9, 1, 300e9, 5e-6), 0.0);
}

TEST(SimCost, TransfersInsideAndBetweenNodes) {
  Machine m;
  m.gpus_per_node = 2;
  AnalyticalCostModel cost(m, Math::fp32);
  EXPECT_DOUBLE_EQ(cost.transfer(3e9, 0, 1), m.intra_node_latency + 3e9 / m.intra_node_bandwidth);
  EXPECT_DOUBLE_EQ(cost.transfer(3e9, 1, 2), m.inter_node_latency + 3e9 / m.inter_node_bandwidth);
}

/// A program of `n` ranks with one f32 buffer of `elems` each and the given instructions.
Program hand_program(int n, int64_t elems) {
  Program p;
  p.num_ranks = n;
  p.ranks.resize(n);
  for (int r = 0; r < n; ++r) {
    p.ranks[r].rank = r;
    Buffer b;
    b.name = "g";
    b.full = {elems};
    b.box = Box::whole(b.full);
    p.ranks[r].buffers.push_back(b);
  }
  return p;
}

Instr comm_instr(int phase, std::vector<CommOp> ops) {
  Instr in;
  in.kind = InstrKind::comm;
  in.phase = phase;
  in.comm = std::move(ops);
  return in;
}

TEST(SimCost, AllReducePhaseOfKnownBytes) {
  // 4 ranks all-reduce 2^20 floats (4 MiB) inside one node.
  Program p = hand_program(4, 1 << 20);
  p.groups = {{0, 1, 2, 3}};
  p.phases.resize(1);
  for (int r = 0; r < 4; ++r) {
    CommOp ar;
    ar.kind = CommKind::all_reduce;
    ar.group = 0;
    ar.dst = Operand{0, p.ranks[r].buffers[0].box};
    p.ranks[r].step.push_back(comm_instr(0, {ar}));
  }
  Machine m;
  AnalyticalCostModel cost(m, Math::fp32);
  std::vector<PhaseMember> members;
  for (int r = 0; r < 4; ++r) members.push_back({&p.ranks[r], &p.ranks[r].step[0]});
  const double bytes = 4.0 * (1 << 20);
  EXPECT_DOUBLE_EQ(cost.phase(p, members), 2.0 * 3 / 4 * bytes / m.intra_node_bandwidth + 6 * m.intra_node_latency);
  // Spread over two nodes, the ring runs at the speed of the link between them.
  m.gpus_per_node = 2;
  AnalyticalCostModel two_nodes(m, Math::fp32);
  EXPECT_DOUBLE_EQ(two_nodes.phase(p, members),
                   2.0 * 3 / 4 * bytes / m.inter_node_bandwidth + 6 * m.inter_node_latency);
}

// A reduce-scatter whose pieces are the members' runs of the source in member order is NCCL's
// reduce-scatter (a ring over the whole source); any other layout, an all-reduce of the whole
// source, packed, then this member's piece copied out, as the runtime issues it.
TEST(SimCost, ReduceScatterIsPricedAsTheRuntimeIssuesIt) {
  Program p = hand_program(2, 64 * 64);
  p.groups = {{0, 1}};
  p.phases.resize(1);
  for (RankProgram& r : p.ranks) {
    r.buffers[0].full = {64, 64};
    r.buffers[0].box = Box::whole(r.buffers[0].full);
    Buffer piece;  // this member's piece, dense
    piece.name = "piece";
    piece.full = {64, 64};
    p.ranks[r.rank].buffers.push_back(piece);
  }
  const Box whole = p.ranks[0].buffers[0].box;
  auto scatter = [&](std::vector<Box> pieces) {
    for (RankProgram& r : p.ranks) {
      r.buffers[1].box = pieces[r.rank];
      CommOp rs{CommKind::reduce_scatter, -1, 0, Operand{0, whole}, Operand{1, pieces[r.rank]}, pieces};
      r.step = {comm_instr(0, {rs})};
    }
    return p.ranks[0].step[0].comm[0];
  };
  Machine m;
  AnalyticalCostModel cost(m, Math::fp32);
  auto phase = [&] {
    std::vector<PhaseMember> members;
    for (RankProgram& r : p.ranks) members.push_back({&r, &r.step[0]});
    return cost.phase(p, members);
  };
  const double bytes = 4.0 * 64 * 64;
  // Rows: member 0 the first half, member 1 the second: direct.
  const Box top{{{0, 32}, {0, 64}}}, bottom{{{32, 64}, {0, 64}}};
  EXPECT_TRUE(scatters_directly(scatter({top, bottom})));
  EXPECT_DOUBLE_EQ(phase(), ring_gather_time(bytes, 2, m.intra_node_bandwidth, m.intra_node_latency));
  // The same halves in the other order, or columns: not runs in member order.
  EXPECT_FALSE(scatters_directly(scatter({bottom, top})));
  const Box left{{{0, 64}, {0, 32}}}, right{{{0, 64}, {32, 64}}};
  EXPECT_FALSE(scatters_directly(scatter({left, right})));
  const double fallback = 2 * (bytes + bytes / 2) / m.memory_bandwidth + 2 * m.launch +
                          ring_all_reduce_time(bytes, 2, m.intra_node_bandwidth, m.intra_node_latency);
  EXPECT_DOUBLE_EQ(phase(), fallback);
  EXPECT_GT(fallback, ring_gather_time(bytes, 2, m.intra_node_bandwidth, m.intra_node_latency));
  // Unequal pieces cannot be scattered directly either.
  EXPECT_FALSE(scatters_directly(scatter({Box{{{0, 16}, {0, 64}}}, Box{{{16, 64}, {0, 64}}}})));
}

TEST(SimCost, SendsOfOneRankShareItsLink) {
  // Rank 0 sends a strided half (packed first) and a contiguous half to ranks 1 and 2.
  Program p = hand_program(3, 1024);
  Buffer& b = p.ranks[0].buffers[0];
  b.full = {32, 32};
  b.box = Box::whole(b.full);
  Box left{{{0, 32}, {0, 16}}}, top{{{0, 16}, {0, 32}}};
  CommOp s1{CommKind::send, 1, -1, Operand{0, left}, {}, {}};
  CommOp s2{CommKind::send, 2, -1, Operand{0, top}, {}, {}};
  p.ranks[0].step.push_back(comm_instr(0, {s1, s2}));
  EXPECT_FALSE(is_contiguous(p.ranks[0], s1.src));
  EXPECT_TRUE(is_contiguous(p.ranks[0], s2.src));
  Machine m;
  AnalyticalCostModel cost(m, Math::fp32);
  const double half = 4.0 * 512;
  EXPECT_DOUBLE_EQ(cost.member_time(p, {&p.ranks[0], &p.ranks[0].step[0]}),
                   (2 * half / m.memory_bandwidth + m.launch) + m.intra_node_latency + 2 * half / m.intra_node_bandwidth);
}

/// Costs for testing the simulator alone: a fill takes `value` seconds, every phase one second.
class FixedCost : public CostModel {
 public:
  explicit FixedCost(double slowdown = 1) : slowdown_(slowdown) {}
  double overlap_slowdown() const override { return slowdown_; }
  double kernel(const Graph&, const RankProgram&, const Instr&) const override { return 0; }
  double move(const RankProgram&, const Instr& in) const override { return in.value; }
  double update(const RankProgram&, const Instr&) const override { return 0; }
  double phase(const Program&, std::span<const PhaseMember>) const override { return 1; }

 private:
  double slowdown_;
};

Instr fill(float seconds) {
  Instr in;
  in.kind = InstrKind::fill;
  in.dst = Operand{0, Box{{{0, 1}}}};
  in.value = seconds;
  return in;
}

/// Two ranks, one phase (phase 0) that all-reduces buffer 0 over both: `ar` is its operation.
Program two_rank_program(CommOp& ar) {
  Program p = hand_program(2, 4);
  p.groups = {{0, 1}};
  p.phases.resize(1);
  ar.kind = CommKind::all_reduce;
  ar.group = 0;
  ar.dst = Operand{0, Box{{{0, 4}}}};
  return p;
}

TEST(Simulate, PhaseWaitsForItsSlowestMember) {
  CommOp ar;
  Program p = two_rank_program(ar);
  p.ranks[0].step = {fill(3), comm_instr(0, {ar}), fill(1)};
  p.ranks[1].step = {fill(1), comm_instr(0, {ar}), fill(0.5)};
  Graph g;
  SimOptions o;
  o.trace = true;
  Simulation s = simulate(g, p, Machine{}, FixedCost{}, o);
  // The phase starts when rank 0 reaches it (3 s), ends at 4 s on both.
  EXPECT_DOUBLE_EQ(s.iteration, 5);
  EXPECT_DOUBLE_EQ(s.ranks[0].end, 5);
  EXPECT_DOUBLE_EQ(s.ranks[1].end, 4.5);
  EXPECT_DOUBLE_EQ(s.ranks[0].exposed, 1);
  EXPECT_DOUBLE_EQ(s.ranks[1].exposed, 2 + 1);  // waiting for rank 0, then the phase
  EXPECT_DOUBLE_EQ(s.ranks[0].idle, 0);
  EXPECT_DOUBLE_EQ(s.ranks[1].idle, 0.5);  // waiting for the slowest rank's end
  for (const RankTimes& r : s.ranks) {
    EXPECT_DOUBLE_EQ(r.comm, 1);
    EXPECT_DOUBLE_EQ(r.compute + r.exposed + r.idle, s.iteration);
  }
  ASSERT_EQ(s.events.size(), 6u);
  EXPECT_EQ(s.instructions, 6);
  const std::string json = trace_json(s, "test");
  EXPECT_NE(json.find("\"traceEvents\""), std::string::npos);
  EXPECT_NE(json.find(R"("ph": "X", "pid": 1, "tid": 1, "ts": 3000000.000, "dur": 1000000.000, "args": {"wait_us": 2000000.000})"),
            std::string::npos)
      << json;
}

// A phase that finishes later runs on the communication stream while the compute stream goes on.
TEST(Simulate, OverlappedPhaseHidesBehindCompute) {
  CommOp ar;
  Program p = two_rank_program(ar);
  for (RankProgram& r : p.ranks) {
    r.step = {fill(1), comm_instr(0, {ar}), fill(0.5), fill(2), fill(0.25)};
    r.step[1].finish = 4;  // before the last fill: the phase (1 s) hides behind 2.5 s of compute
  }
  Graph g;
  Simulation s = simulate(g, p, Machine{}, FixedCost{});
  EXPECT_DOUBLE_EQ(s.iteration, 3.75);
  for (const RankTimes& r : s.ranks) {
    EXPECT_DOUBLE_EQ(r.comm, 1);
    EXPECT_DOUBLE_EQ(r.exposed, 0);
    EXPECT_DOUBLE_EQ(r.compute, 3.75);
  }
  // Finishing at once instead exposes it.
  for (RankProgram& r : p.ranks) r.step[1].finish = -1;
  EXPECT_DOUBLE_EQ(simulate(g, p, Machine{}, FixedCost{}).iteration, 4.75);
}

// With the cost model's overlap_slowdown (Machine::overlap_slowdown for the analytical and
// measured models), compute beside a phase in flight runs that many times slower
// (only while the phase is in flight: before it starts and after it ends, at full speed).
TEST(Simulate, ComputeBesideAPhaseRunsSlower) {
  CommOp ar;
  Program p = two_rank_program(ar);
  for (RankProgram& r : p.ranks) {
    r.step = {fill(1), comm_instr(0, {ar}), fill(0.75), fill(2), fill(0.25)};
    r.step[1].finish = 4;
  }
  p.ranks[1].step[0] = fill(0.5);  // rank 1 issues the phase first; it starts when rank 0 comes
  Graph g;
  SimOptions o;
  o.trace = true;
  Simulation s = simulate(g, p, Machine{}, FixedCost{2}, o);
  // Rank 0: the phase runs over [1, 2); 0.5 s of the first fill's work fits in it, at half speed.
  EXPECT_DOUBLE_EQ(s.ranks[0].end, 1 + (1 + 0.25) + 2 + 0.25);
  EXPECT_DOUBLE_EQ(s.ranks[0].compute, 4.5);
  // Rank 1: 0.5 s at full speed before the phase starts, 0.25 s in it (0.5 s), then the next
  // fill's first 0.25 s in it (0.5 s) and its rest after it.
  EXPECT_DOUBLE_EQ(s.ranks[1].end, 0.5 + 0.5 + 0.5 + (0.5 + 1.75) + 0.25);
  for (const RankTimes& r : s.ranks) EXPECT_DOUBLE_EQ(r.exposed, 0);
  // The trace shows the stretched durations.
  std::vector<double> rank0;
  for (const SimEvent& e : s.events)
    if (e.rank == 0 && e.stream == 0) rank0.push_back(e.duration);
  EXPECT_EQ(rank0, (std::vector<double>{1, 1.25, 2, 0.25}));
  // A costed program carries its cost model's slowdown to the sweep.
  EXPECT_DOUBLE_EQ(simulate(cost_program(g, p, FixedCost{})).iteration, 4.0);
  EXPECT_DOUBLE_EQ(simulate(cost_program(g, p, FixedCost{2})).iteration, 4.5);
  // The analytical and measured models take it from their machine.
  Machine m;
  m.overlap_slowdown = 2;
  const AnalyticalCostModel analytical(m, Math::fp32);
  EXPECT_DOUBLE_EQ(analytical.overlap_slowdown(), 2);
  const CostTable none;
  EXPECT_DOUBLE_EQ(MeasuredCostModel(none, analytical).overlap_slowdown(), 2);
}

const char* kMlp = R"(model mlp
x = input() : f32[N,1024]
h1 = linear(x, out_features=1024, activation=relu) : f32[N,1024]
h2 = linear(h1, out_features=1024, activation=relu) : f32[N,1024]
y = linear(h2, out_features=16) : f32[N,16]
)";

TEST(Simulate, DataParallelSpeedsUpAComputeBoundModel) {
  Machine m;
  AnalyticalCostModel cost(m, Math::fp32);
  double last = 0;
  for (int devices : {1, 2, 4}) {
    Compiled c = compile(kMlp, devices, 8192);
    Simulation s = simulate(c.graph, c.program, m, cost);
    ASSERT_EQ(s.ranks.size(), static_cast<size_t>(devices));
    EXPECT_TRUE(s.fits());
    if (devices > 1) {
      EXPECT_LT(s.iteration, last) << devices << " devices";
      EXPECT_GT(s.ranks[0].comm, 0.0);  // the gradients' all-reduces
    }
    last = s.iteration;
  }
}

TEST(Simulate, MemoryOverTheGpuIsRejected) {
  Compiled c = compile(kMlp, 2, 64);
  Machine m;
  AnalyticalCostModel cost(m, Math::fp32);
  EXPECT_TRUE(simulate(c.graph, c.program, m, cost).fits());
  m.gpu_memory = static_cast<double>(c.program.ranks[0].persistent_bytes);  // no room for the arena
  Simulation s = simulate(c.graph, c.program, m, cost);
  EXPECT_FALSE(s.fits());
  EXPECT_EQ(s.over_memory, 0);
  EXPECT_EQ(s.ranks[0].memory(), c.program.ranks[0].persistent_bytes + c.program.ranks[0].arena_bytes);
}

std::string user_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "no error";
}

TEST(Machine, PresetsAndFile) {
  EXPECT_EQ(machine_preset("h100")->gpu_memory, 80.0 * (1 << 30));
  EXPECT_EQ(machine_preset("h200")->memory_bandwidth, 4.8e12);
  EXPECT_FALSE(machine_preset("a100").has_value());
  Machine m = parse_machine(R"(# two DGX H200
base = h200
name = dgx2   # trailing comment
nodes = 2
inter_node_bandwidth_gb_s = 50
launch_us = 0
)",
                            "m.txt");
  EXPECT_EQ(m.name, "dgx2");
  EXPECT_EQ(m.card, "h200");
  EXPECT_EQ(m.nodes, 2);
  EXPECT_EQ(m.gpus(), 16);
  EXPECT_DOUBLE_EQ(m.inter_node_bandwidth, 50e9);
  EXPECT_DOUBLE_EQ(m.launch, 0);
  EXPECT_DOUBLE_EQ(m.gpu_memory, 141.0 * (1 << 30));
  EXPECT_EQ(m.node_of(7), 0);
  EXPECT_EQ(m.node_of(8), 1);
}

TEST(Machine, ErrorsNameFileAndLine) {
  auto parse = [](const char* text) { return user_error_of([&] { parse_machine(text, "m.txt"); }); };
  EXPECT_EQ(parse("nodes = 2\nbandwidth = 3\n"), "m.txt:2: error: unknown key 'bandwidth' (known: base, name, card, nodes, gpus_per_node, "
                                                 "intra_node_bandwidth_gb_s, intra_node_latency_us, inter_node_bandwidth_gb_s, "
                                                 "inter_node_latency_us, gpu_memory_gib, fp32_tflop_s, tf32_tflop_s, "
                                                 "memory_bandwidth_gb_s, launch_us, grouped_collective_us, phase_latency_us, "
                                                 "overlap_slowdown, job_launch_us)");
  EXPECT_EQ(parse("\n\nfp32_tflop_s = fast\n"), "m.txt:3: error: 'fp32_tflop_s' takes a number, got 'fast'");
  EXPECT_EQ(parse("gpu_memory_gib = 0\n"), "m.txt:1: error: 'gpu_memory_gib' must be positive, got 0");
  // Positive, but so small a rate that every transfer takes forever (found by tests/fuzz).
  EXPECT_EQ(parse("intra_node_bandwidth_gb_s = 311.5591e-320\n"),
            "m.txt:1: error: 'intra_node_bandwidth_gb_s' must be at least 1e-6, got 311.5591e-320");
  EXPECT_EQ(parse("launch_us = 1e-9\n"), "m.txt:1: error: 'launch_us' must be 0 or at least 1e-6, got 1e-9");
  EXPECT_EQ(parse("nodes 2\n"), "m.txt:1: error: expected `key = value`, got 'nodes 2'");
  EXPECT_EQ(parse("nodes = 1\nnodes = 2\n"), "m.txt:2: error: 'nodes' is given twice");
  EXPECT_EQ(parse("nodes = 1\nbase = h100\n"), "m.txt:2: error: 'base' must come before every other key");
  EXPECT_EQ(parse("base = a100\n"), "m.txt:1: error: unknown preset 'a100' (known: h100, h200)");
  EXPECT_EQ(parse("gpus_per_node = 0\n"), "m.txt:1: error: 'gpus_per_node' takes a whole number from 1 to 65536, got '0'");
  EXPECT_EQ(parse("overlap_slowdown = 0.9\n"), "m.txt:1: error: 'overlap_slowdown' must be 1 or more, got 0.9");
  EXPECT_EQ(parse("overlap_slowdown = 0\n"), "m.txt:1: error: 'overlap_slowdown' must be 1 or more, got 0");
  EXPECT_EQ(parse("grouped_collective_us = some\n"), "m.txt:1: error: 'grouped_collective_us' takes a number, got 'some'");
}

// A file without `base` starts from the h100 preset (its measured links and terms); `ring`, 0, 1
// and 0 turn the grouped cost, the phase cost, the slowdown and the job's launch cost off.
TEST(Machine, FileStartsFromTheH100PresetAndTurnsTermsOff) {
  const Machine h100 = *machine_preset("h100");
  const Machine m = parse_machine("name = mine\n", "m.txt");
  EXPECT_EQ(m.name, "mine");
  EXPECT_DOUBLE_EQ(m.intra_node_bandwidth, h100.intra_node_bandwidth);
  EXPECT_DOUBLE_EQ(m.phase_latency, h100.phase_latency);
  EXPECT_DOUBLE_EQ(m.grouped_collective, h100.grouped_collective);
  EXPECT_DOUBLE_EQ(m.overlap_slowdown, h100.overlap_slowdown);
  EXPECT_DOUBLE_EQ(m.job_launch, h100.job_launch);
  EXPECT_GT(h100.overlap_slowdown, 1);
  EXPECT_GT(h100.phase_latency, 0);
  EXPECT_GE(h100.grouped_collective, 0);
  const Machine bare = parse_machine(
      "grouped_collective_us = ring\nphase_latency_us = 0\noverlap_slowdown = 1\njob_launch_us = 0\n", "m.txt");
  EXPECT_LT(bare.grouped_collective, 0);
  EXPECT_DOUBLE_EQ(bare.phase_latency, 0);
  EXPECT_DOUBLE_EQ(bare.overlap_slowdown, 1);
  EXPECT_DOUBLE_EQ(bare.job_launch, 0);
}

TEST(CostTable, RoundTripMergeAndLookup) {
  Compiled c = compile(kLinear, 1, 16);
  const RankProgram& r = c.program.ranks[0];
  const Instr& fwd = find(c, InstrKind::forward, "fc");
  const std::string key = kernel_key(c.graph, r, fwd);
  EXPECT_EQ(key, "linear forward f32 {out_features=32, bias=true, activation=none} in=16x64 out=16x32 params=32x64,32");

  CostTable t;
  t.set("h100", Math::fp32, key, 12.5e-6, 2);
  t.set("h100", Math::tf32, key, 3e-6);
  const std::string text = t.print();
  EXPECT_NE(text.find("ffc-costs 2\n"), std::string::npos);
  EXPECT_NE(text.find("h100 fp32 12.500 2 linear forward"), std::string::npos);
  CostTable back = CostTable::parse(text, "db.txt");
  EXPECT_EQ(back.size(), 2u);
  EXPECT_EQ(back.print(), text);
  CostTable newer;
  newer.set("h100", Math::fp32, key, 10e-6);
  EXPECT_DOUBLE_EQ(back.find("h100", Math::fp32, key)->launches, 2);
  back.merge(newer);
  EXPECT_DOUBLE_EQ(back.find("h100", Math::fp32, key)->seconds, 10e-6);
  EXPECT_DOUBLE_EQ(back.find("h100", Math::fp32, key)->launches, 1);
  EXPECT_EQ(back.find("h200", Math::fp32, key), nullptr);

  Machine m;
  AnalyticalCostModel analytical(m, Math::fp32);
  MeasuredCostModel measured(back, analytical);
  EXPECT_TRUE(measured.measured(c.graph, r, fwd));
  EXPECT_DOUBLE_EQ(measured.kernel(c.graph, r, fwd), 10e-6);
  const Instr& bwd = find(c, InstrKind::backward, "fc");
  EXPECT_FALSE(measured.measured(c.graph, r, bwd));
  EXPECT_DOUBLE_EQ(measured.kernel(c.graph, r, bwd), analytical.kernel(c.graph, r, bwd));
}

// Calibrated on a program (data parallelism, in ffc simulate and ffc search), a kernel the table
// lacks costs its analytical time times the measured-over-analytical ratio of its op's kernels of
// the same kind there; kernels of other ops or kinds, and measured ones, are as before.
TEST(CostTable, CalibrationScalesUnmeasuredKernelsByTheirOpsRatio) {
  Compiled one = compile(kLinear, 1, 16), two = compile(kLinear, 2, 16);
  Machine m;
  AnalyticalCostModel analytical(m, Math::fp32);
  const RankProgram& r1 = one.program.ranks[0];
  const Instr& fwd1 = find(one, InstrKind::forward, "fc");
  CostTable t;
  t.set(m.card, Math::fp32, kernel_key(one.graph, r1, fwd1), 3 * analytical.kernel(one.graph, r1, fwd1));
  MeasuredCostModel measured(t, analytical);
  const RankProgram& r2 = two.program.ranks[1];
  const Instr& fwd2 = find(two, InstrKind::forward, "fc", 1);
  const Instr& bwd2 = find(two, InstrKind::backward, "fc", 1);
  ASSERT_FALSE(measured.measured(two.graph, r2, fwd2));
  EXPECT_DOUBLE_EQ(measured.kernel(two.graph, r2, fwd2), analytical.kernel(two.graph, r2, fwd2));
  measured.calibrate(one.graph, one.program);
  EXPECT_DOUBLE_EQ(measured.kernel(two.graph, r2, fwd2), 3 * analytical.kernel(two.graph, r2, fwd2));
  EXPECT_DOUBLE_EQ(measured.kernel(two.graph, r2, bwd2), analytical.kernel(two.graph, r2, bwd2));
  EXPECT_DOUBLE_EQ(measured.kernel(one.graph, r1, fwd1), 3 * analytical.kernel(one.graph, r1, fwd1));
  const MeasuredCostModel::Coverage c1 = measured.coverage(one.graph, one.program);
  EXPECT_EQ(c1.measured, 1);
  EXPECT_GT(c1.kernels, 1);
  EXPECT_FALSE(c1.complete());
  EXPECT_EQ(measured.coverage(two.graph, two.program).measured, 0);
}

TEST(CostTable, VersionOneEntriesAreOneLaunchEach) {
  const CostTable t = CostTable::parse("ffc-costs 1\n# card math microseconds kernel\nh100 fp32 2.5 relu forward f32 {} in=4 out=4\n",
                                       "old.costs");
  const CostTable::Entry* e = t.find("h100", Math::fp32, "relu forward f32 {} in=4 out=4");
  ASSERT_NE(e, nullptr);
  EXPECT_DOUBLE_EQ(e->seconds, 2.5e-6);
  EXPECT_DOUBLE_EQ(e->launches, 1);
  // Version 2 reads the launches column; the key keeps its spaces.
  const CostTable t2 = CostTable::parse("ffc-costs 2\nh100 tf32 2.5 3 relu forward f32 {} in=4 out=4\n", "new.costs");
  EXPECT_DOUBLE_EQ(t2.find("h100", Math::tf32, "relu forward f32 {} in=4 out=4")->launches, 3);
}

// Each launch of a multi-rank step pays Machine::job_launch: measured launches for a kernel in the
// table, the analytical model's count for other kernels (a backward: one per gradient), one for
// every other instruction; phases pay nothing, and a single rank pays nothing.
TEST(Simulate, JobLaunchCostsEveryLaunchOfAMultiRankStep) {
  auto total = [](const CostedProgram& c, int rank) {
    double s = 0;
    for (const CostedProgram::Step& st : c.ranks[rank]) s += st.cost;
    return s;
  };
  Machine off = *machine_preset("h100");
  off.job_launch = 0;
  Machine on = off;
  on.job_launch = 2e-6;
  for (int ranks : {1, 2}) {
    Compiled c = compile(kLinear, ranks, 16);
    const Instr& fwd = find(c, InstrKind::forward, "fc");
    CostTable table;
    table.set(on.card, Math::fp32, kernel_key(c.graph, c.program.ranks[0], fwd), 5e-6, 3);
    AnalyticalCostModel a_off(off, Math::fp32), a_on(on, Math::fp32);
    MeasuredCostModel m_off(table, a_off), m_on(table, a_on);
    const CostedProgram base = cost_program(c.graph, c.program, m_off);
    const CostedProgram with = cost_program(c.graph, c.program, m_on);
    // fc's forward launches 3 times (the table); its backward once per gradient it computes (the
    // weight and the bias: x is an input, no gradient; the analytical count); every other compute
    // instruction once.
    const Instr& bwd = find(c, InstrKind::backward, "fc");
    EXPECT_DOUBLE_EQ(m_on.launches(c.graph, c.program.ranks[0], fwd), 3);
    EXPECT_DOUBLE_EQ(m_on.launches(c.graph, c.program.ranks[0], bwd), 2);
    double launches = 0;
    for (const Instr& in : c.program.ranks[0].step)
      if (in.kind != InstrKind::comm) launches += m_on.launches(c.graph, c.program.ranks[0], in);
    EXPECT_GE(launches, 5);
    const double expected = ranks > 1 ? 2e-6 * launches : 0.0;
    EXPECT_NEAR(total(with, 0) - total(base, 0), expected, 1e-12) << ranks << " ranks";
    EXPECT_EQ(with.phase_cost, base.phase_cost);  // phases pay nothing
  }
  EXPECT_DOUBLE_EQ(machine_preset("h100")->job_launch, 0.41e-6);
  EXPECT_DOUBLE_EQ(Machine{}.job_launch, 0);
  EXPECT_DOUBLE_EQ(parse_machine("job_launch_us = 0\n", "m.txt").job_launch, 0);
}

TEST(CostTable, ErrorsNameFileAndLine) {
  auto parse = [](const char* text) { return user_error_of([&] { CostTable::parse(text, "db.txt"); }); };
  EXPECT_EQ(parse("ffc-costs 3\n"),
            "db.txt:1: error: cost table version '3' is not supported (this ffc reads versions 1 and 2)");
  EXPECT_EQ(parse("# a comment\nh100 fp32 1 relu\n"), "db.txt:2: error: not a cost table: expected `ffc-costs 2` first");
  EXPECT_EQ(parse("ffc-costs 2\nh100 fp32 1.0 many relu forward\n"), "db.txt:2: error: 'many' is not a number of launches");
  EXPECT_EQ(parse("ffc-costs 2\nh100 fp32 1.0 2\n"), "db.txt:2: error: expected `CARD MATH MICROSECONDS LAUNCHES KERNEL`");
  EXPECT_EQ(parse("ffc-costs 1\nh100 fp16 1.0 relu forward\n"), "db.txt:2: error: math must be fp32 or tf32, got 'fp16'");
  EXPECT_EQ(parse("ffc-costs 1\nh100 fp32 soon relu forward\n"), "db.txt:2: error: 'soon' is not a time in microseconds");
  EXPECT_EQ(parse("ffc-costs 1\nh100 fp32\n"), "db.txt:2: error: expected `CARD MATH MICROSECONDS KERNEL`");
  EXPECT_EQ(parse(""), "db.txt: error: empty cost table: expected `ffc-costs 2` first");
}

}  // namespace
}  // namespace ffc
