// The driver of emitted programs (include/ffrt/program.h).
#include "ffrt/program.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "ffrt/dataset.h"
#include "ffrt/npy.h"
#include "ffrt/philox.h"
#include "ffrt/safetensors.h"

namespace ffrt {

namespace {

/// How many times the arena's plan a run of global batch `batch` needs (its offsets scale by it).
int64_t arena_growth(const ModelInfo& m, int64_t batch) { return batch <= m.batch ? 1 : (batch + m.batch - 1) / m.batch; }

/// The step a run's global batch must be a multiple of (the compiled batch when codegen gave none).
int64_t batch_unit(const ModelInfo& m) { return m.batch_unit > 0 ? m.batch_unit : m.batch; }

/// Whether the strategy's parts split global batch `batch` into whole samples.
bool batch_splits(const ModelInfo& m, int64_t batch) { return batch == m.batch || (batch > 0 && batch % batch_unit(m) == 0); }

}  // namespace

Runner::Runner(const ModelInfo& m, Comm& comm, const RunOptions& opts)
    : m_(m), comm_(comm), opts_(opts), batch_(opts.batch > 0 ? opts.batch : m.batch), growth_(arena_growth(m, batch_)),
      ctx_(make_context({opts.threads, comm.local_rank(), comm.rank(), opts.tf32})) {
  if (!batch_splits(m_, batch_))
    throw Error("program: a global batch of " + std::to_string(batch_) + " does not split as the strategy does");
  const ModelInfo::Rank& r = m_.rank_programs.at(comm_.rank());
  persistent_ = allocate(*ctx_, static_cast<size_t>(r.persistent_bytes));
  arena_ = allocate(*ctx_, static_cast<size_t>(r.arena_bytes * growth_));
  info_.seed = opts.seed;
  if (!opts_.dataset.empty()) {
    data_ = std::make_unique<Dataset>(Dataset::open(opts_.dataset, Split::train));
    check_dataset(*data_);
    source_ = data_.get();
    for (int i = 0; i < opts_.loaders; ++i)
      loader_data_.push_back(std::make_unique<Dataset>(Dataset::open(opts_.dataset, Split::train)));
    if (opts_.epochs > 0) opts_.iterations = opts_.epochs * ((data_->size() + batch_ - 1) / batch_);
  }
}

Runner::~Runner() = default;

void Runner::check_dataset(const Dataset& d) const {
  for (const InputEntry& in : m_.inputs) {
    if (in.role == InputEntry::other) continue;
    const bool samples = in.role == InputEntry::samples;
    const std::vector<int64_t> want(in.shape.begin() + 1, in.shape.end());
    const std::vector<int64_t>& have = samples ? d.input_shape() : d.label_shape();
    const DType have_type = samples ? d.input_dtype() : d.label_dtype();
    if (have != want || have_type != in.dtype)
      throw Error(opts_.dataset + ": the data set's " + (samples ? "inputs" : "labels") + " are " +
                  dtype_name(have_type) + " " + shape_str(have) + " per sample, but input '" + in.name + "' takes " +
                  dtype_name(in.dtype) + " " + shape_str(want));
  }
}

View Runner::make(const Buf& b, const int64_t* lo, const int64_t* size) const {
  std::byte* base = static_cast<std::byte*>(b.persistent ? persistent_.get() : arena_.get());
  const int64_t offset = b.persistent ? b.offset : b.offset * growth_;
  if (!b.batch || batch_ == m_.batch)
    return sub_view(make_view(base + offset, b.dtype, b.rank, b.full, b.lo, b.size), lo, size);
  int64_t full[kMaxRank], blo[kMaxRank], bsize[kMaxRank], vlo[kMaxRank], vsize[kMaxRank];
  at_batch(b.batch, b.rank, b.full, full);
  at_batch(b.batch, b.rank, b.lo, blo);
  at_batch(b.batch, b.rank, b.size, bsize);
  at_batch(b.batch, b.rank, lo, vlo);
  at_batch(b.batch, b.rank, size, vsize);
  return sub_view(make_view(base + offset, b.dtype, b.rank, full, blo, bsize), vlo, vsize);
}

void Runner::at_batch(uint32_t dims, int rank, const int64_t* q, int64_t* out) const {
  for (int d = 0; d < rank; ++d) out[d] = dims >> d & 1u ? q[d] * batch_ / m_.batch : q[d];
}

View Runner::whole(const Buf& b) const { return make(b, b.lo, b.size); }

View Runner::view(const Buf& b, std::initializer_list<int64_t> lo, std::initializer_list<int64_t> size) const {
  if (static_cast<int>(lo.size()) != b.rank || static_cast<int>(size.size()) != b.rank)
    throw Error("program: a view of the wrong rank");
  return make(b, lo.begin(), size.begin());
}

View Runner::absent(DType dtype, uint32_t batch, std::initializer_list<int64_t> full, std::initializer_list<int64_t> lo,
                    std::initializer_list<int64_t> size) const {
  const int rank = static_cast<int>(full.size());
  int64_t f[kMaxRank], l[kMaxRank], s[kMaxRank];
  at_batch(batch, rank, full.begin(), f);
  at_batch(batch, rank, lo.begin(), l);
  at_batch(batch, rank, size.begin(), s);
  View v = make_view(nullptr, dtype, rank, f, l, s);
  v.data = nullptr;
  return v;
}

void Runner::init_param(int param, const View& v) {
  const ParamEntry& p = m_.params.at(param);
  ffrt::init_param(*ctx_, p.init, p.fan_in, key_of(p.name.c_str(), opts_.seed), v);
}

void Runner::load_input(int input, const View& v) {
  if (capturing_) {  // a graph ends here; the load runs eagerly in every replay
    segments_.push_back({end_capture(*ctx_), -1, {}});
    segments_.push_back({nullptr, input, v});
    begin_capture(*ctx_);
    return;
  }
  load_now(input, v);
}

void Runner::load_now(int input, const View& v) {
  // Synthetic sample s of the stream is the same whatever the split: its global index is
  // step * batch + s, as in ffc's executors.
  const InputEntry& in = m_.inputs.at(input);
  if (source_ && in.role != InputEntry::other && v.rank > 0) {
    // The samples of this box's rows (every element of them), then the box.
    HostArray part = rows_of(in, v);
    std::vector<int64_t> lo(v.rank, 0);
    lo[0] = v.lo[0];
    upload(*ctx_, make_view(part.bytes.data(), in.dtype, v.rank, v.full, lo.data(), part.shape.data()), v);
    return;
  }
  View shifted = v;
  if (shifted.rank > 0) {
    shifted.lo[0] += info_.step * batch_;
    shifted.full[0] += info_.step * batch_;
  }
  fill_synthetic(*ctx_, key_of(in.name.c_str(), opts_.seed), in.dtype == DType::i64 ? in.classes : 0, shifted);
}

namespace {

HostArray read_rows(Dataset& d, const InputEntry& in, int64_t step, int64_t batch, int64_t lo, int64_t n,
                    const std::vector<int64_t>& rows) {
  HostArray part(in.dtype, rows);
  const bool samples = in.role == InputEntry::samples;
  d.batch(step, batch, lo, lo + n, samples ? part.bytes.data() : nullptr, samples ? nullptr : part.bytes.data());
  return part;
}

}  // namespace

HostArray Runner::rows_of(const InputEntry& in, const View& v) {
  std::vector<int64_t> rows(v.full, v.full + v.rank);
  rows[0] = v.size[0];
  const size_t k = next_load_++;
  const bool training = source_ == data_.get();
  if (training && info_.step == opts_.start_iteration) loads_.push_back({&in, v.lo[0], v.size[0], rows});
  // Rows the loaders read ahead: loader i took loads i, i + loaders, ...
  if (training && ahead_step_ == info_.step && k < loads_.size() && loads_[k].in == &in && loads_[k].lo == v.lo[0] &&
      loads_[k].n == v.size[0]) {
    const size_t loader = k % ahead_.size();
    if (ahead_[loader].valid()) ahead_rows_[loader] = ahead_[loader].get();
    return std::move(ahead_rows_[loader].at(k / ahead_.size()));
  }
  return read_rows(*source_, in, info_.step, batch_, v.lo[0], v.size[0], rows);
}

void Runner::read_ahead(int64_t step) {
  if (loader_data_.empty() || loads_.empty()) return;
  const size_t loaders = std::min(loader_data_.size(), loads_.size());
  ahead_.clear();
  ahead_rows_.assign(loaders, {});
  for (size_t i = 0; i < loaders; ++i)
    ahead_.push_back(std::async(std::launch::async, [this, i, loaders, step] {
      std::vector<HostArray> out;
      for (size_t k = i; k < loads_.size(); k += loaders)
        out.push_back(read_rows(*loader_data_[i], *loads_[k].in, step, batch_, loads_[k].lo, loads_[k].n, loads_[k].rows));
      return out;
    }));
  ahead_step_ = step;
}

void Runner::update(int param, const View& w, const View& g, const View* state1, const View* state2) {
  (void)param;
  if (!opts_.adam) {
    SgdAttrs a;
    a.lr = opts_.lr;
    a.momentum = opts_.momentum;
    a.weight_decay = opts_.weight_decay;
    if (a.momentum != 0.f && !state1) throw Error("program: momentum needs a state buffer the plan did not make");
    sgd_step(*ctx_, a, w, g, a.momentum != 0.f ? state1 : nullptr, updates_ == 1);
    return;
  }
  if (!state1 || !state2) throw Error("program: Adam needs two state buffers the plan did not make");
  AdamAttrs a;
  a.lr = opts_.lr;
  a.weight_decay = opts_.weight_decay;
  a.step = updates_;
  adam_step(*ctx_, a, w, g, *state1, *state2);
}

void Runner::score(const View& logits, const View& labels) {
  if (evaluating_)
    count_correct(*ctx_, logits, labels, valid_rows_, make_view(correct_.get(), DType::f64, 0, nullptr, nullptr, nullptr));
}

// Batch b of the test split is its samples [b*B, b*B + B), the last batch wrapping to the start;
// only the samples before the end are counted.
double Runner::evaluate() {
  Dataset test = Dataset::open(opts_.dataset, Split::test);
  check_dataset(test);
  const ModelInfo::Rank& r = m_.rank_programs.at(comm_.rank());
  const bool scored = std::any_of(m_.inputs.begin(), m_.inputs.end(),
                                  [](const InputEntry& in) { return in.role == InputEntry::labels; });
  if (!scored) throw Error("--eval: the model has no classification labels to score");
  correct_ = allocate(*ctx_, sizeof(double));
  source_ = &test;
  evaluating_ = true;
  info_.training = false;
  const int64_t n = test.size(), batches = (n + batch_ - 1) / batch_;
  for (int64_t b = 0; b < batches; ++b) {
    info_.step = b;
    valid_rows_ = std::min(batch_, n - b * batch_);
    r.forward(*this);
  }
  const View count = make_view(correct_.get(), DType::f64, 0, nullptr, nullptr, nullptr);
  Comm::Phase ph(comm_, *ctx_);
  ph.all_reduce(count, static_cast<int>(m_.groups.size()));
  ph.run();
  double correct = 0;
  download(*ctx_, count, make_view(&correct, DType::f64, 0, nullptr, nullptr, nullptr));
  source_ = data_.get();
  evaluating_ = false;
  info_.training = true;
  if (comm_.rank() == 0) {
    std::printf("test accuracy %.4f (%lld/%lld)\n", correct / static_cast<double>(n), static_cast<long long>(correct),
                static_cast<long long>(n));
    std::fflush(stdout);
  }
  return correct / static_cast<double>(n);
}

float Runner::run() {
  const ModelInfo::Rank& r = m_.rank_programs.at(comm_.rank());
  r.setup(*this);
  if (!opts_.load.empty()) load_checkpoint();
  const auto start = std::chrono::steady_clock::now();
  std::FILE* log = nullptr;
  if (!opts_.log_json.empty() && comm_.rank() == 0) {
    log = std::fopen(opts_.log_json.c_str(), "w");
    if (!log) throw Error("cannot write " + opts_.log_json);
  }
  float loss = 0;
  for (int64_t k = 0; k < opts_.iterations; ++k) {
    info_.step = opts_.start_iteration + k;  // the data stream continues where a checkpointed run stopped
    ++updates_;
    next_load_ = 0;
    // --cuda-graph: iterations 1 and 2 run eagerly (the first chooses algorithms and fills the
    // caches; the first optimizer step differs), the third is recorded, the rest replay it.
    constexpr int64_t kCaptureAt = 2;
    const bool graphed = opts_.cuda_graph && k >= kCaptureAt;
    // --trace times the last iteration: the earlier ones choose algorithms and fill caches. A
    // replayed step's marks were recorded into its graph (capture_step); an eager one marks now.
    const bool traced = !opts_.trace.empty() && k + 1 == opts_.iterations;
    std::chrono::steady_clock::time_point traced_start;
    if (traced) {
      synchronize(*ctx_);
      comm_.gather("");  // every rank begins together
      traced_start = std::chrono::steady_clock::now();
      if (!graphed) begin_trace(traced_start);
    }
    if (opts_.cuda_graph && k > kCaptureAt)
      replay_step();
    else if (opts_.cuda_graph && k == kCaptureAt)
      capture_step(r);
    else
      r.step(*this);
    if (traced) {
      if (!graphed) end_trace();
      synchronize(*ctx_);
      write_trace(std::chrono::duration<double>(std::chrono::steady_clock::now() - traced_start).count(), graphed);
    }
    // The loaders read the next iteration's samples while the device finishes this one.
    if (k + 1 < opts_.iterations) read_ahead(info_.step + 1);
    download(*ctx_, whole(*r.loss), make_view(&loss, DType::f32, 0, nullptr, nullptr, nullptr));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double rate = static_cast<double>((k + 1) * batch_) / s;
    if (comm_.rank() == 0) {
      if ((k + 1) % opts_.print_freq == 0 || k + 1 == opts_.iterations) {
        const double eta = s / static_cast<double>(k + 1) * static_cast<double>(opts_.iterations - k - 1);
        std::printf("iter %lld/%lld loss %.6f (%.1f samples/s, ETA %.1f s)\n",
                    static_cast<long long>(opts_.start_iteration + k + 1),
                    static_cast<long long>(opts_.start_iteration + opts_.iterations), loss, rate, eta);
        std::fflush(stdout);
      }
      if (log)
        std::fprintf(log, "{\"iter\": %lld, \"loss\": %.9g, \"samples_per_s\": %.6g, \"time_s\": %.6g}\n",
                     static_cast<long long>(opts_.start_iteration + k + 1), loss, rate, s);
    }
    if (!std::isfinite(loss)) throw Error("iteration " + std::to_string(k + 1) + ": the loss is not finite");
  }
  if (log) std::fclose(log);
  if (!opts_.save.empty()) save_checkpoint();
  if (opts_.eval) evaluate();
  return loss;
}

void Runner::capture_step(const ModelInfo::Rank& r) {
  segments_.clear();
  synchronize(*ctx_);
  comm_.set_capturing(true);
  capturing_ = true;
  begin_capture(*ctx_);
  // --trace: the marks become nodes of the graphs, recorded again by every replay; the last
  // replay's are the trace (run()).
  if (!opts_.trace.empty()) begin_trace(std::chrono::steady_clock::now());
  r.step(*this);
  if (!opts_.trace.empty()) end_trace();
  segments_.push_back({end_capture(*ctx_), -1, {}});
  capturing_ = false;
  comm_.set_capturing(false);
  replay_step();  // the recorded iteration itself
}

void Runner::replay_step() {
  for (const Segment& s : segments_) {
    if (s.graph) replay(*ctx_, *s.graph);
    else load_now(s.input, s.view);
  }
  comm_.track(*ctx_, "a replay of the step's CUDA graphs");
}

void Runner::begin_trace(std::chrono::steady_clock::time_point start) {
  tracing_ = true;
  trace_.clear();
  trace_start_ = start;
}

void Runner::end_trace() {
  mark_traced("end of step");
  tracing_ = false;
}

void Runner::mark_traced(const char* name) {
  const double host = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - trace_start_).count();
  trace_.push_back({name, false, ffrt::mark(*ctx_, Lane::compute), -1, host});
}

