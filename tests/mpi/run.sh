#!/usr/bin/env bash
# tests/mpi/run.sh ATTNMAP SYNTH MPIEXEC SOURCE_DIR — `mpirun -n N attnmap analyze` against
# one process (docs/cluster.md), byte for byte: examples.safetensors with cmp, summary.json
# without its provenance with jq. The bundled datasets and synthetic ones (bench/synth):
# N = 1..4, uneven shards, one shard and more ranks than shards or examples; a rank killed
# mid-run, then --resume with another N; a bad file in one rank's part. ctest test_mpi.
set -euo pipefail
AM=$1 SYNTH=$2 MPIEXEC=$3 SRC=$4
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 # CI: 2 cores, up to 4 ranks
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
mpi() { # mpi N ARGS...: attnmap ARGS under N ranks
  local n=$1
  shift
  "$MPIEXEC" --oversubscribe -n "$n" "$AM" "$@"
}
same() { # same RUN_A RUN_B: the same run folder but for provenance
  cmp "$1/examples.safetensors" "$2/examples.safetensors" || fail "$2: examples differ from $1"
  cmp <(jq -S 'del(.provenance)' "$1/summary.json") <(jq -S 'del(.provenance)' "$2/summary.json") ||
    fail "$2: summary.json (without provenance) differs from $1"
  cmp <(jq -S '.provenance.inputs' "$1/summary.json") <(jq -S '.provenance.inputs' "$2/summary.json") ||
    fail "$2: the inputs' CRC-32C differ from $1"
  [ "$(ls "$1")" = "$(ls "$2")" ] || fail "$2: other files than $1"
}
check_ns() { # check_ns NAME "Ns" DATASET... [-- OPTIONS...]: one process, then each N
  local name=$1 ns=$2
  shift 2
  "$AM" analyze "$@" -o "$W/$name-1p" -q
  for n in $ns; do
    mpi "$n" analyze "$@" -o "$W/$name-$n" -q
    same "$W/$name-1p" "$W/$name-$n"
    [ "$(jq '.provenance.parts.ranks' "$W/$name-$n/summary.json")" = "$n" ] ||
      fail "$name-$n: provenance.parts.ranks is not $n"
  done
  echo "ok: $name: N = $ns equal one process"
}

check_ns bundled-synthetic "1 2 3 4" "$SRC/examples/data/synthetic"
check_ns minilm-sentiment "2 4" "$SRC/examples/data/minilm-sentiment"

# uneven shards: 3, 17 and 40 examples (three datasets, five shards); one shard of 5
# examples under 4 ranks (ranges inside a shard); 2 examples under 3 ranks (a rank idle)
"$SYNTH" -o "$W/u3" --examples 3 --layers 2 --heads 2 --tokens 16 --shards 1 --seed 1
"$SYNTH" -o "$W/u17" --examples 17 --layers 2 --heads 2 --tokens 16 --shards 2 --seed 2
"$SYNTH" -o "$W/u40" --examples 40 --layers 2 --heads 2 --tokens 16 --shards 2 --seed 3
check_ns uneven "2 3 4" "$W/u3" "$W/u17" "$W/u40" --chunk 3
"$SYNTH" -o "$W/one" --examples 5 --layers 2 --heads 3 --tokens 24 --shards 1 --dtype f16 --seed 4
check_ns one-shard "2 4" "$W/one"
"$SYNTH" -o "$W/two" --examples 2 --layers 2 --heads 2 --tokens 16 --shards 1 --seed 5
check_ns more-ranks-than-examples "3" "$W/two"
[ "$(jq '[.provenance.parts.per_rank[].examples] | min' "$W/more-ranks-than-examples-3/summary.json")" = 0 ] ||
  fail "3 ranks on 2 examples: no rank was idle"

# an MPI library that allows no MPI calls from the store thread (less than
# MPI_THREAD_SERIALIZED; AM_MPI_ASSUME_FUNNELED=1 acts so): the same bytes, a note, and a
# bad file still ends the job with its one error line
AM_MPI_ASSUME_FUNNELED=1 mpi 3 analyze "$W/u3" "$W/u17" "$W/u40" -o "$W/funneled-3" \
  --chunk 3 2>"$W/funneled.log"
same "$W/uneven-1p" "$W/funneled-3"
grep -q '^attnmap: note: this MPI library allows no calls from a second thread' \
  "$W/funneled.log" || fail "funneled: no note"
echo "ok: an MPI library without MPI_THREAD_SERIALIZED: the same run folder under 3 ranks"

# a rank killed mid-run (SIGKILL once its first checkpoint is on disk): the launcher ends
# the job, nothing looks complete; --resume with 3 ranks finishes the same folder from
# what the killed job completed
"$SYNTH" -o "$W/big" --examples 240 --layers 3 --heads 4 --tokens 48 --shards 2 --no-grads \
  --dtype f16 --seed 6
