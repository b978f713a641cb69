#!/usr/bin/env bash
# generation.sh - a generation report end to end (docs/exporter.md "Generation",
# docs/generation.md): a decoder generates from examples/data/generation-prompts.txt,
# attnmap-export writes what attnmap analyses of it (attentions over prompt + generated
# tokens, generation_start, each step's own gradients and saliency), `attnmap analyze`
# reads the recorded target (gen: one map per generated token) and `attnmap report` draws it.
#
#   bash examples/generation.sh [OUT]            # default OUT: build/generation-example
#   MODEL=DIR bash examples/generation.sh        # a Hugging Face causal LM folder of yours
#   KIND=seq2seq bash examples/generation.sh     # an encoder-decoder model (T5): generates
#                                                # from each text, cross-attention maps
#
# Without MODEL the model is a tiny RANDOMLY initialised one (tests/python/tiny_models.py:
# 2 layers, 2 heads, a 30-word vocabulary), made on the spot: the machine this was written
# on cannot reach the Hugging Face hub, and no pretrained generator ships with attnmap. Its
# generations are word salad and its maps show the pipeline, not a model's behaviour.
# PYTHON (default: the venv of scripts/python-env.sh), ATTNMAP_CLI (default build/attnmap).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/generation-example}
kind=${KIND:-causal-lm}
py=${PYTHON:-$(bash scripts/python-env.sh)}
cli=${ATTNMAP_CLI:-build/attnmap}
step() { echo "== $*" >&2; }
mkdir -p "$out"
model=${MODEL:-}
if [ -z "$model" ]; then
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
  --data "${DATA:-examples/data/generation-prompts.txt}" --out "$out/shards" --force \
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
