"""test_exporter.py - examples/export_hf.py on randomly initialised small models (no
download): the shards load in attnmap, attention rows sum to 1, and the stored gradients
(attention and inputs_embeds) equal central finite differences of the target logit,
computed in float64 by perturbing the model's own attention probabilities and embeddings.
Also GPT-2 with --target last, ViT with a patch grid, integrated gradients (Captum), the
embedding-probe task with --fit-probe, and --embeds saliency."""
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


def export(model, data, out, *extra):
    export_hf.main(["--model", model, "--data", data, "--out", out, "--progress", "off",
                    *extra])
    return attnmap.read_dataset(out)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    d = tmp_path_factory.mktemp("bert")
    model = tiny_models.make_bert(str(d / "model"))
    data = tiny_models.write_jsonl(str(d / "data.jsonl"))
    out = str(d / "shards")
    shards = export(model, data, out, "--dtype", "f32", "--examples-per-shard", "4",
                    "--batch-size", "3")
    return model, out, shards


def check_rows(t, tol):
    A = t["attentions"].astype(np.float64)  # [L,B,H,T,T]
    m = t["attention_mask"].astype(bool)
    for b in range(A.shape[1]):
        v = m[b]
        sums = A[:, b][..., v, :][..., v].sum(-1)
        np.testing.assert_allclose(sums, 1.0, atol=tol)
        assert np.all(A[:, b][..., v, :][..., ~v] == 0)  # padded keys get no attention


def test_bert_shards_load_and_rows_sum_to_one(bert, cli):
    model, out, shards = bert
    p = run_cli(cli, "inspect", out)
    assert "9 examples in 3 shard(s), L=2 H=2" in p.stdout
    for want in ("attentions", "attention_grads", "special_tokens_mask", "input_ids",
                 "inputs_embeds", "labels", "predictions", "attnmap.tokens"):
        assert want in p.stdout
    for t, meta in shards:
        check_rows(t, 1e-6)
        toks = json.loads(meta["attnmap.tokens"])
        assert [len(x) for x in toks] == t["attention_mask"].sum(1).tolist()
        assert all(x[0] == "[CLS]" and x[-1] == "[SEP]" for x in toks)
        sp = t["special_tokens_mask"]
        assert sp[:, 0].all() and (sp.sum(1) == 2).all()
        np.testing.assert_array_equal(t["predictions"], t["target_class"])
    run_cli(cli, "analyze", out, "-o", os.path.join(os.path.dirname(out), "run"), "-q")


def double_model(path):
    from transformers import AutoModelForSequenceClassification

    m = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="eager")
    return m.double().eval()


class Perturb(torch.nn.Module):
    """Stands in for an eval-mode attention dropout (the identity) and adds eps at one
    entry of the attention probabilities that the next matmul reads."""

    def __init__(self, index, eps):
        super().__init__()
        self.index, self.eps = index, eps

    def forward(self, x):
        x = x.clone()
        x[self.index] += self.eps
        return x


def score(model, t, e, embeds_delta=None):
    ids = torch.from_numpy(t["input_ids"].astype(np.int64))
    mask = torch.from_numpy(t["attention_mask"].astype(np.int64))
    handle = None
    if embeds_delta is not None:
        (p, d), eps = embeds_delta

        def hook(mod, inp, out):
            out = out.clone()
            out[e, p, d] += eps
            return out

        handle = model.get_input_embeddings().register_forward_hook(hook)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    if handle:
        handle.remove()
    return float(logits[e, int(t["target_class"][e])])


def test_attention_gradients_equal_finite_differences(bert):
    model_path, _, shards = bert
    model = double_model(model_path)
    rng = np.random.default_rng(3)
    eps = 1e-6
    checked = nonzero = 0
    for t, _ in shards:
        G = t["attention_grads"]
        for e in range(G.shape[1]):
            valid = np.flatnonzero(t["attention_mask"][e])
            # the last layer's CLS row (what the classifier reads) and a random entry below
            for l, i in ((G.shape[0] - 1, valid[0]), (0, rng.choice(valid))):
                h, j = rng.integers(G.shape[2]), rng.choice(valid)
                sa = model.base_model.encoder.layer[l].attention.self
                old = sa.dropout
                vals = []
                for sign in (1, -1):
                    sa.dropout = Perturb((e, h, i, j), sign * eps)
                    vals.append(score(model, t, e))
                sa.dropout = old
                fd = (vals[0] - vals[1]) / (2 * eps)
                g = float(G[l, e, h, i, j])
                scale = np.abs(G[:, e]).max()
                assert abs(fd - g) <= 1e-4 * scale + 1e-3 * abs(fd), (l, e, h, i, j, fd, g)
                checked += 1
                nonzero += abs(g) > 1e-6
    assert checked == 18 and nonzero >= 12


