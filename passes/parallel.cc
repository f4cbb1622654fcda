// The middle end's pipeline.
#include "passes/parallel.h"

#include <chrono>
#include <ostream>

#include "ir/printer.h"
#include "ir/verifier.h"
#include "passes/communicate.h"
#include "passes/first_write.h"
#include "passes/memory_plan.h"
#include "passes/overlap.h"
#include "passes/schedule.h"

namespace ffc {

Compiled compile_parallel(Graph g, const Strategy& s, const ParallelOptions& opts) {
  const PipelineOptions& po = opts.pipeline;
  Compiled c;
  auto start = std::chrono::steady_clock::now();
  // Runs after each pass: timing, printing, and whether to stop.
  auto after = [&](std::string_view pass, auto&& print) {
    if (po.time_passes && po.log) {
      auto now = std::chrono::steady_clock::now();
      *po.log << fmt::format("pass {:<14} {:8.3f} ms\n", pass, std::chrono::duration<double, std::milli>(now - start).count());
      start = now;
    }
    if (po.ir_out && (po.print_after_all || po.print_after.count(pass)))
      *po.ir_out << fmt::format("# IR after {}\n", pass) << print();
    return po.stop_after == pass;
  };

  add_loss(g, opts.loss);
  verify_graph(g);
  c.graph = std::move(g);
  const Graph& graph = c.graph;
  if (after("loss", [&] { return print_graph(graph); })) return c;

  c.backward = autodiff(graph, opts.input_grads);
  if (after("autodiff", [&] { return print_backward(graph, c.backward); })) return c;

  c.strategy = resolve_strategy(graph, s, opts.devices, opts.batch);
  if (after("apply-strategy", [&] { return strategy_table(graph, c.strategy); })) return c;

  c.partition = partition(graph, c.strategy, opts.batch);
  if (after("partition", [&] { return print_partition(graph, c.partition); })) return c;

  CommunicateOptions co;
  co.optimizer_states = opts.optimizer_states;
  Lowered lowered = communicate(graph, c.partition, c.backward, co);
  if (after("communicate", [&] { return print_lowered(graph, lowered); })) return c;

  c.program = schedule(graph, std::move(lowered), opts.batch);
  if (po.verify_each) verify_program(c.program);
  if (after("schedule", [&] { return print_schedule(c.program); })) return c;

  elide_zero_fills(c.program);
  if (po.verify_each) verify_program(c.program);
  if (after("first-write", [&] { return print_schedule(c.program); })) return c;

  bucket_gradients(c.program, opts.bucket_bytes);
  if (po.verify_each) verify_program(c.program);
  if (after("bucket", [&] { return print_schedule(c.program); })) return c;

  plan_memory(c.program);
  if (after("memory", [&] { return print_memory(c.program); })) return c;

  plan_overlap(c.program);
  if (po.verify_each) verify_program(c.program);
  if (after("overlap", [&] { return print_overlap(c.program); })) return c;
  c.complete = true;
  return c;
}

}  // namespace ffc
