#!/usr/bin/env bash
# ffc vs PyTorch, side by side, on this host's GPUs. See bench/README.md.
#
#   bench/run.sh [--gpus "1 2 4"] [--models "alexnet resnet50 inception_v3 transformer"]
#                [--math tf32|fp32] [--iterations 30] [--warmup 10] [--out DIR]
#                [--timeout 300] [--budget 560] [--batches "alexnet=256 ..."] [--strategies "STEM ..."]
#                [--sync-bn] [--attention math|sdpa] [--no-strategies] [--no-pytorch]
#                [--build-only | --no-build] [--append] [--ffc PATH] [--jobs 16] [--cuda-arch 90]
#                [--backend cuda|cpu] [--trace] [--ffc-flags "--cuda-graph"] [--profile [--machine M]]
#                [--search [--search-time 60]]
#
# Steps: build ffc (cmake -S . -B build-bench -G Ninja -DFFC_BUILD_TESTS=OFF -DFFC_CUDA=OFF;
# ninja ffc); for each GPU count and model, ffc compile with data parallelism (-g N) and with every
# strategy file of that model for N devices (strategies/<model>_<name><N>.pbtxt, but for *_dpN,
# which is data parallelism again, and *_onnx_*, which name an ONNX import's ops); one parent CMake
# project over all emitted programs (libffrt built once), built with -DFFRT_BACKEND=cuda; then for
# each GPU count and model: the data-parallel ffc program under mpirun, pytorch_bench.py right after
# it on the same GPUs, then the strategies' programs. Every run is bounded (--timeout, and --budget
# for the whole script); a failing step records its first error line and the script goes on.
#
# --profile (issue 8, the simulator's accuracy): also builds, per model and GPU count, the program of
# `ffc profile` for data parallelism and that count's strategies (--no-search-space), runs them
# before the timed runs (one per GPU at a time) into DIR/costs/<model>_g<N>.costs, measures the
# links with ffrt_comm_profile_cuda (mpirun on every GPU; the one next to --ffc, from ffc's own
# cuda build) into DIR/measured.machine, and after the
# runs adds to each ffc line the time `ffc simulate` predicts with those costs and that machine
# (--machine M instead: a preset or machine file); summary.md then has the predicted-vs-measured
# table.
#
# --search (issue 8, the search's payoff; implies --profile): the profiling programs measure every
# kernel `ffc search` may propose (no --no-search-space), then, per model and GPU count, `ffc search
# --time S` with those costs and links writes DIR/strategies/<model>_search<N>.pbtxt (its report in
# DIR/search/), which is compiled, built and run like the other strategies, as strategy `searchN`
# (not for 1 GPU, where every op has one placement, nor for more GPUs than the host has).
#
# Out (DIR, default build-bench/results): results.jsonl (one line per run), summary.md (the
# table, also printed), meta.json (card, date, commit, command), logs.tar.gz (every step's log
# and ffc's --log-json files); with --profile, costs/ and measured.machine.
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}

GPUS="1 2 4"
MODELS="alexnet resnet50 inception_v3 transformer"
MATH=tf32
ITERS=30
WARMUP=10
OUT="$REPO/build-bench/results"
TIMEOUT=300
BUDGET=560
BATCHES=""
STRATEGIES=auto
SYNC_BN=0
ATTENTION=math
PYTORCH=1
TRACE=0
FFC_FLAGS=""
PROFILE=0
SEARCH=0
SEARCH_TIME=60
MACHINE=""
BUILD=1
BUILD_ONLY=0
APPEND=0
FFC=""
JOBS=$(( $(nproc) < 16 ? $(nproc) : 16 ))
BACKEND=cuda
CUDA_ARCH=90
COMMAND_LINE="bench/run.sh"
for a in "$@"; do if [[ $a == *" "* || -z $a ]]; then COMMAND_LINE+=" \"$a\""; else COMMAND_LINE+=" $a"; fi; done

