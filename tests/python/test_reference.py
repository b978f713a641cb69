"""test_reference.py - on the bundled real-model dataset (examples/data/minilm-sentiment),
attnmap's rollout and gradient-weighted rollout equal the published reference functions
(Abnar & Zuidema's compute_joint_attention, Chefer et al.'s relevance rule) re-run on the
same tensors by examples/check_reference.py, within 1e-5 relative: once from a run folder
of the CLI and once through the Python module."""
import json
import os

import check_reference
import pytest
from conftest import run_cli


@pytest.mark.parametrize("target", ["cls", "mean"])
def test_bundled_dataset_matches_reference_functions(repo, cli, tmp_path, capsys, target):
    data = os.path.join(repo, "examples", "data", "minilm-sentiment")
    run = str(tmp_path / "run")
    run_cli(cli, "analyze", data, "-o", run, "-q", "--target", target)
    assert check_reference.main([data, "--run", run, "--module", "--rtol", "1e-5",
                                 "--target", target]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "run: 254 examples, target " + target in out
    assert "module: 254 examples, target " + target in out
    assert out.count(": ok") == 2


def test_bundled_dataset_is_what_the_docs_say(repo, cli):
    data = os.path.join(repo, "examples", "data", "minilm-sentiment")
    p = run_cli(cli, "inspect", data)
    assert "254 examples in 8 shard(s), L=6 H=12" in p.stdout
    assert "model: sentence-transformers/all-MiniLM-L6-v2" in p.stdout
    size = sum(os.path.getsize(os.path.join(d, f))
               for d, _, fs in os.walk(os.path.join(repo, "examples", "data")) for f in fs)
    assert size <= 20 * 1024 * 1024
    with open(os.path.join(repo, "examples", "data", "sentences.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == 254 and {r["label"] for r in rows} == {"positive", "negative"}