def test_embedding_gradients_equal_finite_differences(bert):
    model_path, _, shards = bert
    model = double_model(model_path)
    t = shards[1][0]
    E, GE = t["inputs_embeds"], t["inputs_embeds_grads"]
    ids = torch.from_numpy(t["input_ids"].astype(np.int64))
    words = model.get_input_embeddings()(ids).detach().numpy()
    m = t["attention_mask"].astype(bool)
    np.testing.assert_allclose(E[m], words[m], rtol=1e-6, atol=1e-7)
    eps = 1e-6
    for e, p, d in [(0, 0, 3), (1, 2, 0), (2, 1, 7), (3, 3, 15)]:
        fd = (score(model, t, e, ((p, d), eps)) - score(model, t, e, ((p, d), -eps))) / (2 * eps)
        g = float(GE[e, p, d])
        assert abs(fd - g) <= 1e-4 * np.abs(GE[e]).max() + 1e-3 * abs(fd), (e, p, d, fd, g)


def test_gpt2_target_last(tmp_path, cli):
    model = tiny_models.make_gpt2(str(tmp_path / "gpt2"))
    data = tiny_models.write_jsonl(str(tmp_path / "d.jsonl"), labels=False)
    out = str(tmp_path / "shards")
    shards = export(model, data, out, "--target", "last", "--dtype", "bf16")
    t, meta = shards[0]
    assert json.loads(meta["attnmap.exporter"])["target"] == "last"
    check_rows(t, 1.6e-2)  # stored in bfloat16
    A = t["attentions"]
    assert np.all(np.triu(A[..., :, :], 1) == 0)  # causal
    run_cli(cli, "analyze", out, "-o", str(tmp_path / "run"), "--target", "last", "-q")
    run = attnmap.read_run(str(tmp_path / "run"))
    assert "labels" not in run.examples and run.examples["grad_rollout"].any()


