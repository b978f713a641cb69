#!/usr/bin/env bash
# bench/gpu_check.sh — everything issue 3 asks of a machine with an NVIDIA GPU, in one
# script and one log: a Release build for Hopper (sm_90 + PTX), the parity suite,
# compute-sanitizer memcheck and racecheck on it, the benchmarks (bench_cuda) on BERT-base
# shapes (L=12, H=12, F16, T=128 and T=512) beside the same GPU's limits, the idiomatic
# PyTorch peer on the same tensors, and `attnmap analyze` on the GPU against the CPU
# (bench/compare_runs.py within the parity tolerances). The long-context form (issue 14):
# its parity suite under the same tools, bench_long_cuda (T up to 32k, small decoder and a
# Llama-3-8B layer) and analyze on a long-context dataset against the CPU.
#
#   usage: bash bench/gpu_check.sh [PHASE...]
#   phases: build parity sanitize bench peer analyze   (default: all, in that order)
#   env:    BUILD=build-gpu  DATA=/tmp/attnmap-gpu  LOG=bench/results/gpu-check-<UTC>.log
#           ARCH=90 (CMAKE_CUDA_ARCHITECTURES)  PY=python3 (with torch and numpy)
#           N128=768 N512=48 (examples of the benchmark datasets: ~7 GiB each)
# Every command, its output and its exit status go to the log, which starts with the
# date, the commit and the device; a table of the targets ends it. The script goes on
# after a failing step and exits 1 if any step failed. Phases can run in separate calls
# (e.g. `build parity sanitize`, then `build bench peer analyze`): each appends to LOG.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-gpu}
DATA=${DATA:-/tmp/attnmap-gpu}
ARCH=${ARCH:-90}
PY=${PY:-python3}
N128=${N128:-768}
N512=${N512:-48}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results "$DATA"
LOG=${LOG:-bench/results/gpu-check-$STAMP.log}
PHASES=${*:-build parity sanitize bench peer analyze}
FAILED=0
JOBS=$(nproc)

log() { echo "$*" | tee -a "$LOG"; }
run() { # run CMD...: logged with its output and exit status
  log "\$ $*"
  "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  log "(exit $rc)"
  [ "$rc" -eq 0 ] || FAILED=1
  return "$rc"
}
want() { [[ " $PHASES " == *" $1 "* ]]; }

log "== attnmap GPU check, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), phases: $PHASES"
log "commit $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' + uncommitted changes')"
log "host $(uname -srm), $(nproc) cores; $(nvidia-smi -L 2>&1 | head -4 | tr '\n' ' ')"
log "driver $(nvidia-smi --query-gpu=driver_version,memory.total --format=csv,noheader 2>&1 | head -1); $(nvcc --version 2>&1 | tail -1)"

if want build; then
  log "== build (Release, CMAKE_CUDA_ARCHITECTURES=$ARCH)"
  run cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DATTNMAP_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DATTNMAP_TESTS=ON -DATTNMAP_BENCH=ON
  run cmake --build "$BUILD" -j"$JOBS"
  log "compiler warnings in the build: $(grep -c -i 'warning' "$LOG" || true) lines of this log mention one"
  run cuobjdump --list-elf "$BUILD/libattnmap.so"
  run cuobjdump --list-ptx "$BUILD/libattnmap.so"
fi

if want parity; then
  log "== parity suites (every op against the CPU reference)"
  run "$BUILD/tests/test_cuda_backend" --verbose=0 -j1
  run "$BUILD/tests/test_parity" --verbose=0 -j1
  run "$BUILD/tests/test_parity_ops" --verbose=0 -j1
  run "$BUILD/tests/test_parity_long" --verbose=0 -j1
  run "$BUILD/tests/test_backend_analyze" --verbose=0 -j1
  [ -x "$BUILD/tests/test_flow_cuda" ] && run "$BUILD/tests/test_flow_cuda" --verbose=0 -j1
fi

