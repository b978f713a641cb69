"""test_run_writer.py - attnmap.RunWriter (a live run, docs/live-runs.md) against
`attnmap analyze` over the same batches written as shards with the safetensors library:
byte-identical examples.safetensors and equal summary.json (apart from provenance), for
numpy and torch inputs of differing B and T; a subprocess killed with SIGKILL in the middle
of a live run, then resumed, gives the same bytes; a bad batch is an error naming it that
leaves the batches before it resumable; several threads may share a writer; CUDA tensors
are refused by the cpu backend without being copied."""
import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from safetensors.numpy import save_file

import attnmap
from conftest import run_cli

HERE = os.path.dirname(os.path.abspath(__file__))


def make_batches(seed, n=6, L=2, H=2, max_b=5, max_t=11, tokens=True):
    """n random batches: softmax attentions over each example's valid keys (padding on
    either side), gradients, masks, ids, labels, saliency and token strings."""
    rng = np.random.default_rng(seed)
    out, first = [], 0
    for i in range(n):
        B, T = int(rng.integers(1, max_b + 1)), int(rng.integers(3, max_t + 1))
        lengths = rng.integers(1, T + 1, size=B)
        mask = np.zeros((B, T), np.int64)
        for b, n_ in enumerate(lengths):
            start = T - n_ if (i + b) % 3 == 2 else 0
            mask[b, start:start + n_] = 1
        logits = rng.normal(size=(L, B, H, T, T))
        valid = (mask[:, None, None, :] * mask[:, None, :, None]).astype(bool)[None]
        att = np.where(valid, np.exp(logits - logits.max(-1, keepdims=True)), 0.0)
        att = att / np.maximum(att.sum(-1, keepdims=True), 1e-30)
        att = att.astype(np.float32)
        grads = np.where(valid, rng.normal(scale=0.1, size=att.shape), 0).astype(np.float32)
        ids = np.where(mask == 1, rng.integers(1000, 1040, size=(B, T)), 0).astype(np.int64)
        special = np.zeros((B, T), np.int64)
        for b in range(B):
            pos = np.flatnonzero(mask[b])
            special[b, pos[0]] = special[b, pos[-1]] = 1
            ids[b, pos[0]], ids[b, pos[-1]] = 101, 102
            ids[b, pos] += 0 if i % 2 else 0
        labels = ((first + np.arange(B)) % 2).astype(np.int64)
        preds = np.where(rng.random(B) < 0.7, labels, 1 - labels).astype(np.int64)
        sal = np.where(mask == 1, rng.normal(size=(B, T)), 0).astype(np.float32)
        toks = [["\u00e9t%d" % t if t % 3 == 0 else "t%d" % t for t in ids[b]]
                for b in range(B)] if tokens else None
        out.append(dict(attentions=att, attention_grads=grads, attention_mask=mask,
                        special_tokens_mask=special, input_ids=ids, labels=labels,
                        predictions=preds, saliency=sal, tokens=toks))
        first += B
    return out


def write_shards(batches, folder, model="tiny", target=None):
    os.makedirs(folder, exist_ok=True)
    for i, b in enumerate(batches):
        tensors = {k: np.ascontiguousarray(b[k]) for k in (
            "attentions", "attention_grads", "attention_mask", "special_tokens_mask",
            "input_ids", "labels", "predictions")}
        tensors["saliency.ig"] = b["saliency"]
        meta = {"model": model}
        if b["tokens"] is not None:
            meta["attnmap.tokens"] = json.dumps(b["tokens"])
        if target is not None:
            meta["attnmap.exporter"] = json.dumps({"target": target})
        save_file(tensors, os.path.join(folder, "shard-%04d.safetensors" % i), metadata=meta)