def test_vit_grid(tmp_path, cli):
    model = tiny_models.make_vit(str(tmp_path / "vit"))
    data = tiny_models.write_images(str(tmp_path / "img"))
    out = str(tmp_path / "shards")
    shards = export(model, data, out, "--dtype", "f16")
    t, meta = shards[0]
    assert meta["attnmap.grid"] == "4x4+1" and t["attentions"].shape[-1] == 17
    assert t["special_tokens_mask"][:, 0].all() and t["special_tokens_mask"][:, 1:].sum() == 0
    assert t["inputs_embeds"].shape == (5, 17, 16)
    # images: the processor's input de-normalised; at the model's own 16 x 16 size the
    # processor's resize keeps the pixels, so the bytes come back exactly
    assert t["images"].dtype == np.uint8 and t["images"].shape == (5, 16, 16, 3)
    folder = os.path.dirname(data)
    for i in range(5):
        np.testing.assert_array_equal(t["images"][i], np.load(os.path.join(folder, "img%d.npy" % i)))
    check_rows(t, 2e-3)
    p = run_cli(cli, "inspect", out)
    assert "grid: 4x4+1" in p.stdout
    # --embeds saliency on an image model (it used to stop: ViT batches have no mask): the
    # maps of the embeddings' gradients, every token real
    full = export(model, data, str(tmp_path / "f32"), "--dtype", "f32")[0][0]
    sal = export(model, data, str(tmp_path / "sal"), "--dtype", "f32", "--embeds",
                 "saliency")[0][0]
    assert "inputs_embeds" not in sal and sal["saliency.grad_l2"].shape == (5, 17)
    g, x = full["inputs_embeds_grads"].astype(np.float64), full["inputs_embeds"]
    np.testing.assert_allclose(sal["saliency.grad_l2"], np.linalg.norm(g, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(sal["saliency.grad_x_input"], (g * x).sum(-1), rtol=1e-4,
                               atol=1e-7)


def test_integrated_gradients_completeness(bert, tmp_path):
    pytest.importorskip("captum")
    model_path = bert[0]
    data = tiny_models.write_jsonl(str(tmp_path / "d.jsonl"))
    shards = export(model_path, data, str(tmp_path / "ig"), "--dtype", "f32",
                    "--ig-steps", "64", "--embeds", "none")
    model = double_model(model_path)
    for t, _ in shards:
        assert "inputs_embeds" not in t
        ids = torch.from_numpy(t["input_ids"].astype(np.int64))
        mask = torch.from_numpy(t["attention_mask"].astype(np.int64))
        keep = torch.from_numpy(t["special_tokens_mask"].astype(bool)) & mask.bool()
        base = torch.where(keep, ids, torch.zeros_like(ids))
        with torch.no_grad():
            fx = model(input_ids=ids, attention_mask=mask).logits
            fb = model(input_ids=base, attention_mask=mask).logits
        cls = torch.from_numpy(t["target_class"].astype(np.int64))[:, None]
        diff = (fx.gather(1, cls) - fb.gather(1, cls)).squeeze(1).numpy()
        total = t["saliency.ig"].sum(1)
        np.testing.assert_allclose(total, diff, rtol=2e-2, atol=1e-3)
        assert np.all(t["saliency.ig"][t["attention_mask"] == 0] == 0)


def test_embedding_probe_and_saliency_maps(bert, tmp_path, cli):
    """The bundled dataset's recipe on the tiny BERT body: a probe fitted on the 'train'
    rows, saliency maps instead of embeddings, sorted by length."""
    from transformers import AutoModel

    model_path = bert[0]
    data = str(tmp_path / "d.jsonl")
    with open(data, "w") as f:
        for i, text in enumerate(tiny_models.TEXTS):
            f.write(json.dumps({"id": "s%d" % i, "text": text, "label": ["neg", "pos"][i % 2],
                                "split": "test" if i % 3 == 2 else "train"}) + "\n")
    probe = str(tmp_path / "probe.safetensors")
    shards = export(model_path, data, str(tmp_path / "p"), "--task", "embedding-probe",
                    "--fit-probe", probe, "--embeds", "saliency", "--sort-by-length",
                    "--examples-per-shard", "5", "--dtype", "f32")
    from safetensors.numpy import load_file

    W = load_file(probe)
    assert W["W"].shape == (2, 16) and W["b"].shape == (2,)
    lengths = np.concatenate([t["attention_mask"].sum(1) for t, _ in shards])
    assert np.all(np.diff(lengths) >= 0)
    ids = sum((json.loads(m["attnmap.ids"]) for _, m in shards), [])
    assert sorted(ids) == sorted("s%d" % i for i in range(len(tiny_models.TEXTS)))
    body = AutoModel.from_pretrained(model_path, attn_implementation="eager").eval()
    t, meta = shards[0]
    assert json.loads(meta["attnmap.exporter"])["probe"]["train_examples"] == 6
    with torch.no_grad():
        ids_t = torch.from_numpy(t["input_ids"].astype(np.int64))
        mask_t = torch.from_numpy(t["attention_mask"].astype(np.int64))
        z = torch.nn.functional.normalize(
            (body(input_ids=ids_t, attention_mask=mask_t).last_hidden_state *
             mask_t[..., None]).sum(1) / mask_t.sum(1, keepdim=True), dim=1)
        logits = z.numpy() @ W["W"].T + W["b"]
    np.testing.assert_array_equal(t["predictions"], logits.argmax(1))
    np.testing.assert_allclose(t["target_score"], logits.max(1), rtol=1e-5, atol=1e-6)
    for name in ("saliency.grad_l2", "saliency.grad_x_input", "saliency.abs_grad_x_input"):
        assert t[name].shape == t["attention_mask"].shape
    run_cli(cli, "analyze", str(tmp_path / "p"), "-o", str(tmp_path / "run"), "-q")
