#!/usr/bin/env bash
# The whole user path on Fashion-MNIST: ffc compiles the small CNN (examples/cnn_fmnist.ff) with a
# 4-rank hybrid strategy (strategies/cnn_fmnist_hybrid4.pbtxt), CMake builds the emitted program,
# mpirun trains it and it reports its test accuracy.
# usage: train-fmnist.sh FFC WORKDIR [--epochs E] [--backend cpu|cuda] [--min-accuracy A] [program flags...]
# The backend defaults to cuda when 4 GPUs are visible (nvidia-smi), else cpu; FFRT_DIR=<ffc build>/runtime
# builds against that libffrt instead of compiling it again. With --min-accuracy,
# exits 1 unless the test accuracy reaches it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ffc=$1 work=$2
shift 2
epochs=1 min="" backend=""
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --epochs) epochs=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --min-accuracy) min=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
if [ -z "$backend" ]; then  # one GPU per rank
  if [ "$(nvidia-smi -L 2> /dev/null | wc -l)" -ge 4 ]; then backend=cuda; else backend=cpu; fi
fi
data=/usr/share/datasets/fashion-mnist
[ -d "$data" ] || { echo "train-fmnist: $data is missing (apt-get install dataset-fashion-mnist)" >&2; exit 1; }
mkdir -p "$work"
echo "== ffc compile examples/cnn_fmnist.ff -s strategies/cnn_fmnist_hybrid4.pbtxt -b 64"
"$ffc" compile "$root/examples/cnn_fmnist.ff" -s "$root/strategies/cnn_fmnist_hybrid4.pbtxt" -b 64 \
  --optimizer momentum -o "$work/src" --name cnn_fmnist
echo "== build ($backend backend)"
cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DFFRT_BACKEND="$backend" ${FFRT_DIR:+-Dffrt_DIR="$FFRT_DIR"} > "$work/cmake.log" 2>&1 ||
  { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/build" -j "$(nproc)" > "$work/build.log" 2>&1 || { tail -50 "$work/build.log"; exit 1; }
mpi=(mpirun -np 4 --oversubscribe)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)
# On the cpu backend the 4 ranks share the machine's cores: one thread each, passive waiting.
threads=()
[ "$backend" = cpu ] && threads=(--threads 1) && export OMP_WAIT_POLICY=passive
echo "== mpirun -np 4 cnn_fmnist -e $epochs -d $data --eval"
"${mpi[@]}" "$work/build/cnn_fmnist" -d "$data" -e "$epochs" --lr 0.05 --momentum 0.9 -p 200 --eval \
  "${threads[@]}" "${extra[@]}" | tee "$work/train.log"
acc=$(sed -n 's/^test accuracy \([0-9.]*\) .*/\1/p' "$work/train.log")
[ -n "$acc" ] || { echo "train-fmnist: no accuracy printed" >&2; exit 1; }
if [ -n "$min" ]; then
  if awk -v a="$acc" -v m="$min" 'BEGIN { exit !(a >= m) }'; then
    echo "train-fmnist: test accuracy $acc >= $min"
  else
    echo "train-fmnist: test accuracy $acc < $min" >&2
    exit 1
  fi
fi
