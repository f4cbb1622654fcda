// `ffc verify`: the command line around exec/verify.h.
#include "tools/ffc/verify_cmd.h"

#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "exec/data_source.h"
#include "exec/verify.h"
#include "ffrt/safetensors.h"
#include "ir/op_table.h"
#include "passes/memory_plan.h"
#include "passes/parallel.h"
#include "passes/pipeline.h"
#include "tools/ffc/load.h"

namespace ffc {

void add_verify_flags(CLI::App* cmd, VerifyFlags& f) {
  TrainFlags& t = f.train;
  t.batch = 8;
  cmd->add_option("MODEL", t.model, "the model: a .ff file or an .onnx file")->required();
  cmd->add_option("-s,--strategy", f.strategy, "a strategy file (.pb or .pbtxt); data parallel when absent");
  cmd->add_option("-g,--devices", f.devices, "number of devices (default: what the strategy names, or 1)")
      ->check(CLI::Range(1, kMaxDevices));
  cmd->add_option("-b,--batch-size", t.batch, "global batch size (default 8)")->check(CLI::PositiveNumber);
  cmd->add_option("--steps", f.steps, "training steps to compare (default 2)")->check(CLI::PositiveNumber);
  cmd->add_option("-d,--dataset", t.dataset,
                  "a directory with inputs.npy and labels.npy, or IDX files; synthetic data when absent");
  cmd->add_option("--seed", t.seed, "seed of weights, synthetic data and dropout (default 0)");
  cmd->add_option("--optimizer", t.optimizer, "sgd, adam or adamw (default sgd)")
      ->check(CLI::IsMember({"sgd", "adam", "adamw"}));
  cmd->add_option("--lr", t.lr, "learning rate (default 0.01)");
  cmd->add_option("--momentum", t.momentum, "SGD momentum (default 0)");
  cmd->add_option("--wd", t.weight_decay, "weight decay (default 0)");
  cmd->add_option("--loss", t.loss, "cross_entropy or mse, for a model without a loss op")
      ->check(CLI::IsMember({"cross_entropy", "mse"}));
  cmd->add_option("--save", t.save, "write the partitioned run's final weights to a safetensors file");
  cmd->add_option("--tolerance", f.tolerance, "largest relative difference accepted (default 1e-4)");
  cmd->add_option("--grad-tolerance", f.grad_tolerance,
                  "for gradients and updated weights, when it differs (default: --tolerance)");
  cmd->add_option("--threads", t.threads, "cpu threads (default: all cores)");
  cmd->add_flag("-q,--quiet", f.quiet, "print only the summary");
  cmd->add_flag("--no-resync", f.no_resync,
                "let differences compound over steps (by default every step starts from the serial weights)");
}

int cmd_verify(const VerifyFlags& f) {
  const TrainFlags& t = f.train;
  Graph g = load_model(t.model);
  run_graph_pipeline(g, PipelineOptions{});
  Strategy s;
  if (!f.strategy.empty()) s = read_strategy_file(f.strategy);
  const int devices = device_count(f.devices, f.strategy.empty() ? nullptr : &s);

  TrainOptions opts = train_options(t);
  ParallelOptions po;
  po.devices = devices;
  po.batch = t.batch;
  po.optimizer_states = opts.optimizer != OptimizerKind::sgd ? 2 : opts.momentum != 0.f ? 1 : 0;
  if (!t.loss.empty()) po.loss = parse_loss_kind(t.loss);
  Compiled c = compile_parallel(std::move(g), s, po);
  const Graph& graph = c.graph;
  const Program& prog = c.program;

  VerifyOptions vo;
  vo.train = opts;
  vo.steps = f.steps;
  vo.tolerance = f.tolerance;
  vo.grad_tolerance = f.grad_tolerance < 0 ? f.tolerance : f.grad_tolerance;
  vo.print_steps = !f.quiet;
  vo.resync = !f.no_resync;
  if (!t.dataset.empty()) {
    std::shared_ptr<ffrt::Dataset> data;
    try {
      data = std::make_shared<ffrt::Dataset>(ffrt::Dataset::open(t.dataset, ffrt::Split::train));
    } catch (const ffrt::Error& e) {
      throw UserError({t.dataset, 0, 0}, e.what());
    }
    vo.source = dataset_source(graph, data, t.batch, t.dataset);
  }
  std::printf("verify %s: %d rank%s, batch %lld, %lld steps, %s%s\n", graph.name.c_str(), devices,
              devices == 1 ? "" : "s", static_cast<long long>(t.batch), static_cast<long long>(f.steps),
              f.strategy.empty() ? "data parallel" : ("strategy " + f.strategy).c_str(),
              t.dataset.empty() ? ", synthetic data" : (", data " + t.dataset).c_str());
  if (!f.quiet) std::printf("%s", print_memory(prog).c_str());
  VerifyReport rep;
  try {
    rep = verify_equivalence(graph, prog, vo);
  } catch (const ffrt::Error& e) {
    throw UserError({t.dataset.empty() ? t.model : t.dataset, 0, 0}, e.what());
  }
  std::printf("%s", rep.summary(vo.tolerance, vo.grad_tolerance).c_str());
  if (!t.save.empty()) {
    std::vector<ffrt::TensorRef> refs;
    for (size_t p = 0; p < prog.params.size(); ++p)
      refs.push_back({prog.params[p].name, ffrt::DType::f32, rep.final_weights[p].shape, rep.final_weights[p].bytes.data()});
    try {
      ffrt::write_safetensors(t.save, refs, {{"model", graph.name}, {"written_by", "ffc verify"}});
    } catch (const ffrt::Error& e) {
      throw UserError({t.save, 0, 0}, e.what());
    }
    std::printf("wrote %s\n", t.save.c_str());
  }
  return rep.ok ? 0 : 1;
}

}  // namespace ffc
