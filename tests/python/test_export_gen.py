"""test_export_gen.py - the exporter's generation mode for decoders (attnmap.export_gen,
docs/exporter.md "Generation") on a random GPT-2 (no download): the tensors written and
their dtypes, generation_start under left and right padding (the same attention either
way), and every step's gradients and saliency against a separate backward of that step's
own score, re-created here from the model, the written ids and the documented convention
(row r's score: the log-probability of the token after r; the argmax after the last)."""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import attnmap  # noqa: E402
import export_hf  # noqa: E402
import tiny_models  # noqa: E402
from attnmap import hf_gen  # noqa: E402
from conftest import run_cli  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
PROMPTS = ["the film was very good", "loved it", "this movie is not bad",
           "the music was great but the story was boring", "hated it"]
NEW = 4


def export(model, data, out, *extra):
    export_hf.main(["--model", model, "--data", data, "--out", out, "--progress", "off",
                    "--generate", "--max-new-tokens", str(NEW), "--dtype", "f32",
                    "--batch-size", "3", "-q", *extra])
    return attnmap.read_dataset(out)


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    model = tiny_models.make_gpt2(str(d / "model"))
    data = tiny_models.write_jsonl(str(d / "prompts.jsonl"), PROMPTS, labels=False)
    left = export(model, data, str(d / "left"), "--step-grads")
    right = export(model, data, str(d / "right"), "--step-grads", "--padding-side", "right")
    return model, data, d, left, right


def test_tensors_and_dtypes(gpt2):
    _, _, _, left, _ = gpt2
    assert [t["attention_mask"].shape[0] for t, _ in left] == [3, 2]  # a shard a batch
    for t, meta in left:
        B, T = t["attention_mask"].shape
        S = t["score_rows"].shape[1]
        want = {"attentions": ((2, B, 2, T, T), np.float32),
                "attention_grads": ((2, B, 2, T, T), np.float32),
                "step_attention_grads.0": ((B, S, 2, T, T), np.float32),
                "step_attention_grads.1": ((B, S, 2, T, T), np.float32),
                "attention_mask": ((B, T), np.uint8), "special_tokens_mask": ((B, T), np.uint8),
                "input_ids": ((B, T), np.int32), "generation_start": ((B,), np.int32),
                "saliency.grad_l2": ((B, S, T), np.float32),
                "saliency.grad_x_input": ((B, S, T), np.float32),
                "saliency.abs_grad_x_input": ((B, S, T), np.float32),
                "score_rows": ((B, S), np.int32), "score_ids": ((B, T), np.int32),
                "token_scores": ((B, T), np.float32), "target_score": ((B,), np.float32)}
        assert {k: (v.shape, v.dtype) for k, v in t.items()} == want
        rec = json.loads(meta["attnmap.exporter"])
        assert (rec["target"], rec["mode"], rec["max_new_tokens"]) == ("gen", "generate", NEW)
        toks = json.loads(meta["attnmap.tokens"])
        assert [len(x) for x in toks] == t["attention_mask"].sum(1).tolist()
        # the steps are the generated positions, in order
        for b in range(B):
            real = np.flatnonzero(t["attention_mask"][b])
            steps = real[real >= t["generation_start"][b]]
            np.testing.assert_array_equal(t["score_rows"][b, :len(steps)], steps)
            assert (t["score_rows"][b, len(steps):] == -1).all()
            assert 1 <= len(steps) <= NEW


def prompt_ids(model, texts):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    return [tok(x)["input_ids"] for x in texts]


def test_generation_start_left_and_right(gpt2):
    model, _, _, left, right = gpt2
    prompts = iter(prompt_ids(model, PROMPTS))
    for (tl, _), (tr, _) in zip(left, right):
        ml, mr = tl["attention_mask"].astype(bool), tr["attention_mask"].astype(bool)
        gl, gr = tl["generation_start"], tr["generation_start"]
        assert (gl == gl[0]).all()  # left: the padded prompt length, the whole batch
        for b in range(len(gl)):
            p = next(prompts)
            # left: pads, prompt, generated; right: prompt, generated, pads
            assert not ml[b, gl[b]:].any() or ml[b, gl[b]]
            np.testing.assert_array_equal(tl["input_ids"][b, :gl[b]][ml[b, :gl[b]]], p)
            assert gr[b] == len(p) and mr[b, :gr[b]].all()
            np.testing.assert_array_equal(tr["input_ids"][b, :gr[b]], p)
            # the same sequence, the same attention and gradients, only moved
            np.testing.assert_array_equal(tl["input_ids"][b][ml[b]], tr["input_ids"][b][mr[b]])
            for k in ("attentions", "attention_grads"):
                a = tl[k][:, b][..., ml[b], :][..., ml[b]]
                c = tr[k][:, b][..., mr[b], :][..., mr[b]]
                np.testing.assert_allclose(a, c, atol=2e-6 * max(1.0, np.abs(c).max()))


def reference(model_path, ids, mask, row):
    """A separate backward of one score: the log-probability at row `row` of the token after
    it (the next real token, else the argmax), w.r.t. the attentions and the embeddings."""
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(model_path, attn_implementation="eager").eval()
    ids = torch.from_numpy(ids.astype(np.int64))[None]
    mask = torch.from_numpy(mask.astype(np.int64))[None]
    emb = m.get_input_embeddings()(ids).detach().requires_grad_(True)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = m(inputs_embeds=emb, attention_mask=mask, position_ids=pos, output_attentions=True)
    for a in out.attentions:
        a.retain_grad()
    logp = torch.log_softmax(out.logits[0, row], -1)
    follows = row + 1 < mask.shape[1] and bool(mask[0, row + 1])
    nxt = int(ids[0, row + 1]) if follows else int(logp.argmax())
    logp[nxt].backward()
    G = torch.stack([a.grad[0] for a in out.attentions]).numpy()
    gx = (emb.grad[0] * emb[0]).sum(-1).detach().numpy() * mask[0].numpy()
    return G, gx, float(logp[nxt]), int(logp.argmax())


