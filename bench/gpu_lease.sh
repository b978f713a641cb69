#!/usr/bin/env bash
# bench/gpu_lease.sh — bench/gpu_check.sh on a lent GPU machine that has the CUDA toolkit and
# a driver but none of the project's libraries (no jansson, libpng, Criterion or OpenBLAS) and
# no network, inside a fixed number of seconds.
#
#   here:  bash bench/gpu_lease.sh pack
#          Release build with CUDA for sm_90 in build-gpu (tests and benchmarks), stripped,
#          packed with the shared libraries it needs outside glibc and CUDA into
#          .gpupack/gpu.tar.xz (~11 MB; .gpupack/ is git-ignored locally, carried with the tree)
#   there: bash bench/gpu_lease.sh run SECONDS
#          unpacks the build where it was made (/work/main/build-gpu: the paths compiled into
#          the tests and benchmarks), keeps the machine's own copy of every library it has,
#          and runs gpu_check.sh's phases in order of value, each capped, all inside SECONDS:
#          parity, bench, analyze, peer, then sanitize with what is left. One log, LOG
#          (default $OUT/gpu-check.log when OUT is set, else bench/results/).
set -uo pipefail
cd "$(dirname "$0")/.."
PACK=.gpupack/gpu.tar.xz

pack() {
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DATTNMAP_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DATTNMAP_TESTS=ON -DATTNMAP_BENCH=ON >/dev/null || exit 1
  cmake --build build-gpu -j"$(nproc)" >/dev/null || exit 1
  local st
  st=$(mktemp -d)
  mkdir -p "$st/build-gpu/tests" "$st/build-gpu/bench" "$st/deplibs" .gpupack
  for f in attnmap libattnmap.so.0.1.0 libattnmap-cuda.so; do
    strip --strip-unneeded -o "$st/build-gpu/$f" "build-gpu/$f"
  done
  ln -s libattnmap.so.0.1.0 "$st/build-gpu/libattnmap.so.0"
  ln -s libattnmap.so.0 "$st/build-gpu/libattnmap.so"
  for t in test_cuda_backend test_parity test_parity_ops test_parity_long test_backend_analyze \
    test_flow_cuda; do
    [ -x "build-gpu/tests/$t" ] && strip --strip-unneeded -o "$st/build-gpu/tests/$t" "build-gpu/tests/$t"
  done
  for b in bench_cuda bench_long_cuda bench_flow synth; do
    strip --strip-unneeded -o "$st/build-gpu/bench/$b" "build-gpu/bench/$b"
  done
  chmod +x "$st"/build-gpu/attnmap "$st"/build-gpu/tests/* "$st"/build-gpu/bench/*
  # every library the binaries load, less glibc, the compiler's runtime and CUDA's (cuBLAS is
  # the machine's), plus cudart (small, the version built against)
  for f in "$st"/build-gpu/attnmap "$st"/build-gpu/*.so* "$st"/build-gpu/tests/* "$st"/build-gpu/bench/*; do
    ldd "$f"
  done | awk '$3 ~ /^\// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libdl|libpthread|librt|libresolv|libstdc\+\+|libgcc_s|ld-linux)[.-]|libcublas|/usr/local/' |
    while read -r l; do cp -L "$l" "$st/deplibs/"; done
  cp -L "$(ldd build-gpu/libattnmap-cuda.so | awk '/libcudart/ {print $3}')" "$st/deplibs/"
  echo "$(git rev-parse HEAD)$(git diff --quiet || echo ' + uncommitted changes')" >"$st/PACKED_FROM"
  tar -C "$st" -cf - . | xz -T"$(nproc)" -6 >"$PACK"
  rm -rf "$st"
  echo "packed $(git rev-parse --short HEAD)$(git diff --quiet || echo +changes): $PACK, $(du -h "$PACK" | cut -f1)"
}

run_there() {
  local budget=${1:-480} start=$SECONDS root
  root=$(pwd -P)
  if [ ! -e /work/main ]; then mkdir -p /work && ln -s "$root" /work/main; fi
  [ "$(cd /work/main && pwd -P)" = "$root" ] || { echo "/work/main is not this tree" >&2; exit 1; }
  cd /work/main || exit 1
  local un=/tmp/attnmap-unpack
  rm -rf "$un" build-gpu && mkdir -p "$un" && tar -C "$un" -xJf "$PACK" || exit 1
  mv "$un/build-gpu" build-gpu
  for l in "$un"/deplibs/*; do # the machine's own copy first
    ldconfig -p | grep -qF " $(basename "$l") (" && rm -f "$l"
  done
  local cub
  cub=$(dirname "$(find /usr/local /opt /usr/lib -name 'libcublas.so.13*' 2>/dev/null | head -1)")
  export LD_LIBRARY_PATH="$un/deplibs:$cub:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export ATTNMAP_BACKEND_DIR=/work/main/build-gpu
  export LOG=${LOG:-${OUT:+$OUT/gpu-check.log}}
  export LOG=${LOG:-bench/results/gpu-check-$(date -u +%Y%m%dT%H%M%SZ).log}
  export N128=${N128:-128} N512=${N512:-8} DATA=${DATA:-/tmp/attnmap-gpu}
  {
    echo "== gpu_lease: binaries built from commit $(cat "$un/PACKED_FROM" 2>/dev/null || echo unknown) (the commit line below is this machine's copy of the git metadata)"
    echo "== gpu_lease: build packed elsewhere, unpacked in $((SECONDS - start)) s; libraries carried: $(ls "$un/deplibs" | tr '\n' ' ')"
    echo "cuBLAS from $cub"
    ldd build-gpu/libattnmap-cuda.so build-gpu/tests/test_parity | grep 'not found' || echo "ldd: every library found"
  } >>"$LOG"
  local phase cap left
  for spec in "parity ${PARITY_CAP:-150}" "bench ${BENCH_CAP:-170}" "analyze 60" "peer 60" "sanitize 100000"; do
    read -r phase cap <<<"$spec"
    left=$((budget - (SECONDS - start) - 15))
    [ "$left" -lt "$cap" ] && cap=$left
    if [ "$cap" -lt 20 ]; then
      echo "== gpu_lease: phase $phase skipped, ${left} s left of $budget" >>"$LOG"
      continue
    fi
    timeout -k 5 "$cap" bash bench/gpu_check.sh "$phase"
    echo "== gpu_lease: phase $phase exit $? after $((SECONDS - start)) s (cap $cap s)" >>"$LOG"
  done
  bash bench/gpu_check.sh targets >/dev/null 2>&1 # the header and the targets table
}

case "${1:-}" in
pack) pack ;;
run) run_there "${2:-480}" ;;
*)
  echo "usage: bash bench/gpu_lease.sh pack | run SECONDS" >&2
  exit 2
  ;;
esac
