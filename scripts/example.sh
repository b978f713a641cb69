#!/usr/bin/env bash
# The main job on the bundled example dataset: installs what is missing, builds attnmap (the
# CLI and libattnmap.so, which `import attnmap` loads), and analyses
# examples/data/minilm-sentiment (all-MiniLM-L6-v2 on 254 sentences, see docs/exporter.md)
# into examples/runs/minilm-sentiment. Says what it is doing at each step.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "== $*" >&2; }
step "checking build dependencies (apt-get installs only what is missing)"
bash scripts/install-deps.sh
step "configuring the build in build/ (cmake)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
step "compiling the CLI build/attnmap and the library build/libattnmap.so ($(nproc) jobs; a few minutes the first time)"
cmake --build build -j"$(nproc)" --target attnmap_cli attnmap >/dev/null
step "checking the dataset: attnmap inspect examples/data/minilm-sentiment"
./build/attnmap inspect examples/data/minilm-sentiment | tail -n 5
if [ -d examples/runs/minilm-sentiment/report ]; then
  # analyze --force refuses to replace a run whose report a person may want to keep; this
  # script made that report, so it removes it itself
  step "removing the example run's previous report (examples/runs/minilm-sentiment/report)"
  rm -rf examples/runs/minilm-sentiment/report
fi
step "analysing: attnmap analyze examples/data/minilm-sentiment -o examples/runs/minilm-sentiment"
# The shards record --target mean (the probe reads the mean-pooled embedding); analyze
# takes it from there and says so.
./build/attnmap analyze examples/data/minilm-sentiment -o examples/runs/minilm-sentiment --force
step "writing the report: attnmap report examples/runs/minilm-sentiment"
./build/attnmap report examples/runs/minilm-sentiment # report/index.html and its PNGs
echo "run folder: examples/runs/minilm-sentiment (examples.safetensors, summary.json, report/index.html)"
echo "Python: PYTHONPATH=$PWD/python python3 -c 'import attnmap; print(attnmap.library_path)'"
