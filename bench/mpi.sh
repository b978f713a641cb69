#!/usr/bin/env bash
# bench/mpi.sh — strong scaling of `mpirun -n N attnmap analyze` on one machine (issue 15;
# docs/cluster.md): one synthetic dataset (bench/synth, 4 shards), analysed by one process
# with every core, then under mpirun with N = 1, 2 and 4 ranks of one thread each (4 is
# oversubscribed on a 2-core machine), REPS times each, every analysis with attention flow. Per row: the median wall time,
# the CPU seconds of that run (user + system of mpirun and its ranks), the load average
# before and after it (other processes make every figure slower), examples/s, and from
# the run folder's provenance the slowest rank's rows time, the reduction (rank 0's replay
# of the stored rows, provenance.parts.replay_s) and the input CRC-32C time. Each run
# folder is compared with the single process (cmp, jq) before it counts.
#   usage: bash bench/run.sh --mpi   (or bash bench/mpi.sh)
#   env:   DATA=/tmp/attnmap-bench, BUILD=build, OUT=$DATA/results, REPS=3, EXAMPLES=256
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-/tmp/attnmap-bench}
BUILD=${BUILD:-build}
OUT=${OUT:-$DATA/results}
REPS=${REPS:-3}
EXAMPLES=${EXAMPLES:-256}
mkdir -p "$DATA" "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DATTNMAP_MPI=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target attnmap_cli synth >/dev/null
AM="$BUILD/attnmap" SYNTH="$BUILD/bench/synth"
CASE="mpi-t128-$EXAMPLES"
if [ ! -d "$DATA/$CASE" ]; then
  "$SYNTH" -o "$DATA/$CASE.tmp" --examples "$EXAMPLES" --layers 4 --heads 4 --tokens 128 \
    --min-tokens 64 --shards 4 --dtype f16 --seed 15 && mv "$DATA/$CASE.tmp" "$DATA/$CASE"
fi
LOG="$OUT/mpi.log"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
{
  echo "@@ machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%FT%TZ)"
  echo "@@ command: bash bench/mpi.sh (REPS=$REPS EXAMPLES=$EXAMPLES)"
  echo "@@ commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  echo "@@ dataset: $CASE, $(du -sh "$DATA/$CASE" | cut -f1), 4 shards, 4 layers x 4 heads, T=128, f16, with gradients; every analysis with flow"
  printf '%-22s %8s %8s %10s %11s %8s %9s %9s %s\n' run wall_s cpu_s examples/s speedup rows_s replay_s crc_s "load before -> after"
} | tee "$LOG"

base=""
# one LABEL RUN_NAME COMMAND...: REPS runs; prints the median run's figures
one() {
  local label=$1 name=$2
  shift 2
  local rows=()
  for _ in $(seq 1 "$REPS"); do
    local l0 l1
    l0=$(cut -d' ' -f1 /proc/loadavg)
    /usr/bin/time -f '%e %U %S' -o "$W/time" "$@" -o "$W/$name" --force -q
    l1=$(cut -d' ' -f1 /proc/loadavg)
    read -r wall user sys <"$W/time"
    rows+=("$wall $(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }') $l0 $l1")
  done
  local med
  med=$(printf '%s\n' "${rows[@]}" | sort -n | sed -n "$(((REPS + 1) / 2))p")
  read -r wall cpu l0 l1 <<<"$med"
  if [ -z "$base" ]; then
    base=$wall
    cp -r "$W/$name" "$W/reference"
  else
    cmp "$W/reference/examples.safetensors" "$W/$name/examples.safetensors"
    cmp <(jq -S 'del(.provenance)' "$W/reference/summary.json") \
      <(jq -S 'del(.provenance)' "$W/$name/summary.json")
  fi
  local s="$W/$name/summary.json"
  local rows_s replay crc
  rows_s=$(jq '.provenance as $p | [$p.parts.per_rank[]?.seconds] | max // $p.timings.analyze_s' "$s")
  replay=$(jq '.provenance.parts.replay_s // 0' "$s")
  crc=$(jq '.provenance.timings.checksum_s' "$s")
  printf '%-22s %8.2f %8.2f %10.1f %10.2fx %8.2f %9.3f %9.3f %s -> %s\n' "$label" "$wall" "$cpu" \
    "$(awk -v n="$EXAMPLES" -v w="$wall" 'BEGIN { print n / w }')" \
    "$(awk -v b="$base" -v w="$wall" 'BEGIN { print b / w }')" "$rows_s" "$replay" \
    "$crc" "$l0" "$l1" | tee -a "$LOG"
}

# every analysis, attention flow included (compute-bound: the ranks' share is what scales)
M=attention_last,rollout,grad_rollout,flow,head_stats,head_importance,saliency,agreement
one "1 process, 1 thread" p1 "$AM" analyze "$DATA/$CASE" --methods $M --threads 1
one "1 process, $(nproc) threads" pall "$AM" analyze "$DATA/$CASE" --methods $M --threads "$(nproc)"
for n in 1 2 4; do
  one "mpirun -n $n, 1 thread" "n$n" mpirun --oversubscribe -n "$n" "$AM" analyze "$DATA/$CASE" \
    --methods $M --threads 1
done
echo "@@ every run folder equal to the first (cmp, jq); speedup against the first row" | tee -a "$LOG"
