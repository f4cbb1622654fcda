#!/usr/bin/env bash
# The GPU suite (issue 7), in one call on a GPU host: builds ffc and libffrt with the cuda backend,
# then, on the GPUs present:
#   kernels   every kernel case of tests/runtime/backend_cases on the cuda backend vs the cpu backend
#             (fp32), and the conv2d cases again with TF32 (a looser tolerance)
#   comm      the NCCL communication test (2+ GPUs)
#   links     ffrt_comm_profile_cuda on every GPU: the links' latency and bandwidth, fitted, as a
#             machine file (BUILD_DIR/gpu-logs/links.machine) that ffc simulate must read
#   e2e.*     the emitted-program suite (tests/e2e/emitted_program.sh) with FFRT_BACKEND=cuda, for
#             every case whose rank count fits: losses and weights against ffc verify (cpu, fp32)
#   sanitizer compute-sanitizer (memcheck, racecheck) on a small emitted program, one iteration
# Prints PASS/FAIL per step; exits 1 if any failed. Logs in BUILD_DIR/gpu-logs.
# usage: tests/gpu/run.sh [BUILD_DIR] [STEP...]   (steps: kernels comm links e2e sanitizer; default all)
# E2E_ONLY="name ..." runs those e2e cases only.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-gpu}
shift || true
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(kernels comm links e2e sanitizer)
want() { [[ " ${steps[*]} " == *" $1 "* ]]; }
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
[ "$gpus" -gt 0 ] || { echo "gpu suite: no GPU visible (nvidia-smi -L)" >&2; exit 1; }
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
echo "gpu suite: $gpus x $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null)"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > "$build.cmake.log" 2>&1 || { tail -30 "$build.cmake.log"; exit 1; }
targets=(ffc ffrt_program ffrt_program_cuda backend_cases_cpu backend_cases_cuda ffrt_comm_nccl_test ffrt_comm_profile_cuda)
ninja -C "$build" -j "$(nproc)" "${targets[@]}" > "$build/ninja.log" 2>&1 || { grep -E "error|FAILED" -A5 "$build/ninja.log" | head -60; exit 1; }
logs=$build/gpu-logs
rm -rf "$logs" && mkdir -p "$logs"
failed=()
step() {  # step NAME COMMAND...: runs it, PASS or FAIL with the log's tail
  local name=$1 t0=$SECONDS
  shift
  if "$@" > "$logs/$name.log" 2>&1; then
    echo "PASS $name ($((SECONDS - t0)) s)"
  else
    echo "FAIL $name ($((SECONDS - t0)) s)"
    tail -40 "$logs/$name.log" | sed 's/^/    /'
    failed+=("$name")
  fi
}

if want kernels; then
  kernels() {
    "$build/tests/runtime/backend_cases_cpu" --out "$logs/cpu.safetensors" &&
      "$build/tests/runtime/backend_cases_cuda" --out "$logs/cuda.safetensors" &&
      python3 "$root/tests/runtime/compare_backends.py" "$logs/cpu.safetensors" "$logs/cuda.safetensors" &&
      # TF32: the convolutions may run on the graph API's engines (runtime/cuda/conv.cu).
      "$build/tests/runtime/backend_cases_cpu" --only conv2d --out "$logs/cpu_conv.safetensors" &&
      "$build/tests/runtime/backend_cases_cuda" --tf32 --only conv2d --out "$logs/cuda_tf32.safetensors" &&
      python3 "$root/tests/runtime/compare_backends.py" "$logs/cpu_conv.safetensors" "$logs/cuda_tf32.safetensors" \
        --tolerance 2e-2
  }
  step kernels kernels
fi

if want comm && [ "$gpus" -ge 2 ]; then
  step comm mpirun -np "$gpus" --bind-to none "$build/tests/runtime/ffrt_comm_nccl_test"
fi

if want links && [ "$gpus" -ge 2 ]; then
  links() {
    local card
    card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr 'A-Z' 'a-z' | grep -o -E '\bh[0-9]{3}\b' | head -1)
    mpirun -np "$gpus" --bind-to none "$build/runtime/ffrt_comm_profile_cuda" --base "${card:-h100}" \
      --out "$logs/links.machine" &&
      "$build/tools/ffc/ffc" simulate "$root/examples/resnet50.ff" -g "$gpus" --machine "$logs/links.machine" &&
      cat "$logs/links.machine"
  }
  step links links
  grep -E "^(intra|base)|^# fit" "$logs/links.machine" 2>/dev/null | sed 's/^/    /'
