#!/usr/bin/env bash
# ab_cpu.sh DATASET REPS "LABEL|ENV|BINARY|OPTIONS" ... — issue 16's before/after: runs
# `BINARY analyze DATASET -o RUN --force --quiet --threads 2 OPTIONS` for each variant in
# turn, REPS rounds (so every variant sees the same minutes of a shared machine), under
# `perf stat`; prints the medians of CPU seconds (task-clock), user, system and wall.
# ENV: VAR=VALUE set for that variant (may be empty). Raw lines: $RAW (default a temp file).
set -euo pipefail
DATASET=$1 REPS=$2
shift 2
RAW=${RAW:-$(mktemp)}
RUN=${RUN:-/tmp/ab-cpu-run}
echo "@@ $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg); dataset $DATASET"
for _ in $(seq "$REPS"); do
  for v in "$@"; do
    IFS='|' read -r label env bin opts <<<"$v"
    # shellcheck disable=SC2086
    out=$(env $env perf stat -x, -e task-clock,user_time,system_time,duration_time \
      "$bin" analyze "$DATASET" -o "$RUN" --force --quiet --threads 2 $opts 2>&1 >/dev/null |
      awk -F, '{ printf "%s ", $1 }')
    echo "$label $out" >>"$RAW"
  done
done
python3 - "$RAW" <<'PY'
import statistics as st, sys
rows = {}
for line in open(sys.argv[1]):
    p = line.split()
    rows.setdefault(p[0], []).append([float(x) for x in p[1:5]])
for k, v in rows.items():
    c, u, s, w = ([r[i] / d for r in v] for i, d in enumerate((1e3, 1e9, 1e9, 1e9)))
    print(f"{k:24s} CPU-s {st.median(c):.3f} (min {min(c):.3f})  user {st.median(u):.3f}  "
          f"sys {st.median(s):.3f}  wall {st.median(w):.3f} (min {min(w):.3f})  n={len(v)}")
PY
echo "@@ load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
