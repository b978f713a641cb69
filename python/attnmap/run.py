"""run.py - reads attnmap run folders (RUN/examples.safetensors + RUN/summary.json) and
single .safetensors files into numpy arrays.

The `safetensors` package reads the files when it is installed; otherwise a small reader
here does (the format is an 8-byte header length, a JSON header and raw little-endian
data). BF16 tensors, which numpy cannot hold, come back widened to float32.
"""
import functools
import json
import os
import struct

import numpy as np

from ._lib import AttnmapError

_NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
       "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}


def _bad(path, what):
    return AttnmapError("BAD_INPUT", "attnmap: %s: %s" % (path, what))


def _clear_errors(fn):
    """Every failure of a reader as one AttnmapError naming the file and the problem, never
    a bare KeyError, json or struct error from deep inside (issue 21)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        path = next((a for a in args if isinstance(a, (str, bytes, os.PathLike))), "?")
        try:
            return fn(*args, **kwargs)
        except AttnmapError:
            raise
        except OSError as e:
            raise AttnmapError("IO", "attnmap: %s: %s" % (
                e.filename or path, e.strerror or e)) from e
        except MemoryError as e:
            raise AttnmapError("OUT_OF_MEMORY", "attnmap: %s: out of memory"
                               % path) from e
        except Exception as e:  # a malformed file: json, unicode, struct, numpy, keys
            raise _bad(path, "%s: %s" % (type(e).__name__, e)) from e
    return wrapper


def _read_header(f, path):
    raw = f.read(8)
    if len(raw) != 8:
        raise _bad(path, "not a safetensors file (shorter than 8 bytes)")
    (n,) = struct.unpack("<Q", raw)
    size = os.fstat(f.fileno()).st_size
    if n > 100_000_000 or n > size - 8:
        raise _bad(path, "header length %d exceeds the file or the limit" % n)
    header = json.loads(f.read(n).decode("utf-8"))
    if not isinstance(header, dict):
        raise _bad(path, "the header is not a JSON object")
    return header, 8 + n


def _check_entry(path, name, info, nbytes):
    """Offsets inside the data and a size that matches the shape, before numpy sees them."""
    if not isinstance(info, dict) or not isinstance(info.get("dtype"), str):
        raise _bad(path, "tensor %s: not an entry with a dtype" % name)
    shape, off = info.get("shape"), info.get("data_offsets")
    if (not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape)
            or not isinstance(off, list) or len(off) != 2
            or not all(type(o) is int for o in off) or not 0 <= off[0] <= off[1] <= nbytes):
        raise _bad(path, "tensor %s: shape or data_offsets malformed or out of bounds" % name)
    width = 2 if info["dtype"] == "BF16" else np.dtype(_NP.get(info["dtype"], "u1")).itemsize
    if int(np.prod(shape, dtype=object)) * width != off[1] - off[0]:
        raise _bad(path, "tensor %s: %d bytes do not hold shape %s of %s"
                   % (name, off[1] - off[0], shape, info["dtype"]))


def _read_own(path):
    with open(path, "rb") as f:
        header, base = _read_header(f, path)
        data = f.read()
    meta = header.pop("__metadata__", None) or {}
    out = {}
    for name, info in header.items():
        _check_entry(path, name, info, len(data))
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif info["dtype"] in _NP:
            arr = np.frombuffer(raw, _NP[info["dtype"]]).copy()
        else:
            raise _bad(path, "tensor %s: dtype %s is not supported" % (name, info["dtype"]))
        out[name] = arr.reshape(info["shape"])
    return out, meta


@_clear_errors
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

    @_clear_errors
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
        values = self.examples.get("agreement." + str(metric))
        if values is None or pair not in self.pairs:
            raise AttnmapError("INVALID_ARGUMENT", "attnmap: %s: no agreement %s "
                               "for pair %s (metrics: %s; pairs: %s)" % (
                                   self.path, metric, pair,
                                   ", ".join(k[10:] for k in self.examples
                                             if k.startswith("agreement.")),
                                   ", ".join(self.pairs)))
        return values[:, self.pairs.index(pair)]

    def __getitem__(self, name):
        return self.examples[name]

    def __repr__(self):
        return "attnmap.Run(%r, %d examples, tensors=%s)" % (
            self.path, len(self.examples.get("lengths", [])), sorted(self.examples))


def read_run(path):
    """Reads RUN/ into a Run (numpy arrays and the parsed summary.json)."""
    return Run(path)


@_clear_errors
def read_dataset(path):
    """Reads a dataset (one .safetensors file or a directory of shards, docs/design.md §2) as a
    list of (tensors, metadata) per shard, in name order. For inspection and tests: a dataset
    too large for memory should be analysed with the CLI."""
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
        return [read_safetensors(os.path.join(path, f)) for f in files]
    return [read_safetensors(path)]
