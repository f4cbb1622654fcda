#!/usr/bin/env bash
# The main job, as far as ffc goes today: installs, builds ffc, checks FlexFlow's mixed AlexNet
# strategy against the model and prints it, then trains the small CNN on Fashion-MNIST for an
# epoch on the CPU with the serial executor and reports its test accuracy. Next it compiles,
# builds and mpiruns the per-rank program instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FFC_BUILD_DIR:-$root/build}
bash "$root/scripts/build.sh"
ffc="$build/tools/ffc/ffc"
echo "== ffc strategy examples/alexnet.ff -s strategies/alexnet_mixed4.pbtxt"
"$ffc" strategy "$root/examples/alexnet.ff" -s "$root/strategies/alexnet_mixed4.pbtxt" -g 4
echo
echo "== ffc run examples/cnn_fmnist.ff -d /usr/share/datasets/fashion-mnist --epochs 1 --eval"
"$ffc" run "$root/examples/cnn_fmnist.ff" -d /usr/share/datasets/fashion-mnist -b 64 --epochs 1 \
  --lr 0.05 --momentum 0.9 -p 100 --eval
