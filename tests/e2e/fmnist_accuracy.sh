#!/usr/bin/env bash
# Trains a model on Fashion-MNIST with `ffc run` and checks its test accuracy.
# usage: fmnist_accuracy.sh FFC MODEL MIN_ACCURACY [ffc run flags...]
set -euo pipefail
ffc=$1 model=$2 min=$3
shift 3
data=/usr/share/datasets/fashion-mnist
if [ ! -d "$data" ]; then
  echo "fmnist_accuracy: $data is missing (apt-get install dataset-fashion-mnist)" >&2
  exit 1
fi
out=$("$ffc" run "$model" -d "$data" --eval "$@")
echo "$out"
acc=$(echo "$out" | sed -n 's/^test accuracy \([0-9.]*\)$/\1/p')
if [ -z "$acc" ]; then
  echo "fmnist_accuracy: no accuracy printed" >&2
  exit 1
fi
if awk -v a="$acc" -v m="$min" 'BEGIN { exit !(a >= m) }'; then
  echo "fmnist_accuracy: $acc >= $min"
else
  echo "fmnist_accuracy: $acc < $min" >&2
  exit 1
fi