void Runner::start(Comm::Phase& ph) {
  ph.timed = tracing_;
  ph.start();
  if (!tracing_ || ph.marks[0] < 0) return;
  const char* name = "phase";
  for (auto e = trace_.rbegin(); e != trace_.rend(); ++e)
    if (!e->comm) {
      name = e->name;
      break;
    }
  trace_.push_back({name, true, ph.marks[0], ph.marks[1], trace_.empty() ? 0.0 : trace_.back().host_us});
}

namespace {

std::string json_string(const char* v) {
  std::string s = "\"";
  for (; *v; ++v) {
    if (*v == '"' || *v == '\\') s += '\\';
    if (static_cast<unsigned char>(*v) >= 0x20) s += *v;
  }
  return s + "\"";
}

}  // namespace

// Chrome trace-event JSON in the simulator's layout (ffc simulate --trace): a process per rank,
// thread 0 its compute stream, thread 1 its communication, thread 2 the host issuing the step.
// Times are microseconds from the rank's first mark; the ranks began the iteration together. A
// replayed graph has no host row: its instructions were issued once, when it was recorded.
void Runner::write_trace(double iteration_s, bool replayed) {
  const std::vector<double> t = mark_times(*ctx_);
  const int rank = comm_.rank();
  std::string out;
  auto event = [&](const char* name, int tid, double ts, double dur) {
    char num[96];
    std::snprintf(num, sizeof num, ", \"ph\": \"X\", \"pid\": %d, \"tid\": %d, \"ts\": %.3f, \"dur\": %.3f}", rank, tid, ts,
                  dur < 0 ? 0.0 : dur);
    out += ",\n  {\"name\": " + json_string(name) + ", \"cat\": \"" + (tid == 1 ? "comm" : tid == 2 ? "host" : "compute") +
           "\"" + num;
  };
  char meta[512];
  std::snprintf(meta, sizeof meta,
                ",\n  {\"name\": \"process_name\", \"ph\": \"M\", \"pid\": %d, \"args\": {\"name\": \"rank %d\"}}"
                ",\n  {\"name\": \"process_sort_index\", \"ph\": \"M\", \"pid\": %d, \"args\": {\"sort_index\": %d}}"
                ",\n  {\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": %d, \"tid\": 0, \"args\": {\"name\": \"compute\"}}"
                ",\n  {\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": %d, \"tid\": 1, \"args\": {\"name\": \"communication\"}}"
                ",\n  {\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": %d, \"tid\": 2, \"args\": {\"name\": \"host\"}}",
                rank, rank, rank, rank, rank, rank, rank);
  out += meta;
  const TraceEntry* prev = nullptr;  // the last compute entry
  for (const TraceEntry& e : trace_) {
    if (e.comm) {
      event(e.name, 1, t.at(e.begin), t.at(e.end) - t.at(e.begin));
      continue;
    }
    if (prev) {
      event(prev->name, 0, t.at(prev->begin), t.at(e.begin) - t.at(prev->begin));
      if (!replayed) event(prev->name, 2, prev->host_us, e.host_us - prev->host_us);
    }
    prev = &e;
  }
  const std::vector<std::string> all = comm_.gather(out);
  if (rank != 0) return;
  std::FILE* f = std::fopen(opts_.trace.c_str(), "w");
  if (!f) throw Error("cannot write " + opts_.trace);
  std::string head = "{\"displayTimeUnit\": \"ms\",\n \"otherData\": {\"title\": " + json_string(m_.name.c_str()) +
                     ", \"backend\": " + json_string(backend_name());
  char it[64];
  std::snprintf(it, sizeof it, ", \"cuda_graph\": %s, \"measured_iteration_us\": %.3f}", replayed ? "true" : "false",
                iteration_s * 1e6);
  head += it;
  head += ",\n \"traceEvents\": [\n  {\"name\": \"trace\", \"ph\": \"M\", \"pid\": 0, \"args\": {}}";
  std::fputs(head.c_str(), f);
  for (const std::string& r : all) std::fputs(r.c_str(), f);
  std::fputs("\n]}\n", f);
  if (std::fclose(f) != 0) throw Error("cannot write " + opts_.trace);
  std::printf("trace of iteration %lld (%.3f ms) written to %s\n", static_cast<long long>(opts_.iterations),
              iteration_s * 1e3, opts_.trace.c_str());
  std::fflush(stdout);
}

