#!/usr/bin/env bash
# Screenshots of the report's head view for a ViT-style patch grid
# (examples/report-vit-heads.png) and of one example's maps drawn over its image
# (examples/report-vit-overlay.png): a randomly initialised ViT with 12 layers and 12 heads on
# 224 x 224 images in 16 x 16 patches (14x14+1 = 197 tokens; no download), exported from
# smooth synthetic images, analysed and reported; each head's attention of the CLS row over
# the 196 patches is a 14 x 14 tile; the exporter writes the images the model saw, over
# which the report draws every map. Usage: examples/make_vit_screenshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
py=$(bash scripts/python-env.sh)
cli=${ATTNMAP_CLI:-./build/attnmap}
export HF_HUB_OFFLINE=1
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}" # this checkout's exporter
"$py" - "$work" <<'PY'
import json, os, sys
import numpy as np
sys.path.insert(0, "tests/python")
import tiny_models
work = sys.argv[1]
tiny_models.make_vit(work + "/vit", image=224, patch=16, layers=12, heads=12, hidden=48)
os.makedirs(work + "/img", exist_ok=True)
y, x = np.mgrid[0:224, 0:224] / 224.0
with open(work + "/img/images.jsonl", "w") as f:
    for i in range(4):  # smooth blobs, so that neighbouring patches look alike
        cx, cy = 0.3 + 0.4 * (i % 2), 0.3 + 0.4 * (i // 2)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 0.02)
        img = np.stack([blob, 1 - blob, 0.5 * x], -1) * 255
        np.save(work + "/img/img%d.npy" % i, img.astype(np.uint8))
        f.write(json.dumps({"id": i, "image": "img%d.npy" % i, "label": i % 3}) + "\n")
PY
"$py" examples/export_hf.py --model "$work/vit" --data "$work/img/images.jsonl" \
  --out "$work/shards" --dtype f32 --quiet
"$cli" analyze "$work/shards" -o "$work/run" -q
"$cli" report "$work/run" --quiet
page="$work/run/report/index.html"
ex=$(grep -o 'id="ex-[0-9]*"' "$page" | head -1 | sed 's/id="\(.*\)"/\1/')
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1240,4000 \
  --screenshot="$work/full.png" "file://$page?section=examples&ex=$ex" >/dev/null 2>&1
"$py" - "$work/full.png" examples/report-vit-heads.png examples/report-vit-overlay.png <<'PY'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
heads = im.crop((0, 3273, 1240, 3628))  # the head view's card, below the model view
heads.quantize(colors=256).save(sys.argv[2], optimize=True)
over = im.crop((0, 1850, 1240, 2525))  # "Over the image", below the patch grids
over.quantize(colors=256).save(sys.argv[3], optimize=True)
PY
ls -l examples/report-vit-heads.png examples/report-vit-overlay.png
rm -rf "$work"
