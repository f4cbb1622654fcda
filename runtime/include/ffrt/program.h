// The driver of a program ffc emits: what the generated code describes (buffers, parameters,
// inputs, each rank's set-up and step) and the loop that runs it under mpirun.
//
// Generated code (ffc compile) declares every buffer of a rank as a `Buf` at the offset the memory
// plan gave it, and each rank's set-up and step as straight-line calls: op kernels (ffrt/ops.h),
// local copies and fills (ffrt/kernels.h), communication phases (ffrt/comm.h), and the Runner's
// helpers for what needs the model's tables (parameter initialization, input data — synthetic or a
// data set, each rank reading the samples of its boxes — optimizer steps, checkpoints).
#pragma once

#include <chrono>
#include <cstdint>
#include <future>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "ffrt/comm.h"
#include "ffrt/kernels.h"
#include "ffrt/ops.h"
#include "ffrt/view.h"

namespace ffrt {

/// A buffer of a rank: a box of a global tensor, dense row-major, at `offset` bytes into the rank's
/// persistent region or its arena, as planned for the compiled global batch.
///
/// Along its batch dims (bit d of `batch`), every extent and coordinate of the buffer and of its
/// views is proportional to the global batch: a run with global batch b scales them by b / compiled
/// (ModelInfo::batch_unit says which b keep them integers). A smaller batch keeps the plan's
/// offsets; a larger one multiplies the arena's by ceil(b / compiled), so that each buffer keeps a
/// slot as many times larger.
struct Buf {
  int64_t offset = 0;
  bool persistent = false;
  DType dtype = DType::f32;
  int rank = 0;
  int64_t full[kMaxRank] = {};
  int64_t lo[kMaxRank] = {};
  int64_t size[kMaxRank] = {};
  uint32_t batch = 0;
};

/// A parameter (or state tensor) of the model and its blocks on the ranks.
struct ParamEntry {
  std::string name;  ///< its checkpoint name
  Init init = Init::zeros;
  int64_t fan_in = 1;
  bool trainable = true;
  std::vector<int64_t> shape;
  struct Block {
    int rank;
    const Buf* buf;
    const Buf* state1 = nullptr;  ///< the optimizer state of this block (momentum, Adam's m), if planned
    const Buf* state2 = nullptr;  ///< Adam's v
  };
  std::vector<Block> blocks;  ///< every replica of every block
};

/// An input op: synthetic data is drawn from (its name, the seed, global element indices), unless
/// a data set feeds it.
struct InputEntry {
  enum Role { other = 0, samples = 1, labels = 2 };
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;  ///< the whole batch
  int64_t classes = 0;         ///< i64 inputs: labels or ids in [0, classes)
  Role role = other;           ///< what a data set (-d) feeds it
};

class Runner;
class Dataset;
struct HostArray;

/// Everything generated code tells the driver about the model.
struct ModelInfo {
  std::string name;
  std::string strategy;  ///< the strategy table, printed at start
  int ranks = 1;
  int64_t batch = 0;       ///< the compiled global batch
  int64_t batch_unit = 0;  ///< a run's global batch must be a multiple of it (0: the compiled batch only)
  std::vector<std::vector<int>> groups;
  std::vector<ParamEntry> params;
  std::vector<InputEntry> inputs;
  /// An op whose kernels change from step to step beyond the inputs (dropout draws new masks), so
  /// that a recorded step cannot be replayed (--cuda-graph names it); empty when there is none.
  std::string graph_blocker;
  struct Rank {
    int64_t persistent_bytes = 0, arena_bytes = 0;
    void (*setup)(Runner&) = nullptr;
    void (*forward)(Runner&) = nullptr;  ///< the forward up to the whole loss (evaluation)
    void (*step)(Runner&) = nullptr;     ///< one training iteration (its forward first)
    const Buf* loss = nullptr;  ///< where the whole loss is after a step
  };
  std::vector<Rank> rank_programs;
};

struct RunOptions {
  int64_t batch = 0;  ///< the global batch (-b); 0: the compiled one
  int64_t iterations = 10;
  int64_t epochs = 0;        ///< with a data set: overrides iterations
  std::string dataset;       ///< a directory of inputs.npy + labels.npy or IDX files; synthetic when empty
  std::string load;          ///< a safetensors checkpoint to start from
  int64_t start_iteration = 0;  ///< the first iteration's index: which batch of the data it takes
  float lr = 0.01f, momentum = 0.f, weight_decay = 0.f;
  bool adam = false;
  bool eval = false;  ///< after training: accuracy on the data set's test split
  int loaders = 1;    ///< threads reading the next iteration's samples while this one runs; 0: none
  bool tf32 = false;  ///< --math tf32
  uint64_t seed = 0;
  int64_t print_freq = 1;
  int threads = 0;
  std::string save, log_json;
  std::string trace;  ///< --trace: the last iteration's timeline, Chrome trace-event JSON
  bool cuda_graph = false;  ///< --cuda-graph: replay the steady-state step as recorded CUDA graphs
};

/// What generated code calls while a rank runs.
class Runner {
 public:
  Runner(const ModelInfo& m, Comm& comm, const RunOptions& opts);
  ~Runner();

  Context& ctx() { return *ctx_; }
  Comm& comm() { return comm_; }
  const StepInfo& info() const { return info_; }