// Every rank adds the blocks it owns (the first replica of each) into whole tensors, the sum over
// all ranks is the model, and rank 0 writes it (atomically: safetensors' writer renames into place).
// The optimizer's state goes with it (torch.optim's names, ffrt/safetensors.h), and the update count.
void Runner::save_checkpoint() {
  std::map<std::string, HostArray> tensors;
  const int all = static_cast<int>(m_.groups.size());  // run_main adds the group of every rank last
  auto gather = [&](const ParamEntry& p, const Buf* ParamEntry::Block::*which) {
    HostArray host(DType::f32, p.shape);
    const View host_view = host.view();
    const std::shared_ptr<std::byte> mem = allocate(*ctx_, host.bytes.size());
    View sum = host_view;
    sum.data = mem.get();
    std::set<std::vector<int64_t>> seen;
    for (const ParamEntry::Block& b : p.blocks) {
      std::vector<int64_t> key(b.buf->lo, b.buf->lo + b.buf->rank);
      key.insert(key.end(), b.buf->size, b.buf->size + b.buf->rank);
      if (!seen.insert(key).second || b.rank != comm_.rank()) continue;
      copy_box(*ctx_, whole(*(b.*which)), sum, false);
    }
    Comm::Phase ph(comm_, *ctx_);
    ph.all_reduce(sum, all);
    ph.run();
    download(*ctx_, sum, host_view);
    return host;
  };
  const bool stateful = opts_.adam || opts_.momentum != 0.f;
  for (const ParamEntry& p : m_.params) {
    tensors.emplace(p.name, gather(p, &ParamEntry::Block::buf));
    if (!stateful || !p.trainable || p.blocks.empty() || !p.blocks[0].state1) continue;
    const std::vector<std::string> names = optimizer_state_names(p.name, opts_.adam);
    tensors.emplace(names[0], gather(p, &ParamEntry::Block::state1));
    if (opts_.adam) tensors.emplace(names[1], gather(p, &ParamEntry::Block::state2));
  }
  if (comm_.rank() == 0) {
    write_safetensors(opts_.save, tensors,
                      {{"model", m_.name}, {"written_by", "ffc-generated program"}, {kOptimizerStep, std::to_string(updates_)}});
    std::printf("wrote %s\n", opts_.save.c_str());
  }
}

