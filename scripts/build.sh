#!/usr/bin/env bash
# Installs the dependencies and builds ffc into build/ (or $FFC_BUILD_DIR). Idempotent.
# Extra arguments go to cmake's configure step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FFC_BUILD_DIR:-$root/build}
bash "$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DFFC_WERROR=ON "$@" >/dev/null
ninja -C "$build" -j"$(nproc)"
