#!/usr/bin/env bash
# The user path: ffc compile -> build the generated project -> mpirun the program. Its losses must
# match the partitioned run ffc verify emulates (--no-resync: the same program, differences
# compounding as they do on real ranks) and the serial run within 1e-4, and its checkpoint the
# weights ffc verify saves. Compiling twice must give byte-identical files. Then, from that
# checkpoint (--load), the program's losses must match `ffc run --load`'s; with a data set (-d),
# ffc verify's on the same data; saved under the compiled strategy and loaded into a data-parallel
# program on 2 ranks, the run continues as if uninterrupted. Run at another global batch (-b), its
# losses match the serial trainer's at that batch.
# usage: emitted_program.sh FFC WORKDIR MODEL STRATEGY RANKS BATCH ITERATIONS [DATASET]
set -euo pipefail
ffc=$1 work=$2 model=$3 strategy=$4 ranks=$5 batch=$6 iters=$7 data=${8:-}
name=$(basename "$model" .ff)
rm -rf "$work" && mkdir -p "$work"
sflag=()
if [ "$strategy" != "-" ]; then sflag=(-s "$strategy"); fi

"$ffc" compile "$model" "${sflag[@]}" -g "$ranks" -b "$batch" -o "$work/src" --optimizer momentum
"$ffc" compile "$model" "${sflag[@]}" -g "$ranks" -b "$batch" -o "$work/again" --optimizer momentum > /dev/null
diff -r "$work/src" "$work/again" > /dev/null || { echo "emitted_program: compiling twice gave different files" >&2; exit 1; }
grep -q "Do not edit" "$work/src/rank_0.cc"

cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DFFRT_BACKEND="${FFRT_BACKEND:-cpu}" ${FFRT_DIR:+-Dffrt_DIR="$FFRT_DIR"} > "$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/build" -j "${E2E_JOBS:-2}" > "$work/build.log" 2>&1 || { tail -50 "$work/build.log"; exit 1; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
mpirun -np "$ranks" --oversubscribe "$work/build/$name" --iterations "$iters" --lr 0.05 --momentum 0.9 \
  --save "$work/program.safetensors" --log-json "$work/log.json" | tee "$work/run.log"
"$ffc" verify "$model" "${sflag[@]}" -g "$ranks" -b "$batch" --steps "$iters" --lr 0.05 --momentum 0.9 --no-resync \
  --save "$work/verify.safetensors" | tee "$work/verify.log"

# A wrong rank count is a clear error before any work.
if mpirun -np $((ranks + 1)) --oversubscribe "$work/build/$name" > "$work/wrong.log" 2>&1; then
  echo "emitted_program: a run with the wrong rank count succeeded" >&2; exit 1
fi
grep -q "was compiled for $ranks ranks" "$work/wrong.log"
# --trace writes the last iteration's timeline: every rank, its compute and host lanes (and its
# phases on the communication lane), named as the Rank IR's instructions.
mpirun -np "$ranks" --oversubscribe "$work/build/$name" --iterations 2 --trace "$work/trace.json" > "$work/trace.log"
python3 - "$work/trace.json" "$ranks" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ranks = int(sys.argv[2])
x = [e for e in d["traceEvents"] if e.get("ph") == "X"]
assert sorted({e["pid"] for e in x}) == list(range(ranks)), "ranks in the trace"
for r in range(ranks):
    lanes = {e["tid"] for e in x if e["pid"] == r}
    assert {0, 2} <= lanes and lanes <= {0, 1, 2}, (r, lanes)
assert any(e["name"].startswith("forward ") and e["tid"] == 0 for e in x), "no forward on the compute lane"
assert all(e["dur"] >= 0 for e in x), "a negative duration"
assert ranks == 1 or any(e["tid"] == 1 for e in x), "no phase on the communication lane"
assert d["otherData"]["measured_iteration_us"] > 0
print("emitted_program: --trace: %d events" % len(x))
PY
# bench/trace_summary.py sets it beside ffc simulate's trace of the same program: every instruction
# of the step in both, matched by name.
"$ffc" simulate "$model" "${sflag[@]}" -g "$ranks" -b "$batch" --optimizer momentum --trace "$work/sim.json" > /dev/null
python3 "$(dirname "$0")/../../bench/trace_summary.py" "$work/trace.json" --against "$work/sim.json" > "$work/against.log"
grep -Eq '^  [0-9]+ instructions in both; [0-9]+ measured only .*; 0 predicted only$' "$work/against.log" \
  || { cat "$work/against.log" >&2; echo "emitted_program: trace_summary --against did not match the instructions" >&2; exit 1; }
grep -Eq '^  all +[0-9]+ ' "$work/against.log" || { cat "$work/against.log" >&2; exit 1; }
# With --cuda-graph (cuda), the trace is a replayed step's: its marks are nodes of the graphs, and
# there is no host lane (the step was issued once, when recorded).
if [ "${FFRT_BACKEND:-cpu}" = cuda ]; then
  if mpirun -np "$ranks" --oversubscribe "$work/build/$name" --iterations 5 --cuda-graph \
       --trace "$work/graph_trace.json" > "$work/graph_trace.log" 2>&1; then
    python3 - "$work/graph_trace.json" "$work/trace.json" "$ranks" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
eager = json.load(open(sys.argv[2]))
ranks = int(sys.argv[3])
x = [e for e in d["traceEvents"] if e.get("ph") == "X"]
assert d["otherData"]["cuda_graph"] is True, "not marked as a replayed step"
assert sorted({e["pid"] for e in x}) == list(range(ranks)), "ranks in the trace"
assert {e["tid"] for e in x} <= {0, 1} and any(e["tid"] == 0 for e in x), "lanes of a replayed step"
assert all(e["dur"] >= 0 for e in x), "a negative duration"
names = [e["name"] for e in x if e["pid"] == 0 and e["tid"] == 0]
eager_names = [e["name"] for e in eager["traceEvents"] if e.get("ph") == "X" and e.get("pid") == 0 and e.get("tid") == 0]
assert names == eager_names, "the replayed step's instructions differ from the eager step's"
span = max(e["ts"] + e["dur"] for e in x if e["pid"] == 0)
assert 0 < span <= d["otherData"]["measured_iteration_us"], (span, d["otherData"]["measured_iteration_us"])
print("emitted_program: --trace --cuda-graph: %d events, rank 0's step %.1f us" % (len(x), span))
PY
  elif grep -q "changes with every step" "$work/graph_trace.log"; then
    echo "emitted_program: --trace --cuda-graph: not for this model ($(grep -m 1 'changes with every step' "$work/graph_trace.log"))"
  else
    cat "$work/graph_trace.log" >&2; exit 1
  fi
fi
# --help lists the flags; an unknown flag is an error that points to it.
mpirun -np "$ranks" --oversubscribe "$work/build/$name" --help > "$work/help.log" 2>&1
grep -q -- "--cuda-graph" "$work/help.log"
if mpirun -np "$ranks" --oversubscribe "$work/build/$name" --no-such-flag > "$work/flag.log" 2>&1; then
  echo "emitted_program: an unknown flag was accepted" >&2; exit 1
fi
grep -q "unknown flag --no-such-flag (--help lists them)" "$work/flag.log"

# The losses in a log of the program (`iter K/N loss X`) or of ffc run (`step K loss X`).
losses() { sed -n 's/^iter [0-9]*\/[0-9]* loss \([^ ]*\).*/\1/p; s/^step [0-9]* loss \([^ ]*\).*/\1/p' "$1"; }
same_losses() {  # same_losses A B WHAT: equal within 1e-4 (relative to max(1, |b|)), equally many
  paste <(losses "$1") <(losses "$2") | awk -v what="$3" '
    { n++; d = $1 - $2; if (d < 0) d = -d; b = $2 < 0 ? -$2 : $2; if (b < 1) b = 1;
      if (NF != 2 || d > 1e-4 * b) { print "emitted_program: " what ": " $0 > "/dev/stderr"; bad = 1 } }
    END { if (n == 0) { print "emitted_program: " what ": no losses" > "/dev/stderr"; bad = 1 }
          if (!bad) print "emitted_program: " what ": " n " losses match"; exit bad }'
}

# -b at run time: a global batch that the strategy's parts divide (--help says the unit), smaller
# than the compiled one or larger (the arena's plan grows), trains as the serial trainer does at
# that batch; any other batch is a clear error before any work.
unit=$(sed -n 's/.*: a multiple of \([0-9]*\).*/\1/p' "$work/help.log")
[ -n "$unit" ] && [ "$unit" -ge 1 ] || { echo "emitted_program: --help gives no batch unit" >&2; exit 1; }
for b in $((batch > unit ? unit : batch)) $((batch + unit)); do
  mpirun -np "$ranks" --oversubscribe "$work/build/$name" -b "$b" --iterations 3 --lr 0.05 --momentum 0.9 \
    > "$work/batch$b.log"
  grep -q "global batch $b" "$work/batch$b.log"
  "$ffc" run "$model" -b "$b" --steps 3 --lr 0.05 --momentum 0.9 > "$work/batch$b.serial.log"
  same_losses "$work/batch$b.log" "$work/batch$b.serial.log" "-b $b (compiled for $batch)"
done
if [ "$unit" -gt 1 ]; then
  if mpirun -np "$ranks" --oversubscribe "$work/build/$name" -b $((batch + 1)) > "$work/badbatch.log" 2>&1; then
    echo "emitted_program: -b $((batch + 1)) was accepted (unit $unit)" >&2; exit 1
  fi
  grep -q "the batch must be a multiple of $unit" "$work/badbatch.log"
fi

# From a checkpoint: the program and the serial trainer start from the same weights.
mpirun -np "$ranks" --oversubscribe "$work/build/$name" --iterations 2 --lr 0.05 --momentum 0.9 \
  --load "$work/program.safetensors" > "$work/load.log"
"$ffc" run "$model" -b "$batch" --steps 2 --lr 0.05 --momentum 0.9 --load "$work/program.safetensors" > "$work/run.serial.log"
same_losses "$work/load.log" "$work/run.serial.log" "--load"

# Save under one strategy, load under another, continue: SGD with momentum (the checkpoint carries
# the momentum buffers and the update count), 2 + 2 iterations against 4 uninterrupted; the second
# half runs data parallel on 2 ranks.
mpirun -np "$ranks" --oversubscribe "$work/build/$name" --iterations 4 --lr 0.05 --momentum 0.9 > "$work/whole.log"
# --cuda-graph records the third iteration and replays it: the same losses as the eager run (cuda);
# the cpu backend has no graphs (a clear error).
if [ "${FFRT_BACKEND:-cpu}" = cuda ]; then
  mpirun -np "$ranks" --oversubscribe "$work/build/$name" --iterations 4 --lr 0.05 --momentum 0.9 --cuda-graph \
    > "$work/graph.log"
  same_losses "$work/graph.log" "$work/whole.log" "--cuda-graph"
else
  if mpirun -np "$ranks" --oversubscribe "$work/build/$name" --cuda-graph > "$work/graph.log" 2>&1; then
    echo "emitted_program: --cuda-graph ran on the cpu backend" >&2; exit 1
  fi
  grep -q "the cpu backend has no CUDA graphs" "$work/graph.log"
fi
mpirun -np "$ranks" --oversubscribe "$work/build/$name" --iterations 2 --lr 0.05 --momentum 0.9 \
  --save "$work/half.safetensors" > "$work/first.log"
"$ffc" compile "$model" -g 2 -b "$batch" -o "$work/dp2" --optimizer momentum > /dev/null
cmake -S "$work/dp2" -B "$work/dp2/build" -DCMAKE_BUILD_TYPE=Release -DFFRT_BACKEND="${FFRT_BACKEND:-cpu}" ${FFRT_DIR:+-Dffrt_DIR="$FFRT_DIR"} > "$work/dp2.cmake.log" 2>&1
cmake --build "$work/dp2/build" -j "${E2E_JOBS:-2}" > "$work/dp2.build.log" 2>&1 || { tail -50 "$work/dp2.build.log"; exit 1; }
mpirun -np 2 --oversubscribe "$work/dp2/build/$name" --iterations 2 --start-iteration 2 --lr 0.05 --momentum 0.9 \
  --load "$work/half.safetensors" > "$work/second.log"
cat "$work/first.log" "$work/second.log" > "$work/halves.log"
same_losses "$work/halves.log" "$work/whole.log" "save, load under data parallelism, continue"

if [ -n "$data" ]; then
  mpirun -np "$ranks" --oversubscribe "$work/build/$name" -d "$data" --iterations "$iters" --lr 0.05 \
    --momentum 0.9 > "$work/data.log"
  "$ffc" verify "$model" "${sflag[@]}" -g "$ranks" -b "$batch" -d "$data" --steps "$iters" --lr 0.05 --momentum 0.9 \
    --no-resync -q > /dev/null
  "$ffc" run "$model" -b "$batch" -d "$data" --steps "$iters" --lr 0.05 --momentum 0.9 > "$work/data.serial.log"
  same_losses "$work/data.log" "$work/data.serial.log" "-d $data"
fi

"${PYTHON:-python3}" - "$work" <<'PY'
import array, json, struct, sys
work = sys.argv[1]  # plain Python: the GPU host's python3 may lack numpy

def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = array.array("f", data[a:b])
    return out

program = [json.loads(l)["loss"] for l in open(f"{work}/log.json")]
serial, partitioned = [], []
for line in open(f"{work}/verify.log"):
    if line.startswith("step "):
        w = line.split()
        serial.append(float(w[4])), partitioned.append(float(w[6]))
assert len(program) == len(partitioned), (program, partitioned)
bad = []
for k, (p, e, s) in enumerate(zip(program, partitioned, serial)):
    if abs(p - e) > 1e-4 * max(1, abs(e)) or abs(p - s) > 1e-4 * max(1, abs(s)):
        bad.append(f"iteration {k + 1}: program {p} emulated {e} serial {s}")
got, want = tensors(f"{work}/program.safetensors"), tensors(f"{work}/verify.safetensors")
# The program's checkpoint also holds the optimizer's state (momentum buffers).
assert want.keys() <= got.keys(), (sorted(got), sorted(want))
assert all(k in want or k.endswith(".momentum_buffer") for k in got), sorted(got)
for k in want:
    if len(got[k]) != len(want[k]):
        bad.append(f"{k}: {len(got[k])} elements, expected {len(want[k])}")
        continue
    scale = max([1e-3] + [abs(w) for w in want[k]])
    err = max([0.0] + [abs(g - w) for g, w in zip(got[k], want[k])])
    if err > 1e-4 * scale:
        bad.append(f"{k}: max difference {err:.3g} (scale {scale:.3g})")
for b in bad:
    print("emitted_program:", b, file=sys.stderr)
print(f"emitted_program: {len(program)} iterations, {len(want)} tensors: {'FAIL' if bad else 'match'}")
sys.exit(1 if bad else 0)
PY