// Every rank reads the whole tensors and copies its blocks out of them; the optimizer's state too,
// when the checkpoint has it and this run's optimizer keeps it (else it starts afresh).
void Runner::load_checkpoint() {
  SafetensorsReader file(opts_.load);
  std::set<std::string> known;
  auto load = [&](const ParamEntry& p, const std::string& name, const Buf* ParamEntry::Block::*which) {
    if (!file.contains(name)) throw Error(opts_.load + ": no tensor '" + name + "' in the checkpoint");
    const auto& e = file.entry(name);
    if (e.dtype != DType::f32 || e.shape != p.shape)
      throw Error(opts_.load + ": tensor '" + name + "' is " + dtype_name(e.dtype) + " " + shape_str(e.shape) +
                  ", the model's is f32 " + shape_str(p.shape));
    HostArray whole_tensor(DType::f32, p.shape);
    file.read(name, whole_tensor.bytes.data());
    for (const ParamEntry::Block& b : p.blocks)
      if (b.rank == comm_.rank() && b.*which) upload(*ctx_, whole_tensor.view(), whole(*(b.*which)));
  };
  const bool stateful = opts_.adam || opts_.momentum != 0.f;
  bool loaded_state = false;
  for (const ParamEntry& p : m_.params) {
    load(p, p.name, &ParamEntry::Block::buf);
    known.insert(p.name);
    for (bool adam : {false, true})
      for (const std::string& n : optimizer_state_names(p.name, adam)) known.insert(n);
    const std::vector<std::string> names = optimizer_state_names(p.name, opts_.adam);
    if (!stateful || !p.trainable || p.blocks.empty() || !p.blocks[0].state1 || !file.contains(names[0])) continue;
    load(p, names[0], &ParamEntry::Block::state1);
    if (opts_.adam) load(p, names[1], &ParamEntry::Block::state2);
    loaded_state = true;
  }
  for (const auto& [name, entry] : file.entries())
    if (!known.count(name)) throw Error(opts_.load + ": the checkpoint has a tensor the model does not: " + name);
  // The update count continues (Adam's bias correction; SGD's first step takes the gradient as momentum).
  const auto step = file.metadata().find(kOptimizerStep);
  if (loaded_state && step != file.metadata().end()) updates_ = std::stoll(step->second);
}

