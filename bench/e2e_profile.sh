#!/usr/bin/env bash
# bench/e2e_profile.sh — where the CPU time of one `attnmap analyze` goes (issue 16): samples
# the whole process with perf (cpu-clock, 4 kHz, call chains) and puts every sample in one
# bucket by the first rule its call chain matches, in this order: the CRC-32C (with the page
# faults of the first touch of the mapping, which happen inside it), the fused pass, the
# row steps of rollout, saliency and agreement, page faults elsewhere, madvise (the
# pipeline's MADV_WILLNEED/DONTNEED), unmapping and TLB shootdowns, spinning or sleeping
# threads (sched_yield, futex), writing the outputs and fresh anonymous memory, JSON
# (summary.json, headers), the dynamic loader; the rest is "other". Prints CPU ms per bucket
# (samples / 4) and the share of the total.
#   usage: bash bench/e2e_profile.sh DATASET [analyze options...]
#   env:   AM=build/attnmap (the program), OUT=/tmp/attnmap-e2e-profile (run folder, perf.data)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bash bench/e2e_profile.sh DATASET [analyze options...]" >&2; exit 2; }
data=$1
shift
AM=${AM:-build/attnmap}
OUT=${OUT:-/tmp/attnmap-e2e-profile}
mkdir -p "$OUT"
"$AM" analyze "$data" -o "$OUT/run" --force --quiet "$@" # warm the page cache
perf record -q -e cpu-clock -F 4000 -g -o "$OUT/perf.data" \
  "$AM" analyze "$data" -o "$OUT/run" --force --quiet "$@" 2>/dev/null
perf script -i "$OUT/perf.data" 2>/dev/null | awk '
function bucket(s) {
  if (s ~ /crc32c|crc_sse42|am_crc/) return "CRC-32C (and first-touch page faults)";
  if (s ~ /layer_head|am_pass_sweep|example_pass|pass_plain/) return "fused pass";
  if (s ~ /rollout|hat_row/) return "rollout row steps";
  if (s ~ /saliency|agreement|sort_count|am_rank_|kendall/) return "saliency + agreement";
  if (s ~ /exc_page_fault/) return "page faults (elsewhere)";
  if (s ~ /madvise/) return "madvise";
  if (s ~ /unmap|munmap|tlb|smp_call_function/) return "unmap + TLB";
  if (s ~ /sched_yield|futex|__schedule/) return "spin/sleep (sched_yield, futex)";
  if (s ~ /ksys_write|vfs_write|copy_folio_from_iter|clear_page|do_anonymous_page|ext4/) return "writing + fresh memory";
  if (s ~ /json/) return "JSON";
  if (s ~ /_dl_|ld-linux|dl_main/) return "dynamic loader";
  return "other";
}
/^[^ \t]/ { if (chain != "") c[bucket(chain)]++; chain = "x"; n++; next }
/^$/ { next }
{ chain = chain " " $2 }
END {
  if (chain != "") c[bucket(chain)]++;
  for (k in c) printf "%8.1f ms  %5.1f%%  %s\n", c[k] / 4.0, 100.0 * c[k] / n, k;
  printf "%8.1f ms  100.0%%  total (%d samples at 4 kHz)\n", n / 4.0, n;
}' | sort -rn
