"""Capture of the long-context form (attnmap.hf_long, docs/long-context.md) from small random
GPT-2, BERT, ViT, Llama, Qwen2 and Mistral models: the captured Q, K, V and dO reproduce the
eager attention's probabilities softmax(scale Q K^T + mask) and their gradients dO V^T
(output_attentions + retain_grad), and `attnmap analyze` of a long-form export equals
analyze of the matrix-form export of the same batches."""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")
import attnmap.exporter as exporter  # noqa: E402
from attnmap import hf_long, hf_tasks  # noqa: E402
from conftest import run_cli  # noqa: E402
import tiny_models  # noqa: E402

FAMILIES = ("gpt2", "bert", "vit", "llama", "qwen2", "mistral")


def make(kind, folder):
    if kind == "gpt2":
        return tiny_models.make_gpt2(folder)
    if kind == "gpt2-scaled":  # 1/(l+1) per layer, no 1/sqrt(d): folded into the queries
        return tiny_models.make_gpt2(folder, scale_attn_by_inverse_layer_idx=True,
                                     scale_attn_weights=False)
    if kind == "bert":
        return tiny_models.make_bert(folder)
    if kind == "vit":
        return tiny_models.make_vit(folder)
    return tiny_models.make_decoder(folder, kind)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("long_models")
    return {k: make(k, str(root / k)) for k in FAMILIES + ("gpt2-scaled",)}


def reference_mask(att, mask, T):
    """[B,1,T,T] True where the long form lets query i see key j (docs/long-context.md)."""
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    ok = torch.ones(T, T, dtype=torch.bool)
    if att["causal"]:
        ok &= j <= i
    w = att["sliding_window"]
    if w:
        ok &= j > i - w
        if not att["causal"]:
            ok &= j < i + w
    return ok[None, None] & mask.bool()[:, None, None, :]


def inputs(kind, model):
    """A batch of the model's inputs: texts of different lengths (right padding, and left
    padding for the decoders, whose positions and masks count the padded positions)."""
    torch.manual_seed(1)
    if kind == "vit":
        return {"pixel_values": torch.randn(3, 3, 16, 16)}, None
    ids = torch.randint(2, 20, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 3:] = 0
    if kind in ("llama", "qwen2", "mistral"):
        mask[0, :2] = 0  # left padding of example 0
    return {"input_ids": ids, "attention_mask": mask}, mask


