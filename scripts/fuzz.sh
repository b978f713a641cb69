#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ with clang (ASan + UBSan; installs clang, its
# runtime libraries and libomp where missing) into build-fuzz/, and runs each harness for
# SECONDS seconds (default 40: six harnesses two at a time, two minutes in all, as four
# at 60 s were), on a copy of its seed corpus (fuzz/corpus/<harness>/). Prints each harness's final stats; exits non-zero when one
# finds a crash, a leak, a timeout or an out-of-memory (the input is kept under
# build-fuzz/artifacts/). Used by scripts/test.sh; docs/reliability.md has the long runs.
#   bash scripts/fuzz.sh [SECONDS] [HARNESS...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-40}
shift || true
harnesses=("$@")
((${#harnesses[@]})) || harnesses=(safetensors npy dataset run report options faith)

probe=$(mktemp -d)
scratch=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d) # the harnesses' files
trap 'rm -rf "$probe" "$scratch"' EXIT
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n; }\n' \
  >"$probe/p.c"
if ! clang -fsanitize=fuzzer,address,undefined -fopenmp "$probe/p.c" -o "$probe/p" \
  >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: clang libclang-rt-dev libomp-dev"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang libclang-rt-dev \
    libomp-dev >/dev/null
fi

# no -Werror: the gcc builds hold the warning policy, clang warns about other things
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATTNMAP_FUZZ=ON \
  -DATTNMAP_TESTS=OFF -DATTNMAP_BENCH=OFF -DATTNMAP_CUDA=OFF -DCMAKE_C_FLAGS="" >/dev/null
mkdir -p build-fuzz/artifacts
if ! cmake --build build-fuzz -j"$(nproc)" --target $(printf 'fuzz_%s ' "${harnesses[@]}") \
  >build-fuzz/build.log 2>&1; then
  tail -n 30 build-fuzz/build.log
  echo "fuzz build FAILED: build-fuzz/build.log"
  exit 1
fi

run_one() { # harness → build-fuzz/<harness>.log; returns libFuzzer's exit code
  local h=$1 corpus="$probe/corpus-$1"
  cp -r "fuzz/corpus/$h" "$corpus"
  ATTNMAP_FUZZ_TMP="$scratch" ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "build-fuzz/fuzz/fuzz_$h" "$corpus" -max_total_time="$seconds" -timeout=20 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$h-" \
    >"build-fuzz/$h.log" 2>&1
}

status=0
for ((i = 0; i < ${#harnesses[@]}; i += 2)); do
  pids=()
  for h in "${harnesses[@]:i:2}"; do
    run_one "$h" &
    pids+=("$!:$h")
  done
  for entry in "${pids[@]}"; do
    h=${entry#*:}
    if wait "${entry%%:*}"; then rc=0; else rc=$?; fi
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "build-fuzz/$h.log" | tail -n 1 || true)
    runs=$(grep -E '^stat::number_of_executed_units' "build-fuzz/$h.log" | awk '{print $2}')
    echo "fuzz_$h (${seconds} s): ${done_line:-no DONE line} executions: ${runs:-?} exit: $rc"
    if [ "$rc" -ne 0 ]; then
      status=1
      grep -E 'ERROR|SUMMARY|Test unit written|runtime error' "build-fuzz/$h.log" | head -n 8
      echo "fuzz_$h FAILED: full log build-fuzz/$h.log"
    fi
  done
done
exit $status
