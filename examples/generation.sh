#!/usr/bin/env bash
# generation.sh - a generation report end to end (docs/exporter.md "Generation",
# docs/generation.md): a decoder generates from examples/data/generation-prompts.txt,
# attnmap-export writes what attnmap analyses of it (attentions over prompt + generated
# tokens, generation_start, each step's own gradients and saliency), `attnmap analyze`
# reads the recorded target (gen: one map per generated token) and `attnmap report` draws it.
#
#   bash examples/generation.sh [OUT]            # default OUT: build/generation-example
#   MODEL=DIR bash examples/generation.sh        # a Hugging Face causal LM folder of yours
#   TRAIN_STEPS=30 bash examples/generation.sh   # train the default model briefly (tests)
#   KIND=seq2seq bash examples/generation.sh     # an encoder-decoder model (T5): generates
#                                                # from each text, cross-attention maps
#
# Without MODEL the model is a tiny word-level GPT-2 (2 layers, 4 heads, 64 dimensions)
# TRAINED on the spot by examples/train_tiny_lm.py on /usr/share/common-licenses/GPL-3
# (TRAIN_STEPS steps, default 1200: about a minute of one CPU core), saved once in
# OUT/tiny-lm-STEPS and reused, and the prompts default to examples/data/license-prompts.txt.
# The machine this was written on cannot reach the Hugging Face hub and no pretrained
# generator ships with attnmap: this is a toy that learnt one license text (it mostly
# recites it), not a language model. TRAIN_STEPS=0 takes a tiny RANDOMLY initialised GPT-2
# (tests/python/tiny_models.py; word salad, maps that show the pipeline only) and the
# prompts of examples/data/generation-prompts.txt, as KIND=seq2seq does (a random T5).
# PYTHON (default: the venv of scripts/python-env.sh), ATTNMAP_CLI (default build/attnmap).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/generation-example}
kind=${KIND:-causal-lm}
py=${PYTHON:-$(bash scripts/python-env.sh)}
cli=${ATTNMAP_CLI:-build/attnmap}
step() { echo "== $*" >&2; }
# OUT is this script's own folder: one that holds anything else is refused, so that the
# runs it replaces below are only ever its own
if [ -n "$(ls -A "$out" 2>/dev/null)" ] && [ ! -f "$out/.made-by-generation.sh" ]; then
  echo "generation.sh: $out holds files this script did not make; give another folder" >&2
  exit 2
fi
mkdir -p "$out" && touch "$out/.made-by-generation.sh"
model=${MODEL:-}
steps=${TRAIN_STEPS:-1200}
data=examples/data/generation-prompts.txt
if [ -z "$model" ] && [ "$kind" = causal-lm ] && [ "$steps" -gt 0 ]; then
  model=$out/tiny-lm-$steps
  data=examples/data/license-prompts.txt
  if [ -f "$model/training.json" ]; then
    step "reusing the trained model in $model"
  else
    step "training a tiny GPT-2 on the GPL-3 text, $steps steps, into $model (no download)"
    "$py" examples/train_tiny_lm.py "$model" --steps "$steps"
  fi
elif [ -z "$model" ]; then
  model=$out/tiny-$kind
  step "making a tiny random $kind model in $model (no download)"
  PYTHONPATH=tests/python "$py" -c "
import sys, tiny_models
if sys.argv[2] == 'seq2seq':
    tiny_models.make_seq2seq(sys.argv[1], 't5')
else:
    tiny_models.make_gpt2(sys.argv[1])" "$model" "$kind"
fi
step "generating and exporting shards to $out/shards"
HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error PYTHONPATH=python "$py" examples/export_hf.py --model "$model" \
  --data "${DATA:-$data}" --out "$out/shards" --force \
  --generate \
  --max-new-tokens "${MAX_NEW_TOKENS:-8}" --step-grads --dtype f32 --batch-size 3 \
  --progress never
# a run this script made before (analyze --force keeps a run that holds a report)
if [ -f "$out/run/summary.json" ]; then rm -rf "$out/run"; fi
step "analysing (the target the exporter recorded) into $out/run"
"$cli" analyze "$out/shards" -o "$out/run"
step "writing the report"
"$cli" report "$out/run"
echo "report: $out/run/report/index.html"
