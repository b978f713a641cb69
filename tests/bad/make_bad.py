#!/usr/bin/env python3
"""Writes the bad-input corpus tests/bad/cases/ and its manifest tests/bad/EXPECTED.tsv:

    python3 tests/bad/make_bad.py

Each case is one file or one folder that makes one dataset, malformed in exactly one
way (docs/design.md §2 and §6, docs/formats.md). tests/test_bad_corpus.c runs `attnmap analyze`
and `attnmap inspect` on each and checks the exit codes, one stderr line holding every
expected substring (the file, the tensor, the problem), and that no run folder or
temporary folder is left. Deterministic: fixed seeds, no timestamps; needs numpy only.

EXPECTED.tsv columns (tab-separated): case, analyze exit code, inspect exit code, then
one expected substring per column (matched in the analyze message; the inspect message
must hold the same substrings when its exit code is 2)."""
import json
import math
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hostile  # noqa: E402
import stbuild  # noqa: E402
from stbuild import entry, npy_bytes, st_bytes  # noqa: E402

OUT = os.path.join(HERE, "cases")
CASES = []  # (name, analyze exit, inspect exit, [substrings])


def base(**kw):
    """The base dataset: L=2, H=2, B=2, T=4, lengths 4 and 3, gradients, mask, F32."""
    args = dict(L=2, H=2, B=2, T=4, lengths=[4, 3], seed=11)
    args.update(kw)
    return stbuild.dataset(**args)


def write(rel, data):
    path = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def case(name, subs, analyze=2, inspect=2):
    CASES.append((name, analyze, inspect, subs))


def st_case(name, tensors=None, meta=None, subs=(), analyze=2, inspect=2, **raw):
    write(name, st_bytes(tensors or {}, meta, **raw))
    case(name, [name] + list(subs), analyze, inspect)


def hdr_case(name, header, ndata, subs, **kw):
    """A header dict (or raw bytes) with ndata zero bytes of data."""
    if isinstance(header, bytes):
        write(name, st_bytes({}, raw_header=header, data=bytes(ndata), **kw))
    else:
        write(name, st_bytes({}, header=header, data=bytes(ndata), **kw))
    case(name, [name] + list(subs))


ATT = entry("F32", [1, 1, 1, 1, 1], 0, 4)