@pytest.mark.parametrize("kind", FAMILIES + ("gpt2-scaled",))
def test_captured_tensors_reproduce_the_eager_attention_and_its_gradients(kind, models):
    task = hf_tasks.detect_task(
        __import__("transformers").AutoConfig.from_pretrained(models[kind]), None)
    model = hf_tasks.load_model(models[kind], task, torch.device("cpu"))
    emb = hf_tasks.Capture(hf_tasks.embedding_module(model, task))
    cap = hf_long.LongCapture(model)
    try:
        batch, mask = inputs(kind, model)
        cap.start()
        out = model(**batch, output_attentions=True)
        cap.stop()
        for a in out.attentions:
            a.retain_grad()
        logits = out.logits if out.logits.dim() == 2 else out.logits[:, -1]
        logits.max(-1).values.sum().backward()
        got = cap.collect()
    finally:
        cap.remove()
        emb.remove()
    att = cap.attention
    L, H, Hkv, d = cap.L, cap.H, cap.Hkv, cap.d
    assert att["scale"] == pytest.approx(1.0 if kind == "gpt2-scaled" else d ** -0.5)
    assert att["causal"] == (kind not in ("bert", "vit"))
    assert att["sliding_window"] == (3 if kind == "mistral" else None)
    assert (H, Hkv) == ((4, 2) if kind in ("llama", "qwen2", "mistral") else (2, 2))
    B, T = out.attentions[0].shape[0], out.attentions[0].shape[-1]
    mask = torch.ones(B, T) if mask is None else mask
    ok = reference_mask(att, mask, T)
    rows = mask.bool()[:, None, :, None]  # valid query rows
    worst_a = worst_g = 0.0
    for l in range(L):
        q, k, v, do = (got[r][l] for r in hf_long.ROLES)
        assert q.shape == (B, H, T, d) and do.shape == (B, H, T, d)
        assert k.shape == (B, Hkv, T, d) and v.shape == (B, Hkv, T, d)  # not repeated
        k, v = (x.repeat_interleave(H // Hkv, dim=1) for x in (k, v))
        s = att["scale"] * q.double() @ k.double().transpose(-1, -2)
        a = torch.softmax(s.masked_fill(~ok, float("-inf")), -1)
        a_ref = out.attentions[l].double()
        g = do.double() @ v.double().transpose(-1, -2)
        g_ref = out.attentions[l].grad.double()
        sel = rows.expand(B, H, T, T)
        worst_a = max(worst_a, float((a - a_ref)[sel].abs().max()))
        # relative to the layer's largest gradient: F32 sums of d products, as the model's
        worst_g = max(worst_g, float((g - g_ref)[sel].abs().max() / g_ref[sel].abs().max()))
        assert float(g_ref[sel].abs().max()) > 1e-4  # a gradient that means something
    print("%s: max |A - A_eager| %.2g, max |G - G_eager| / max |G_eager| %.2g"
          % (kind, worst_a, worst_g))
    assert worst_a < 2e-6, (kind, worst_a)
    assert worst_g < 1e-5, (kind, worst_g)


def export(model, data, out, form, *extra):
    exporter.main(["--model", model, "--data", data, "--out", out, "--form", form,
                   "--dtype", "f32", "--batch-size", "3", "-q", *extra])


def close(a, b, rtol=1e-5, atol=1e-7):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    diff = np.where(both_nan, 0.0, np.abs(a - b))
    return float(np.max(diff - rtol * np.maximum(np.abs(a), np.abs(b)), initial=-1.0)) <= atol


@pytest.mark.parametrize("kind", FAMILIES)
def test_analyze_of_the_long_export_equals_the_matrix_export(kind, models, cli, tmp_path):
    from safetensors.numpy import load_file

    if kind == "vit":
        data = tiny_models.write_images(str(tmp_path / "img"), n=4)
    else:
        data = tiny_models.write_jsonl(str(tmp_path / "d.jsonl"), tiny_models.TEXTS[:5])
    runs = {}
    for form in ("matrix", "long"):
        export(models[kind], data, str(tmp_path / form), form)
        runs[form] = str(tmp_path / ("run-" + form))
        run_cli(cli, "analyze", str(tmp_path / form), "-o", runs[form],
                "-q")  # every method but flow (refused in the long form)
    with open(os.path.join(str(tmp_path / "long"), "shard-00000.safetensors"), "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    assert "queries.0" in header and "attentions" not in header
    assert json.loads(header["__metadata__"]["attnmap.attention"])["causal"] == \
        (kind not in ("bert", "vit"))
    m = load_file(os.path.join(runs["matrix"], "examples.safetensors"))
    lg = load_file(os.path.join(runs["long"], "examples.safetensors"))
    assert sorted(m) == sorted(lg)
    for name in ("rollout", "grad_rollout", "attention_last", "head.importance",
                 "head.entropy", "head.confidence", "head.to_first", "head.distance"):
        assert name in m, name
    # agreement.* are functions of these maps (ranks flip on ties within F32 rounding)
    worst = 0.0
    for name in (k for k in m if not k.startswith("agreement.")):
        assert m[name].shape == lg[name].shape, name
        assert close(m[name], lg[name]), (kind, name, np.max(np.abs(m[name] - lg[name])))
        a, b = m[name].astype(np.float64), lg[name].astype(np.float64)
        big = np.maximum(np.abs(a), np.abs(b)) > 1e-3
        if big.any():
            worst = max(worst, float(np.max(np.abs(a - b)[big] / np.abs(a)[big])))
    print("%s: largest relative difference long vs matrix (values > 1e-3): %.2g"
          % (kind, worst))


def test_long_export_resumes_and_refuses_a_matrix_resume(models, tmp_path):
    data = tiny_models.write_jsonl(str(tmp_path / "d.jsonl"), tiny_models.TEXTS[:4])
    out = str(tmp_path / "long")
    export(models["bert"], data, out, "long", "--examples-per-shard", "2")
    first = open(os.path.join(out, "shard-00000.safetensors"), "rb").read()
    os.remove(os.path.join(out, "shard-00001.safetensors"))
    export(models["bert"], data, out, "long", "--examples-per-shard", "2", "--resume")
    assert open(os.path.join(out, "shard-00000.safetensors"), "rb").read() == first
    assert os.path.exists(os.path.join(out, "shard-00001.safetensors"))
    with pytest.raises(SystemExit, match="other examples or options"):
        export(models["bert"], data, out, "matrix", "--examples-per-shard", "2", "--resume")
    with pytest.raises(SystemExit, match="already holds shards"):
        export(models["bert"], data, out, "long", "--examples-per-shard", "2")
    export(models["bert"], data, out, "long", "--examples-per-shard", "2", "--force")
