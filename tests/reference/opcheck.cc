// ffc-opcheck: one forward and backward of a model through ffc's serial executor, with inputs and
// parameters read from .npy files and every result written back as .npy, so that a test can
// compare them with PyTorch (tests/reference/op_check.py).
//
// usage: ffc-opcheck MODEL.ff --inputs DIR --out DIR -b BATCH
//   DIR/<input>.npy for every input op, DIR/<param>.npy for every parameter (`<op>.<param>`).
//   Writes OUT/<op>.npy (each op's first output), OUT/loss.npy, OUT/grad.<input>.npy for f32
//   inputs, OUT/grad.<param>.npy, and OUT/param.<param>.npy (values after the forward: running
//   statistics are updated there).
#include <CLI/CLI.hpp>

#include <cstring>
#include <filesystem>

#include "exec/serial.h"
#include "ffrt/npy.h"
#include "frontend/ff_parser.h"
#include "ir/op_table.h"
#include "ir/verifier.h"

int main(int argc, char** argv) {
  CLI::App app{"one forward and backward through ffc's serial executor"};
  std::string model, in_dir, out_dir;
  int64_t batch = 1;
  app.add_option("MODEL", model)->required();
  app.add_option("--inputs", in_dir)->required();
  app.add_option("--out", out_dir)->required();
  app.add_option("-b", batch)->required();
  CLI11_PARSE(app, argc, argv);
  try {
    ffc::Graph g = ffc::parse_ff_file(model);
    ffc::verify_graph(g);
    ffc::TrainOptions opts;
    opts.batch = batch;
    ffc::SerialTrainer t(g, opts);
    t.set_input_grads(true);
    t.set_input_source([&](const ffc::Op& op, int64_t, ffc::HostTensor& dst) {
      ffrt::HostArray a = ffrt::read_npy(in_dir + "/" + op.name + ".npy");
      if (a.shape != dst.shape || a.dtype != dst.dtype)
        throw ffc::UserError({in_dir, 0, 0}, fmt::format("{}.npy does not fit input '{}'", op.name, op.name));
      dst.bytes = a.bytes;
      return true;
    });
    for (ffc::ParamSlot& p : t.params()) {
      ffrt::HostArray a = ffrt::read_npy(in_dir + "/" + p.name + ".npy");
      if (a.shape != p.value.shape) throw ffc::UserError({in_dir, 0, 0}, fmt::format("{}.npy has the wrong shape", p.name));
      p.value.bytes = a.bytes;
    }
    float loss = t.forward_backward(0);
    std::filesystem::create_directories(out_dir);
    ffrt::write_npy(out_dir + "/loss.npy", ffrt::DType::f32, {}, &loss);
    for (const ffc::Op& op : g.ops) {
      ffc::TensorId y = op.outputs[0];
      ffrt::write_npy(out_dir + "/" + op.name + ".npy", t.tensor(y));
      if (op.kind == ffc::OpKind::input && t.has_grad(y)) ffrt::write_npy(out_dir + "/grad." + op.name + ".npy", t.grad(y));
    }
    for (ffc::ParamSlot& p : t.params()) {
      ffrt::write_npy(out_dir + "/param." + p.name + ".npy", p.value);
      if (p.trainable) ffrt::write_npy(out_dir + "/grad." + p.name + ".npy", p.grad);
    }
  } catch (const ffc::UserError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  } catch (const ffrt::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
