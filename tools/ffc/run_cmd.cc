// `ffc run`: serial training on the cpu kernels.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <set>

#include "exec/data_source.h"
#include "exec/serial.h"
#include "ffrt/safetensors.h"
#include "ir/verifier.h"
#include "passes/add_loss.h"
#include "passes/pipeline.h"
#include "tools/ffc/load.h"
#include "tools/ffc/train_flags.h"

namespace ffc {

void add_train_flags(CLI::App* cmd, TrainFlags& f) {
  cmd->add_option("MODEL", f.model, "the model: a .ff file or an .onnx file")->required();
  cmd->add_option("-b,--batch-size", f.batch, "global batch size (default 64)")->check(CLI::PositiveNumber);
  cmd->add_option("-d,--dataset", f.dataset,
                  "a directory with inputs.npy and labels.npy, or with IDX files (MNIST / Fashion-MNIST); "
                  "synthetic data when absent");
  cmd->add_option("--steps", f.steps, "training steps (default: one epoch of the data set, or 10)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("-e,--epochs", f.epochs, "epochs of the data set (overrides --steps)")->check(CLI::PositiveNumber);
  cmd->add_option("--optimizer", f.optimizer, "sgd, adam or adamw (default sgd)")
      ->check(CLI::IsMember({"sgd", "adam", "adamw"}));
  cmd->add_option("--lr", f.lr, "learning rate (default 0.01)");
  cmd->add_option("--momentum", f.momentum, "SGD momentum (default 0)");
  cmd->add_flag("--nesterov", f.nesterov, "Nesterov momentum");
  cmd->add_option("--wd", f.weight_decay, "weight decay (default 0)");
  cmd->add_option("--loss", f.loss, "cross_entropy or mse, for a model without a loss op (default: cross_entropy "
                                    "for outputs with a class dim)")
      ->check(CLI::IsMember({"cross_entropy", "mse"}));
  cmd->add_option("--seed", f.seed, "seed of weights, synthetic data and dropout (default 0)");
  cmd->add_option("--save", f.save, "write the trained weights to a safetensors file");
  cmd->add_option("--load", f.load, "start from the weights of a safetensors file (e.g. one --save wrote)");
  cmd->add_flag("--eval", f.eval, "report accuracy on the data set's test split after training");
  cmd->add_option("-p,--print-freq", f.print_freq, "print the loss every K steps (default 1)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--threads", f.threads, "cpu threads (default: all cores)");
}

TrainOptions train_options(const TrainFlags& f) {
  TrainOptions o;
  o.batch = f.batch;
  o.seed = f.seed;
  o.optimizer = f.optimizer == "adam" ? OptimizerKind::adam : f.optimizer == "adamw" ? OptimizerKind::adamw
                                                                                      : OptimizerKind::sgd;
  o.lr = f.lr;
  o.momentum = f.momentum;
  o.nesterov = f.nesterov;
  o.weight_decay = f.weight_decay;
  o.threads = f.threads;
  return o;
}

namespace {

/// The network output the accuracy is read from: the loss's prediction operand.
TensorId prediction(const Graph& g) { return g.ops[find_loss(g)].inputs[0]; }

std::shared_ptr<ffrt::Dataset> open_dataset(const std::string& dir, ffrt::Split split) {
  try {
    return std::make_shared<ffrt::Dataset>(ffrt::Dataset::open(dir, split));
  } catch (const ffrt::Error& e) {
    throw UserError({dir, 0, 0}, e.what());
  }
}

double evaluate(SerialTrainer& trainer, const Graph& g, const std::string& dir, int64_t batch) {
  auto test = open_dataset(dir, ffrt::Split::test);
  trainer.set_input_source(dataset_source(g, test, batch, dir));
  DataInputs in = find_data_inputs(g);
  TensorId pred = prediction(g), labels = g.ops[in.labels].outputs[0];
  int64_t total = test->size(), correct = 0;
  int64_t steps = (total + batch - 1) / batch;
  for (int64_t k = 0; k < steps; ++k) {
    trainer.forward(k, false);
    HostTensor& y = trainer.tensor(pred);
    HostTensor& l = trainer.tensor(labels);
    int64_t classes = y.shape.back(), rows = y.numel() / classes;
    int64_t take = std::min<int64_t>(batch, total - k * batch) * (rows / batch);
    for (int64_t r = 0; r < take; ++r) {
      const float* row = y.f32() + r * classes;
      int64_t best = 0;
      for (int64_t c = 1; c < classes; ++c)
        if (row[c] > row[best]) best = c;
      correct += best == l.i64()[r];
    }
  }
  return static_cast<double>(correct) / static_cast<double>(total);
}

}  // namespace

void load_checkpoint(SerialTrainer& trainer, const std::string& path) {
  try {
    ffrt::SafetensorsReader file(path);
    std::set<std::string> used;
    auto read = [&](const std::string& name, HostTensor& into, const std::vector<int64_t>& shape) {
      const auto& e = file.entry(name);
      if (e.dtype != ffrt::DType::f32 || e.shape != shape)
        throw UserError({path, 0, 0}, fmt::format("tensor '{}' is {} {}, the model's is f32 {}", name,
                                                  ffrt::dtype_name(e.dtype), ffrt::shape_str(e.shape),
                                                  ffrt::shape_str(shape)));
      if (into.bytes.empty()) into = HostTensor(ffrt::DType::f32, shape);
      file.read(name, into.bytes.data());
      used.insert(name);
    };
    const TrainOptions& o = trainer.options();
    const bool adam = o.optimizer != OptimizerKind::sgd, momentum = !adam && o.momentum != 0.f;
    bool any_state = false;
    for (ParamSlot& p : trainer.params()) {
      if (!file.contains(p.name)) throw UserError({path, 0, 0}, fmt::format("no tensor '{}' in the checkpoint", p.name));
      read(p.name, p.value, p.value.shape);
      // The optimizer's state, when the checkpoint has it and this run's optimizer keeps it.
      const std::vector<std::string> state = ffrt::optimizer_state_names(p.name, adam);
      if ((adam || momentum) && p.trainable && file.contains(state[0])) {
        read(state[0], p.buf1, p.value.shape);
        if (adam) read(state[1], p.buf2, p.value.shape);
        p.has_history = true;
        any_state = true;
      }
      // Any optimizer's state is the parameter's, used or not (that run's choice, not this one's).
      for (bool adam_state : {false, true})
        for (const std::string& n : ffrt::optimizer_state_names(p.name, adam_state)) used.insert(n);
    }
    const auto step = file.metadata().find(ffrt::kOptimizerStep);
    if (any_state && step != file.metadata().end()) trainer.set_optimizer_steps(std::stoll(step->second));
    std::vector<std::string> extra;
    for (const auto& [name, e] : file.entries())
      if (!used.count(name)) extra.push_back(name);
    if (!extra.empty())
      throw UserError({path, 0, 0}, fmt::format("the checkpoint has tensors the model does not: {}", fmt::join(extra, ", ")));
  } catch (const ffrt::Error& e) {
    throw UserError({path, 0, 0}, e.what());
  }
}

int cmd_run(const TrainFlags& f) {
  Graph g = load_model(f.model);
  run_graph_pipeline(g, PipelineOptions{});
  std::optional<LossKind> loss_kind;
  if (!f.loss.empty()) loss_kind = parse_loss_kind(f.loss);
  add_loss(g, loss_kind);
  verify_graph(g);

  TrainOptions opts = train_options(f);
  SerialTrainer trainer(g, opts);
  if (!f.load.empty()) load_checkpoint(trainer, f.load);
  std::shared_ptr<ffrt::Dataset> data;
  int64_t steps = f.steps ? f.steps : 10;
  if (!f.dataset.empty()) {
    data = open_dataset(f.dataset, ffrt::Split::train);
    trainer.set_input_source(dataset_source(g, data, f.batch, f.dataset));
    int64_t epoch = (data->size() + f.batch - 1) / f.batch;
    if (!f.steps) steps = epoch;
    if (f.epochs) steps = f.epochs * epoch;
    std::printf("data: %s\n", data->describe().c_str());
  } else if (f.epochs) {
    throw UserError({f.model, 0, 0}, "--epochs needs a data set (-d)");
  }
  std::printf("training %s serially on the cpu: batch %lld, %lld steps, %s lr %g\n", g.name.c_str(),
              static_cast<long long>(f.batch), static_cast<long long>(steps), f.optimizer.c_str(), f.lr);
  auto start = std::chrono::steady_clock::now();
  for (int64_t k = 0; k < steps; ++k) {
    float loss;
    try {
      loss = trainer.train_step(k);
    } catch (const ffrt::Error& e) {
      throw UserError({f.dataset.empty() ? f.model : f.dataset, 0, 0}, fmt::format("step {}: {}", k + 1, e.what()));
    }
    if (!std::isfinite(loss)) throw UserError({f.model, 0, 0}, fmt::format("step {}: the loss is {}: training diverged", k + 1, loss));
    if ((k + 1) % f.print_freq == 0 || k + 1 == steps) {
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("step %lld loss %.6f (%.0f samples/s)\n", static_cast<long long>(k + 1), loss,
                  static_cast<double>((k + 1) * f.batch) / s);
      std::fflush(stdout);
    }
  }
  if (f.eval) {
    if (f.dataset.empty()) throw UserError({f.model, 0, 0}, "--eval needs a data set (-d) with a test split");
    std::printf("test accuracy %.4f\n", evaluate(trainer, g, f.dataset, f.batch));
  }
  if (!f.save.empty()) {
    std::vector<ffrt::TensorRef> refs;
    const bool adam = trainer.options().optimizer != OptimizerKind::sgd;
    for (ParamSlot& p : trainer.params()) {
      refs.push_back({p.name, ffrt::DType::f32, p.value.shape, p.value.bytes.data()});
      // The optimizer's state (torch.optim's names), so that a loaded run continues exactly.
      const std::vector<std::string> state = ffrt::optimizer_state_names(p.name, adam);
      if (!p.buf1.bytes.empty()) refs.push_back({state[0], ffrt::DType::f32, p.value.shape, p.buf1.bytes.data()});
      if (adam && !p.buf2.bytes.empty()) refs.push_back({state[1], ffrt::DType::f32, p.value.shape, p.buf2.bytes.data()});
    }
    try {
      ffrt::write_safetensors(f.save, refs,
                              {{"model", g.name},
                               {"written_by", "ffc run"},
                               {ffrt::kOptimizerStep, std::to_string(trainer.optimizer_steps())}});
    } catch (const ffrt::Error& e) {
      throw UserError({f.save, 0, 0}, e.what());
    }
    std::printf("wrote %s\n", f.save.c_str());
  }
  return 0;
}

}  // namespace ffc