def file_format():
    write("st_empty.safetensors", b"")
    case("st_empty.safetensors", ["st_empty.safetensors", "truncated"])
    write("st_short_length.safetensors", b"\x10\x00\x00\x00\x00")
    case("st_short_length.safetensors", ["st_short_length.safetensors", "truncated"])
    hdr_case("st_header_beyond_file.safetensors", b"{}", 0, ["header length 1000"],
             declared=1000)
    hdr_case("st_header_over_limit.safetensors", b"{}", 0, ["exceeds the limit"],
             declared=100000001)
    hdr_case("st_header_not_json.safetensors", b'{"attentions": {', 0, ["not valid JSON"])
    hdr_case("st_header_not_object.safetensors", b"[1, 2]", 0, ["not a JSON object"])
    hdr_case("st_header_nul.safetensors", b'{"a\x00": 1}', 0, ["NUL byte"])
    hdr_case("st_header_bad_utf8.safetensors",
             b'{"attenti\xc3\x28ns": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}',
             4, ["not valid UTF-8"])
    hdr_case("st_header_overlong_utf8.safetensors", b'{"\xc0\xaf": 1}', 0,
             ["not valid UTF-8"])
    hdr_case("st_duplicate_name.safetensors",
             b'{"attentions": {"dtype": "F32", "shape": [1,1,1,1,1], "data_offsets": [0, 4]},'
             b' "attentions": {"dtype": "F32", "shape": [1,1,1,1,1], "data_offsets": [4, 8]}}',
             8, ["attentions", "duplicate tensor name"])
    hdr_case("st_unknown_dtype.safetensors",
             {"attentions": entry("F12", [1, 1, 1, 1, 1], 0, 4)}, 4,
             ["attentions", "unknown dtype"])
    hdr_case("st_dtype_not_string.safetensors",
             {"attentions": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}}, 4,
             ["attentions", "dtype is not a string"])
    hdr_case("st_entry_without_dtype.safetensors",
             {"attentions": {"shape": [1], "data_offsets": [0, 4]}}, 4,
             ["attentions", "no \"dtype\""])
    hdr_case("st_shape_negative.safetensors",
             {"attentions": entry("F32", [1, -1, 1, 1, 1], 0, 4)}, 4,
             ["attentions", "shape[1] is not a non-negative integer"])
    hdr_case("st_shape_nine_dims.safetensors",
             {"attentions": entry("F32", [1] * 9, 0, 4)}, 4,
             ["attentions", "9 dimensions, at most 8"])
    hdr_case("st_shape_overflow.safetensors",
             {"attentions": entry("F32", [2**62, 4, 1, 1, 1], 0, 4)}, 4,
             ["attentions", "overflows"])
    hdr_case("st_offsets_out_of_bounds.safetensors",
             {"attentions": entry("F32", [1, 1, 1, 1, 1], 0, 400)}, 4,
             ["attentions", "out of bounds"])
    hdr_case("st_offsets_overlap.safetensors",
             {"attentions": ATT, "attention_mask": entry("I32", [1, 1], 2, 6)}, 6,
             ["attention_mask", "overlap"])
    hdr_case("st_offsets_gap.safetensors",
             {"attentions": ATT, "attention_mask": entry("I32", [1, 1], 8, 12)}, 12,
             ["attention_mask", "gap of 4 bytes"])
    hdr_case("st_offsets_begin_after_end.safetensors",
             {"attentions": entry("F32", [1, 1, 1, 1, 1], 4, 0)}, 4,
             ["attentions", "begin > end"])
    hdr_case("st_offsets_wrong_size.safetensors",
             {"attentions": entry("F32", [1, 1, 1, 2, 2], 0, 8)}, 8,
             ["attentions", "hold 8 bytes but shape [1,1,1,2,2] of F32 needs 16"])
    hdr_case("st_trailing_bytes.safetensors", {"attentions": ATT}, 12,
             ["8 trailing bytes"])
    hdr_case("st_metadata_not_object.safetensors",
             {"__metadata__": ["model"], "attentions": ATT}, 4, ["__metadata__ is not an object"])
    hdr_case("st_metadata_value_not_string.safetensors",
             {"__metadata__": {"model": 3}, "attentions": ATT}, 4,
             ["__metadata__ key model", "not a string"])
    t, _ = base()
    data = st_bytes(t)
    write("st_truncated_data.safetensors", data[:-10])
    case("st_truncated_data.safetensors", ["st_truncated_data.safetensors", "out of bounds"])


def npy_header(descr="<f4", fortran="False", shape="(1, 1, 1, 1, 1)"):
    return ("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }"
            % (descr, fortran, shape)).encode()


def npy_dir(name, att=None, mask=None, subs=(), analyze=2, inspect=2):
    """A folder of .npy files: attentions.npy (bytes) and optionally attention_mask.npy."""
    t, _ = base(grads=False)
    write(name + "/attentions.npy", att if att is not None else npy_bytes(t["attentions"]))
    if mask is not None:
        write(name + "/attention_mask.npy", mask)
    case(name, list(subs), analyze, inspect)


