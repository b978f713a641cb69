"""run.py - reads attnmap run folders (RUN/examples.safetensors + RUN/summary.json) and
single .safetensors files into numpy arrays.

The `safetensors` package reads the files when it is installed; otherwise a small reader
here does (the format is an 8-byte header length, a JSON header and raw little-endian
data). BF16 tensors, which numpy cannot hold, come back widened to float32.
"""
import json
import os
import struct

import numpy as np

_NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
       "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}


def _read_header(f, path):
    raw = f.read(8)
    if len(raw) != 8:
        raise ValueError("%s: not a safetensors file (shorter than 8 bytes)" % path)
    (n,) = struct.unpack("<Q", raw)
    if n > 100_000_000:
        raise ValueError("%s: header length %d is too large" % (path, n))
    header = json.loads(f.read(n).decode("utf-8"))
    return header, 8 + n


def _read_own(path):
    with open(path, "rb") as f:
        header, base = _read_header(f, path)
        data = f.read()
    meta = header.pop("__metadata__", None) or {}
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif info["dtype"] in _NP:
            arr = np.frombuffer(raw, _NP[info["dtype"]]).copy()
        else:
            raise ValueError("%s: tensor %s: dtype %s is not supported" % (path, name,
                                                                           info["dtype"]))
        out[name] = arr.reshape(info["shape"])
    return out, meta


def read_safetensors(path):
    """(tensors, metadata) of one .safetensors file: {name: numpy array}, {key: str}."""
    try:
        from safetensors.numpy import load_file
    except ImportError:
        return _read_own(path)
    with open(path, "rb") as f:
        header, _ = _read_header(f, path)
    meta = header.get("__metadata__") or {}
    if any(v.get("dtype") == "BF16" for k, v in header.items() if k != "__metadata__"):
        return _read_own(path)
    return load_file(path), meta


class Run:
    """A run folder: .examples {name: array} as in docs/run-folder.md, .metadata (the
    __metadata__ strings), .pairs (agreement column names), .summary (summary.json)."""

    def __init__(self, path):
        self.path = path
        self.examples, self.metadata = read_safetensors(os.path.join(path, "examples.safetensors"))
        self.pairs = json.loads(self.metadata.get("attnmap.pairs", "[]"))
        with open(os.path.join(path, "summary.json"), encoding="utf-8") as f:
            self.summary = json.load(f)

    @property
    def maps(self):
        """{name: [N,T]} of the importance maps (attention_last, rollout, saliency.*, ...)."""
        skip = ("mask", "lengths", "labels", "predictions", "input_ids", "special_tokens_mask")
        return {k: v for k, v in self.examples.items()
                if k not in skip and v.ndim == 2 and not k.startswith(("head.", "agreement."))}

    def agreement(self, metric, pair):
        """[N] values of one metric for one pair ("rollout~saliency.grad_x_input")."""
        return self.examples["agreement." + metric][:, self.pairs.index(pair)]

    def __getitem__(self, name):
        return self.examples[name]

    def __repr__(self):
        return "attnmap.Run(%r, %d examples, tensors=%s)" % (
            self.path, len(self.examples.get("lengths", [])), sorted(self.examples))


def read_run(path):
    """Reads RUN/ into a Run (numpy arrays and the parsed summary.json)."""
    return Run(path)


def read_dataset(path):
    """Reads a dataset (one .safetensors file or a directory of shards, docs/design.md §2) as a
    list of (tensors, metadata) per shard, in name order. For inspection and tests: a dataset
    too large for memory should be analysed with the CLI."""
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
        return [read_safetensors(os.path.join(path, f)) for f in files]
    return [read_safetensors(path)]
