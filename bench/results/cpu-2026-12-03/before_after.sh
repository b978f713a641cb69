#!/usr/bin/env bash
# before/after: attnmap analyze of main at 0453be4 (before issue 16) and of this commit,
# wall time of the whole process, median of 3 after a warm-up, same files, same session
set -u
BEFORE=$1 AFTER=$2 DATA=${DATA:-/tmp/attnmap-bench}
echo "@@ machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"
for case in bert128-64 bert128-f16 bert512-f16; do
  for who in before after; do
    bin=$([ $who = before ] && echo "$BEFORE" || echo "$AFTER")
    for opt in "" --no-checksum; do
      "$bin" analyze "$DATA/$case" -o /tmp/ba-run --force --quiet $opt
      ts=()
      for i in 1 2 3; do
        t0=$(date +%s.%N); /usr/bin/time -f "%U %S" -o /tmp/ba-time "$bin" analyze "$DATA/$case" -o /tmp/ba-run --force --quiet $opt; t1=$(date +%s.%N)
        ts+=("$(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%.3f", b-a}') $(cat /tmp/ba-time)")
      done
      med=$(printf '%s\n' "${ts[@]}" | sort -n | sed -n 2p)
      echo "case=$case who=$who opt=${opt:-default} wall_user_sys_median=\"$med\" all=\"${ts[*]}\""
    done
  done
done
echo "@@ load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