usage() { sed -n '2,/^set -u/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --gpus) GPUS=$2; shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    --math) MATH=$2; shift 2 ;;
    --iterations) ITERS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;          # seconds per run (compile, program, PyTorch)
    --budget) BUDGET=$2; shift 2 ;;            # seconds for the whole script; 0: no limit
    --batches) BATCHES=$2; shift 2 ;;          # "model=B ..." overrides the default global batches
    --strategies) STRATEGIES=$2; shift 2 ;;    # strategy file stems to run instead of the automatic choice
    --no-strategies) STRATEGIES=""; shift ;;
    --sync-bn) SYNC_BN=1; shift ;;             # PyTorch: SyncBatchNorm on several GPUs (ffc's batch_norm semantics)
    --attention) ATTENTION=$2; shift 2 ;;      # PyTorch transformer: math (as the .ff) or sdpa
    --no-pytorch) PYTORCH=0; shift ;;
    --trace) TRACE=1; shift ;;                 # a traced ffc run, PyTorch --profile: into logs.tar.gz
    --ffc-flags) FFC_FLAGS=$2; shift 2 ;;      # more flags for every ffc program (e.g. --cuda-graph)
    --profile) PROFILE=1; shift ;;             # measured costs and the simulator's predictions
    --machine) MACHINE=$2; shift 2 ;;          # with --profile: ffc simulate's machine
    --search) SEARCH=1; PROFILE=1; shift ;;    # profile the search space, ffc search, run what it finds
    --search-time) SEARCH_TIME=$2; shift 2 ;;  # seconds for each ffc search
    --build-only) BUILD_ONLY=1; shift ;;
    --no-build) BUILD=0; shift ;;              # use the programs built by an earlier call
    --append) APPEND=1; shift ;;               # add to DIR/results.jsonl instead of starting it anew
    --ffc) FFC=$2; shift 2 ;;                  # an ffc binary to use instead of building one
    --jobs) JOBS=$2; shift 2 ;;
    --backend) BACKEND=$2; shift 2 ;;          # cpu: only to test this script where there is no GPU
    --cuda-arch) CUDA_ARCH=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "bench/run.sh: unknown argument $1" >&2; usage 1 >&2 ;;
  esac
done
case "$MATH" in fp32|tf32) ;; *) echo "--math takes fp32 or tf32" >&2; exit 1 ;; esac
case "$BACKEND" in cuda|cpu) ;; *) echo "--backend takes cuda or cpu" >&2; exit 1 ;; esac