def npy_format():
    ok = np.zeros((1, 1, 1, 1, 1), dtype=np.float32) + 1
    npy_dir("npy_bad_magic", b"\x93NUMPZ\x01\x00" + npy_bytes(ok)[8:],
            subs=["npy_bad_magic/attentions.npy", "bad magic"])
    npy_dir("npy_version_4", npy_bytes(ok, version=(4, 0)),
            subs=["npy_version_4/attentions.npy", "unsupported npy format version 4.0"])
    npy_dir("npy_header_beyond_file", npy_bytes(ok, declared=5000)[:200],
            subs=["npy_header_beyond_file/attentions.npy", "truncated"])
    npy_dir("npy_header_not_dict", npy_bytes(raw_header=b"[1, 2, 3]", data=b""),
            subs=["npy_header_not_dict/attentions.npy", "not a valid dict"])
    npy_dir("npy_fortran_not_bool",
            npy_bytes(raw_header=npy_header(fortran="1"), data=ok.tobytes()),
            subs=["npy_fortran_not_bool/attentions.npy", "fortran_order is not True or False"])
    npy_dir("npy_object_dtype",
            npy_bytes(raw_header=npy_header(descr="|O"), data=bytes(8)),
            subs=["npy_object_dtype/attentions.npy", "object arrays"])
    npy_dir("npy_complex_dtype",
            npy_bytes(raw_header=npy_header(descr="<c8"), data=bytes(8)),
            subs=["npy_complex_dtype/attentions.npy", "unsupported descr '<c8'"])
    npy_dir("npy_structured_dtype",
            npy_bytes(raw_header=b"{'descr': [('a', '<f4')], 'fortran_order': False, "
                      b"'shape': (1,), }", data=bytes(4)),
            subs=["npy_structured_dtype/attentions.npy", "structured dtypes"])
    npy_dir("npy_missing_shape",
            npy_bytes(raw_header=b"{'descr': '<f4', 'fortran_order': False, }", data=b""),
            subs=["npy_missing_shape/attentions.npy", "missing key 'shape'"])
    npy_dir("npy_duplicate_key",
            npy_bytes(raw_header=b"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False,"
                      b" 'shape': (1,), }", data=bytes(4)),
            subs=["npy_duplicate_key/attentions.npy", "key 'descr' appears twice"])
    npy_dir("npy_negative_dim",
            npy_bytes(raw_header=npy_header(shape="(1, -1, 1, 1, 1)"), data=b""),
            subs=["npy_negative_dim/attentions.npy", "negative dimension"])
    full = npy_bytes(base(grads=False)[0]["attentions"])
    npy_dir("npy_truncated_data", full[:-4],
            subs=["npy_truncated_data/attentions.npy", "truncated", "need 512"])
    npy_dir("npy_trailing_bytes", full + b"\0" * 8,
            subs=["npy_trailing_bytes/attentions.npy", "8 trailing bytes"])
    t, _ = base(grads=False)
    npy_dir("npy_mask_wrong_T", mask=npy_bytes(np.ones((2, 5), dtype=np.int64)),
            subs=["npy_mask_wrong_T/attention_mask.npy", "attention_mask",
                  "expected shape [B,T]=[2,4]"])
    # Fortran order is accepted (converted); its shape must still agree.
    npy_dir("npy_fortran_mask_values",
            mask=npy_bytes(raw_header=npy_header("<i8", "True", "(2, 4)"),
                           data=np.array([[1, 1, 1, 1], [1, 7, 1, 0]]).T.tobytes()),
            subs=["npy_fortran_mask_values/attention_mask.npy", "attention_mask",
                  "value 7 at example 1, position 1 is not 0 or 1"])
    os.makedirs(os.path.join(OUT, "npy_empty_folder"), exist_ok=True)
    write("npy_empty_folder/README.txt", b"no tensors here\n")
    case("npy_empty_folder", ["npy_empty_folder", "no .safetensors or .npy files found"])


def with_tensor(t, name, value):
    t = dict(t)
    if value is None:
        del t[name]
    else:
        t[name] = value
    return t


