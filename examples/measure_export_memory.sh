#!/usr/bin/env bash
# Peak resident memory of the exporter on a small random GPT-2 (4 layers x 4 heads, 32
# dimensions, 64 texts of 250 tokens, f16), no download: one shard of 64 examples, then
# shards sized by --shard-memory 32. With OLD=path/to/old/export_hf.py it also measures an
# older exporter on the same model and data. Figures in docs/exporter.md.
#   usage: bash examples/measure_export_memory.sh [WORKDIR]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
py=$(bash "$repo/scripts/python-env.sh")
export HF_HUB_OFFLINE=1
"$py" - "$work" "$repo" <<'PY'
import json, random, sys
work, repo = sys.argv[1], sys.argv[2]
sys.path.insert(0, repo + "/tests/python")
import tiny_models
tiny_models.make_gpt2(work + "/gpt2", layers=4, heads=4, hidden=32, positions=512)
random.seed(0)
with open(work + "/data.jsonl", "w") as f:
    for i in range(64):
        words = " ".join(random.choice(tiny_models.WORDS) for _ in range(250))
        f.write(json.dumps({"id": i, "text": words, "label": i % 2}) + "\n")
PY
peak() { # label, exporter, options...
  local label=$1 exporter=$2; shift 2
  rm -rf "$work/out"
  /usr/bin/time -v "$py" "$exporter" --model "$work/gpt2" --data "$work/data.jsonl" \
    --out "$work/out" --max-length 256 --dtype f16 "$@" 2> "$work/time.log" >/dev/null
  echo "$label: peak RSS $(awk '/Maximum resident/ {print $6}' "$work/time.log") kB," \
    "$(ls "$work/out" | wc -l) shards"
}
[ -n "${OLD:-}" ] && peak "old exporter, --examples-per-shard 64" "$OLD" --examples-per-shard 64 --progress off
peak "--examples-per-shard 64" "$repo/examples/export_hf.py" --examples-per-shard 64 --progress never
peak "--shard-memory 32" "$repo/examples/export_hf.py" --shard-memory 32 --progress never