def add(writer, b, torch_tensors=False):
    kw = dict(attention_mask=b["attention_mask"], special_tokens_mask=b["special_tokens_mask"],
              saliency={"ig": b["saliency"]}, ids=b["input_ids"], labels=b["labels"],
              predictions=b["predictions"], tokens=b["tokens"])
    att, grads = b["attentions"], b["attention_grads"]
    if torch_tensors:
        import torch
        att = tuple(torch.from_numpy(a) for a in att)  # the per-layer tuple of HF
        grads = tuple(torch.from_numpy(g) for g in grads)
        kw["attention_mask"] = torch.from_numpy(b["attention_mask"])
    writer.add(att, grads, **kw)


def same_runs(a, b):
    with open(os.path.join(a, "examples.safetensors"), "rb") as f:
        x = f.read()
    with open(os.path.join(b, "examples.safetensors"), "rb") as f:
        y = f.read()
    assert x == y, "examples.safetensors differs"
    sa, sb = (json.load(open(os.path.join(d, "summary.json"))) for d in (a, b))
    sa.pop("provenance")
    sb.pop("provenance")
    assert sa == sb, "summary.json differs"


def size_of(batches):
    return sum(len(b["labels"]) for b in batches), max(b["attentions"].shape[-1] for b in batches)


@pytest.mark.parametrize("torch_tensors,target", [(False, None), (True, "last")])
def test_live_run_equals_analyze_over_shards(tmp_path, cli, torch_tensors, target):
    if torch_tensors:
        pytest.importorskip("torch")
    batches = make_batches(7 + torch_tensors)
    write_shards(batches, str(tmp_path / "shards"), target=target)
    run_cli(cli, "analyze", str(tmp_path / "shards"), "-o", str(tmp_path / "ref"), "-q")
    N, T = size_of(batches)
    live = str(tmp_path / "live")
    with attnmap.RunWriter(live, N, T, model="tiny", recorded_target=target,
                           threads=2) as w:
        assert w.resume_from == 0
        for b in batches:
            add(w, b, torch_tensors)
    same_runs(str(tmp_path / "ref"), live)
    run = attnmap.read_run(live)
    assert run.summary["provenance"]["live"]["batches"] == len(batches)
    assert os.path.exists(os.path.join(live, "tokens.jsonl"))
    run_cli(cli, "report", live)  # the report reads a live run as it is


