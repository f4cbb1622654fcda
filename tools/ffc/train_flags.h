// The training flags shared by `ffc run` (and later `ffc verify`): data, batch, steps, optimizer,
// loss, seed, checkpoint.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "exec/serial.h"

namespace ffc {

struct TrainFlags {
  std::string model;
  int64_t batch = 64;
  std::string dataset;
  int64_t steps = 0;   ///< 0: one epoch of the data set, or 10 steps of synthetic data
  int64_t epochs = 0;  ///< overrides steps when given
  std::string optimizer = "sgd";
  float lr = 0.01f;
  float momentum = 0.f;
  bool nesterov = false;
  float weight_decay = 0.f;
  std::string loss;
  uint64_t seed = 0;
  std::string save;
  std::string load;
  bool eval = false;
  int64_t print_freq = 1;
  int threads = 0;
};

/// Declares the flags on a subcommand.
void add_train_flags(CLI::App* cmd, TrainFlags& f);

/// The executor's options from the flags (a UserError for a bad optimizer name).
TrainOptions train_options(const TrainFlags& f);

/// Replaces the trainer's initial weights with those of a safetensors checkpoint: every parameter
/// (by name) with its shape; a UserError names what is missing, extra or misshapen.
void load_checkpoint(SerialTrainer& trainer, const std::string& path);

/// `ffc run`: trains serially on the CPU, printing each step's loss.
int cmd_run(const TrainFlags& f);

}  // namespace ffc
