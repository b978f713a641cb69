"""test_steps.py - several targets from Python (docs/generation.md): read_run returns the
step tensors of a `--target 2:5` run and its summary's steps section; attnmap.analyze (in
memory, no run folder) refuses several targets in one message."""
import numpy as np
import pytest

import attnmap
from conftest import run_cli

pytest.importorskip("safetensors")
from safetensors.numpy import save_file  # noqa: E402


def dataset(path, L=2, B=3, H=2, T=7, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros((B, T), np.int64)
    for b, n in enumerate([7, 5, 6]):
        mask[b, T - n:] = 1
    att = rng.normal(size=(L, B, H, T, T))
    att = np.where(mask[None, :, None, None, :] == 1, att, -np.inf)
    att = np.exp(att - att.max(-1, keepdims=True))
    att = (att / att.sum(-1, keepdims=True)).astype(np.float32)
    save_file({"attentions": att, "attention_mask": mask,
               "attention_grads": rng.normal(size=att.shape).astype(np.float32)}, path)
    return att, mask


def test_read_run_returns_the_step_tensors(tmp_path, cli):
    data = str(tmp_path / "d.safetensors")
    dataset(data)
    run = str(tmp_path / "run")
    run_cli(cli, "analyze", data, "-o", run, "--target", "2:5", "-q")
    r = attnmap.read_run(run)
    assert r["rollout.steps"].shape == (3, 3, 7)
    assert r["steps"].tolist() == [3, 3, 3]
    assert r["step_positions"][1].tolist() == [4, 5, 6]  # left padding: two pad positions
    np.testing.assert_array_equal(r["rollout"], r["rollout.steps"].astype(np.float64)
                                  .mean(1).astype(np.float32))
    assert r.summary["steps"]["max_steps"] == 3
    assert r.summary["provenance"]["options"]["target"] == "2:5"


def test_analyze_in_memory_refuses_several_targets(tmp_path):
    att, mask = dataset(str(tmp_path / "d.safetensors"))
    with pytest.raises(attnmap.AttnmapError, match="several targets"):
        attnmap.analyze(list(att), attention_mask=mask, target="2:5")
