#!/usr/bin/env bash
# The main job, as far as ffc goes today: installs, builds ffc, reads FlexFlow's AlexNet and its
# mixed strategy from FlexFlow's README, checks the strategy against the model and prints it.
# It grows with the project: next it compiles, builds and trains the per-rank program.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FFC_BUILD_DIR:-$root/build}
bash "$root/scripts/build.sh"
ffc="$build/tools/ffc/ffc"
echo "== ffc print examples/alexnet.ff"
"$ffc" print "$root/examples/alexnet.ff"
echo
echo "== ffc strategy examples/alexnet.ff -s strategies/alexnet_mixed4.pbtxt"
"$ffc" strategy "$root/examples/alexnet.ff" -s "$root/strategies/alexnet_mixed4.pbtxt" -g 4
