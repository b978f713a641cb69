"""test_generation_e2e.py - generation from the exporter to the report: examples/generation.sh
on its tiny word-level GPT-2 trained for 30 steps only (TRAIN_STEPS=30; export with
--generate --step-grads, `attnmap analyze` with the recorded target gen, `attnmap report`),
the run's per-step maps against the shards they came from (the number of steps, per-step
saliency, and gradient-weighted rollout re-computed here from each step's own gradients with
Chefer et al.'s rule), and an encoder-decoder export
analysed with its recorded target 0: (cross-attention maps)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
st = pytest.importorskip("safetensors.numpy")

import attnmap  # noqa: E402
import export_hf  # noqa: E402
import tiny_models  # noqa: E402
from conftest import run_cli  # noqa: E402


@pytest.fixture(scope="module")
def example(tmp_path_factory, repo, cli):
    out = str(tmp_path_factory.mktemp("genex") / "ex")
    env = dict(os.environ, PYTHON=sys.executable, ATTNMAP_CLI=cli, MAX_NEW_TOKENS="5",
               TRAIN_STEPS="30")
    p = subprocess.run(["bash", os.path.join(repo, "examples", "generation.sh"), out],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    return out


def grad_rollout_row(A, G, t):
    """Chefer et al. 2021 (docs/analyses.md): R = I, R += mean_h max(0, G*A) R per layer;
    row t. A, G: [L,H,n,n] of one example's valid tokens."""
    n = A.shape[-1]
    R = np.eye(n)
    for a, g in zip(A.astype(np.float64), G.astype(np.float64)):
        R = R + np.maximum(0.0, g * a).mean(0) @ R
    return R[t]


def test_example_script_makes_a_report(example):
    assert os.path.isfile(os.path.join(example, "run", "report", "index.html"))
    summary = json.load(open(os.path.join(example, "run", "summary.json")))
    assert summary["steps"]["target"] == "gen"
    assert summary["steps"]["gradients"] == "per_step"


def layers(t, role, b, s=None):
    """[L,...] of example b (step s) from the stacked or the per-layer tensors of role."""
    if role in t:
        return t[role][:, b]
    L = sum(1 for k in t if k.startswith(role + "."))
    return np.stack([t["%s.%d" % (role, l)][b] if s is None else t["%s.%d" % (role, l)][b, s]
                     for l in range(L)])


def check_steps(run, shards):
    """Each example's steps, grad_rollout.steps rows and per-step saliency of the run
    against the shards' tensors; returns the number of examples."""
    k = 0
    for t, _ in shards:
        for b in range(t["attention_mask"].shape[0]):
            v = np.flatnonzero(t["attention_mask"][b])
            rows = t["score_rows"][b][t["score_rows"][b] >= 0]
            assert run["steps"][k] == len(rows)
            rv = run["mask"][k].astype(bool)
            assert rv.sum() == len(v)
            A = layers(t, "attentions", b)[..., v, :][..., v]
            for s, r in enumerate(rows):
                G = layers(t, "step_attention_grads", b, s)[..., v, :][..., v]
                want = grad_rollout_row(A, G, int(np.searchsorted(v, r)))
                got = run["grad_rollout.steps"][k, s][rv]
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
                np.testing.assert_allclose(run["saliency.grad_x_input.steps"][k, s][rv],
                                           t["saliency.grad_x_input"][b, s][v], rtol=1e-6)
            k += 1
    return k


def test_run_steps_match_the_shards(example):
    run = st.load_file(os.path.join(example, "run", "examples.safetensors"))
    assert check_steps(run, attnmap.read_dataset(os.path.join(example, "shards"))) == 6


def test_seq2seq_steps(tmp_path, cli):
    model = tiny_models.make_seq2seq(str(tmp_path / "t5"), "t5")
    data = tiny_models.write_jsonl(str(tmp_path / "d.jsonl"), tiny_models.TEXTS[:4],
                                   labels=False)
    out = str(tmp_path / "shards")
    export_hf.main(["--model", model, "--data", data, "--out", out, "-q", "--progress", "off",
                    "--generate", "--max-new-tokens", "4", "--dtype", "f32", "--step-grads"])
    run_cli(cli, "analyze", out, "-o", str(tmp_path / "run"), "-q")
    run = st.load_file(str(tmp_path / "run" / "examples.safetensors"))
    shards = attnmap.read_dataset(out)
    np.testing.assert_array_equal(run["steps"], shards[0][0]["attention_mask"].sum(1))
    assert check_steps(run, shards) == 4  # target 0:, every decoder row a step
    summary = json.load(open(str(tmp_path / "run" / "summary.json")))
    assert summary["steps"]["target"] == "0:" and summary["steps"]["gradients"] == "per_step"
    # cross-attention maps: the step's row of the last layer's head-mean cross-attention, and
    # sum_l mean_h max(0, G ⊙ C) with step s's own cross-attention gradient
    t = shards[0][0]
    for b in range(len(run["steps"])):
        e = t["encoder_attention_mask"][b].astype(bool)
        se = run["source_mask"][b].astype(bool)
        C = layers(t, "cross_attentions", b).astype(np.float64)  # [L,H,T,Te]
        for s_ in range(int(run["steps"][b])):
            np.testing.assert_allclose(run["cross.attention_last.steps"][b, s_][se],
                                       C[-1][:, s_][:, e].mean(0), rtol=1e-5, atol=1e-7)
            G = layers(t, "step_cross_attention_grads", b, s_).astype(np.float64)
            want = np.maximum(0.0, G * C)[:, :, s_][..., e].mean(1).sum(0)  # [L,H,Te]
            np.testing.assert_allclose(run["cross.grad_x_attention.steps"][b, s_][se], want,
                                       rtol=1e-5, atol=1e-7)


def test_early_end_pads_both_sides(tmp_path, cli):
    """Left padding with a generation that ends early: padding before the prompt and after
    the end token in one row; attnmap analyze reads its steps as the exporter wrote them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from attnmap import export_gen

    path = tiny_models.make_gpt2(str(tmp_path / "m"))
    m = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    tok = AutoTokenizer.from_pretrained(path)
    prompts = ["the film was very good", "loved it", "this movie is not bad", "hated it"]
    opts = dict(max_new_tokens=5, quiet=True, progress="never", batch_size=4, step_grads=True)
    (t, _), = attnmap.read_dataset(export_gen.export_model(m, tok, prompts,
                                                           str(tmp_path / "a"), **opts))
    g = t["generation_start"][0]
    # make the third token generated for "loved it" the end token, where no row ends sooner
    end = int(t["input_ids"][1, g + 2])
    assert not (t["input_ids"][:, g:g + 2] == end).any()
    m.generation_config.eos_token_id = end
    out = export_gen.export_model(m, tok, prompts, str(tmp_path / "b"), **opts)
    (t, _), = attnmap.read_dataset(out)
    mask = t["attention_mask"][1]
    assert mask[0] == 0 and mask[g:g + 3].all() and not mask[g + 3:].any()  # both sides
    run_cli(cli, "analyze", out, "-o", str(tmp_path / "run"), "-q")
    run = st.load_file(str(tmp_path / "run" / "examples.safetensors"))
    assert run["steps"][1] == 3
    assert check_steps(run, [(t, None)]) == 4
