#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds with warnings as errors, runs every test
# (GoogleTest units, lit + FileCheck, the ONNX import tests) through ctest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FFC_BUILD_DIR:-$root/build}
bash "$root/scripts/build.sh"
cd "$build"
ctest --output-on-failure -j"$(nproc)"
