#!/usr/bin/env bash
# The main job on the bundled example dataset: installs what is missing, builds attnmap,
# and analyses examples/data/synthetic into examples/runs/synthetic.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target attnmap_cli >/dev/null
./build/attnmap inspect examples/data/synthetic | tail -n 5
./build/attnmap analyze examples/data/synthetic -o examples/runs/synthetic --force
echo "run folder: examples/runs/synthetic (examples.safetensors, summary.json)"