def roles():
    t, m = base()
    st_case("ds_no_attentions.safetensors", with_tensor(t, "attentions", None), m,
            ["attentions", "not found"])
    st_case("ds_attentions_4d.safetensors", with_tensor(t, "attentions", t["attentions"][0]),
            m, ["attentions", "expected 5 dimensions"])
    st_case("ds_attentions_int.safetensors",
            with_tensor(t, "attentions", (t["attentions"] > 0.3).astype(np.int32)), m,
            ["attentions", "dtype I32 is not a float type"])
    st_case("ds_query_key_differ.safetensors",
            with_tensor(t, "attentions", t["attentions"][..., :3]), m,
            ["attentions", "query and key lengths differ"])
    st_case("ds_zero_heads.safetensors",
            with_tensor(t, "attentions", np.zeros((2, 2, 0, 4, 4), np.float32)), m,
            ["attentions", "no heads"])
    st_case("ds_too_many_heads_in_all.safetensors",
            {"attentions": np.zeros((300, 0, 300, 4, 4), np.float32)}, None,
            ["attentions", "300 layers x 300 heads, more than 65536"])
    st_case("ds_too_many_layers.safetensors",
            {"attentions": np.zeros((70000, 0, 1, 4, 4), np.float32)}, None,
            ["attentions", "70000 layers, more than 65536"])
    st_case("ds_stacked_and_per_layer.safetensors",
            dict(t, **{"attentions.0": t["attentions"][0]}), m,
            ["attentions", "both stacked and per-layer"])
    p, _ = base(per_layer=True, grads=False)
    st_case("ds_layer_gap.safetensors",
            {"attentions.0": p["attentions.0"], "attentions.2": p["attentions.1"]}, None,
            ["attentions.N", "numbered 0..2 without gaps"])
    p3, _ = base(per_layer=True, grads=False, H=3)
    st_case("ds_layer_heads_differ.safetensors",
            {"attentions.0": p["attentions.0"], "attentions.1": p3["attentions.1"]}, None,
            ["attentions.1", "differs from layer 0's"])
    st_case("ds_layer_dtype_differs.safetensors",
            {"attentions.0": p["attentions.0"],
             "attentions.1": p["attentions.1"].astype(np.float16)}, None,
            ["attentions.1", "F16 differs from layer 0's"])
    st_case("ds_grads_shape.safetensors",
            with_tensor(t, "attention_grads", t["attention_grads"][:1]), m,
            ["attention_grads", "do not match attentions'"])
    st_case("ds_grads_dtype.safetensors",
            with_tensor(t, "attention_grads", t["attention_grads"].astype(np.float16)), m,
            ["attention_grads", "F16 do not match attentions'"])
    st_case("ds_mask_wrong_T.safetensors",
            with_tensor(t, "attention_mask", np.ones((2, 5), np.int64)), m,
            ["attention_mask", "expected shape [B,T]=[2,4]", "found [2,5]"])
    st_case("ds_mask_float.safetensors",
            with_tensor(t, "attention_mask", t["attention_mask"].astype(np.float32)), m,
            ["attention_mask", "dtype F32 is not an integer or bool type"])
    mask2 = t["attention_mask"].copy()
    mask2[1, 2] = 2
    st_case("ds_mask_value_2.safetensors", with_tensor(t, "attention_mask", mask2), m,
            ["attention_mask", "value 2 at example 1, position 2 is not 0 or 1"])
    s, sm = base(special=True)
    sp = s["special_tokens_mask"].copy()
    sp[0, 1] = -1
    st_case("ds_special_mask_value.safetensors", with_tensor(s, "special_tokens_mask", sp),
            sm, ["special_tokens_mask", "value -1 at example 0, position 1"])
    st_case("ds_input_ids_shape.safetensors",
            with_tensor(s, "input_ids", s["input_ids"][:, :3]), sm,
            ["input_ids", "expected shape [B,T]"])
    st_case("ds_input_ids_float.safetensors",
            with_tensor(s, "input_ids", s["input_ids"].astype(np.float32)), sm,
            ["input_ids", "dtype F32 is not an integer"])
    lb, lm = base(labels=True)
    st_case("ds_labels_shape.safetensors",
            with_tensor(lb, "labels", np.zeros(3, np.int64)), lm,
            ["labels", "expected shape [B]=[2]", "found [3]"])
    st_case("ds_predictions_float.safetensors",
            with_tensor(lb, "predictions", np.zeros(2, np.float32)), lm,
            ["predictions", "dtype F32 is not an integer"])
    st_case("ds_images_float.safetensors",
            with_tensor(lb, "images", np.zeros((2, 4, 4, 3), np.float32)), lm,
            ["images", "dtype F32 is not U8"])
    st_case("ds_images_shape.safetensors",
            with_tensor(lb, "images", np.zeros((2, 4, 4, 4), np.uint8)), lm,
            ["images", "expected shape [B,Hpx,Wpx,3] with B=2", "found [2,4,4,4]"])
    sl, slm = base(saliency=True)
    st_case("ds_saliency_shape.safetensors",
            with_tensor(sl, "saliency.ig", np.zeros((2, 5), np.float32)), slm,
            ["saliency.ig", "expected shape [B,T]"])
    st_case("ds_saliency_int.safetensors",
            with_tensor(sl, "saliency.ig", np.zeros((2, 4), np.int32)), slm,
            ["saliency.ig", "dtype I32 is not a float type"])
    e, em = base(embeds=3)
    st_case("ds_embeds_without_grads.safetensors", with_tensor(e, "inputs_embeds_grads", None),
            em, ["inputs_embeds", "found without inputs_embeds_grads"])
    st_case("ds_embeds_dim_differs.safetensors",
            with_tensor(e, "inputs_embeds_grads", np.zeros((2, 4, 5), np.float32)), em,
            ["inputs_embeds_grads", "expected shape [B,T,D]", "found [2,4,5]"])