  /// The whole buffer, or a box of it.
  View whole(const Buf& b) const;
  View view(const Buf& b, std::initializer_list<int64_t> lo, std::initializer_list<int64_t> size) const;
  /// An operand a part does not need: a box with no data of a tensor whose batch dims are `batch`.
  View absent(DType dtype, uint32_t batch, std::initializer_list<int64_t> full, std::initializer_list<int64_t> lo,
              std::initializer_list<int64_t> size) const;

  void init_param(int param, const View& v);
  /// The box of input `input` for this iteration.
  void load_input(int input, const View& v);
  /// The optimizer step of one block of parameter `param` (state1/state2 nullable).
  void update(int param, const View& w, const View& g, const View* state1, const View* state2);
  /// A classification loss part's logits and labels: while evaluating, counts its correct
  /// predictions; in training, nothing.
  void score(const View& logits, const View& labels);

  /// --trace: the step's next instruction is `name` (a string literal; generated code marks each).
  /// A branch when the iteration is not traced.
  void mark(const char* name) {
    if (tracing_) mark_traced(name);
  }
  /// Starts a phase (named by the last mark): with --trace, timed on the communication lane.
  void start(Comm::Phase& ph);
  /// Later kernels see the phase's results.
  void finish(Comm::Phase& ph) { ph.finish(); }
  /// A phase the next instruction needs: start, then finish.
  void run(Comm::Phase& ph) {
    start(ph);
    ph.finish();
  }

  /// Runs set-up, then the iterations, then the evaluation (--eval); returns the last loss.
  float run();

 private:
  void check_dataset(const Dataset& d) const;
  /// The host rows of a data-set input's box at the current step: read ahead by the loaders, or now.
  HostArray rows_of(const InputEntry& in, const View& v);
  /// Starts reading the samples of step `step` for the boxes this rank loaded in the last step.
  void read_ahead(int64_t step);
  /// Accuracy over the test split, every rank's parts counted.
  double evaluate();
  void save_checkpoint();
  void load_checkpoint();
  /// --trace: marks from now on are the traced iteration's (begin) until "end of step" (end).
  void begin_trace(std::chrono::steady_clock::time_point start);
  void end_trace();
  void mark_traced(const char* name);
  /// --cuda-graph: records a step as graphs between its data loads (the loads stay eager: each
  /// iteration reads its own samples), then replays it.
  void capture_step(const ModelInfo::Rank& r);
  void replay_step();
  /// load_input's work: the input's box for the current step.
  void load_now(int input, const View& v);
  /// Ends the traced iteration: every rank's timeline, gathered into the --trace file by rank 0.
  void write_trace(double iteration_s, bool replayed);
  /// A view of the box [lo, lo + size) of b, at this run's batch.
  View make(const Buf& b, const int64_t* lo, const int64_t* size) const;
  /// out = q with its dims in `dims` (bit d: dim d is the batch) scaled from the compiled batch to
  /// this run's: exactly, as the run's batch is a multiple of ModelInfo::batch_unit.
  void at_batch(uint32_t dims, int rank, const int64_t* q, int64_t* out) const;
  const ModelInfo& m_;
  Comm& comm_;
  RunOptions opts_;
  int64_t batch_ = 0;   ///< this run's global batch
  int64_t growth_ = 1;  ///< the arena's offsets are the plan's times this (a batch over the compiled one)
  std::unique_ptr<Context, void (*)(Context*)> ctx_;
  std::shared_ptr<std::byte> persistent_, arena_;  ///< backend memory
  StepInfo info_;
  int64_t updates_ = 0;
  std::unique_ptr<Dataset> data_;
  /// Data-set loads of one step, in the order the rank program makes them (recorded in the first
  /// step): which input, which rows of the batch.
  struct Load {
    const InputEntry* in;
    int64_t lo, n;
    std::vector<int64_t> rows;  ///< the host array's shape: n, then the sample's
  };
  std::vector<Load> loads_;
  size_t next_load_ = 0;
  std::vector<std::unique_ptr<Dataset>> loader_data_;  ///< one per loader thread (readers keep state)
  int64_t ahead_step_ = -1;                           ///< the step the loaders are reading
  std::vector<std::future<std::vector<HostArray>>> ahead_;  ///< per loader: its loads' rows, in order
  std::vector<std::vector<HostArray>> ahead_rows_;           ///< what each loader's future gave
  Dataset* source_ = nullptr;  ///< what load_input reads: data_, or the test split while evaluating
  bool evaluating_ = false;
  int64_t valid_rows_ = 0;                ///< evaluating: samples of this batch that are not wrapped
  std::shared_ptr<std::byte> correct_;    ///< evaluating: the correct predictions (f64, backend memory)
  /// --trace: what the traced iteration recorded, in order. A compute entry lasts from its mark to
  /// the next compute entry's; a communication entry from its begin mark to its end mark.
  struct TraceEntry {
    const char* name;
    bool comm;
    int begin, end;  ///< mark indices (ffrt/kernels.h); compute: end unused
    double host_us;  ///< when the host issued it, after the iteration began
  };
  /// --cuda-graph: the recorded step, in order: a graph, or a data load (input, view).
  struct Segment {
    std::shared_ptr<Graph> graph;
    int input = -1;
    View view;
  };
  std::vector<Segment> segments_;
  bool capturing_ = false;
  bool tracing_ = false;
  std::vector<TraceEntry> trace_;
  std::chrono::steady_clock::time_point trace_start_;
};

/// The emitted program's main: flags, checks, the run, the checkpoint. Returns the exit code.
int run_main(int argc, char** argv, const ModelInfo& m);

}  // namespace ffrt
