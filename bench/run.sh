#!/usr/bin/env bash
# bench/run.sh — attnmap beside its peers, in one invocation, on the same files, with the
# machine's limits measured in the same run (issue 7). Builds the Release tree, writes the
# synthetic datasets (bench/synth) once into $DATA, then for each size:
#   - `attnmap analyze` end to end (all analyses of docs/design.md §3 but flow; and rollout
#   alone,
#     gradient rollout alone, for the single-method peers), timings from summary.json;
#   - build/bench/bench_cpu: the fused pass and the chunk computation in-process, checked
#     against the plain reference loops, beside the memory-read floor and the entropy
#     compute floor measured in the same process;
#   - the peers of bench/peers/ (each checks its output against attnmap's run folder once,
#     then is timed): torch_batched, numpy_batched, vit_explain_loop, chefer_loop,
#     joint_attention_loop (slow loops are timed on their first examples);
#   - on a machine with an NVIDIA GPU and a CUDA build: the GPU's limits
#     (bench/peers/gpu_limits.py) and `attnmap analyze --backend cuda`.
# Then bench/tables.py prints the table (examples/s, GB/s, share of the limit, attnmap's
# examples/s over each peer's) and the scaling tables (examples, T, threads).
#
#   usage: bash bench/run.sh [--quick] [--no-long] [--threads K] [--e2e | --live | --mpi |
#                            --long-context [--tokens 1024,4096,16384]]
# --mpi runs only bench/mpi.sh (issue 15): strong scaling of `mpirun -n N attnmap analyze`.
# --long-context runs only the long-context form's rows (issue 14; about 10 minutes on 2
# cores): build/bench/bench_long (the pass alone, AVX2 against the plain loops), then
# bench/long_context.py (`attnmap analyze` end to end on a generated long-form dataset
# beside its matrix-form twin and a PyTorch peer that materialises A) and
# bench/long_bytes.py (bytes per example of both forms); raw log $OUT/long-context.log.
# --live runs only bench/live.py (issue 13; about 2 minutes): on the bundled model
# (all-MiniLM-L6-v2, 254 sentences) a live run (attnmap.hf) against export then analyze and
# against the model's forward + backward alone; raw log $OUT/live.log.
# --e2e runs only the end-to-end rows (issue 16; a few minutes, the long case's 8.6 GB
# file written once): for a 64-example and a 256-example bert128 file, bert512 and the
# long case, `attnmap analyze` (median of 3 after a warm-up, process start included) with
# and without the CRC-32C, the pass alone (bench_cpu), the read floor (every byte of the
# file once at the memory read bandwidth measured by bench_cpu) and the process start,
# and on the 64-example file the batched PyTorch peer; bench/tables.py e2e prints the table.
#   env:   DATA=/tmp/attnmap-bench (datasets, ~16 GB with the long case), BUILD=build,
#          OUT=$DATA/results (raw log and tables)
# Peers use Debian's /usr/bin/python3 (python3-torch, python3-scipy, python3-numpy; this
# script installs them when missing). Timings are medians; the log says how much CPU the
# run had (other processes on the machine make every number slower, not the ratios).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
QUICK=0 LONG=1 THREADS=$(nproc) E2E=0 LIVE=0 LCTX=0 TOKENS=1024,4096,16384
while [ $# -gt 0 ]; do
  case "$1" in
  --quick) QUICK=1 ;;
  --no-long) LONG=0 ;;
  --e2e) E2E=1 ;;
  --live) LIVE=1 ;;
  --long-context) LCTX=1 ;;
  --tokens) TOKENS=$2; shift ;;
  --mpi) exec bash bench/mpi.sh ;; # strong scaling under mpirun (issue 15; docs/cluster.md)
  --threads) THREADS=$2; shift ;;
  *) echo "usage: bash bench/run.sh [--quick] [--no-long] [--threads K] [--e2e | --live | --mpi | --long-context [--tokens LIST]]" >&2; exit 2 ;;
  esac
  shift
done
DATA=${DATA:-/tmp/attnmap-bench}
BUILD=${BUILD:-build}
OUT=${OUT:-$DATA/results}
PY=/usr/bin/python3
mkdir -p "$DATA" "$OUT"

