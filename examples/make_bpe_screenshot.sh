#!/usr/bin/env bash
# Screenshot of the report's token view for a GPT-2-style byte-level BPE model
# (examples/report-bpe-tokens.png): a randomly initialised tiny GPT-2 whose tokenizer is a
# byte-level BPE trained here on the test texts (no download), exported, analysed (the
# target `last` comes from the shards) and reported; the tokens show decoded (" the", not
# "Ġthe"; a newline as ↵), the raw form on hover. Usage: examples/make_bpe_screenshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
py=$(bash scripts/python-env.sh)
cli=${ATTNMAP_CLI:-./build/attnmap}
export HF_HUB_OFFLINE=1
"$py" - "$work" <<'PY'
import json, os, sys
sys.path.insert(0, "tests/python")
import torch, tiny_models
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast
work = sys.argv[1]
texts = tiny_models.TEXTS + ["the plot,\nthe actors and the music"]
bpe = ByteLevelBPETokenizer()
bpe.train_from_iterator(texts * 20, vocab_size=300, min_frequency=1,
                        special_tokens=["<|endoftext|>"])
os.makedirs(work + "/gpt2", exist_ok=True)
bpe.save_model(work + "/gpt2")
tok = GPT2TokenizerFast(vocab_file=work + "/gpt2/vocab.json",
                        merges_file=work + "/gpt2/merges.txt")
torch.manual_seed(0)
cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                 architectures=["GPT2LMHeadModel"])
model = GPT2LMHeadModel(cfg)
tiny_models._spread(model, torch)
model.save_pretrained(work + "/gpt2")
tok.save_pretrained(work + "/gpt2")
with open(work + "/data.jsonl", "w") as f:
    for i, t in enumerate(texts):
        f.write(json.dumps({"id": i, "text": t}) + "\n")
PY
"$py" examples/export_hf.py --model "$work/gpt2" --data "$work/data.jsonl" --out "$work/shards" \
  --dtype f32 --quiet
"$cli" analyze "$work/shards" -o "$work/run" -q
"$cli" report "$work/run" --quiet
page="$work/run/report/index.html" # example 9: the text with a newline
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1240,900 \
  --screenshot=examples/report-bpe-tokens.png "file://$page?section=examples&ex=ex-9" \
  >/dev/null 2>&1
ls -l examples/report-bpe-tokens.png
rm -rf "$work"
