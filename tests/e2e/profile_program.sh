#!/usr/bin/env bash
# ffc profile's user path: emit the profiling program, build it, run it on one device (no mpirun),
# then feed its cost table to ffc simulate. The table must parse, hold one entry per distinct
# kernel the program was emitted for, and give ffc simulate every kernel of data parallelism and
# of the strategy as measured on a machine whose card is the one the table was measured on.
# usage: profile_program.sh FFC WORKDIR MODEL STRATEGY RANKS BATCH
set -euo pipefail
ffc=$1 work=$2 model=$3 strategy=$4 ranks=$5 batch=$6
rm -rf "$work" && mkdir -p "$work"

"$ffc" profile "$model" -s "$strategy" -g "$ranks" -b "$batch" -o "$work/src" | tee "$work/profile.log"
kernels=$(sed -n 's/.* measures \([0-9]*\) distinct kernels.*/\1/p' "$work/profile.log")
name=$(sed -n 's/^wrote [^:]*: \([^ ]*\) measures.*/\1/p' "$work/profile.log")

cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DFFRT_BACKEND="${FFRT_BACKEND:-cpu}" ${FFRT_DIR:+-Dffrt_DIR="$FFRT_DIR"} > "$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/build" -j "${E2E_JOBS:-2}" > "$work/build.log" 2>&1 || { tail -50 "$work/build.log"; exit 1; }

export OMP_WAIT_POLICY=passive
"$work/build/$name" --out "$work/costs.txt" --reps 5 --warmup 1 --threads 1 | tee "$work/run.log"
grep -q "^wrote $work/costs.txt: $kernels kernels" "$work/run.log"
# The card defaults to the device's: "cpu" on the cpu backend.
[ "${FFRT_BACKEND:-cpu}" != cpu ] || [ "$(sed -n 3p "$work/costs.txt" | cut -d' ' -f1)" = cpu ]

# Bad flags are errors that say what to fix.
if "$work/build/$name" > "$work/noout.log" 2>&1; then echo "profile_program: ran without --out" >&2; exit 1; fi
grep -q -- "--out FILE is required" "$work/noout.log"
if "$work/build/$name" --out "$work/x.txt" --card "a b" > "$work/card.log" 2>&1; then echo "profile_program: a card of two words" >&2; exit 1; fi
grep -q -- "--card takes one word" "$work/card.log"
"$work/build/$name" --help | grep -q -- "--reps R"

# The table: `ffc-costs 2`, then one line per kernel, each key once, every time and launch count a
# number (the cpu backend records no graphs: one launch each; the cuda backend counts a graph's).
"${PYTHON:-python3}" - "$work/costs.txt" "$kernels" <<'PY'
import sys
lines = [l.rstrip("\n") for l in open(sys.argv[1])]
assert lines[0] == "ffc-costs 2", lines[0]
rows = [l.split(" ", 4) for l in lines[1:] if l and not l.startswith("#")]
keys = [r[4] for r in rows]
assert len(keys) == int(sys.argv[2]), (len(keys), sys.argv[2])
assert len(set(keys)) == len(keys), "a key twice"
assert keys == sorted(keys), "not in ffc's order"
assert all(r[1] == "fp32" and float(r[2]) >= 0 and float(r[3]) >= 1 for r in rows), rows
print(f"profile_program: {len(keys)} kernels measured, {sum(float(r[2]) for r in rows):.1f} us in all")
PY

# A machine whose card is the cpu: ffc simulate takes every kernel from the table.
printf 'base = h100\nname = this-cpu\ncard = cpu\n' > "$work/cpu.machine"
for s in - "$strategy"; do
  sflag=()
  if [ "$s" != "-" ]; then sflag=(-s "$s"); fi
  "$ffc" simulate "$model" "${sflag[@]}" -g "$ranks" -b "$batch" --machine "$work/cpu.machine" --costs "$work/costs.txt" \
    | tee "$work/simulate.log"
  grep -Eq "costs .*costs.txt: ([0-9]+) of \1 kernels measured" "$work/simulate.log" \
    || { echo "profile_program: simulate did not find every kernel in the table ($s)" >&2; exit 1; }
done
# The h100 preset's card is another: nothing measured there.
"$ffc" simulate "$model" -g "$ranks" -b "$batch" --costs "$work/costs.txt" | grep -q ": 0 of [0-9]* kernels measured"
echo "profile_program: ok"
