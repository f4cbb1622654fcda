#!/usr/bin/env bash
# Launch gaps of a model's data parallelism under ktrace: the 1-rank program at the per-rank batch
# against the N-rank program, then the N-rank one under each variant (environment settings and
# mpirun options), each a line of summary.py --brief (bench/ktrace/README.md).
#
# usage: bench/ktrace/gaps.sh --ffc FFC --runtime DIR [--model transformer] [--gpus 4]
#                             [--per-rank-batch 16] [--iterations 40] [--out DIR]
#                             [VARIANT ...]      VARIANT: "label ENV=VALUE ... [-- MPIRUN-OPTION ...]"
# FFC is a built ffc (tools/ffc/ffc), DIR the runtime build holding ffrtConfig.cmake (the build
# directory's runtime/). NCCL_NVLS_ENABLE defaults to 0. Needs bash 4.4+. Example, on a 4-GPU host:
#   bench/ktrace/gaps.sh --ffc /tmp/bg/tools/ffc/ffc --runtime /tmp/bg/runtime \
#     "nocumem NCCL_CUMEM_ENABLE=0" "core -- --bind-to core"
set -euo pipefail
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE-0}  # this project's multi-GPU hosts: NVLink multicast off
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
ffc="" runtime="" model=transformer gpus=4 per_rank=16 iterations=40 out=/tmp/ktrace-gaps
variants=()
need() { [[ $# -ge 2 ]] || { echo "gaps.sh: $1 takes a value" >&2; exit 1; }; }
while [[ $# -gt 0 ]]; do
  [[ $1 == --* && $1 != --help ]] && need "$@"
  case $1 in
    --ffc) ffc=$2; shift 2 ;;
    --runtime) runtime=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --gpus) gpus=$2; shift 2 ;;
    --per-rank-batch) per_rank=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "gaps.sh: unknown flag $1" >&2; exit 1 ;;
    *) variants+=("$1"); shift ;;
  esac
done
[[ -x $ffc && -f $runtime/ffrtConfig.cmake ]] || { echo "gaps.sh: --ffc FFC and --runtime DIR are required" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd) runtime=$(cd "$runtime" && pwd)

cupti=$(find /usr/local/cuda/ -name 'libcupti.so*' -print -quit 2>/dev/null)
[[ -n $cupti ]] || { echo "gaps.sh: no libcupti under /usr/local/cuda" >&2; exit 1; }
g++ -O2 -shared -fPIC "$here/ktrace.cc" -I/usr/local/cuda/include -L"$(dirname "$cupti")" \
  -Wl,-rpath,"$(dirname "$cupti")" -lcupti -o "$out/libktrace.so"

build() {  # RANKS: the data-parallel program at RANKS x the per-rank batch
  local n=$1 d=$out/g$1
  "$ffc" compile "$repo/examples/$model.ff" -g "$n" -b $((n * per_rank)) -o "$d/src" --name "g$n" --optimizer sgd > "$d.compile.log"
  cmake -S "$d/src" -B "$d/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFFRT_BACKEND=cuda -Dffrt_DIR="$runtime" > "$d.cmake.log"
  cmake --build "$d/build" -j "$(nproc)" > "$d.build.log"
}
build 1
build "$gpus"

run() {  # LABEL RANKS [ENV=VALUE ...] [-- MPIRUN-OPTION ...]
  local label=$1 n=$2; shift 2
  local env=() mpi=() pass=(-x CUDA_INJECTION64_PATH -x KTRACE_OUT)
  while [[ $# -gt 0 && $1 != -- ]]; do
    [[ $1 == *=* ]] || { echo "gaps.sh: '$1' in variant $label is not ENV=VALUE (mpirun options follow --)" >&2; return; }
    env+=("$1"); pass+=(-x "${1%%=*}"); shift
  done
  [[ $# -gt 0 ]] && { shift; mpi=("$@"); }
  [[ " ${mpi[*]} " == *" --bind-to "* ]] || mpi+=(--bind-to none)
  env "${env[@]}" CUDA_INJECTION64_PATH="$out/libktrace.so" KTRACE_OUT="$out/kt_$label" \
    mpirun --allow-run-as-root -x NCCL_NVLS_ENABLE "${pass[@]}" "${mpi[@]}" -np "$n" \
    "$out/g$n/build/g$n" --iterations "$iterations" --optimizer sgd --lr 0.01 --math tf32 --cuda-graph \
    > "$out/$label.log" 2>&1 || echo "gaps.sh: $label failed ($out/$label.log)" >&2
}
run one_rank 1
run job "$gpus"
labels=(one_rank job)
for v in "${variants[@]}"; do
  read -r -a words <<< "$v"
  case ${words[0]} in one_rank|job) echo "gaps.sh: '${words[0]}' names a built-in run; pick another label" >&2; continue ;; esac
  labels+=("${words[0]}")
  run "${words[0]}" "$gpus" "${words[@]:1}"
done
files=()
for l in "${labels[@]}"; do
  if [[ -s $out/kt_$l.0.csv ]]; then files+=("$out/kt_$l.0.csv"); else echo "gaps.sh: no records for $l" >&2; fi
done
[[ ${#files[@]} -gt 0 ]] || exit 1
python3 "$here/summary.py" --brief "${files[@]}"
