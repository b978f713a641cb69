#!/usr/bin/env bash
# Regenerates the bundled example dataset examples/data/synthetic (64 examples, 4 layers,
# 4 heads, up to 24 tokens, F16, with gradients, embeddings, saliency and labels) with the
# generator bench/synth. Deterministic: the same seed writes the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target synth >/dev/null
rm -rf examples/data/synthetic && mkdir -p examples/data
./build/bench/synth -o examples/data/synthetic --examples 64 --shards 2 --layers 4 \
  --heads 4 --tokens 24 --min-tokens 5 --dtype f16 --embed-dim 8 --seed 7
