#!/usr/bin/env bash
# The main job: installs, builds ffc, checks FlexFlow's mixed AlexNet strategy against the model
# and prints it, then the whole user path on Fashion-MNIST: ffc compiles the small CNN for 4 ranks
# with a hybrid strategy, CMake builds the emitted program, mpirun -np 4 trains it for an epoch
# with progress and it prints its test accuracy. On a machine with 4 GPUs (nvidia-smi) the program
# uses the cuda backend; otherwise the cpu backend.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FFC_BUILD_DIR:-$root/build}
bash "$root/scripts/build.sh"
ffc="$build/tools/ffc/ffc"
echo "== ffc strategy examples/alexnet.ff -s strategies/alexnet_mixed4.pbtxt"
"$ffc" strategy "$root/examples/alexnet.ff" -s "$root/strategies/alexnet_mixed4.pbtxt" -g 4
echo
FFRT_DIR="$build/runtime" bash "$root/scripts/train-fmnist.sh" "$ffc" "$build/fmnist" --epochs 1
