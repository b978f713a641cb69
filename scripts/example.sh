#!/usr/bin/env bash
# The main job on the bundled example dataset: installs what is missing, builds attnmap,
# and analyses examples/data/minilm-sentiment (all-MiniLM-L6-v2 on 254 sentences, see
# docs/exporter.md) into examples/runs/minilm-sentiment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target attnmap_cli >/dev/null
./build/attnmap inspect examples/data/minilm-sentiment | tail -n 5
./build/attnmap analyze examples/data/minilm-sentiment -o examples/runs/minilm-sentiment --force \
  --target mean # the probe reads the mean-pooled embedding: the mean of all rows
./build/attnmap report examples/runs/minilm-sentiment # report/index.html and its PNGs
echo "run folder: examples/runs/minilm-sentiment (examples.safetensors, summary.json)"