if want sanitize; then
  log "== compute-sanitizer on the parity suites (Criterion forks: --target-processes all)"
  CS="compute-sanitizer --target-processes all --error-exitcode 3 --print-limit 20"
  P="$BUILD/tests/test_parity"
  O="$BUILD/tests/test_parity_ops"
  LP="$BUILD/tests/test_parity_long"
  # the long-context kernels first (the newest code), then the fused pass and the ops; the
  # long-row cases take most of the time under the tools and their kernels are the same
  run timeout 900 $CS --tool memcheck --leak-check full "$LP" --verbose=0 -j1
  run timeout 900 $CS --tool racecheck --racecheck-report all "$LP" --verbose=0 -j1
  run timeout 900 $CS --tool synccheck "$LP" --verbose=0 -j1
  run timeout 1200 $CS --tool memcheck --leak-check full "$P" --verbose=0 -j1 \
    --filter 'parity/!(long_rows)'
  run timeout 900 $CS --tool memcheck --leak-check full "$O" --verbose=0 -j1
  run timeout 1200 $CS --tool racecheck --racecheck-report all "$P" --verbose=0 -j1 \
    --filter 'parity/!(long_rows|every_row_length_class)'
  run timeout 900 $CS --tool racecheck --racecheck-report all "$O" --verbose=0 -j1
  run timeout 900 $CS --tool synccheck "$P" --verbose=0 -j1 \
    --filter 'parity/+(mixed_masks_every_dtype|discard_and_fusions|all_rows)'
fi

synth() { # synth DIR ARGS...: writes the dataset once
  local dir=$1
  shift
  [ -f "$dir/.done" ] && return 0
  rm -rf "$dir"
  run "$BUILD/bench/synth" -o "$dir" "$@" && touch "$dir/.done"
}

if want bench || want peer; then
  log "== datasets (bench/synth): BERT-base shapes, F16, attentions + gradients, no padding"
  synth "$DATA/t128" --examples "$N128" --layers 12 --heads 12 --tokens 128 --min-tokens 128 \
    --dtype F16 --shards 4 --embed-dim 0
  synth "$DATA/t512" --examples "$N512" --layers 12 --heads 12 --tokens 512 --min-tokens 512 \
    --dtype F16 --shards 2 --embed-dim 0
fi

if want bench; then
  log "== benchmarks (bench_cuda: limits, check, fused pass, all-rows rollout, end to end)"
  for t in t128 t512; do
    run "$BUILD/bench/bench_cuda" "$DATA/$t" --repeats 10
  done
  log "== the long-context form (bench_long_cuda: T up to 32k, checked against the CPU)"
  run "$BUILD/bench/bench_long_cuda" --repeats 5
  log "== attention flow's device solver (bench_flow: 1,000 examples of 12x128 on the GPU)"
  run timeout 300 "$BUILD/bench/bench_flow" --tokens 128 --examples 16 --no-peer \
    --cuda-examples 1000
fi

if want peer; then
  log "== PyTorch peer on the same tensors (idiomatic batched torch on the GPU)"
  for t in t128 t512; do
    batch=32
    [ "$t" = t512 ] && batch=8
    rm -rf "$DATA/run-$t-cuda"
    run "$BUILD/attnmap" analyze "$DATA/$t" -o "$DATA/run-$t-cuda" --backend cuda --quiet \
      --methods rollout,grad_rollout,head_stats,head_importance,attention_last
    run "$PY" bench/peers/torch_gpu.py "$DATA/$t" --run "$DATA/run-$t-cuda" \
      --examples 256 --batch "$batch" --repeats 5
  done
fi

