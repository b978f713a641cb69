"""stbuild.py — small, dependency-light writers of attnmap inputs for the bad-input corpus
(tests/bad/make_bad.py) and the fuzz seeds (fuzz/make_corpus.py): a valid synthetic
dataset as a dict of numpy arrays, and byte-exact .safetensors / .npy writers that can also
be told to write something malformed. Deterministic: a fixed seed, sorted metadata keys,
headers padded with spaces to a multiple of 8 as the safetensors package pads them."""
import json
import struct

import numpy as np

DTYPES = {
    np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64",
    np.dtype("int8"): "I8", np.dtype("int16"): "I16", np.dtype("int32"): "I32",
    np.dtype("int64"): "I64", np.dtype("uint8"): "U8", np.dtype("uint16"): "U16",
    np.dtype("uint32"): "U32", np.dtype("uint64"): "U64", np.dtype("bool"): "BOOL",
}


def softmax_rows(logits, n):
    """[..., T, T] logits → rows that are a softmax over the first n keys; padded rows
    and columns (positions >= n) hold 0."""
    T = logits.shape[-1]
    out = np.zeros_like(logits, dtype=np.float64)
    if n == 0:  # a fully masked example: every row and column is padding
        return out
    z = logits[..., :n, :n].astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    out[..., :n, :n] = z / z.sum(axis=-1, keepdims=True)
    assert out.shape[-1] == T
    return out


def dataset(L=2, H=2, B=2, T=5, lengths=None, seed=1, dtype=np.float32, grads=True,
            mask=True, saliency=False, embeds=0, labels=False, special=False,
            per_layer=False, tokens=False):
    """A valid dataset: (tensors, metadata). Right padding; lengths default to T."""
    rng = np.random.default_rng(seed)
    lengths = list(lengths) if lengths is not None else [T] * B
    att = np.zeros((L, B, H, T, T))
    for b, n in enumerate(lengths):
        att[:, b] = softmax_rows(rng.normal(size=(L, H, T, T)) * 2, n)
    t = {}
    if per_layer:
        for l in range(L):
            t["attentions.%d" % l] = att[l].astype(dtype)
    else:
        t["attentions"] = att.astype(dtype)
    if grads:
        g = rng.normal(size=att.shape) * (att > 0)
        if per_layer:
            for l in range(L):
                t["attention_grads.%d" % l] = g[l].astype(dtype)
        else:
            t["attention_grads"] = g.astype(dtype)
    m = np.zeros((B, T), dtype=np.int64)
    for b, n in enumerate(lengths):
        m[b, :n] = 1
    if mask:
        t["attention_mask"] = m
    if special:
        s = np.zeros((B, T), dtype=np.int64)
        for b, n in enumerate(lengths):
            if n:
                s[b, 0] = s[b, n - 1] = 1
        t["special_tokens_mask"] = s
        t["input_ids"] = (rng.integers(5, 50, size=(B, T)) * m).astype(np.int64)
    if saliency:
        t["saliency.ig"] = (rng.normal(size=(B, T)) * m).astype(np.float32)
    if embeds:
        t["inputs_embeds"] = rng.normal(size=(B, T, embeds)).astype(np.float32)
        t["inputs_embeds_grads"] = rng.normal(size=(B, T, embeds)).astype(np.float32)
    if labels:
        t["labels"] = rng.integers(0, 2, size=B).astype(np.int64)
        t["predictions"] = rng.integers(0, 2, size=B).astype(np.int64)
    meta = {}
    if tokens:
        meta["attnmap.tokens"] = json.dumps(
            [["tok%d" % i for i in range(n)] for n in lengths])
    return t, meta


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": [begin, end]}


def st_bytes(tensors, metadata=None, header=None, data=None, declared=None, pad=True,
             raw_header=None, trailing=b""):
    """A .safetensors image. tensors: name → numpy array (in this order). header: replace
    the computed header dict; raw_header: the header's exact bytes; data: the data
    section's exact bytes; declared: the length field (default: the header's length)."""
    if header is None:
        header, chunks, off = {}, [], 0
        if metadata:
            header["__metadata__"] = dict(sorted(metadata.items()))
        for name, a in tensors.items():
            a = np.ascontiguousarray(a)
            raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
            header[name] = entry(DTYPES[a.dtype], a.shape, off, off + len(raw))
            chunks.append(raw)
            off += len(raw)
        if data is None:
            data = b"".join(chunks)
    if raw_header is None:
        raw_header = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        raw_header += b" " * (-len(raw_header) % 8)
    n = len(raw_header) if declared is None else declared
    return struct.pack("<Q", n) + raw_header + (data or b"") + trailing


def npy_bytes(a=None, raw_header=None, version=(1, 0), data=None, declared=None):
    """A .npy image of array a (C order, its own byte order), or of raw_header (the dict
    text) and data."""
    if raw_header is None:
        raw_header = ("{'descr': '%s', 'fortran_order': False, 'shape': %r, }"
                      % (a.dtype.str, tuple(a.shape))).encode()
    if data is None:
        data = np.ascontiguousarray(a).tobytes() if a is not None else b""
    lenbytes = 2 if version[0] == 1 else 4
    pre = 6 + 2 + lenbytes
    body = raw_header + b" " * (-(pre + len(raw_header) + 1) % 64) + b"\n"
    n = len(body) if declared is None else declared
    fmt = "<H" if lenbytes == 2 else "<I"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, n) + body + data
