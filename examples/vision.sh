#!/usr/bin/env bash
# vision.sh - a vision report end to end with a model that LEARNT something: a tiny ViT
# classifier trained on the spot, offline (examples/train_tiny_vit.py: 64 x 64 images, 8 x 8
# patches, a noisy background and one bright square or disc; the label is the quadrant the
# object sits in), its held-out images exported with the ViT path of attnmap-export
# (attentions, gradients, the `images` the model saw), `attnmap analyze`, `attnmap report`
# (every map drawn over each image, the contact sheet) and `attnmap overlay` of example 0's
# grad_rollout to a PNG; last, how much of rollout's and grad_rollout's mass lands on the
# patches the object covers (train_tiny_vit.py --measure; docs/report.md).
#
#   bash examples/vision.sh [OUT]             # default OUT: build/vision-example
#   TRAIN_STEPS=20 bash examples/vision.sh    # train briefly (tests; the maps mean little)
#
# The model is trained once (TRAIN_STEPS steps, default 500: about a minute of one CPU
# core), saved in OUT/tiny-vit-STEPS with its held-out images and reused. A toy: the
# machine this was written on cannot reach the Hugging Face hub and no pretrained ViT ships
# with attnmap. PYTHON (default: the venv of scripts/python-env.sh), ATTNMAP_CLI (default
# build/attnmap).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/vision-example}
py=${PYTHON:-$(bash scripts/python-env.sh)}
cli=${ATTNMAP_CLI:-build/attnmap}
steps=${TRAIN_STEPS:-500}
step() { echo "== $*" >&2; }
# OUT is this script's own folder: one that holds anything else is refused, so that the
# runs it replaces below are only ever its own
if [ -n "$(ls -A "$out" 2>/dev/null)" ] && [ ! -f "$out/.made-by-vision.sh" ]; then
  echo "vision.sh: $out holds files this script did not make; give another folder" >&2
  exit 2
fi
mkdir -p "$out" && touch "$out/.made-by-vision.sh"
model=$out/tiny-vit-$steps
if [ -f "$model/training.json" ]; then
  step "reusing the trained model in $model"
else
  step "training a tiny ViT on the quadrant task, $steps steps, into $model (no download)"
  "$py" examples/train_tiny_vit.py "$model" --steps "$steps"
fi
step "exporting the held-out images to $out/shards"
HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error PYTHONPATH=python "$py" examples/export_hf.py \
  --model "$model" --data "$model/heldout/images.jsonl" --out "$out/shards" --force \
  --dtype f32 --progress never --quiet
# a run this script made before (analyze --force keeps a run that holds a report)
if [ -f "$out/run/summary.json" ]; then rm -rf "$out/run"; fi
step "analysing into $out/run"
"$cli" analyze "$out/shards" -o "$out/run" -q
step "writing the report"
"$cli" report "$out/run" --quiet
step "drawing example 0's grad_rollout over its image"
"$cli" overlay "$out/run" --example 0 --map grad_rollout -o "$out/overlay-ex0-grad_rollout.png"
step "the maps' mass on the object (held-out accuracy: $model/training.json)"
"$py" examples/train_tiny_vit.py --measure "$out/run" "$model/heldout" | tee "$out/on-object.json"
echo "report: $out/run/report/index.html"
echo "overlay: $out/overlay-ex0-grad_rollout.png"
