"""test_errors.py - the Python readers never let a bare exception out (issue 21): every file
of the bad-input corpus (tests/bad/cases), and broken run folders, either read or fail
with one attnmap.AttnmapError that names the file."""
import json
import os

import pytest

import attnmap

CASES = os.path.join(os.path.dirname(__file__), "..", "bad", "cases")


def corpus_files():
    out = []
    for name in sorted(os.listdir(CASES)):
        path = os.path.join(CASES, name)
        out.append(path) if name.endswith(".safetensors") and os.path.isfile(path) else None
    return out


def test_corpus_reads_or_fails_clearly():
    read = attnmap.read_safetensors
    failed = set()
    for path in corpus_files():
        try:
            read(path)
        except attnmap.AttnmapError as e:
            failed.add(os.path.basename(path)[3:-len(".safetensors")])
            assert os.path.basename(path) in str(e), str(e)
            assert "\n" not in str(e)
            assert e.status in ("BAD_INPUT", "IO")
    # what both readers must refuse (the C reader refuses more: docs/reliability.md)
    must = {"empty", "short_length", "header_beyond_file", "header_not_json",
            "header_not_object", "shape_negative", "offsets_out_of_bounds", "unknown_dtype",
            "offsets_wrong_size", "truncated_data", "header_bad_utf8", "entry_without_dtype"}
    assert must <= failed, sorted(must - failed)


def test_broken_run_folders(tmp_path, cli, repo):
    data = os.path.join(repo, "examples", "data", "synthetic")
    run_dir = str(tmp_path / "run")
    p = __import__("subprocess").run([cli, "analyze", data, "-o", run_dir, "-q"])
    assert p.returncode == 0
    good = attnmap.read_run(run_dir)
    assert good.pairs
    with pytest.raises(attnmap.AttnmapError, match="nowhere"):
        attnmap.read_run(str(tmp_path / "nowhere"))
    summary = os.path.join(run_dir, "summary.json")
    kept = open(summary, "rb").read()
    with open(summary, "w") as f:
        f.write("{\"dataset\": ")
    with pytest.raises(attnmap.AttnmapError, match="summary.json|run") as e:
        attnmap.read_run(run_dir)
    assert e.value.status == "BAD_INPUT"
    with open(summary, "wb") as f:
        f.write(kept)
    examples = os.path.join(run_dir, "examples.safetensors")
    raw = open(examples, "rb").read()
    for cut in (4, 12, len(raw) // 2):
        with open(examples, "wb") as f:
            f.write(raw[:cut])
        with pytest.raises(attnmap.AttnmapError, match="examples.safetensors"):
            attnmap.read_run(run_dir)
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["data_offsets"][1] += 10**9
    text = json.dumps(header).encode()
    with open(examples, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + raw[8 + n:])
    with pytest.raises(attnmap.AttnmapError, match="out of bounds|examples.safetensors"):
        attnmap.read_safetensors(examples)


def test_exporter_force_keeps_files_it_did_not_write(tmp_path):
    """attnmap-export (examples/export_hf.py) --force replaces its own shards only: --out pointed at a model's folder
    never deletes model.safetensors (issue 21, data loss)."""
    export_hf = pytest.importorskip("attnmap.exporter")
    import argparse

    def shard(path, meta):
        text = json.dumps({"__metadata__": meta}).encode()
        path.write_bytes(len(text).to_bytes(8, "little") + text)

    out = tmp_path / "out"
    out.mkdir()
    shard(out / "shard-00000.safetensors", {"attnmap.exporter": "{}"})
    shard(out / "model.safetensors", {"format": "pt"})
    args = argparse.Namespace(out=str(out), force=True, resume=False)
    with pytest.raises(SystemExit, match="model.safetensors"):
        export_hf.prepare_out(args)
    assert (out / "model.safetensors").exists() and (out / "shard-00000.safetensors").exists()
    (out / "model.safetensors").unlink()
    export_hf.prepare_out(args)
    assert not (out / "shard-00000.safetensors").exists()
