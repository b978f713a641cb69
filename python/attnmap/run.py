"""run.py - run folders (RUN/examples.safetensors + RUN/summary.json) and .safetensors
files read into numpy arrays through libattnmap's own readers: am_run_open validates a run
folder once (summary.json against the examples file: checksums, shapes, option lists,
pair names), am_file_open checks a .safetensors file as the CLI does. This module has no
parser of its own, so Python accepts exactly what the CLI accepts.

BF16 tensors, which numpy cannot hold, come back widened to float32.
"""
import ctypes
import json
import os

import numpy as np

from . import _lib

_NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
       "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
_NAMES = {v: k for k, v in _lib.DTYPES.items()}


class _context:
    """A one-thread CPU context for a read (made here: importing the analyze submodule
    would shadow the package's lazy attnmap.analyze function with the module)."""

    def __enter__(self):
        self.handle = ctypes.c_void_p()
        err = ctypes.create_string_buffer(512)
        opts = _lib.CtxOptions(b"cpu", 1)
        st = _lib.am_ctx_create(ctypes.byref(opts), ctypes.byref(self.handle), err, len(err))
        if st != 0:
            raise _lib.AttnmapError(_lib.STATUS_NAMES.get(st, str(st)),
                                    err.value.decode("utf-8", "replace"))
        return self

    def __exit__(self, *exc):
        _lib.am_ctx_destroy(self.handle)


def _tensors(handle, path):
    """{name: numpy array (a copy)} and {key: str} of an open am_file_t."""
    out, meta = {}, {}
    for i in range(_lib.am_file_tensor_count(handle)):
        name = _lib.am_file_tensor_name(handle, i).decode()
        t = _lib.am_file_tensor(handle, i).contents
        dtype = _NAMES.get(t.dtype)
        shape = [t.shape[d] for d in range(t.ndim)]
        raw = ctypes.string_at(t.data, t.nbytes) if t.nbytes else b""
        if dtype == "BF16":
            arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        elif dtype in _NP:
            arr = np.frombuffer(raw, _NP[dtype]).copy()
        else:
            raise ValueError("%s: tensor %s: dtype %s is not supported in numpy"
                             % (path, name, dtype))
        out[name] = arr.reshape(shape)
    for i in range(_lib.am_file_metadata_count(handle)):
        key = _lib.am_file_metadata_key(handle, i)
        meta[key.decode()] = _lib.am_file_metadata(handle, key).decode("utf-8", "replace")
    return out, meta


def read_safetensors(path):
    """(tensors, metadata) of one .safetensors (or .npy) file: {name: numpy array},
    {key: str}, read by libattnmap's checked reader."""
    with _context() as ctx:
        handle = ctypes.c_void_p()
        _lib.check(_lib.am_file_open(ctx.handle, os.fsencode(path), ctypes.byref(handle)),
                   ctx.handle)
        try:
            return _tensors(handle, path)
        finally:
            _lib.am_file_close(handle)


class Run:
    """A run folder, validated by am_run_open: .examples {name: array} as in
    docs/run-folder.md, .metadata (the __metadata__ strings), .pairs (agreement column
    names), .summary (summary.json)."""

    def __init__(self, path):
        self.path = path
        with _context() as ctx:
            handle = ctypes.c_void_p()
            _lib.check(_lib.am_run_open(ctx.handle, os.fsencode(path), ctypes.byref(handle)),
                       ctx.handle)
            try:
                self.examples, self.metadata = _tensors(_lib.am_run_examples(handle), path)
                self.pairs = [_lib.am_run_pair_name(handle, i).decode()
                              for i in range(_lib.am_run_pair_count(handle))]
                self.map_names = [_lib.am_run_map_name(handle, i).decode()
                                  for i in range(_lib.am_run_map_count(handle))]
                self.summary = json.loads(_lib.am_run_summary(handle).decode("utf-8"))
            finally:
                _lib.am_run_close(handle)

    @property
    def maps(self):
        """{name: [N,T]} of the importance maps (attention_last, rollout, saliency.*, ...),
        in the order the run made them."""
        return {k: self.examples[k] for k in self.map_names}

    def agreement(self, metric, pair):
        """[N] values of one metric for one pair ("rollout~saliency.grad_x_input")."""
        return self.examples["agreement." + metric][:, self.pairs.index(pair)]

    def __getitem__(self, name):
        return self.examples[name]

    def __repr__(self):
        return "attnmap.Run(%r, %d examples, tensors=%s)" % (
            self.path, len(self.examples.get("lengths", [])), sorted(self.examples))


def read_run(path):
    """Reads RUN/ into a Run (numpy arrays and the parsed summary.json), after checking it
    as `attnmap report` and `attnmap merge` do; a run folder that fails raises
    AttnmapError naming the file, tensor or field and the problem."""
    return Run(path)


def read_dataset(path):
    """Reads a dataset (one .safetensors file or a directory of shards, docs/design.md §2) as a
    list of (tensors, metadata) per shard, in name order. For inspection and tests: a dataset
    too large for memory should be analysed with the CLI."""
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
        return [read_safetensors(os.path.join(path, f)) for f in files]
    return [read_safetensors(path)]