namespace {

[[noreturn]] void usage_error(Comm& comm, const std::string& message) {
  if (comm.rank() == 0) std::fprintf(stderr, "error: %s\n", message.c_str());
  comm.abort(message);
}

constexpr const char* kUsage = R"(usage: mpirun -np RANKS %s [flags]

Trains the model on the strategy it was compiled for (one rank per device of the strategy).
  -e, --epochs N         passes over the data set (-d); overrides --iterations
  --iterations N         training iterations (default 10)
  -b, --batch-size N     the global batch (default %lld, the compiled one): a multiple of %lld
  --lr X  --momentum X  --wd X  --optimizer sgd|adam
                         the optimizer (default sgd, lr 0.01, no momentum, no weight decay)
  -d, --dataset DIR      IDX files (MNIST, Fashion-MNIST) or inputs.npy + labels.npy; synthetic without
  --eval                 after training, accuracy on the data set's test split
  --loaders N            threads reading the next iteration's samples (default 1; 0: none)
  --seed S               synthetic data and initial weights (default 0)
  --load FILE            start from a checkpoint (safetensors, written under any strategy)
  --save FILE            write a checkpoint at the end (atomically)
  --start-iteration K    the first iteration's index in the data stream (continuing a run)
  -p, --print-freq N     progress every N iterations (default 1)
  --log-json FILE        one JSON object per iteration: iter, loss, samples_per_s, time_s
  --math fp32|tf32       tf32: tensor cores may round convolution and GEMM inputs (cuda)
  --trace FILE           the last iteration's timeline, per rank and stream (Chrome trace JSON)
  --cuda-graph           replay the steady-state step as CUDA graphs (cuda; sgd; no dropout)
  --threads N            cpu backend worker threads (default: all cores)
  -h, --help             this text
Environment: FFRT_NCCL_TIMEOUT (seconds a phase may wait for its peers, default 300).
)";

}  // namespace

