"""test_export_seq2seq.py - the exporter's generation mode for encoder-decoder models
(attnmap.export_gen, docs/exporter.md "Generation") on random T5 and BART models (no
download): teacher forcing on the data's output texts and greedy generation; the tensors
written, the decoder layout (start token, then the outputs but the last), cross-attention
rows summing to 1 over the real source tokens, and each step's gradients against a separate
backward of that step's own score (and the decoder tokens' per-step saliency likewise)."""
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
from conftest import run_cli  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SOURCES = ["the film was very good", "loved it", "the music was great but the story was boring",
           "not good", "this movie is not bad"]
OUTPUTS = ["good film", "it loved", "boring story", "bad", "not bad at all this"]


def write_data(path):
    with open(path, "w") as f:
        for i, (s, o) in enumerate(zip(SOURCES, OUTPUTS)):
            f.write(json.dumps({"id": "s%d" % i, "text": s, "output": o}) + "\n")
    return path


@pytest.fixture(scope="module", params=["t5-teacher", "bart-generate"])
def s2s(request, tmp_path_factory):
    kind, mode = request.param.split("-")
    d = tmp_path_factory.mktemp(kind)
    model = tiny_models.make_seq2seq(str(d / "model"), kind)
    data = write_data(str(d / "data.jsonl"))
    extra = ["--generate", "--max-new-tokens", "4"] if mode == "generate" else []
    export_hf.main(["--model", model, "--data", data, "--out", str(d / "out"), "-q",
                    "--progress", "off", "--dtype", "f32", "--batch-size", "3",
                    "--step-grads", *extra])
    return model, mode, str(d / "out"), attnmap.read_dataset(str(d / "out"))


def test_tensors_and_layout(s2s):
    from transformers import AutoConfig, AutoTokenizer

    model, mode, _, shards = s2s
    tok = AutoTokenizer.from_pretrained(model)
    start = AutoConfig.from_pretrained(model).decoder_start_token_id
    k = 0
    for t, meta in shards:
        B, T = t["attention_mask"].shape
        Te = t["encoder_attention_mask"].shape[1]
        S = t["score_rows"].shape[1]
        want = {"attention_mask": ((B, T), np.uint8), "special_tokens_mask": ((B, T), np.uint8),
                "input_ids": ((B, T), np.int32), "encoder_attention_mask": ((B, Te), np.uint8),
                "encoder_input_ids": ((B, Te), np.int32), "score_rows": ((B, S), np.int32),
                "score_ids": ((B, T), np.int32), "token_scores": ((B, T), np.float32),
                "target_score": ((B,), np.float32),
                "saliency.grad_l2": ((B, S, T), np.float32),
                "saliency.grad_x_input": ((B, S, T), np.float32),
                "saliency.abs_grad_x_input": ((B, S, T), np.float32)}
        for l in range(2):
            want.update({"attentions.%d" % l: ((B, 2, T, T), np.float32),
                         "attention_grads.%d" % l: ((B, 2, T, T), np.float32),
                         "cross_attentions.%d" % l: ((B, 2, T, Te), np.float32),
                         "cross_attention_grads.%d" % l: ((B, 2, T, Te), np.float32),
                         "step_attention_grads.%d" % l: ((B, S, 2, T, T), np.float32),
                         "step_cross_attention_grads.%d" % l: ((B, S, 2, T, Te), np.float32)})
        if mode == "generate":
            want["generation_start"] = ((B,), np.int32)
        assert {k_: (v.shape, v.dtype) for k_, v in t.items()} == want
        m = t["attention_mask"].astype(bool)
        src = json.loads(meta["attnmap.source_tokens"])
        assert [len(x) for x in src] == t["encoder_attention_mask"].sum(1).tolist()
        assert [len(x) for x in json.loads(meta["attnmap.tokens"])] == m.sum(1).tolist()
        assert json.loads(meta["attnmap.exporter"])["target"] == "0:"
        for b in range(B):
            n = int(m[b].sum())
            assert m[b, :n].all() and not m[b, n:].any()  # decoder rows: padding on the right
            out = t["score_ids"][b, :n]  # the output tokens, one a row
            assert (t["score_ids"][b, n:] == -1).all()
            np.testing.assert_array_equal(t["input_ids"][b, :n], [start, *out[:-1]])
            np.testing.assert_array_equal(t["score_rows"][b, :n], np.arange(n))
            if mode == "teacher":
                np.testing.assert_array_equal(out, tok(text_target=OUTPUTS[k])["input_ids"])
            else:
                assert t["generation_start"][b] == 1 and 1 <= n <= 4
                eos = np.flatnonzero(out == tok.eos_token_id)
                assert len(eos) == 0 or eos[0] == n - 1  # the generation ends at its first </s>
            k += 1