# ---- --live: a live run against export + analyze and the model alone (issue 13) ----------
if [ $LIVE = 1 ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target attnmap_cli attnmap >/dev/null
  py=$(bash scripts/python-env.sh --minilm)
  B=$(cd "$BUILD" && pwd)
  {
    echo "@@ machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"
    echo "@@ command: bash bench/run.sh --live --threads $THREADS"
    echo "@@ commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  } | tee "$OUT/live.log"
  PYTHONPATH="$ROOT/python" ATTNMAP_LIBRARY="$B/libattnmap.so" ATTNMAP_CLI="$B/attnmap" \
    HF_HUB_OFFLINE=1 "$py" bench/live.py --threads "$THREADS" --work "$DATA/live" |
    tee -a "$OUT/live.log"
  echo "@@ load at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/live.log"
  exit 0
fi
# ---- --long-context: the long-context form (issue 14) ---------------------------------
if [ $LCTX = 1 ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target attnmap_cli bench_long >/dev/null
  LOGL="$OUT/long-context.log"
  {
    echo "@@ machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"
    echo "@@ command: bash bench/run.sh --long-context --threads $THREADS --tokens $TOKENS"
    echo "@@ commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
    echo "@@ bench_long, plain loops (the per-tile loops before the AVX2 set)"
    "$BUILD/bench/bench_long" --threads "$THREADS" --tokens "${TOKENS%,*}" --kernels plain --repeats 1
    echo "@@ bench_long, AVX2 set"
    "$BUILD/bench/bench_long" --threads "$THREADS" --tokens "$TOKENS" --repeats 3
    echo "@@ load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "@@ attnmap analyze end to end, beside the matrix form and the PyTorch peer"
    $PY bench/long_context.py --attnmap "$BUILD/attnmap" --tokens "$TOKENS" \
      --threads "$THREADS" --work "$DATA/long-context"
    echo "@@ bytes per example of both forms"
    $PY bench/long_bytes.py
    echo "@@ load at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"
  } 2>&1 | tee "$LOGL"
  exit 0
fi
LOG="$OUT/raw.log"
: >"$LOG"

# ---- set-up ---------------------------------------------------------------------------
if ! $PY -c 'import torch, scipy, numpy' 2>/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get install -y python3-torch python3-scipy python3-numpy >/dev/null
fi
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target attnmap_cli bench_cpu synth >/dev/null
AM="$BUILD/attnmap" BENCH="$BUILD/bench/bench_cpu" SYNTH="$BUILD/bench/synth"

log() { echo "$*" | tee -a "$LOG"; }
# synth NAME args...: writes $DATA/NAME once (a failed write leaves nothing behind)
synth() {
  local name=$1; shift
  if [ ! -d "$DATA/$name" ]; then
    "$SYNTH" -o "$DATA/$name.tmp" "$@" && mv "$DATA/$name.tmp" "$DATA/$name"
  fi
}
# analyze CASE GROUP LABEL RUN [options]: attnmap analyze end to end, after a warm-up run
analyze() {
  local case=$1 group=$2 label=$3 run=$4; shift 4
  "$AM" analyze "$DATA/$case" -o "$run" --force --quiet --threads "$THREADS" "$@"
  local t0 t1
  t0=$(date +%s.%N)
  "$AM" analyze "$DATA/$case" -o "$run" --force --quiet --threads "$THREADS" "$@"
  t1=$(date +%s.%N)
  log "@@ case=$case group=$group impl=attnmap_analyze label=$label"
  $PY bench/tables.py analyze-line "$run" "$t0" "$t1" "$THREADS" | tee -a "$LOG"
}
# bench CASE GROUP [bench_cpu options]
bench() {
  local case=$1 group=$2; shift 2
  log "@@ case=$case group=$group impl=attnmap_pass"
  "$BENCH" "$DATA/$case" --threads "$THREADS" "$@" | tee -a "$LOG"
}
# peer CASE GROUP PYTHON SCRIPT RUN [options]: a peer that fails (the published loops hold
# whole [L,H,T,T] stacks in float64 and run out of memory on long inputs) is a result too:
# its last line of stderr goes into the table
peer() {
  local case=$1 group=$2 py=$3 script=$4 run=$5; shift 5
  log "@@ case=$case group=$group impl=$script"
  local err="$OUT/peer.err"
  if ! OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS \
    $py "bench/peers/$script.py" "$DATA/$case" --run "$run" --threads "$THREADS" "$@" \
    2>"$err" | tee -a "$LOG"; then
    $PY -c 'import json, sys; print(json.dumps({"peer": sys.argv[1], "failed": sys.argv[2]}))' \
      "$script" "$(tail -n 1 "$err" | cut -c1-200)" | tee -a "$LOG"
  fi
}

log "@@ machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg); threads $THREADS; $(date -u +%FT%TZ)"
log "@@ command: bash bench/run.sh $([ $QUICK = 1 ] && echo --quick) $([ $LONG = 0 ] && echo --no-long) $([ $E2E = 1 ] && echo --e2e) --threads $THREADS"
log "@@ commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"

# attnmap's rows use every example; the batched peers take the first B128 / 4 of them (their
# rates are per example, and the first examples are as long as the rest on average)
N128=$([ $QUICK = 1 ] && echo 32 || echo 256)
B128=$([ $QUICK = 1 ] && echo 32 || echo 64)
N512=$([ $QUICK = 1 ] && echo 4 || echo 16)
synth bert128-f16 --examples "$N128" --layers 12 --heads 12 --tokens 128 --min-tokens 64 \
  --embed-dim 768 --dtype f16 --pad mixed
synth bert512-f16 --examples "$N512" --layers 12 --heads 12 --tokens 512 --min-tokens 256 \
  --embed-dim 768 --dtype f16 --pad mixed
[ $LONG = 1 ] && synth long2048-bf16 --examples 1 --layers 32 --heads 32 --tokens 2048 \
  --min-tokens 2048 --embed-dim 0 --dtype bf16 --no-grads

# what every `attnmap analyze` row includes: starting the process (a CUDA build maps the CUDA
# libraries at start, ~80 ms on the development machine)
starts=$(for i in 1 2 3 4 5; do
  t0=$(date +%s.%N); "$AM" --version >/dev/null; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
done | sort -n | sed -n 3p)
log "@@ process start (attnmap --version, median of 5): ${starts} s"

# ---- --e2e: end to end against the pass and the read floor ------------------------------
# e2e CASE: first bench_io logs what mapping the files costs as found, settles those not
# mapped as huge pages (dropped from the page cache and read back through a mapping: the
# 2 MiB folios an exported file sits in) and measures the CPU time of mapping them and of
# the CRC-32C; then three timed `attnmap analyze` runs of each kind after a warm-up (the wall
# and CPU time of the whole process, start included), then the pass and the floors in
# bench_cpu
e2e() {
  local case=$1 R="$OUT/runs/$1" kind opts t0 t1 i cpu
  mkdir -p "$R"
  log "@@ case=$case group=all impl=io e2e=1"
  "$BUILD/bench/bench_io" "$DATA/$case"/*.safetensors --settle | tee -a "$LOG"
  for kind in default no-checksum; do
    opts=$([ $kind = no-checksum ] && echo --no-checksum || true)
    "$AM" analyze "$DATA/$case" -o "$R/e2e" --force --quiet --threads "$THREADS" $opts
    for i in 1 2 3; do
      t0=$(date +%s.%N)
      cpu=$( { TIMEFORMAT='%3U %3S'; time "$AM" analyze "$DATA/$case" -o "$R/e2e" --force \
        --quiet --threads "$THREADS" $opts; } 2>&1 | tail -n 1 | awk '{ print $1 + $2 }')
      t1=$(date +%s.%N)
      log "@@ case=$case group=all impl=attnmap_analyze label=$kind e2e=1"
      $PY bench/tables.py analyze-line "$R/e2e" "$t0" "$t1" "$THREADS" "$cpu" | tee -a "$LOG"
    done
  done
  log "@@ case=$case group=all impl=attnmap_pass e2e=1 bytes_file=$(du -cb "$DATA/$case"/* | tail -1 | cut -f1)"
  # the long case: one repeat (its check against the plain loops alone is ~45 CPU-s)
  "$BENCH" "$DATA/$case" --threads "$THREADS" --repeats "$([ "$case" = long2048-bf16 ] && echo 1 || echo 3)" |
    tee -a "$LOG"
}
if [ $E2E = 1 ]; then
  cmake --build "$BUILD" -j"$(nproc)" --target bench_io >/dev/null
  starts=$(for i in 1 2 3 4 5; do
    t0=$(date +%s.%N); "$AM" analyze --help >/dev/null; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
  done | sort -n | sed -n 3p)
  log "@@ analyze start (attnmap analyze --help: the command executes itself once more with OMP_WAIT_POLICY=passive, median of 5): ${starts} s"
  synth bert128-64 --examples 64 --layers 12 --heads 12 --tokens 128 --min-tokens 64 \
    --embed-dim 768 --dtype f16 --pad mixed
  for case in bert128-64 bert128-f16 bert512-f16 $([ $LONG = 1 ] && echo long2048-bf16); do
    e2e "$case"
  done
  peer bert128-64 all $PY torch_batched "$OUT/runs/bert128-64/e2e" --repeats 3
  # where the CPU time of the 256-example run goes (bench/e2e_profile.sh; needs perf)
  for opts in "" "--no-checksum"; do
    log "@@ profile: bench/e2e_profile.sh bert128-f16 --threads $THREADS $opts"
    if command -v perf >/dev/null; then
      AM="$AM" OUT="$OUT/runs/profile" bash bench/e2e_profile.sh "$DATA/bert128-f16" \
        --threads "$THREADS" $opts 2>&1 | tee -a "$LOG"
    else
      log "perf is not installed: no profile"
    fi
  done
  log "@@ load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  $PY bench/tables.py e2e "$LOG" | tee "$OUT/e2e.md"
  exit 0
fi

# ---- the sizes, side by side ------------------------------------------------------------
run_case() { # CASE LOOP_EXAMPLES REPEATS BATCHED_EXAMPLES PEER_REPEATS
  local case=$1 loops=$2 reps=$3 batched=$4 preps=$5 R="$OUT/runs/$1"
  mkdir -p "$R"
  analyze "$case" all default "$R/all"
  analyze "$case" all no-checksum "$R/all-nochecksum" --no-checksum
  bench "$case" all --repeats "$reps"
  peer "$case" all $PY torch_batched "$R/all" --repeats "$preps" --max-examples "$batched"
  peer "$case" all $PY numpy_batched "$R/all" --repeats "$preps" --max-examples "$batched"
  peer "$case" analyses $PY torch_batched "$R/all" --repeats "$preps" --no-agreement \
    --max-examples "$batched"
  analyze "$case" rollout methods "$R/rollout" --methods rollout --no-checksum
  bench "$case" rollout --repeats "$reps" --methods rollout
  peer "$case" rollout $PY vit_explain_loop "$R/rollout" --repeats 1 --max-examples "$loops"
  peer "$case" rollout $PY joint_attention_loop "$R/rollout" --repeats 1 --max-examples "$loops"
  if [ "$case" != long2048-bf16 ]; then
    analyze "$case" grad_rollout methods "$R/grad" --methods grad_rollout --no-checksum
    bench "$case" grad_rollout --repeats "$reps" --methods grad_rollout
    peer "$case" grad_rollout $PY chefer_loop "$R/grad" --repeats 1 --max-examples "$loops"
  fi
}
run_case bert128-f16 16 5 "$B128" 3
run_case bert512-f16 4 3 4 1
[ $LONG = 1 ] && run_case long2048-bf16 1 1 1 1

# ---- scaling: examples, T, threads --------------------------------------------------------
for n in 8 32 128 "$N128"; do
  log "@@ scaling=examples value=$n case=bert128-f16"
  "$BENCH" "$DATA/bert128-f16" --threads "$THREADS" --examples "$n" --repeats 3 | grep RESULT |
    tee -a "$LOG"
done
for T in 64 128 256 512; do # the same bytes per T: the fixed costs of a call stay small
  synth "t$T-f16" --examples $((8 * (512 / T) * (512 / T))) --layers 12 --heads 12 \
    --tokens "$T" --min-tokens "$T" --embed-dim 0 --dtype f16 --no-grads
  mkdir -p "$OUT/runs/t$T"
  "$AM" analyze "$DATA/t$T-f16" -o "$OUT/runs/t$T/rollout" --methods rollout --force --quiet
  log "@@ scaling=tokens value=$T impl=attnmap_rollout_pass"
  "$BENCH" "$DATA/t$T-f16" --threads "$THREADS" --methods rollout --repeats 3 | grep RESULT |
    tee -a "$LOG"
  log "@@ scaling=tokens value=$T impl=joint_attention_loop"
  OPENBLAS_NUM_THREADS=$THREADS $PY bench/peers/joint_attention_loop.py "$DATA/t$T-f16" \
    --run "$OUT/runs/t$T/rollout" --repeats 1 --max-examples 4 | tee -a "$LOG"
done
for t in 1 2 4; do
  [ "$t" -gt "$(nproc)" ] && continue
  log "@@ scaling=threads value=$t case=bert128-f16"
  "$BENCH" "$DATA/bert128-f16" --threads "$t" --repeats 3 | grep RESULT | tee -a "$LOG"
done

# ---- a GPU, where there is one ------------------------------------------------------------
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  log "@@ gpu: $(nvidia-smi -L | head -1)"
  log "@@ impl=gpu_limits case=gpu"
  $PY bench/peers/gpu_limits.py | tee -a "$LOG" || true
  for case in bert128-f16 bert512-f16; do
    analyze "$case" all-gpu cuda "$OUT/runs/$case/gpu" --backend cuda --no-checksum ||
      log "@@ cuda run failed on $case"
  done
fi
log "@@ load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
$PY bench/tables.py tables "$LOG" "$DATA" | tee "$OUT/tables.md"
