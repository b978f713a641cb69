#!/usr/bin/env bash
# tests/cuda_emu/run.sh — the CUDA backend on the CPU emulator (cuda_emu.h): builds the
# library with cuda/*.cu compiled by g++ against the emulator, then runs the parity suites
# over every backend of tests/support/backends.c (CUDA here on the emulator; every op
# against the reference, the CPU's plain loops; the long-context form against the CPU's
# and the matrix form, test_parity_long.c), the backend selection suite, and `attnmap
# analyze --backend cuda:all` against the reference on the bundled dataset and on a
# long-context one (tests/test_backend_analyze.c). Part of scripts/test.sh.
# For machines without a GPU; it checks the kernels' indexing, reductions, barriers and
# the host side's slabs, staging, faults and pipeline, not timings or stream ordering
# (see docs/cuda.md). With VALGRIND=1 the parity suite runs under valgrind memcheck too.
#   usage: bash tests/cuda_emu/run.sh    env: EMU_BUILD=/tmp/attnmap-emu AM_EMU_DEVICES=1
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${EMU_BUILD:-/tmp/attnmap-emu}
cmake -S tests/cuda_emu -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$B" -j"$(nproc)" >/dev/null
"$B/test_cuda_backend" --verbose=0 -j1
"$B/test_parity" --verbose=0 -j1
"$B/test_parity_ops" --verbose=0 -j1
"$B/test_parity_long" --verbose=0 -j1
AM_EMU_DEVICES=3 "$B/test_parity" --verbose=0 -j1 --filter 'parity/every_device_gives_the_same_bits'
AM_EMU_DEVICES=3 "$B/test_parity_ops" --verbose=0 -j1 \
  --filter 'parity_ops/faults_across_slabs_and_devices'
AM_EMU_DEVICES=3 "$B/test_parity_long" --verbose=0 -j1 \
  --filter 'parity_long/every_device_gives_the_same_bits_and_the_first_fault'
if [ "${VALGRIND:-0}" = 1 ]; then
  valgrind --trace-children=yes --max-stackframe=600000000 -q --error-exitcode=9 \
    "$B/test_parity" --verbose=0 -j1 --filter 'parity/!(long_rows|every_row_length_class)' \
    2> >(grep -v 'client switching stacks\|to suppress, use\|further instances\|max-stackframe' >&2)
  valgrind --trace-children=yes --max-stackframe=600000000 -q --error-exitcode=9 \
    "$B/test_parity_ops" --verbose=0 -j1 \
    2> >(grep -v 'client switching stacks\|to suppress, use\|further instances\|max-stackframe' >&2)
  valgrind --trace-children=yes --max-stackframe=600000000 -q --error-exitcode=9 \
    "$B/test_parity_long" --verbose=0 -j1 \
    2> >(grep -v 'client switching stacks\|to suppress, use\|further instances\|max-stackframe' >&2)
fi
# attnmap analyze --backend cuda:all (two emulated devices) against the reference
"$B/test_backend_analyze" --verbose=0 -j1
# the live run writer with device pointers: batches in flight, against analyze (cuda)
"$B/test_run_writer" --verbose=0 -j1 --filter 'run_writer/cuda_*'