"$AM" analyze "$W/big" -o "$W/big-1p" -q --chunk 4
"$MPIEXEC" --oversubscribe -n 2 "$AM" analyze "$W/big" -o "$W/big-2" -q --chunk 4 \
  --checkpoint 0 --threads 1 >"$W/kill.log" 2>&1 &
job=$!
victim=""
for _ in $(seq 1 400); do # rank 1 (the part not starting at 0) has written a checkpoint
  if ls "$W/big-2.partial" 2>/dev/null | grep -v '^rows-0\.json' | grep -q '^rows-.*\.json$'; then
    for pid in $(pgrep -P "$job" || true); do # mpirun's children: the ranks
      grep -q 'OMPI_COMM_WORLD_RANK=1' "/proc/$pid/environ" 2>/dev/null && victim=$pid
    done
    [ -n "$victim" ] && kill -KILL "$victim" && break
  fi
  sleep 0.05
done
[ -n "$victim" ] || fail "kill: rank 1 never checkpointed (or finished first)"
if wait "$job"; then fail "kill: the job succeeded with a rank killed"; fi
[ ! -e "$W/big-2" ] || fail "kill: a run folder was published"
[ -d "$W/big-2.partial" ] || fail "kill: no partial folder to resume"
mpi 3 analyze "$W/big" -o "$W/big-2" -q --chunk 4 --resume
same "$W/big-1p" "$W/big-2"
redone=$(jq '[.provenance.parts.per_rank[].examples] | add' "$W/big-2/summary.json")
[ "$redone" -lt 240 ] || fail "resume: recomputed all 240 examples"
[ ! -e "$W/big-2.partial" ] || fail "resume: the partial folder is left"
echo "ok: rank 1 killed under 2 ranks, resumed under 3: $redone of 240 examples recomputed"

# a bad file in one rank's part: a NaN in the attentions of the last shard, which only
# the last rank reads; one error line naming the rank, the file and the tensor, exit 2,
# no run folder and no partial folder (bad input is not worth resuming)
cp -r "$W/u17" "$W/bad"
f="$W/bad/shard-00001.safetensors"
hlen=$(od -An -t u8 -N 8 "$f" | tr -d ' ')
off=$(head -c $((8 + hlen)) "$f" | tail -c "$hlen" | jq '.attentions.data_offsets[0]')
printf '\x00\x00\xc0\x7f' | dd of="$f" bs=1 seek=$((8 + hlen + off + 64)) conv=notrunc status=none
if mpi 2 analyze "$W/u3" "$W/bad" -o "$W/bad-run" -q 2>"$W/bad.log"; then
  fail "bad input: the job succeeded"
fi
grep '^attnmap:' "$W/bad.log" >"$W/bad.lines" || true
[ "$(wc -l <"$W/bad.lines")" = 1 ] || { cat "$W/bad.log" >&2; fail "bad input: not one error line"; }
grep -q "^attnmap: rank 1 of 2 .*shard-00001.safetensors.*attentions" "$W/bad.lines" ||
  { cat "$W/bad.log" >&2; fail "bad input: the line does not name rank 1, the file and the tensor"; }
[ ! -e "$W/bad-run" ] && [ ! -e "$W/bad-run.partial" ] || fail "bad input: output left"
echo "ok: bad file in rank 1's part: $(cat "$W/bad.lines")"
if AM_MPI_ASSUME_FUNNELED=1 mpi 2 analyze "$W/u3" "$W/bad" -o "$W/bad-run-f" -q \
  2>"$W/bad-f.log"; then
  fail "bad input, funneled: the job succeeded"
fi
grep -q "^attnmap: rank 1 of 2 .*shard-00001.safetensors.*attentions" "$W/bad-f.log" ||
  { cat "$W/bad-f.log" >&2; fail "bad input, funneled: the error line is missing"; }
[ ! -e "$W/bad-run-f" ] && [ ! -e "$W/bad-run-f.partial" ] || fail "bad input, funneled: output left"

# progress: one line for the job, from rank 0 (none in a pipe without --progress always)
ATTNMAP_PROGRESS_INTERVAL=1000 mpi 3 analyze "$W/u40" -o "$W/prog" --progress always \
  2>"$W/prog.log"
lines=$(grep -c '^analyze: ' "$W/prog.log" || true)
grep -q '^analyze: 40/40 examples' "$W/prog.log" || fail "progress: no final 40/40 line"
[ "$lines" -le 2 ] || fail "progress: $lines lines from 3 ranks"
mpi 3 analyze "$W/u40" -o "$W/quiet" 2>"$W/quiet.log"
! grep -q '^analyze: ' "$W/quiet.log" || fail "progress: lines in a pipe"
echo "ok: progress: $lines line(s) from rank 0 with --progress always, none in a pipe"