def values():
    t, m = base()
    a = t["attentions"].copy()
    a[1, 1, 0, 2, 1] = np.nan
    st_case("val_attention_nan.safetensors", with_tensor(t, "attentions", a), m,
            ["attentions", "example 1", "not finite"])
    a = t["attentions"].copy()
    a[0, 0, 1, 3, 0] = np.inf
    st_case("val_attention_inf.safetensors", with_tensor(t, "attentions", a), m,
            ["attentions", "example 0", "not finite"])
    a = t["attentions"].copy()
    a[0, 0, 1, 3, 1] += a[0, 0, 1, 3, 2] + 0.25
    a[0, 0, 1, 3, 2] = -0.25
    st_case("val_attention_negative.safetensors", with_tensor(t, "attentions", a), m,
            ["attentions", "example 0", "negative"])
    a = t["attentions"].copy()
    a[1, 1, 1, 0, :] *= 0.9
    st_case("val_attention_row_sum.safetensors", with_tensor(t, "attentions", a), m,
            ["attentions", "example 1", "does not sum to 1"])
    h, hm = base(dtype=np.float16)
    a = h["attentions"].copy()
    a[0, 1, 0, 1, 0] = np.float16(np.nan)
    st_case("val_attention_nan_f16.safetensors", with_tensor(h, "attentions", a), hm,
            ["attentions", "example 1", "not finite"])
    g = t["attention_grads"].copy()
    g[1, 0, 1, 2, 2] = -np.inf
    st_case("val_grads_inf.safetensors", with_tensor(t, "attention_grads", g), m,
            ["attention_grads", "not finite"])
    sl, slm = base(saliency=True)
    s = sl["saliency.ig"].copy()
    s[1, 1] = np.nan
    st_case("val_saliency_nan.safetensors", with_tensor(sl, "saliency.ig", s), slm,
            ["saliency.ig", "not finite"], inspect=0)
    e, em = base(embeds=3)
    eg = e["inputs_embeds_grads"].copy()
    eg[0, 2, 1] = np.inf
    st_case("val_embeds_grads_inf.safetensors", with_tensor(e, "inputs_embeds_grads", eg), em,
            ["inputs_embeds_grads", "not finite"], inspect=0)


def metadata():
    t, _ = base()

    def tok(name, value, subs):
        st_case(name, t, {"attnmap.tokens": value}, ["attnmap.tokens"] + subs)

    tok("meta_tokens_wrong_length.safetensors", json.dumps([["a"], ["b"], ["c"]]),
        ["expected a JSON array of 2 entries"])
    tok("meta_tokens_not_json.safetensors", "[[\"a\"], [\"b\"", ["expected a JSON array"])
    tok("meta_tokens_not_array.safetensors", json.dumps({"0": ["a"]}),
        ["expected a JSON array of 2 entries"])
    tok("meta_tokens_row_too_long.safetensors", json.dumps([["a"] * 5, ["b"] * 3]),
        ["entry 0 is not an array of T=4 strings (one per position) or of 4"])
    tok("meta_tokens_not_string.safetensors", json.dumps([["a", 7, "c", "d"], ["b"] * 3]),
        ["entry 0, token 1 is not a string"])
    st_case("meta_ids_wrong_length.safetensors", t, {"attnmap.ids": json.dumps(["x"])},
            ["attnmap.ids", "expected a JSON array of 2 entries"])
    st_case("meta_grid_malformed.safetensors", t, {"attnmap.grid": "14y14"},
            ["attnmap.grid", "'14y14' is not ROWSxCOLS[+PREFIX]"])
    st_case("meta_grid_zero.safetensors", t, {"attnmap.grid": "0x4+1"},
            ["attnmap.grid", "'0x4+1' is not ROWSxCOLS[+PREFIX]"])


def shards():
    def two(name, second, subs, first=None):
        a, am = first or base(seed=21)
        write(name + "/s0.safetensors", st_bytes(a, am))
        b, bm = second
        write(name + "/s1.safetensors", st_bytes(b, bm))
        case(name, [name + "/s1.safetensors"] + subs)

    two("shards_heads_differ", base(H=3, seed=22),
        ["attentions", "2 layers x 3 heads, but", "has 2 x 2"])
    two("shards_layers_differ", base(L=3, seed=23),
        ["attentions", "3 layers x 2 heads, but", "has 2 x 2"])
    two("shards_grads_missing", base(grads=False, seed=24),
        ["attention_grads", "missing here but present in"])
    two("shards_saliency_missing", base(seed=25),
        ["saliency.ig", "missing here but present in the first shard"],
        first=base(saliency=True, seed=26))
    two("shards_embed_dim_differs", base(embeds=4, seed=27),
        ["inputs_embeds", "D=4 differs from the first shard's 3"], first=base(embeds=3))
    two("shards_mask_wrong_T", (with_tensor(base(seed=28)[0], "attention_mask",
                                            np.ones((2, 3), np.int64)), {}),
        ["attention_mask", "expected shape [B,T]=[2,4]"])


