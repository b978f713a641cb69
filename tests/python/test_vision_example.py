"""test_vision_example.py - examples/vision.sh end to end with its tiny ViT trained for 20
steps only (TRAIN_STEPS=20; the maps mean little then): the exporter's ViT path on the
held-out images, `attnmap analyze`, `attnmap report` with its overlays and contact sheet,
`attnmap overlay` of one example, and train_tiny_vit.py --measure's figures."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors.numpy")

import train_tiny_vit  # noqa: E402


def test_vision_script(tmp_path, repo, cli):
    out = str(tmp_path / "vis")
    env = dict(os.environ, PYTHON=sys.executable, ATTNMAP_CLI=cli, TRAIN_STEPS="20")
    p = subprocess.run(["bash", os.path.join(repo, "examples", "vision.sh"), out],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    info = json.load(open(os.path.join(out, "tiny-vit-20", "training.json")))
    assert info["steps"] == 20 and info["heldout"] == 24
    summary = json.load(open(os.path.join(out, "run", "summary.json")))
    assert summary  # the run
    img = os.path.join(out, "run", "report", "img")
    assert os.path.isfile(os.path.join(out, "run", "report", "index.html"))
    assert os.path.isfile(os.path.join(img, "sheet.png"))
    assert os.path.isfile(os.path.join(img, "ex0-image.png"))
    assert len(glob.glob(os.path.join(img, "ex*-ov-*.png"))) >= 6
    png = os.path.join(out, "overlay-ex0-grad_rollout.png")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    m = json.load(open(os.path.join(out, "on-object.json")))
    assert m["examples"] == 24 and 0 < m["object_area_share"] < 0.25
    for name in ("rollout", "grad_rollout"):
        assert 0 <= m[name]["mass_on_object"] <= 1
    # a second call reuses the trained model
    p = subprocess.run(["bash", os.path.join(repo, "examples", "vision.sh"), out],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0 and "reusing the trained model" in p.stderr, p.stderr


def test_objects_and_their_patches():
    imgs, labels, boxes = train_tiny_vit.make_images(8, np.random.default_rng(1))
    assert imgs.shape == (8, 64, 64, 3) and imgs.dtype == np.uint8
    for img, q, (y0, x0, y1, x1) in zip(imgs, labels, boxes):
        qy, qx = divmod(int(q), 2)  # wholly inside its quadrant
        assert qy * 32 <= y0 < y1 <= qy * 32 + 32 and qx * 32 <= x0 < x1 <= qx * 32 + 32
        assert (img[(y0 + y1) // 2, (x0 + x1) // 2] == img[y0 + 6, x0 + 6]).all()  # flat
    m = train_tiny_vit.box_patches((8, 15, 24, 16))  # rows 8..23, columns 15..15
    assert m.sum() == 2 and m[1:3, 1].all()