declare -A BATCH=([alexnet]=256 [resnet50]=256 [inception_v3]=128 [transformer]=64)
for kv in $BATCHES; do BATCH[${kv%%=*}]=${kv#*=}; done
for m in $MODELS; do
  [[ -f "$REPO/examples/$m.ff" && -n "${BATCH[$m]:-}" ]] || { echo "unknown model $m" >&2; exit 1; }
done

WORK="$REPO/build-bench/bench"      # emitted programs, their build, the logs
SRC="$WORK/programs"
BLD="$WORK/programs-build-$BACKEND"
LOGS="$WORK/logs"
mkdir -p "$OUT" "$SRC" "$LOGS"
OUT=$(cd "$OUT" && pwd)
rm -rf "${LOGS:?}"/*
RESULTS="$OUT/results.jsonl"
# An appended call keeps the strategies an earlier --search wrote: its rows are predicted again.
[[ $APPEND == 1 ]] || { : > "$RESULTS"; rm -rf "${OUT:?}/strategies" "${OUT:?}/search"; }
START=$SECONDS

export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1

say() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }
# Seconds a step may take: --timeout, within what is left of --budget (30 s kept for the summary).
step_limit() {
  local t=$TIMEOUT
  if [[ $BUDGET -gt 0 ]]; then
    local left=$((BUDGET - (SECONDS - START) - 30))
    [[ $left -lt $t ]] && t=$left
  fi
  echo $((t < 1 ? 1 : t))
}
# Seconds a build may take: what is left of --budget (30 s kept), or an hour without one.
build_limit() {
  local t=3600
  [[ $BUDGET -gt 0 ]] && t=$((BUDGET - (SECONDS - START) - 30))
  echo $((t < 1 ? 1 : t))
}
summ() { "$PYTHON" "$REPO/bench/summarize.py" "$@"; }
# fail SYSTEM MODEL STRATEGY GPUS REASON [LOG]: a failed (or skipped) run's line in results.jsonl.
fail() {
  local log_args=()
  [[ -n "${6:-}" ]] && log_args=(--log "$6")
  summ failure --system "$1" --model "$2" --strategy "$3" --gpus "$4" --batch "${BATCH[$2]}" --math "$MATH" \
    --reason "$5" "${log_args[@]}" >> "$RESULTS"
  say "$1 $2 g$4 $3: FAILED: $(tail -n 1 "$RESULTS" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["error"])')"
}
show() { "$PYTHON" -c 'import json, sys; r = json.loads(sys.argv[1]); print("%.1f samples/s, median %.2f ms (loss %.4g -> %.4g)" % (r["samples_per_s"], r["median_s"] * 1e3, r["loss_first"], r["loss_last"]))' "$1"; }

# ---- meta ------------------------------------------------------------------------------------
CARD=cpu; NGPU=0
if command -v nvidia-smi >/dev/null 2>&1; then
  CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
  NGPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | wc -l)
fi
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $COMMIT != unknown && -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
  COMMIT="$COMMIT (with uncommitted changes)"
fi
TORCH_VERSION=$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)
OUT="$OUT" CARD="$CARD" NGPU="$NGPU" COMMIT="$COMMIT" TORCH_VERSION="$TORCH_VERSION" COMMAND_LINE="$COMMAND_LINE" \
  "$PYTHON" -c '
import datetime, json, os
e = os.environ
json.dump({"card": e["CARD"], "gpus_visible": int(e["NGPU"]), "commit": e["COMMIT"], "torch": e["TORCH_VERSION"],
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": e["COMMAND_LINE"]}, open(e["OUT"] + "/meta.json", "w"), indent=1)
'
say "card: $CARD x$NGPU; commit $COMMIT; torch $TORCH_VERSION; math $MATH; $ITERS iterations after $WARMUP warm-up"

MPIRUN=(mpirun --bind-to none -x NCCL_NVLS_ENABLE -x TORCH_SYMM_MEM_DISABLE_MULTICAST -x NVSHMEM_DISABLE_NVLS
        -x CUDA_VISIBLE_DEVICES)
[[ $(id -u) == 0 ]] && MPIRUN+=(--allow-run-as-root)

# ---- the plan: which programs ------------------------------------------------------------------
# strategies_for MODEL N: the strategy file stems to run besides data parallelism.
strategies_for() {
  local m=$1 n=$2 f stem
  if [[ $STRATEGIES != auto ]]; then
    for stem in $STRATEGIES; do
      [[ $stem =~ ^${m}_.*[^0-9]${n}$ && -f "$REPO/strategies/$stem.pbtxt" ]] && echo "$stem"
    done
    return
  fi
  for f in "$REPO"/strategies/"${m}"_*.pbtxt; do
    [[ -e $f ]] || continue
    stem=$(basename "$f" .pbtxt)
    [[ $stem =~ ^${m}_(.*[^0-9])${n}$ ]] || continue
    [[ ${BASH_REMATCH[1]} == dp || ${BASH_REMATCH[1]} == *onnx* ]] && continue
    echo "$stem"
  done
}
# strategy_file STEM: a strategy the search wrote in this call (DIR/strategies), else strategies/.
strategy_file() {
  if [[ -f "$OUT/strategies/$1.pbtxt" ]]; then echo "$OUT/strategies/$1.pbtxt"; else echo "$REPO/strategies/$1.pbtxt"; fi
}
# label MODEL N STRATEGY-STEM|dp: the program's name (a CMake target, a directory).
label() { if [[ $3 == dp ]]; then echo "${1}_g${2}_dp"; else echo "${1}_g${2}_${3#"${1}"_}"; fi; }
short() { if [[ $2 == dp ]]; then echo dp; else echo "${2#"${1}"_}"; fi; }

declare -a PLAN=()          # "model gpus stem" for every ffc program
for n in $GPUS; do
  for m in $MODELS; do
    PLAN+=("$m $n dp")
    for s in $(strategies_for "$m" "$n"); do PLAN+=("$m $n $s"); done
  done
done

declare -A STATUS=()        # label -> ok | "reason"
declare -a PROFILES=()      # "label model gpus" of every profiling program built

# ---- build ffc -------------------------------------------------------------------------------
if [[ -z $FFC ]]; then
  FFC="$REPO/build-bench/tools/ffc/ffc"
  if [[ $BUILD == 1 ]]; then
    say "building ffc (build-bench/)"
    t=$(build_limit)
    if ! { timeout "$t" cmake -S "$REPO" -B "$REPO/build-bench" -G Ninja -DFFC_BUILD_TESTS=OFF -DFFC_CUDA=OFF \
             -DCMAKE_BUILD_TYPE=Release && timeout "$t" ninja -C "$REPO/build-bench" ffc; } > "$LOGS/build_ffc.log" 2>&1; then
      say "ffc did not build: $(summ failure --system ffc --model x --gpus 0 --batch 0 --log "$LOGS/build_ffc.log" |
            "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["error"])')"
    fi
  fi
fi
if [[ ! -x $FFC ]]; then
  for p in "${PLAN[@]}"; do STATUS[$(label $p)]="ffc did not build (see logs.tar.gz: build_ffc.log)"; done
fi

# ---- compile and build the programs ----------------------------------------------------------
# copy_if_changed SRC DST: keeps unchanged files' times, so that ninja rebuilds only what changed.
copy_if_changed() {
  mkdir -p "$2"
  local f
  for f in "$1"/*; do cmp -s "$f" "$2/$(basename "$f")" || cp "$f" "$2/"; done
}

# compile_program MODEL N STEM|dp: ffc compile into SRC/<label>, listed in BUILT (or STATUS: why not).
compile_program() {
  local m=$1 n=$2 s=$3 l sflag=() tmp
  l=$(label "$m" "$n" "$s")
  [[ -n ${STATUS[$l]:-} ]] && return
  [[ $s != dp ]] && sflag=(-s "$(strategy_file "$s")")
  tmp="$WORK/tmp/$l"; rm -rf "$tmp"
  if timeout "$(step_limit)" "$FFC" compile "$REPO/examples/$m.ff" "${sflag[@]}" -g "$n" -b "${BATCH[$m]}" \
       -o "$tmp" --name "$l" --optimizer sgd > "$LOGS/compile_$l.log" 2>&1; then
    copy_if_changed "$tmp" "$SRC/$l"
    BUILT+=("$l")
  else
    STATUS[$l]="compile: $(summ failure --system ffc --model "$m" --gpus "$n" --batch 0 --log "$LOGS/compile_$l.log" |
                          "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["error"])')"
    say "ffc compile $l failed: ${STATUS[$l]}"
  fi
  rm -rf "$tmp"
}

# build_programs: one parent CMake project over every program in BUILT (libffrt built once); a
# program that did not build gets its STATUS.
build_programs() {
  [[ ${#BUILT[@]} -gt 0 ]] || return 0
  local langs="C CXX" l err line cuda_flags=()
  [[ $BACKEND == cuda ]] && langs="C CXX CUDA"
  {
    echo "# Generated by bench/run.sh: every program of the benchmark over one libffrt build. Do not edit."
    echo "cmake_minimum_required(VERSION 3.25)"
    echo "project(ffc_bench LANGUAGES $langs)"
    echo "set(CMAKE_CXX_STANDARD 20)"
    echo "set(CMAKE_CXX_STANDARD_REQUIRED ON)"
    echo 'if(NOT CMAKE_BUILD_TYPE)'
    echo '  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)'
    echo 'endif()'
    echo "set(FFC_SOURCE_DIR \"$REPO\" CACHE PATH \"the ffc source tree\")"
    echo "set(FFRT_BACKEND $BACKEND CACHE STRING \"the runtime backend\")"
    echo 'add_subdirectory(${FFC_SOURCE_DIR}/runtime ffrt)'
    for l in "${BUILT[@]}"; do echo "add_subdirectory($l)"; done
  } > "$WORK/CMakeLists.new"
  cmp -s "$WORK/CMakeLists.new" "$SRC/CMakeLists.txt" || cp "$WORK/CMakeLists.new" "$SRC/CMakeLists.txt"
  rm -f "$WORK/CMakeLists.new"
  say "building ${#BUILT[@]} programs (FFRT_BACKEND=$BACKEND, -j$JOBS)"
  [[ $BACKEND == cuda ]] && cuda_flags=(-DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH")
  if ! timeout "$(build_limit)" cmake -S "$SRC" -B "$BLD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFFRT_BACKEND="$BACKEND" \
         "${cuda_flags[@]}" >> "$LOGS/build_programs.log" 2>&1; then
    err=$(summ failure --system ffc --model x --gpus 0 --batch 0 --log "$LOGS/build_programs.log" |
          "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["error"])')
    say "cmake of the programs failed: $err"
    for l in "${BUILT[@]}"; do [[ -n ${STATUS[$l]:-} || -x "$BLD/$l/$l" ]] || STATUS[$l]="cmake: $err"; done
  else
    timeout "$(build_limit)" ninja -C "$BLD" -k 0 -j "$JOBS" >> "$LOGS/build_programs.log" 2>&1 || say "the build had errors (or ran out of time)"
  fi
  for l in "${BUILT[@]}"; do
    [[ -n ${STATUS[$l]:-} || -x "$BLD/$l/$l" ]] && continue
    line=$(grep -E "(/$l/|$l\\.dir).*(error|Error)|(error|Error).*(/$l/|$l\\.dir)" "$LOGS/build_programs.log" | head -n 1)
    [[ -z $line ]] && line=$(grep -m 1 -E '\berror\b|Error [0-9]|FAILED' "$LOGS/build_programs.log")
    STATUS[$l]="build: ${line:-not built (time budget?)}"
  done
  say "build done"
}

BUILT=()
if [[ $BUILD == 1 ]]; then
  for p in "${PLAN[@]}"; do compile_program $p; done
  if [[ $PROFILE == 1 ]]; then
    # --search measures every kernel the search may propose; otherwise only the plan's strategies.
    space=(--no-search-space); [[ $SEARCH == 1 ]] && space=()
    for n in $GPUS; do
      for m in $MODELS; do
        l="${m}_g${n}_profile"; sflag=()
        for s in $(strategies_for "$m" "$n"); do sflag+=(-s "$REPO/strategies/$s.pbtxt"); done
        tmp="$WORK/tmp/$l"; rm -rf "$tmp"
        if timeout "$(step_limit)" "$FFC" profile "$REPO/examples/$m.ff" "${sflag[@]}" -g "$n" -b "${BATCH[$m]}" \
             "${space[@]}" --math "$MATH" -o "$tmp" --name "$l" > "$LOGS/compile_$l.log" 2>&1; then
          copy_if_changed "$tmp" "$SRC/$l"
          BUILT+=("$l")
          PROFILES+=("$l $m $n")
        else
          say "ffc profile $l failed: $(tail -n 1 "$LOGS/compile_$l.log")"
        fi
      done
    done
  fi
  rm -rf "$WORK/tmp"
  : > "$LOGS/build_programs.log"
  build_programs
fi
if [[ $BUILD_ONLY == 1 ]]; then
  [[ $SEARCH == 1 ]] && say "--build-only: no profiles, so no search"
  nb=0; for p in "${PLAN[@]}"; do l=$(label $p); [[ -x "$BLD/$l/$l" ]] && nb=$((nb + 1)); done
  say "--build-only: $nb of ${#PLAN[@]} programs built"
  tar -czf "$OUT/logs.tar.gz" -C "$WORK" logs
  exit 0
fi

# ---- --profile: kernel costs and links, before the timed runs ------------------------------------
PRESET=$(echo "$CARD" | tr 'A-Z' 'a-z' | grep -o -E '\bh[0-9]{3}\b' | head -n 1)
[[ -n $PRESET ]] || PRESET=h100
if [[ $PROFILE == 1 && ${#PROFILES[@]} -gt 0 ]]; then
  mkdir -p "$OUT/costs"
  say "profiling kernels: ${#PROFILES[@]} programs, one per GPU at a time"
  slots=$(( NGPU > 0 ? NGPU : 1 )); i=0
  for p in "${PROFILES[@]}"; do
    set -- $p; l=$1; m=$2; n=$3
    [[ -x "$BLD/$l/$l" ]] || { say "$l: not built"; continue; }
    t=$(step_limit)
    CUDA_VISIBLE_DEVICES=$((i % slots)) timeout -k 10 "$t" "$BLD/$l/$l" --math "$MATH" --reps 10 -q \
      --out "$OUT/costs/${m}_g${n}.costs" > "$LOGS/run_$l.log" 2>&1 &
    i=$((i + 1))
    [[ $((i % slots)) == 0 ]] && wait
  done
  wait
  say "profiles: $(ls "$OUT/costs" | wc -l) cost tables"
  # ffrt_comm_profile_cuda is built in ffc's own build with the cuda backend (tests/gpu/run.sh
  # builds it), next to the --ffc binary's tools/ffc; the programs' build has none.
  comm=""
  for c in "$(dirname "$FFC")/../../runtime/ffrt_comm_profile_cuda" "$REPO"/build*/runtime/ffrt_comm_profile_cuda; do
    [[ -x $c ]] && { comm=$c; break; }
  done
  [[ -z $MACHINE && -z $comm && $NGPU -ge 2 ]] &&
    say "links not measured: no ffrt_comm_profile_cuda (build ffc with the cuda backend and pass --ffc); the $PRESET preset"
  if [[ -z $MACHINE && -n $comm && $NGPU -ge 2 ]]; then
    say "measuring links with $comm"
    CUDA_VISIBLE_DEVICES=$(seq -s, 0 $((NGPU - 1))) timeout -k 10 "$(step_limit)" "${MPIRUN[@]}" -np "$NGPU" "$comm" \
      --base "$PRESET" --out "$OUT/measured.machine" > "$LOGS/comm_profile.log" 2>&1 &&
      MACHINE="$OUT/measured.machine" && say "links measured: $(grep -E '^(intra|phase|overlap)' "$MACHINE" | tr '\n' ' ')"
  fi
fi
[[ -n $MACHINE ]] || MACHINE=$PRESET

# ---- --search: ffc search on the measured costs and links, then build what it found --------------
if [[ $SEARCH == 1 && $BUILD == 1 ]]; then
  mkdir -p "$OUT/strategies" "$OUT/search"
  # The searches run side by side (each is one thread), each given --search-time, or what the
  # budget leaves (30 s kept for writing the strategy and the timeout's margin).
  searched=(); pids=()
  t=$(step_limit)
  (( SEARCH_TIME + 30 < t )) && t=$((SEARCH_TIME + 30))
  st=$((t - 30)); (( st < 5 )) && st=5
  for n in $GPUS; do
    # One GPU has one placement for every op (data parallelism); a count the host lacks cannot run.
    [[ $n -gt 1 ]] || continue
    [[ $BACKEND == cuda && $n -gt $NGPU ]] && continue
    for m in $MODELS; do
      costs="$OUT/costs/${m}_g${n}.costs"
      [[ -s $costs ]] || { say "search $m g$n: no cost table"; continue; }
      say "search $m g$n (--time $st) ..."
      timeout -k 10 "$t" "$FFC" search "$REPO/examples/$m.ff" -g "$n" -b "${BATCH[$m]}" --math "$MATH" \
        --optimizer sgd --costs "$costs" --machine "$MACHINE" --time "$st" -q \
        -o "$OUT/strategies/${m}_search${n}.pbtxt" > "$OUT/search/${m}_g${n}.txt" 2> "$LOGS/search_${m}_g${n}.log" &
      pids+=($!); searched+=("$m $n")
    done
  done
  found=()
  for i in "${!searched[@]}"; do
    set -- ${searched[$i]}; m=$1; n=$2; r="$OUT/search/${m}_g${n}.txt"
    rc=0; wait "${pids[$i]}" || rc=$?
    if [[ $rc == 0 && -s "$OUT/strategies/${m}_search${n}.pbtxt" ]]; then
      say "search $m g$n: $(grep -E '^predicted iteration time' "$r"); $(grep -E '^kernels measured' "$r"); $(grep -E '^search time' "$r")"
      found+=("$m $n ${m}_search${n}")
    elif [[ $rc == 124 || $rc == 137 ]]; then
      say "search $m g$n failed: timed out after $t s"
    else
      say "search $m g$n failed (exit $rc): $(tail -n 1 "$LOGS/search_${m}_g${n}.log")"
    fi
  done
  # Added to BUILT, the first build's programs with them: ninja builds only what is new.
  built_before=${#BUILT[@]}
  for p in "${found[@]}"; do
    compile_program $p
    PLAN+=("$p")
  done
  [[ ${#BUILT[@]} -gt $built_before ]] && build_programs
elif [[ $SEARCH == 1 ]]; then
  say "--search needs a build (not --no-build): no search"
fi

# ---- run -------------------------------------------------------------------------------------
run_ffc() {   # MODEL N STEM
  local m=$1 n=$2 s=$3 l st; l=$(label "$m" "$n" "$s"); st=$(short "$m" "$s")
  if [[ -n ${STATUS[$l]:-} ]]; then fail ffc "$m" "$st" "$n" "${STATUS[$l]}"; return; fi
  local exe="$BLD/$l/$l"
  [[ -x $exe ]] || { fail ffc "$m" "$st" "$n" "not built"; return; }
  local t; t=$(step_limit)
  [[ $t -ge 20 ]] || { fail ffc "$m" "$st" "$n" "skipped: time budget"; return; }
  local np=(-np "$n"); [[ $n -gt $(nproc) ]] && np+=(--oversubscribe)
  local math=(--math "$MATH")
  [[ -n $FFC_FLAGS ]] && math+=($FFC_FLAGS)
  rm -f "$LOGS/$l.jsonl"
  say "ffc $m g$n $st ..."
  if timeout -k 10 "$t" "${MPIRUN[@]}" "${np[@]}" "$exe" --iterations $((WARMUP + ITERS)) --optimizer sgd --lr 0.01 \
       "${math[@]}" --log-json "$LOGS/$l.jsonl" > "$LOGS/run_$l.log" 2>&1; then
    local r
    if r=$(summ ffc-result --log "$LOGS/$l.jsonl" --model "$m" --strategy "$st" --gpus "$n" --batch "${BATCH[$m]}" \
             --math "$MATH" --warmup "$WARMUP" 2>> "$LOGS/run_$l.log"); then
      echo "$r" >> "$RESULTS"
      say "ffc $m g$n $st: $(show "$r")"
      # --trace: a short run of its own, so the marks (with --cuda-graph, nodes of the graphs:
      # ~1.5 us each) do not slow the timed one.
      if [[ $TRACE == 1 ]]; then
        t=$(step_limit)
        timeout -k 10 "$t" "${MPIRUN[@]}" "${np[@]}" "$exe" --iterations $((WARMUP < 5 ? 5 : WARMUP)) --optimizer sgd \
          --lr 0.01 "${math[@]}" --trace "$LOGS/$l.trace.json" > "$LOGS/trace_$l.log" 2>&1 ||
          say "ffc $m g$n $st: the traced run failed ($LOGS/trace_$l.log)"
      fi
    else
      fail ffc "$m" "$st" "$n" "bad log-json" "$LOGS/run_$l.log"
    fi
  else
    local rc=$?
    if [[ $rc == 124 || $rc == 137 ]]; then fail ffc "$m" "$st" "$n" "timed out after ${t} s"
    else fail ffc "$m" "$st" "$n" "run (exit $rc)" "$LOGS/run_$l.log"; fi
  fi
}

run_pytorch() {   # MODEL N
  local m=$1 n=$2 st=eager l="pytorch_${1}_g${2}"
  [[ $n -gt 1 ]] && st=ddp
  local t; t=$(step_limit)
  [[ $t -ge 20 ]] || { fail pytorch "$m" "$st" "$n" "skipped: time budget"; return; }
  local extra=(); [[ $SYNC_BN == 1 ]] && extra+=(--sync-bn)
  [[ $BACKEND == cpu ]] && extra+=(--device cpu)
  [[ $TRACE == 1 && $BACKEND == cuda ]] && extra+=(--profile "$LOGS/$l.profile")
  rm -f "$LOGS/$l.json"
  say "pytorch $m g$n ..."
  if timeout -k 10 "$t" "$PYTHON" "$REPO/bench/pytorch_bench.py" --model "$m" --batch "${BATCH[$m]}" --gpus "$n" \
       --iterations "$ITERS" --warmup "$WARMUP" --math "$MATH" --attention "$ATTENTION" "${extra[@]}" \
       --json "$LOGS/$l.json" > "$LOGS/$l.log" 2>&1 && [[ -s "$LOGS/$l.json" ]]; then
    cat "$LOGS/$l.json" >> "$RESULTS"
    say "pytorch $m g$n: $(show "$(cat "$LOGS/$l.json")")"
  else
    local rc=$?
    if [[ $rc == 124 || $rc == 137 ]]; then fail pytorch "$m" "$st" "$n" "timed out after ${t} s"
    else fail pytorch "$m" "$st" "$n" "" "$LOGS/$l.log"; fi
  fi
}

for n in $GPUS; do
  if [[ $BACKEND == cuda && $n -gt $NGPU ]]; then
    for m in $MODELS; do
      for p in "${PLAN[@]}"; do set -- $p; [[ $1 == "$m" && $2 == "$n" ]] && fail ffc "$m" "$(short "$m" "$3")" "$n" "skipped: $NGPU GPUs on this host"; done
      [[ $PYTORCH == 1 ]] && fail pytorch "$m" "$([[ $n -gt 1 ]] && echo ddp || echo eager)" "$n" "skipped: $NGPU GPUs on this host"
    done
    continue
  fi
  CUDA_VISIBLE_DEVICES=$(seq -s, 0 $((n - 1))); export CUDA_VISIBLE_DEVICES
  for m in $MODELS; do
    run_ffc "$m" "$n" dp
    [[ $PYTORCH == 1 ]] && run_pytorch "$m" "$n"
    for p in "${PLAN[@]}"; do
      set -- $p
      [[ $1 == "$m" && $2 == "$n" && $3 != dp ]] && run_ffc "$m" "$n" "$3"
    done
  done
done
unset CUDA_VISIBLE_DEVICES

# ---- summary ---------------------------------------------------------------------------------
if [[ $PROFILE == 1 && -d "$OUT/costs" ]]; then
  traces=(); [[ $TRACE == 1 ]] && traces=(--traces "$LOGS")
  summ predict "$RESULTS" --ffc "$FFC" --repo "$REPO" --costs "$OUT/costs" --machine "$MACHINE" \
    --strategies "$OUT/strategies" "${traces[@]}" ||
    say "the predictions failed"
fi
summ table "$RESULTS" --meta "$OUT/meta.json" > "$OUT/summary.md"
tar -czf "$OUT/logs.tar.gz" -C "$WORK" logs
echo
cat "$OUT/summary.md"
say "done: $OUT/{results.jsonl,summary.md,meta.json,logs.tar.gz}"