def cross_base(seed=40):
    """An encoder-decoder dataset (docs/generation.md): the base decoder per layer plus
    cross_attentions.{l}, cross_attention_grads.{l} [B,H,Tdec,Tenc=5] (source lengths 5, 3),
    encoder_attention_mask and encoder_input_ids."""
    t, meta = base(per_layer=True, seed=seed)
    rng = np.random.default_rng(seed)
    L, B, H, T, Te, src = 2, 2, 2, 4, 5, [5, 3]
    em = np.zeros((B, Te), np.int64)
    for b, n in enumerate(src):
        em[b, :n] = 1
    for l in range(L):
        c = np.zeros((B, H, T, Te))
        for b, n in enumerate(src):
            z = np.exp(rng.normal(size=(H, T, n)))
            c[b, :, :, :n] = z / z.sum(axis=-1, keepdims=True)
        t["cross_attentions.%d" % l] = c.astype(np.float32)
        t["cross_attention_grads.%d" % l] = (rng.normal(size=c.shape) * (c > 0)).astype(np.float32)
    t["encoder_attention_mask"] = em
    t["encoder_input_ids"] = (rng.integers(5, 50, size=(B, Te)) * em).astype(np.int64)
    return t, meta


def cross():
    t, m = cross_base()
    st_case("cross_heads_differ.safetensors",
            with_tensor(t, "cross_attentions.1", t["cross_attentions.1"][:, :1].copy()), m,
            ["cross_attentions.1", "expected [B,H,Tdec,Tenc]"])
    st_case("cross_layer_missing.safetensors", with_tensor(t, "cross_attentions.1", None), m,
            ["cross_attentions.N", "1 layers, but attentions has 2"])
    alone = with_tensor(with_tensor(t, "cross_attentions.0", None), "cross_attentions.1", None)
    st_case("cross_grads_without_cross.safetensors", alone, m,
            ["cross_attention_grads.", "found without cross_attentions"])
    stacked = with_tensor(with_tensor(alone, "cross_attention_grads.0", None),
                          "cross_attention_grads.1", None)
    stacked["cross_attentions"] = np.stack([t["cross_attentions.0"], t["cross_attentions.1"]])
    st_case("cross_stacked.safetensors", stacked, m, ["cross_attentions", "one stacked tensor"])
    em = t["encoder_attention_mask"].copy()
    em[1, 0] = 2
    st_case("cross_encoder_mask_value.safetensors", with_tensor(t, "encoder_attention_mask", em),
            m, ["encoder_attention_mask", "not 0 or 1"])
    st_case("cross_source_tokens_length.safetensors", t,
            dict(m, **{"attnmap.source_tokens": json.dumps([["a", "b"]])}),
            ["attnmap.source_tokens", "expected a JSON array of 2"])
    c = t["cross_attentions.1"].copy()
    c[1, 0, 2, :] *= 0.9
    st_case("cross_row_sum.safetensors", with_tensor(t, "cross_attentions.1", c), m,
            ["cross_attentions.1", "example 1, layer 1, head 0, decoder position 2",
             "does not sum to 1 over the valid source tokens"], inspect=0)
    g = t["cross_attention_grads.0"].copy()
    g[0, 1, 3, 4] = np.nan
    st_case("cross_grad_nan.safetensors", with_tensor(t, "cross_attention_grads.0", g), m,
            ["cross_attention_grads.0", "source position 4", "gradient is not finite"],
            inspect=0)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    file_format()
    npy_format()
    roles()
    values()
    metadata()
    shards()
    cross()
    hostile.write_all(sys.modules[__name__])
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    with open(os.path.join(HERE, "EXPECTED.tsv"), "w") as f:
        f.write("# case\tanalyze exit\tinspect exit\tsubstrings... (tests/bad/make_bad.py)\n")
        for name, a, i, subs in CASES:
            assert all("\t" not in s and "\n" not in s for s in subs)
            f.write("\t".join([name, str(a), str(i)] + subs) + "\n")
    print("%d cases in %s" % (len(CASES), OUT))


if __name__ == "__main__":
    main()
