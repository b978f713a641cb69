"""test_first_hour.py - what a new user meets first (issue 22): messages for models without
attention weights, the exporter as a package command, labels of causal LMs, the recorded
target, progress lines, shards sized by memory and resumed exports."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import attnmap
from conftest import run_cli

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# What output_attentions gives when the attention implementation (SDPA, flash) computes no
# weights: transformers >= 4.48 returns a tuple of None per layer (4.46, pinned here, still
# falls back to eager), other wrappers an empty tuple; np.asarray of it an object array.
@pytest.mark.parametrize("atts, why", [
    ((), "attentions is an empty tuple"),
    ((None, None), "attentions[0] is None (2 of 2 layers)"),
    (np.array([None, None], dtype=object), "attentions is an array of Python objects"),
])
def test_sdpa_outputs_say_there_are_no_attention_weights(atts, why):
    with pytest.raises(ValueError) as e:
        attnmap.analyze(atts)
    msg = str(e.value)
    assert why in msg and "returned no attention weights" in msg
    assert 'attn_implementation="eager"' in msg and "output_attentions=True" in msg
    assert 'form="long"' in msg and "--form long" in msg  # the way without weights


# ---- the exporter ----------------------------------------------------------------------
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")
import attnmap.exporter as exporter  # noqa: E402
import attnmap.hf_data  # noqa: E402
import tiny_models  # noqa: E402
from test_exporter import export  # noqa: E402  exports and reads the shards back


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpt2")
    return tiny_models.make_gpt2(str(d / "model")), \
        tiny_models.write_jsonl(str(d / "data.jsonl"), labels=True)


def test_entry_point_and_package_helpers(repo):
    text = open(os.path.join(repo, "python", "pyproject.toml")).read()
    assert 'attnmap-export = "attnmap.exporter:main"' in text
    from attnmap import hf_tasks  # the capture helpers, importable from the package
    assert hasattr(hf_tasks, "Capture") and hasattr(hf_tasks, "run_batch")
    if os.environ.get("ATTNMAP_PYTHON_INSTALLED"):  # scripts/test.sh: pip install ./python
        cmd = os.path.join(os.path.dirname(sys.executable), "attnmap-export")
        p = subprocess.run([cmd, "--help"], capture_output=True, text=True)
        assert p.returncode == 0 and "--shard-memory" in p.stdout
    # the examples/ wrapper still works
    p = subprocess.run([sys.executable, os.path.join(repo, "examples", "export_hf.py"),
                        "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--resume" in p.stdout, p.stderr


def test_hf_data_without_datasets_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    args = exporter.parse_args(["--model", "m", "--data", "hf:imdb:test", "--out",
                                str(tmp_path)])
    with pytest.raises(SystemExit) as e:
        attnmap.hf_data.load_records(args.data)
    assert "pip install datasets" in str(e.value) and "hf:imdb:test" in str(e.value)


def test_causal_lm_has_no_class_labels_and_the_recorded_target_is_used(gpt2, tmp_path, cli):
    model, data = gpt2
    out = str(tmp_path / "shards")
    t, meta = export(model, data, out, "--dtype", "f32")[0]
    assert "labels" not in t and "predictions" in t  # next-token ids only
    assert list(t["data_labels"]) == [i % 2 for i in range(len(t["data_labels"]))]
    extra = json.loads(meta["attnmap.exporter"])
    assert extra["target"] == "last" and "label_names" not in extra
    run = str(tmp_path / "run")
    p = run_cli(cli, "analyze", out, "-o", run)
    assert "target last as the exporter recorded it" in p.stderr
    summary = attnmap.read_run(run).summary
    assert summary["provenance"]["options"]["target"] == "last"
    assert summary["provenance"]["options"]["target_source"] == "exporter"
    assert summary.get("misclassified", {}).get("count", 0) == 0


def test_exporter_progress_lines_in_a_pipe(gpt2, tmp_path, repo):
    model, data = gpt2
    env = dict(os.environ, ATTNMAP_PROGRESS_INTERVAL="0")
    base = [sys.executable, os.path.join(repo, "examples", "export_hf.py"), "--model", model,
            "--data", data,
            "--batch-size", "3"]
    p = subprocess.run(base + ["--out", str(tmp_path / "a"), "--progress", "always"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    lines = [x for x in p.stderr.splitlines() if "examples/s" in x]
    assert len(lines) == 3 and "9/9 examples" in lines[-1] and "ETA done" in lines[-1]
    assert "\r" not in p.stderr
    for extra in (["--progress", "never"], ["--progress", "always", "--quiet"]):
        p = subprocess.run(base + ["--out", str(tmp_path / extra[-1].strip("-")), *extra],
                           capture_output=True, text=True, env=env)
        assert p.returncode == 0 and "examples/s" not in p.stderr, p.stderr
    assert p.stderr == ""  # --quiet: nothing at all


def test_shards_sized_by_memory_and_stored_in_the_dtype(gpt2, tmp_path):
    model, data = gpt2
    # 2 layers x 2 heads x T=16, f16: 2*2*2*16*16*2 B = 4 KiB of attentions and gradients
    # per example, + inputs_embeds and gradients 2*16*16*2 B = 1 KiB: 5120 B. A budget of
    # 1 MiB holds 204 examples (all 9 in one shard); --examples-per-shard 4 gives 3 shards.
    args = exporter.parse_args(["--model", model, "--data", data, "--out", "x",
                                "--max-length", "16", "--shard-memory", "1"])
    from transformers import AutoConfig
    cfg = AutoConfig.from_pretrained(model)
    assert attnmap.export_shards.example_bytes(cfg, 16, args) == 5120
    assert attnmap.export_shards.examples_per_shard(cfg, 16, args) == 204
    args.examples_per_shard = 500  # above the budget: lowered to it
    assert attnmap.export_shards.examples_per_shard(cfg, 16, args) == 204
    shards = export(model, data, str(tmp_path / "s"), "--examples-per-shard", "4")
    assert [t["attentions"].shape[1] for t, _ in shards] == [4, 4, 1]
    assert all(t["attentions"].dtype == np.float16 for t, _ in shards)


def test_resume_keeps_finished_shards_and_writes_the_rest(gpt2, tmp_path):
    model, data = gpt2
    out = str(tmp_path / "s")
    ref = export(model, data, str(tmp_path / "ref"), "--examples-per-shard", "4")
    export(model, data, out, "--examples-per-shard", "4")
    names = sorted(os.listdir(out))
    assert names == ["shard-00000.safetensors", "shard-00001.safetensors",
                     "shard-00002.safetensors"]
    # an interruption: the last shard missing, a half-written temporary left behind
    os.remove(os.path.join(out, names[2]))
    open(os.path.join(out, names[2] + ".tmp-12345"), "wb").write(b"partial")
    kept = os.stat(os.path.join(out, names[0])).st_mtime_ns
    with pytest.raises(SystemExit, match="--resume"):
        export(model, data, out, "--examples-per-shard", "4")
    export(model, data, out, "--examples-per-shard", "4", "--resume")
    assert sorted(os.listdir(out)) == names  # the temporary is gone
    assert os.stat(os.path.join(out, names[0])).st_mtime_ns == kept  # not rewritten
    again = attnmap.read_dataset(out)
    for (a, _), (b, _) in zip(ref, again):
        np.testing.assert_array_equal(a["attentions"], b["attentions"])
    # a shard of other options is refused, not overwritten
    with pytest.raises(SystemExit, match="other examples or options"):
        export(model, data, out, "--examples-per-shard", "4", "--resume", "--dtype", "f32")