int run_main(int argc, char** argv, const ModelInfo& m) {
  std::unique_ptr<Comm> comm = Comm::init(&argc, &argv);
  RunOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      if (comm->rank() == 0)
        std::printf(kUsage, m.name.c_str(), static_cast<long long>(m.batch),
                    static_cast<long long>(batch_unit(m)));
      return 0;
    }
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(*comm, a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--iterations") o.iterations = std::stoll(value());
      else if (a == "--start-iteration") o.start_iteration = std::stoll(value());
      else if (a == "-e" || a == "--epochs") o.epochs = std::stoll(value());
      else if (a == "-d" || a == "--dataset") o.dataset = value();
      else if (a == "--load") o.load = value();
      else if (a == "--eval") o.eval = true;
      else if (a == "--loaders") o.loaders = std::max(0, std::stoi(value()));
      else if (a == "--math") {
        const std::string v = value();
        if (v != "fp32" && v != "tf32") usage_error(*comm, "--math takes fp32 or tf32, not " + v);
        o.tf32 = v == "tf32";
      }
      else if (a == "-b" || a == "--batch-size") {
        o.batch = std::stoll(value());
        // The strategy splits the batch into parts: another batch must split the same way.
        if (!batch_splits(m, o.batch))
          usage_error(*comm, "-b " + std::to_string(o.batch) + ": the strategy splits the global batch into parts " +
                                 "of whole samples; the batch must be a multiple of " + std::to_string(batch_unit(m)) +
                                 " (compiled for " + std::to_string(m.batch) + "), or recompile with ffc compile -b " +
                                 std::to_string(o.batch));
      } else if (a == "--lr") o.lr = std::stof(value());
      else if (a == "--wd") o.weight_decay = std::stof(value());
      else if (a == "--momentum") o.momentum = std::stof(value());
      else if (a == "--optimizer") {
        const std::string v = value();
        if (v != "sgd" && v != "adam") usage_error(*comm, "--optimizer takes sgd or adam, not " + v);
        o.adam = v == "adam";
      } else if (a == "--seed") o.seed = std::stoull(value());
      else if (a == "-p" || a == "--print-freq") o.print_freq = std::max<int64_t>(1, std::stoll(value()));
      else if (a == "--threads") o.threads = std::stoi(value());
      else if (a == "--save") o.save = value();
      else if (a == "--log-json") o.log_json = value();
      else if (a == "--trace") o.trace = value();
      else if (a == "--cuda-graph") o.cuda_graph = true;
      else usage_error(*comm, "unknown flag " + a + " (--help lists them)");
    } catch (const std::logic_error&) {
      usage_error(*comm, "a bad number after " + a);
    }
  }
  if (o.epochs > 0 && o.dataset.empty()) usage_error(*comm, "--epochs needs a data set (-d)");
  if (o.eval && o.dataset.empty()) usage_error(*comm, "--eval needs a data set (-d) with a test split");
  if (o.cuda_graph) {
    if (!graphs_supported())
      usage_error(*comm, std::string("--cuda-graph: the ") + backend_name() + " backend has no CUDA graphs");
    if (!m.graph_blocker.empty())
      usage_error(*comm, "--cuda-graph: " + m.graph_blocker + " changes with every step; run without --cuda-graph");
    if (o.adam) usage_error(*comm, "--cuda-graph: Adam's step size changes with every step; use --optimizer sgd");
  }
  if (comm->size() != m.ranks)
    usage_error(*comm, m.name + " was compiled for " + std::to_string(m.ranks) + " ranks; run it with mpirun -np " +
                           std::to_string(m.ranks) + " (this job has " + std::to_string(comm->size()) + ")");
  try {
    std::vector<std::vector<int>> groups = m.groups;
    std::vector<int> all(m.ranks);
    for (int r = 0; r < m.ranks; ++r) all[r] = r;
    groups.push_back(all);
    comm->create_groups(groups);
    if (comm->rank() == 0) {
      const int64_t batch = o.batch > 0 ? o.batch : m.batch;
      std::printf("%s on %d rank%s (%s backend), global batch %lld%s\n%s", m.name.c_str(), m.ranks, m.ranks == 1 ? "" : "s",
                  backend_name(), static_cast<long long>(batch),
                  batch == m.batch ? "" : (" (compiled for " + std::to_string(m.batch) + ")").c_str(), m.strategy.c_str());
      for (int r = 0; r < m.ranks; ++r) {
        const double persistent = static_cast<double>(m.rank_programs[r].persistent_bytes) / (1 << 20);
        const double arena = static_cast<double>(m.rank_programs[r].arena_bytes * arena_growth(m, batch)) / (1 << 20);
        std::printf("rank %d: planned memory %.2f MiB (persistent %.2f, arena %.2f)\n", r, persistent + arena,
                    persistent, arena);
      }
      std::fflush(stdout);
    }
    Runner runner(m, *comm, o);
    runner.run();
  } catch (const Error& e) {
    comm->abort(e.what());
  }
  return 0;
}

}  // namespace ffrt
