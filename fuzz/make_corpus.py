#!/usr/bin/env python3
"""Writes the seed corpora of the libFuzzer harnesses into fuzz/corpus/<harness>/:

    python3 fuzz/make_corpus.py [--cli build/attnmap]

safetensors and npy: the I/O fixtures of tests/fixtures/io plus small valid datasets;
dataset: inputs in the harness's format (files joined by FUZZ_SEP, each led by a byte
that picks its name, see fuzz/fuzz_dataset.c), valid ones and the bad-input corpus of
tests/bad/cases; run and report: a run folder made by the CLI from a
small dataset (summary.json with its timings, date and paths made fixed, and
examples.safetensors); options: name/value pairs of every option the library lists.
Deterministic (fixed seeds; the run and option seeds need the CLI and the library
beside it)."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "bad"))
import stbuild  # noqa: E402

SEP = b"\xff\x00FILE"
NAMES = ["s0.safetensors", "s1.safetensors", "s2.safetensors", "attentions.npy",
         "attention_mask.npy", "attention_grads.npy", "attentions.0.npy",
         "attentions.1.npy", "saliency.ig.npy", "input_ids.npy",
         "special_tokens_mask.npy", "labels.npy", "inputs_embeds.npy",
         "inputs_embeds_grads.npy", "predictions.npy", "attention_grads.0.npy"]


def put(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def joined(files, flags=0):
    """files: [(name, bytes)] → one dataset-harness input; flags go in the first byte."""
    parts = []
    for i, (name, data) in enumerate(files):
        pick = NAMES.index(name) | (flags if i == 0 else 0)
        parts.append(bytes([pick]) + data)
    return SEP.join(parts)


def small_datasets():
    yield "full", stbuild.dataset(L=2, H=2, B=2, T=5, lengths=[5, 3], saliency=True,
                                  embeds=3, labels=True, special=True, tokens=True)
    yield "f16_left", stbuild.dataset(L=1, H=3, B=2, T=4, lengths=[4, 2], dtype=np.float16)
    yield "per_layer", stbuild.dataset(L=2, H=1, B=1, T=3, per_layer=True, grads=False)
    yield "nomask", stbuild.dataset(L=1, H=1, B=3, T=2, mask=False, grads=False)


def io_seeds():
    fixtures = os.path.join(ROOT, "tests", "fixtures", "io")
    for name in sorted(os.listdir(fixtures)):
        with open(os.path.join(fixtures, name), "rb") as f:
            data = f.read()
        put("safetensors" if name.endswith(".safetensors") else "npy", name, data)
    for tag, (t, meta) in small_datasets():
        if tag == "full":
            meta = dict(meta, **{"attnmap.grid": "2x2+1", "model": "tiny"})
        put("safetensors", "ds_%s.safetensors" % tag, stbuild.st_bytes(t, meta))
    put("npy", "f16_3d.npy", stbuild.npy_bytes(np.ones((2, 2, 2), dtype=np.float16)))
    put("npy", "u16_be.npy", stbuild.npy_bytes(np.arange(3, dtype=">u2")))


def dataset_seeds():
    for tag, (t, meta) in small_datasets():
        put("dataset", "one_%s" % tag,
            joined([("s0.safetensors", stbuild.st_bytes(t, meta))]))
        put("dataset", "analyze_%s" % tag,
            joined([("s0.safetensors", stbuild.st_bytes(t, meta))], flags=0x40))
    a, _ = stbuild.dataset(L=1, H=2, B=2, T=3, lengths=[3, 2], seed=2)
    b, _ = stbuild.dataset(L=1, H=2, B=1, T=4, lengths=[4], seed=3)
    put("dataset", "two_shards",
        joined([("s0.safetensors", stbuild.st_bytes(a)),
                ("s1.safetensors", stbuild.st_bytes(b))], flags=0x40))
    t, _ = stbuild.dataset(L=2, H=1, B=2, T=3, lengths=[3, 1], seed=4)
    put("dataset", "npy_dir",
        joined([("attentions.npy", stbuild.npy_bytes(t["attentions"])),
                ("attention_mask.npy", stbuild.npy_bytes(t["attention_mask"])),
                ("attention_grads.npy", stbuild.npy_bytes(t["attention_grads"]))]))
    t, _ = stbuild.dataset(L=2, H=1, B=1, T=2, per_layer=True, grads=False, seed=5)
    put("dataset", "npy_files",
        joined([("attentions.0.npy", stbuild.npy_bytes(t["attentions.0"])),
                ("attentions.1.npy", stbuild.npy_bytes(t["attentions.1"])),
                ("attention_mask.npy", stbuild.npy_bytes(t["attention_mask"]))],
               flags=0x80 | 0x40))


def bad_corpus_seeds():
    """The bad-input corpus (tests/bad/cases, made by tests/bad/make_bad.py) as dataset
    inputs: each rejected in its own way, so the error paths start covered."""
    cases = os.path.join(ROOT, "tests", "bad", "cases")
    for name in sorted(os.listdir(cases)):
        path = os.path.join(cases, name)
        if os.path.isdir(path):
            files = []
            for f in sorted(os.listdir(path)):
                if f in NAMES:
                    with open(os.path.join(path, f), "rb") as fh:
                        files.append((f, fh.read()))
        else:
            with open(path, "rb") as fh:
                files = [("s0.safetensors", fh.read())]
        if files and sum(len(d) for _, d in files) <= 16384:
            put("dataset", "bad_" + name.replace(".safetensors", ""), joined(files))


def fixed_summary(path, other=False):
    """summary.json without its times; other: as if made from another shard (attnmap merge
    refuses two runs of one input file)."""
    with open(path) as f:
        doc = json.load(f)
    prov = doc.get("provenance", {})
    prov["created"] = "2026-01-01T00:00:00Z"
    prov["timings"] = {k: 0.0 for k in prov.get("timings", {})}
    for i, inp in enumerate(prov.get("inputs", [])):
        inp["path"] = ("other%d.safetensors" if other else "ds%d.safetensors") % i
        if "realpath" in inp:
            inp["realpath"] = "/" + inp["path"]
        if other and "crc32c" in inp:
            inp["crc32c"] = "%08x" % (int(inp["crc32c"], 16) ^ 1)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def run_seeds(cli):
    work = tempfile.mkdtemp(prefix="attnmap-corpus-")
    try:
        for tag, (t, meta) in small_datasets():
            if tag == "per_layer":
                continue
            ds = os.path.join(work, tag + ".safetensors")
            with open(ds, "wb") as f:
                f.write(stbuild.st_bytes(t, meta))
            run = os.path.join(work, "run_" + tag)
            subprocess.run([cli, "analyze", ds, "-o", run, "--quiet", "--threads", "1"],
                           check=True)
            summary = fixed_summary(os.path.join(run, "summary.json"))
            summary2 = fixed_summary(os.path.join(run, "summary.json"), other=True)
            with open(os.path.join(run, "examples.safetensors"), "rb") as f:
                examples = f.read()
            put("run", "one_" + tag, SEP.join([b"\0" + summary, b"\0" + examples]))
            put("report", "one_" + tag, SEP.join([b"\0" + summary, b"\0" + examples]))
            if tag != "full":  # two runs of the full one would make a 230 KB seed
                put("run", "two_" + tag,
                    SEP.join([b"\0" + summary, b"\0" + examples, b"\0" + summary2]))
    finally:
        shutil.rmtree(work)


def option_seeds(cli):
    """Name/value pairs of every option the library lists (am_option_get, read through
    ctypes from the libattnmap.so beside the CLI): its default, its bounds, one past
    them, and each choice."""
    import ctypes
    lib = ctypes.CDLL(os.path.join(os.path.dirname(os.path.abspath(cli)), "libattnmap.so"))

    class Info(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("kind", ctypes.c_int), ("scope", ctypes.c_int),
                    ("min", ctypes.c_double), ("max", ctypes.c_double),
                    ("max_open", ctypes.c_int), ("choices", ctypes.c_char_p),
                    ("metavar", ctypes.c_char_p), ("help", ctypes.c_char_p),
                    ("fallback", ctypes.c_char_p)]
    lib.am_option_get.restype = ctypes.POINTER(Info)
    for i in range(lib.am_option_count()):
        o = lib.am_option_get(i).contents
        name = o.name
        values = [o.fallback or b"", b"%.17g" % o.min, b"%.17g" % o.max,
                  b"%.17g" % (o.max + 1), b"%.17g" % (o.min - 1)]
        if o.choices:
            values += o.choices.split(b",") + [o.choices]
        for k, v in enumerate(values):
            put("options", "%s_%d" % (name.decode(), k), SEP.join([name, v]))
    put("options", "pairs_and_methods",
        SEP.join([b"methods", b"rollout,grad_rollout,agreement,flow", b"pairs",
                  b"rollout~grad_rollout,flow~rollout", b"topk", b"2"]))
    put("options", "list_lookup", b"jaccard@k")


def faith_seeds():
    """PROBS.safetensors images for fuzz_faith's run (2 examples of 3 tokens, maps
    attention_last and rollout): a valid one, one with an empty example, and a few refused."""
    N, M, K, S = 2, 3, 2, 11
    rng = np.random.default_rng(17)
    meta = {"version": 1, "maps": ["attention_last", "rollout", "random"], "bins": [10, 50],
            "steps": list(range(0, 101, 10)), "mode": "delete", "seed": 0,
            "target": "predicted", "k_rounding": "ceil",
            "run": {"N": N, "examples_bytes": 0, "examples_crc32c": "00000000"},
            "model": "seed", "forwards": 0, "seconds": 0}

    def probs(tokens=(3, 3), meta_over=None, drop=None):
        t = {"faithfulness.p_full": rng.uniform(0, 1, N).astype(np.float32),
             "faithfulness.p_removed": rng.uniform(0, 1, (N, M, K)).astype(np.float32),
             "faithfulness.p_kept": rng.uniform(0, 1, (N, M, K)).astype(np.float32),
             "faithfulness.deletion": rng.uniform(0, 1, (N, M, S)).astype(np.float32),
             "faithfulness.insertion": rng.uniform(0, 1, (N, M, S)).astype(np.float32),
             "faithfulness.target": np.array([0, 1], np.int32),
             "faithfulness.tokens": np.array(tokens, np.int32)}
        if drop:
            del t[drop]
        m = dict(meta, **(meta_over or {}))
        return stbuild.st_bytes(t, metadata={"attnmap.faithfulness": json.dumps(m)})

    put("faith", "valid", probs())
    put("faith", "empty_example", probs(tokens=(0, 3)))
    put("faith", "unknown_map", probs(meta_over={"maps": ["flow", "rollout", "random"]}))
    put("faith", "bins_down", probs(meta_over={"bins": [50, 10]}))
    put("faith", "no_kept", probs(drop="faithfulness.p_kept"))
    put("faith", "too_many_tokens", probs(tokens=(4, 3)))


def faith_report_seed(cli):
    """fuzz_report: a faithfulness run (attnmap faithfulness over a run of the "full" small
    dataset, PROBS written here) so that mutations reach the report's faithfulness section."""
    work = tempfile.mkdtemp(prefix="attnmap-corpus-")
    try:
        t, meta = dict(small_datasets())["full"]
        ds, run, frun = (os.path.join(work, n) for n in ("ds.safetensors", "run", "frun"))
        with open(ds, "wb") as f:
            f.write(stbuild.st_bytes(t, meta))
        subprocess.run([cli, "analyze", ds, "-o", run, "--quiet", "--threads", "1"],
                       check=True)
        with open(os.path.join(run, "summary.json")) as f:
            doc = json.load(f)
        n = doc["dataset"]["examples"]
        maps = doc["provenance"]["options"]["maps"][:3] + ["random"]
        rec = doc["provenance"]["files"]["examples.safetensors"]
        rng = np.random.default_rng(23)
        m, k = len(maps), 3
        u = lambda *shape: rng.uniform(0, 1, shape).astype(np.float32)  # noqa: E731
        tensors = {"faithfulness.p_full": u(n), "faithfulness.p_removed": u(n, m, k),
                   "faithfulness.p_kept": u(n, m, k), "faithfulness.deletion": u(n, m, 11),
                   "faithfulness.insertion": u(n, m, 11),
                   "faithfulness.target": (np.arange(n) % 2).astype(np.int32),
                   "faithfulness.tokens": np.ones(n, np.int32)}
        pmeta = {"version": 1, "maps": maps, "bins": [5, 20, 50],
                 "steps": list(range(0, 101, 10)), "mode": "mask", "seed": 0,
                 "target": "label", "k_rounding": "ceil", "model": "seed",
                 "run": {"N": n, "examples_bytes": rec["bytes"],
                         "examples_crc32c": rec["crc32c"]}}
        probs = os.path.join(work, "probs.safetensors")
        with open(probs, "wb") as f:
            f.write(stbuild.st_bytes(tensors, {"attnmap.faithfulness": json.dumps(pmeta)}))
        subprocess.run([cli, "faithfulness", run, probs, "-o", frun, "--quiet"], check=True)
        with open(os.path.join(frun, "summary.json")) as f:
            fdoc = json.load(f)
        fdoc["faithfulness"]["provenance"] = []  # paths of this temporary folder
        path = os.path.join(work, "fixed.json")
        with open(path, "w") as f:
            json.dump(fdoc, f)
        summary = fixed_summary(path)
        with open(os.path.join(frun, "examples.safetensors"), "rb") as f:
            examples = f.read()
        put("report", "faith_full", SEP.join([b"\0" + summary, b"\0" + examples]))
    finally:
        shutil.rmtree(work)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "attnmap"))
    args = ap.parse_args()
    for h in ("safetensors", "npy", "dataset", "run", "report", "options", "faith"):
        shutil.rmtree(os.path.join(HERE, "corpus", h), ignore_errors=True)
    io_seeds()
    dataset_seeds()
    bad_corpus_seeds()
    run_seeds(args.cli)
    option_seeds(args.cli)
    faith_seeds()
    faith_report_seed(args.cli)


if __name__ == "__main__":
    main()
