#!/usr/bin/env bash
# ffrt_comm_profile on the cpu backend (MPI): 2 ranks, sizes up to 1 MiB. It must print a fit per
# kind, write a machine file whose links are the all-ranks all-reduce's bandwidth and the kinds'
# latencies (a phase's and a ring step's, or the all-ranks fit's), and ffc simulate must
# read that file and use those links. Bad flags and a job of one rank are errors that say so.
# usage: comm_profile.sh PROFILE FFC MPIEXEC WORKDIR MODEL
set -euo pipefail
profile=$1 ffc=$2 mpiexec=$3 work=$4 model=$5
rm -rf "$work" && mkdir -p "$work"
export OMP_WAIT_POLICY=passive
run() { "$mpiexec" --oversubscribe -np "$@"; }

run 2 "$profile" --max-mib 1 --reps 3 --warmup 1 --threads 1 --base h200 --out "$work/measured.machine" \
  | tee "$work/run.log"
# Three kinds, each fitted over 5 sizes (4 KiB .. 1 MiB).
[ "$(grep -c '^fit: ' "$work/run.log")" = 3 ] || { echo "comm_profile: not 3 fits" >&2; exit 1; }
[ "$(grep -Ec '^(all_reduce|all_reduce_pair|send_recv) +2 +[0-9]+ ' "$work/run.log")" = 15 ] \
  || { echo "comm_profile: not 15 measured rows" >&2; exit 1; }
grep -Eq '^send_recv +2 +1048576 ' "$work/run.log" || { echo "comm_profile: no 1 MiB transfer" >&2; exit 1; }
cat "$work/measured.machine"

# The file: the base first, then the measured links as the log's all-ranks fit gave them.
grep -v '^#' "$work/measured.machine" | head -1 | grep -qx 'base = h200'
bw=$(sed -n 's/^intra_node_bandwidth_gb_s = //p' "$work/measured.machine")
lat=$(sed -n 's/^intra_node_latency_us = //p' "$work/measured.machine")
fit=$(grep -m1 '^fit: all_reduce over ranks 0,1: ' "$work/run.log")
[[ "$fit" == *"B = $bw GB/s, L = "* ]] || { echo "comm_profile: the file's bandwidth is not the fit's: $fit" >&2; exit 1; }
# The latency: a ring step of the line through the kinds' intercepts, with what a phase pays once;
# or, without a usable line, the all-ranks fit's.
phase=$(sed -n 's/^phase_latency_us = //p' "$work/measured.machine")
if [ -z "$phase" ]; then
  [[ "$fit" == *"L = $lat us"* ]] || { echo "comm_profile: the file's latency is not the fit's: $fit" >&2; exit 1; }
fi
# The line recomputed here from the three printed fits (steps * L against steps, least squares):
# the file must hold it when it is usable, and the all-ranks fit's latency when it is not.
"${PYTHON:-python3}" - "$work/run.log" "$lat" "${phase:--1}" <<'PY'
import re, sys
fits = re.findall(r"^fit: \S+ over ranks \S+: B = \S+ GB/s, L = (\S+) us \(t = (\S+)\*L", open(sys.argv[1]).read(), re.M)
assert len(fits) == 3, fits
xs = [float(s) for _, s in fits]
ys = [float(s) * float(l) for l, s in fits]
n, sx, sy = len(xs), sum(xs), sum(ys)
sxx, sxy = sum(x * x for x in xs), sum(x * y for x, y in zip(xs, ys))
det = n * sxx - sx * sx
step = max(0.01, (n * sxy - sx * sy) / det)  # a flat line: the slope clamped, the intercept refitted
phase = (sy - step * sx) / n
lat, got_phase = float(sys.argv[2]), float(sys.argv[3])
if phase >= 0:
    # The fits are printed to 6 digits: the line from them differs from the file's by their rounding.
    close = lambda a, b: abs(a - b) <= 1e-3 + 1e-4 * abs(b)
    assert close(got_phase, phase) and close(lat, step), (got_phase, phase, lat, step)
    print(f"comm_profile: a phase {phase:.4g} us, a ring step {step:.4g} us, as the file says")
else:
    assert got_phase < 0, f"the line (phase {phase}, step {step}) is unusable but the file has a phase latency"
    print(f"comm_profile: no usable line (phase {phase:.4g} us, step {step:.4g} us): the fit's latency")