if want analyze; then
  log "== attnmap analyze on the GPU against the CPU (examples.safetensors, summary.json)"
  synth "$DATA/mixed" --examples 192 --layers 6 --heads 8 --tokens 131 --min-tokens 20 \
    --pad mixed --dtype F16 --embed-dim 48 --shards 2
  for opts in "" "--all-rows --discard 0.25 --fusion max --target mean --normalize minmax"; do
    tag=$( [ -z "$opts" ] && echo default || echo allrows)
    rm -rf "$DATA/an-$tag-cpu" "$DATA/an-$tag-cuda"
    run "$BUILD/attnmap" analyze "$DATA/mixed" -o "$DATA/an-$tag-cpu" --backend cpu --quiet $opts
    run "$BUILD/attnmap" analyze "$DATA/mixed" -o "$DATA/an-$tag-cuda" --backend cuda:all \
      --quiet $opts
    run "$PY" bench/compare_runs.py "$DATA/an-$tag-cuda" "$DATA/an-$tag-cpu"
  done
  log "== attention flow on the GPU against the CPU: by default the CPU reference beside the"
  log "   GPU (docs/cuda.md), then the device solver (ATTNMAP_CUDA_FLOW=device, unverified)"
  synth "$DATA/flowset" --examples 24 --layers 4 --heads 4 --tokens 48 --min-tokens 5 \
    --pad mixed --dtype F16 --embed-dim 0 --shards 1
  rm -rf "$DATA/fl-cpu" "$DATA/fl-cuda" "$DATA/fl-device"
  run "$BUILD/attnmap" analyze "$DATA/flowset" -o "$DATA/fl-cpu" --backend cpu --quiet \
    --methods flow,rollout
  run "$BUILD/attnmap" analyze "$DATA/flowset" -o "$DATA/fl-cuda" --backend cuda --quiet \
    --methods flow,rollout
  run "$PY" bench/compare_runs.py "$DATA/fl-cuda" "$DATA/fl-cpu"
  run env ATTNMAP_CUDA_FLOW=device timeout 120 "$BUILD/attnmap" analyze "$DATA/flowset" \
    -o "$DATA/fl-device" --backend cuda --quiet --methods flow,rollout &&
    run "$PY" bench/compare_runs.py "$DATA/fl-device" "$DATA/fl-cpu"
  log "== attnmap analyze end to end from the page cache (T=128 set), GPU"
  if [ -d "$DATA/t128" ]; then
    cat "$DATA"/t128/*.safetensors > /dev/null
    rm -rf "$DATA/e2e"
    run "$BUILD/attnmap" analyze "$DATA/t128" -o "$DATA/e2e" --backend cuda --quiet
    run "$PY" -c "import json,os,glob; s=json.load(open('$DATA/e2e/summary.json')); \
t=s['provenance']['timings']; b=sum(os.path.getsize(f) for f in glob.glob('$DATA/t128/*.safetensors')); \
print('analyze_s %.3f  total_s %.3f  file GB/s over analyze_s %.2f' % (t['analyze_s'], t['total_s'], b/t['analyze_s']/1e9))"
  fi
fi

log "== targets (issue 3)"
# lines of this script's steps only: the indented lines are earlier calls' summaries
summary=$(grep -E '^(device:|limits:|check:|check at|fused pass|all-rows|end to end|analyze_s|small |8b )' "$LOG"
  grep -E '^(VERDICT|\[====\] Synthesis|=+ (ERROR|RACECHECK|LEAK) SUMMARY|\(exit [1-9]|\[FAIL\]|== gpu_lease)' "$LOG")
log "$(echo "$summary" | sed 's/^/  /')"
"$PY" - "$LOG" <<'PYEOF' 2>&1 | tee -a "$LOG"
import json, sys
att, peer = {}, {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{") and '"fused_examples_per_s"' in line:
        j = json.loads(line); att[j["T"]] = j
    elif line.startswith("{") and '"torch_gpu"' in line and '"examples_per_s"' in line:
        j = json.loads(line); peer.setdefault(len(peer), j)
ts = sorted(att)
for i, t in enumerate(ts):
    j = att[t]
    print("  T=%d: fused %.0f%% of the copy rate (>= 80%%), rows n=256 %.0f%% / n=512 %.0f%% of "
          "SGEMM (>= 60%%), end to end %.0f%% of pinned H2D (>= 70%%)" % (
              t, 100 * j["fused_gbs"] / j["d2d_gbs"], 100 * j["rows256_tflops"] / j["sgemm_tflops"],
              100 * j["rows512_tflops"] / j["sgemm_tflops"], 100 * j["e2e_gbs"] / j["h2d_gbs"]))
    if i in peer:
        p = peer[i]
        print("  T=%d: attnmap %.1f examples/s on the device against torch %.1f: %.1fx (>= 10x)"
              % (t, j["fused_examples_per_s"], p["examples_per_s"],
                 j["fused_examples_per_s"] / p["examples_per_s"]))
PYEOF
log "== done: $( [ $FAILED -eq 0 ] && echo 'every step exited 0' || echo 'SOME STEP FAILED' ); log $LOG"
[ -n "${OUT:-}" ] && [ -d "${OUT:-}" ] && [ "$(dirname "$LOG")" != "$OUT" ] && cp "$LOG" "$OUT/"
exit $FAILED