@pytest.mark.parametrize("side", ["left", "right"])
def test_step_gradients_equal_single_score_backward(gpt2, side):
    model, _, _, left, right = gpt2
    shards = left if side == "left" else right
    checked = 0
    for t, _ in shards:
        steps = (t["score_rows"] >= 0).sum(1)
        G = np.stack([t["step_attention_grads.%d" % l] for l in range(2)], 2)  # [B,S,L,H,T,T]
        for b in range(len(steps)):
            for s in sorted({0, int(steps[b]) - 1}):  # the first step and the last (argmax)
                row = int(t["score_rows"][b, s])
                ref, gx, lp, best = reference(model, t["input_ids"][b],
                                              t["attention_mask"][b], row)
                # greedy: the token generated after the row is the full forward's argmax
                # there (generate and this forward count positions alike)
                assert t["score_ids"][b, row] == best
                scale = np.abs(ref).max()
                assert scale > 0
                np.testing.assert_allclose(G[b, s], ref, atol=1e-5 * scale)
                np.testing.assert_allclose(t["saliency.grad_x_input"][b, s], gx,
                                           atol=1e-5 * np.abs(gx).max())
                assert abs(t["token_scores"][b, row] - lp) < 1e-5
                checked += 1
        # the shared gradient is the sum of the steps' own
        for l in range(2):
            total = t["step_attention_grads.%d" % l].sum(1)
            np.testing.assert_allclose(t["attention_grads"][l], total,
                                       atol=1e-5 * np.abs(total).max())
        np.testing.assert_allclose(t["target_score"],
                                   (t["token_scores"] * (t["attention_mask"] > 0) *
                                    (np.arange(t["attention_mask"].shape[1]) >=
                                     t["generation_start"][:, None])).sum(1), rtol=1e-6)
    assert checked >= 8


def test_generated_mask_and_layouts():
    gen = torch.tensor([[5, 1, 0, 7], [5, 6, 7, 8], [0, 0, 0, 0]])
    m = hf_gen.generated_mask(gen, [0])  # up to and including the first end token
    assert m.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    ids = torch.tensor([[0, 3, 4, 9, 0], [2, 3, 4, 9, 9]])
    mask = torch.tensor([[0, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    r_ids, r_mask, start = hf_gen.to_right(ids, mask, 3, 0)
    assert r_ids.tolist() == [[3, 4, 9, 0, 0], [2, 3, 4, 9, 9]]
    assert r_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert start.tolist() == [2, 3]


def test_python_api_and_cli_inspect(gpt2, cli, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from attnmap import export_gen

    model_path = gpt2[0]
    m = AutoModelForCausalLM.from_pretrained(model_path, attn_implementation="eager")
    tok = AutoTokenizer.from_pretrained(model_path)
    out = str(tmp_path / "api")
    export_gen.export_model(m, tok, PROMPTS[:2], out, max_new_tokens=2, quiet=True,
                            progress="never")
    (t, meta), = attnmap.read_dataset(out)
    assert t["saliency.grad_x_input"].shape == t["attention_mask"].shape  # no steps: [B,T]
    assert "step_attention_grads.0" not in t and m.training is False
    p = run_cli(cli, "inspect", out)
    assert "generation_start" in p.stdout and "target: gen" in p.stdout


def test_refusals(gpt2, tmp_path):
    model, data, _, _, _ = gpt2
    for extra, says in ((["--step-grads", "--embeds", "full"], "per-step saliency"),
                        (["--target", "cls"], "target 'cls'")):
        with pytest.raises(SystemExit, match=says):
            export(model, data, str(tmp_path / "x"), *extra)
    with pytest.raises(SystemExit, match="--run"):
        export_hf.main(["--model", model, "--data", data, "--run", str(tmp_path / "r"),
                        "--generate"])


def test_target_slice_and_resume(gpt2, tmp_path):
    model, data, _, _, _ = gpt2
    out = str(tmp_path / "slice")
    shards = export(model, data, out, "--step-grads", "--target=-3:", "--sort-by-length")
    for t, meta in shards:
        assert json.loads(meta["attnmap.exporter"])["target"] == "-3:"
        for b in range(t["attention_mask"].shape[0]):
            want = np.flatnonzero(t["attention_mask"][b])[-3:]  # the last three real rows
            np.testing.assert_array_equal(t["score_rows"][b], want)
            assert np.abs(t["step_attention_grads.0"][b]).max(axis=(1, 2, 3)).min() > 0
    # --resume keeps a finished shard (the file untouched) and writes the missing one again,
    # the same tensors and metadata (the safetensors package orders __metadata__ keys
    # differently from one write to the next, so not byte for byte)
    first = open(os.path.join(out, "shard-00000.safetensors"), "rb").read()
    os.remove(os.path.join(out, "shard-00001.safetensors"))
    again = export(model, data, out, "--step-grads", "--target=-3:", "--sort-by-length",
                   "--resume")
    assert open(os.path.join(out, "shard-00000.safetensors"), "rb").read() == first
    (t, meta), (t2, meta2) = shards[1], again[1]
    assert meta == meta2 and sorted(t) == sorted(t2)
    for k in t:
        np.testing.assert_array_equal(t[k], t2[k])
