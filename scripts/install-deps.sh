#!/usr/bin/env bash
# Installs everything ffc needs to build and test on a fresh Debian machine. Idempotent: packages
# already present are skipped by apt-get, so running it twice costs only the package-list check.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  protobuf-compiler libprotobuf-dev            # strategy files; ONNX models
  libonnx-dev                                  # onnx.proto for the ONNX importer
  libfmt-dev                                   # generated sources, messages
  nlohmann-json3-dev                           # safetensors checkpoint headers (JSON)
  libcli11-dev                                 # command-line parsing
  openmpi-bin libopenmpi-dev                   # launching ranks, cpu-backend transfers
  libopenblas-dev                              # cpu-backend GEMM
  libgtest-dev                                 # unit tests
  llvm-14-tools                                # lit and FileCheck
  zlib1g-dev                                   # gzip-compressed IDX data sets
  python3 python3-torch python3-torchvision python3-onnx python3-numpy   # reference tests
  dataset-fashion-mnist                        # real data for e2e tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