def test_cross_attention_rows_sum_to_one(s2s):
    for t, _ in s2s[3]:
        m = t["attention_mask"].astype(bool)
        e = t["encoder_attention_mask"].astype(bool)
        for l in range(2):
            C = t["cross_attentions.%d" % l].astype(np.float64)  # [B,H,T,Te]
            for b in range(C.shape[0]):
                rows = C[b][:, m[b]]
                np.testing.assert_allclose(rows[..., e[b]].sum(-1), 1.0, atol=1e-6)
                assert np.all(rows[..., ~e[b]] < 1e-12)


def reference(model_path, t, b, row):
    """A separate backward of the score of decoder row `row` of example b: the
    log-probability of output token `row`, w.r.t. the decoder's self- and cross-attentions
    and its input embeddings (grad x input summed over D)."""
    from transformers import AutoModelForSeq2SeqLM

    m = AutoModelForSeq2SeqLM.from_pretrained(model_path, attn_implementation="eager").eval()
    ten = {k: torch.from_numpy(t[k][b:b + 1].astype(np.int64)) for k in
           ("input_ids", "attention_mask", "encoder_input_ids", "encoder_attention_mask")}
    emb = m.get_decoder().embed_tokens(ten["input_ids"]).detach().requires_grad_(True)
    out = m(input_ids=ten["encoder_input_ids"], attention_mask=ten["encoder_attention_mask"],
            decoder_inputs_embeds=emb, decoder_attention_mask=ten["attention_mask"],
            output_attentions=True)
    atts = list(out.decoder_attentions) + list(out.cross_attentions)
    for a in atts:
        a.retain_grad()
    torch.log_softmax(out.logits[0, row], -1)[int(t["score_ids"][b, row])].backward()
    gx = (emb.grad[0] * emb[0]).sum(-1).detach().numpy() * ten["attention_mask"][0].numpy()
    return [a.grad[0].numpy() for a in atts], gx


def test_step_gradients_equal_single_score_backward(s2s):
    model, _, _, shards = s2s
    checked = 0
    for t, _ in shards:
        n = t["attention_mask"].sum(1)
        for b in range(len(n)):
            for s in sorted({0, int(n[b]) - 1}):
                ref, gx = reference(model, t, b, s)
                np.testing.assert_allclose(t["saliency.grad_x_input"][b, s], gx,
                                           atol=1e-5 * np.abs(gx).max())
                got = [t["step_attention_grads.%d" % l][b, s] for l in range(2)] + \
                      [t["step_cross_attention_grads.%d" % l][b, s] for l in range(2)]
                scale = max(np.abs(r).max() for r in ref)
                assert scale > 0
                for g, r in zip(got, ref):
                    np.testing.assert_allclose(g, r, atol=1e-5 * scale)
                checked += 1
        for role in ("attention_grads", "cross_attention_grads"):
            for l in range(2):
                total = t["step_%s.%d" % (role, l)].sum(1)
                np.testing.assert_allclose(t["%s.%d" % (role, l)], total,
                                           atol=1e-5 * np.abs(total).max())
    assert checked >= 5


def test_cli_inspect(s2s, cli, tmp_path):
    model, mode, out, _ = s2s
    data = write_data(str(tmp_path / "data.jsonl"))
    extra = ["--generate", "--max-new-tokens", "3"] if mode == "generate" else []
    export_hf.main(["--model", model, "--data", data, "--out", str(tmp_path / "o"), "-q",
                    "--progress", "off", "--limit", "2", *extra])  # [B,T] saliency, f16
    p = run_cli(cli, "inspect", str(tmp_path / "o"))
    assert "target: 0:" in p.stdout and "cross_attentions.1" in p.stdout


def test_teacher_forcing_needs_outputs(tmp_path):
    model = tiny_models.make_seq2seq(str(tmp_path / "m"), "t5")
    data = tiny_models.write_jsonl(str(tmp_path / "d.jsonl"), SOURCES[:2], labels=False)
    with pytest.raises(SystemExit, match="output text"):
        export_hf.main(["--model", model, "--data", data, "--out", str(tmp_path / "o"),
                        "-q", "--progress", "off"])


def test_live_runs_refuse_seq2seq(tmp_path):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    import attnmap.hf

    path = tiny_models.make_seq2seq(str(tmp_path / "m"), "bart")
    m = AutoModelForSeq2SeqLM.from_pretrained(path, attn_implementation="eager")
    with pytest.raises(SystemExit, match="generation mode only"):
        attnmap.hf.analyze_model(m, SOURCES[:2], str(tmp_path / "run"),
                                 processor=AutoTokenizer.from_pretrained(path))
