#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds (CUDA backend too where nvcc is
# found), runs every Criterion suite, then builds again under AddressSanitizer and
# UndefinedBehaviorSanitizer and runs every suite there. CUDA suites skip without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DATTNMAP_TESTS=ON -DCMAKE_C_FLAGS="-Werror" >/dev/null
cmake --build build -j"$jobs" >/dev/null
ctest --test-dir build -V --timeout 600 2>&1 | grep -vE '^(test [0-9]+|[0-9]+: Test command:|[0-9]+: Working Directory:|[0-9]+: Environment variables:|UpdateCTestConfiguration|Parse Config|Constructing a list|Updating test list|Checking test dependency|Test project)'
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cmake -S . -B build-san -DCMAKE_BUILD_TYPE=Debug -DATTNMAP_SANITIZE=ON -DATTNMAP_TESTS=ON -DATTNMAP_CUDA=OFF \
  -DATTNMAP_BENCH=OFF -DCMAKE_C_FLAGS="-Werror" >/dev/null
cmake --build build-san -j"$jobs" >/dev/null
echo "== the same suites under AddressSanitizer + UndefinedBehaviorSanitizer =="
ctest --test-dir build-san -V --timeout 900 2>&1 | grep -vE '^(test [0-9]+|[0-9]+: Test command:|[0-9]+: Working Directory:|[0-9]+: Environment variables:|UpdateCTestConfiguration|Parse Config|Constructing a list|Updating test list|Checking test dependency|Test project)'