fi

if want e2e; then
  ffc=$build/tools/ffc/ffc
  # name model strategy ranks batch iterations [data]
  cases=(
    "mlp_dp1 $root/examples/mlp_fmnist.ff - 1 16 4"
    "cnn_dp1 $root/examples/cnn_fmnist.ff - 1 16 4 /usr/share/datasets/fashion-mnist"
    "halo $root/tests/lit/Inputs/halo.ff $root/tests/lit/Inputs/halo_h2.pbtxt 2 4 4"
    "cnn_fmnist_hybrid2 $root/examples/cnn_fmnist.ff $root/strategies/cnn_fmnist_hybrid2.pbtxt 2 8 4"
    "mlp_fmnist_hybrid2 $root/examples/mlp_fmnist.ff $root/strategies/mlp_fmnist_hybrid2.pbtxt 2 8 4"
    "transformer_hybrid2 $root/examples/transformer.ff $root/strategies/transformer_hybrid2.pbtxt 2 4 3"
    "cnn_fmnist_hybrid4 $root/examples/cnn_fmnist.ff $root/strategies/cnn_fmnist_hybrid4.pbtxt 4 8 4 /usr/share/datasets/fashion-mnist"
    "mlp_fmnist_hybrid4 $root/examples/mlp_fmnist.ff $root/strategies/mlp_fmnist_hybrid4.pbtxt 4 8 4"
    "transformer_hybrid4 $root/examples/transformer.ff $root/strategies/transformer_hybrid4.pbtxt 4 4 3"
    "mlp_fmnist_hybrid8 $root/examples/mlp_fmnist.ff $root/strategies/mlp_fmnist_hybrid8.pbtxt 8 16 4"
    "cnn_dp8 $root/examples/cnn_fmnist.ff - 8 16 4 /usr/share/datasets/fashion-mnist"
  )
  for c in "${cases[@]}"; do
    read -r name model strategy ranks batch iters data <<< "$c"
    [ "$ranks" -le "$gpus" ] || { echo "SKIP e2e.$name ($ranks ranks, $gpus GPUs)"; continue; }
    [ -z "${E2E_ONLY:-}" ] || [[ " $E2E_ONLY " == *" $name "* ]] || continue
    [ -z "${data:-}" ] || [ -d "$data" ] || data=""
    step "e2e.$name" env FFRT_BACKEND=cuda FFRT_DIR="$build/runtime" E2E_JOBS="$(nproc)" \
      bash "$root/tests/e2e/emitted_program.sh" "$ffc" "$logs/$name" "$model" "$strategy" "$ranks" "$batch" "$iters" ${data:-}
  done
fi

if want sanitizer; then
  sanitizer() {
    local dir=$logs/sanitizer
    # ${SANITIZER_MODEL:-mlp_fmnist}: cuDNN's algorithm search (the CNN's first iteration) runs
    # every algorithm under the sanitizer's instrumentation, which takes minutes.
    # --report-api-errors no: NCCL's initialization asks cudaFuncGetAttributes about kernels its
    # build lacks for the card (cudaErrorNoKernelImageForDevice), an error it expects and handles.
    local model=${SANITIZER_MODEL:-mlp_fmnist}
    "$build/tools/ffc/ffc" compile "$root/examples/$model.ff" -g 1 -b 8 -o "$dir/src" --name prog &&
      cmake -S "$dir/src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DFFRT_BACKEND=cuda -Dffrt_DIR="$build/runtime" &&
      cmake --build "$dir/build" -j "$(nproc)" &&
      compute-sanitizer --error-exitcode 1 --report-api-errors no --tool memcheck "$dir/build/prog" --iterations 1 &&
      compute-sanitizer --error-exitcode 1 --report-api-errors no --tool racecheck "$dir/build/prog" --iterations 1
  }
  step sanitizer sanitizer
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu suite: FAILED: ${failed[*]}"
  exit 1
fi
echo "gpu suite: all passed"