PY

# The grouped phase: what each all-reduce after the first adds, printed and in the file.
grep -Eq '^grouped: a phase of 8 all-reduces of 4 KiB over ranks 0,1: ' "$work/run.log"
grouped=$(sed -n 's/^grouped_collective_us = //p' "$work/measured.machine")
[ -n "$grouped" ] || { echo "comm_profile: no grouped_collective_us in the file" >&2; exit 1; }

# Compute beside communication: GEMMs alone and beside the largest all-reduce, printed, and their
# ratio (at least 1) in the file.
grep -Eq '^overlap: [0-9]+ GEMMs of 64 x 64: [0-9.]+ us alone, [0-9.]+ us beside an all-reduce of 1 MiB over ranks 0,1 \([0-9.]+ us\): compute x[0-9.]+ beside communication$' "$work/run.log" \
  || { echo "comm_profile: no overlap line" >&2; exit 1; }
slowdown=$(sed -n 's/^overlap_slowdown = //p' "$work/measured.machine")
awk -v s="$slowdown" 'BEGIN { exit !(s != "" && s >= 1) }' || { echo "comm_profile: overlap_slowdown '$slowdown'" >&2; exit 1; }

# The cpu backend has no graphs: its phases are timed as issued, back to back.
grep -q '^# median of 3 repetitions after 1 warm-up, 10 phases each issued back to back; ' "$work/measured.machine" \
  || { echo "comm_profile: the file does not say how phases were timed" >&2; exit 1; }

# ffc simulate reads it, on the measured links.
"$ffc" simulate "$model" -g 2 --machine "$work/measured.machine" | tee "$work/simulate.log"
grep -Eq 'measured \(h200\)' "$work/simulate.log" || { echo "comm_profile: simulate did not use the file" >&2; exit 1; }
grep -Eq 'us a grouped collective' "$work/simulate.log" || { echo "comm_profile: simulate did not read grouped_collective_us" >&2; exit 1; }
[ -z "$phase" ] || grep -Eq 'us a phase' "$work/simulate.log" \
  || { echo "comm_profile: simulate did not read phase_latency_us" >&2; exit 1; }
awk -v s="$slowdown" 'BEGIN { exit !(s == 1) }' || grep -Eq 'compute x[0-9.]+ beside communication' "$work/simulate.log" \
  || { echo "comm_profile: simulate did not read overlap_slowdown" >&2; exit 1; }
"${PYTHON:-python3}" - "$work/simulate.log" "$bw" "$lat" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
bw, lat = float(sys.argv[2]), float(sys.argv[3])
m = re.search(r"links (\d+) GB/s ([\d.]+) us \(node\)", text)
assert m, "no links in the machine line"
assert abs(int(m.group(1)) - round(bw)) <= 1 and abs(float(m.group(2)) - lat) <= 0.051, (m.groups(), bw, lat)
assert bw > 0 and lat > 0
t = re.search(r"^predicted iteration time: ([\d.]+) ms$", text, re.M)
assert t and float(t.group(1)) > 0, "no predicted iteration time"
print(f"comm_profile: ffc simulate runs on the measured links ({bw} GB/s, {lat} us)")
PY

# Errors: one rank, an unknown flag, a bad number; each exits 1 and says what is wrong.
expect_error() {
  local what=$1 pattern=$2
  shift 2
  if "$@" > "$work/err.log" 2>&1; then echo "comm_profile: $what succeeded" >&2; exit 1; fi
  grep -q -- "^error: .*$pattern" "$work/err.log" || { cat "$work/err.log"; echo "comm_profile: $what: no '$pattern'" >&2; exit 1; }
}
expect_error "one rank" "at least 2 ranks" run 1 "$profile"
expect_error "an unknown flag" "unknown flag --bogus" run 2 "$profile" --bogus
expect_error "a bad number" "--reps takes a whole number" run 2 "$profile" --reps 3x
expect_error "a bad base" "--base takes h100 or h200" run 2 "$profile" --base a100
expect_error "graphs on the cpu" "--graph: the cpu backend records no graphs" run 2 "$profile" --graph
expect_error "a negative warm-up" "--warmup must not be negative" run 2 "$profile" --warmup -1
run 2 "$profile" --help | grep -q -- "--max-mib M"
echo "comm_profile: ok"