CHILD = r"""
import sys
sys.path[:0] = %(path)r
import os, signal, numpy as np
import attnmap
from test_run_writer import make_batches, add, size_of
batches = make_batches(%(seed)d)
N, T = size_of(batches)
w = attnmap.RunWriter(%(run)r, N, T, model="tiny", checkpoint=0)
for b in batches[:%(upto)d]:
    add(w, b)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("upto", [1, 4])
def test_killed_with_sigkill_then_resumed_gives_the_same_bytes(tmp_path, cli, upto):
    batches = make_batches(11)
    write_shards(batches, str(tmp_path / "shards"))
    run_cli(cli, "analyze", str(tmp_path / "shards"), "-o", str(tmp_path / "ref"), "-q")
    live = str(tmp_path / "live")
    code = CHILD % dict(path=sys.path[:], seed=11, run=live, upto=upto)
    p = subprocess.run([sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert not os.path.exists(live) and os.path.isdir(live + ".partial")
    N, T = size_of(batches)
    with attnmap.RunWriter(live, N, T, model="tiny", resume=True) as w:
        assert w.resume_from == sum(len(b["labels"]) for b in batches[:upto])
        done = 0
        for b in batches:
            if done >= w.resume_from:
                add(w, b)
            done += len(b["labels"])
    same_runs(str(tmp_path / "ref"), live)


def test_a_bad_batch_names_itself_and_stays_resumable(tmp_path, cli):
    batches = make_batches(5)
    write_shards(batches, str(tmp_path / "shards"))
    run_cli(cli, "analyze", str(tmp_path / "shards"), "-o", str(tmp_path / "ref"), "-q")
    N, T = size_of(batches)
    live = str(tmp_path / "live")
    bad = dict(batches[2])
    bad["attentions"] = bad["attentions"].copy()
    bad["attentions"][1, 0, 0, np.flatnonzero(bad["attention_mask"][0])[0]] = np.nan
    with pytest.raises(attnmap.AttnmapError) as e:
        with attnmap.RunWriter(live, N, T, model="tiny") as w:
            add(w, batches[0])
            add(w, batches[1])
            add(w, bad)
    assert e.value.status == "BAD_INPUT"
    msg = str(e.value)
    assert "batch 2" in msg and "attentions" in msg and "\n" not in msg, msg
    assert not os.path.exists(live) and os.path.isdir(live + ".partial")
    with attnmap.RunWriter(live, N, T, model="tiny", resume=True) as w:
        assert w.resume_from == sum(len(b["labels"]) for b in batches[:2])
        for b in batches[2:]:
            add(w, b)
    same_runs(str(tmp_path / "ref"), live)


def test_threads_share_a_writer(tmp_path, cli):
    """Four threads add batches at once: the lock keeps every batch whole, and the run is
    the one analyze gives for the batches in the order they went in (read back from the
    run's input ids, unique per batch)."""
    batches = make_batches(21, n=12, tokens=False)
    for i, b in enumerate(batches):  # ids that tell the batches apart
        b["input_ids"] = np.where(b["attention_mask"] == 1, 2000 + i, 0).astype(np.int64)
    N, T = size_of(batches)
    live = str(tmp_path / "live")
    errors = []
    with attnmap.RunWriter(live, N, T, model="tiny") as w:
        def work(k):
            try:
                for b in batches[k::4]:
                    add(w, b)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    run = attnmap.read_run(live)
    ids, mask = run["input_ids"], run["mask"]
    order = []
    for row in range(N):
        i = int(ids[row][mask[row] == 1][0]) - 2000
        if not order or order[-1] != i:
            order.append(i)
    assert sorted(order) == list(range(len(batches))), order
    write_shards([batches[i] for i in order], str(tmp_path / "shards"))
    run_cli(cli, "analyze", str(tmp_path / "shards"), "-o", str(tmp_path / "ref"), "-q")
    same_runs(str(tmp_path / "ref"), live)


def test_declared_size_and_device_memory(tmp_path):
    batches = make_batches(3, n=2)
    N, T = size_of(batches)
    live = str(tmp_path / "live")
    w = attnmap.RunWriter(live, N + 1, T)
    for b in batches:
        add(w, b)
    with pytest.raises(attnmap.AttnmapError) as e:
        w.close()
    assert "closed after %d of the %d" % (N, N + 1) in str(e.value)
    with pytest.raises(ValueError):
        w.add(batches[0]["attentions"])  # closed
    with pytest.raises(TypeError):
        attnmap.RunWriter(str(tmp_path / "x"), 1, 4, no_such_option=1)


class FakeDeviceArray:
    """Looks like a CUDA array (__cuda_array_interface__) without a GPU: never read."""

    def __init__(self, shape):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "<f4",
                                         "data": (0x10000, False), "version": 3,
                                         "strides": None}


def test_a_cpu_writer_refuses_device_memory_and_stays_usable(tmp_path, cli):
    """CUDA attentions (here an object that only looks like one) are refused by a cpu
    writer before the library sees them, without a copy; the writer goes on."""
    batches = make_batches(9, n=2)
    N, T = size_of(batches)
    live = str(tmp_path / "live")
    with attnmap.RunWriter(live, N, T, model="tiny") as w:
        with pytest.raises(ValueError) as e:
            w.add(FakeDeviceArray((2, 1, 2, 3, 3)))
        assert "CUDA memory" in str(e.value) and "does not copy" in str(e.value)
        for b in batches:
            add(w, b)
    write_shards(batches, str(tmp_path / "shards"))
    run_cli(cli, "analyze", str(tmp_path / "shards"), "-o", str(tmp_path / "ref"), "-q")
    same_runs(str(tmp_path / "ref"), live)
