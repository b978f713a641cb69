"""hostile.py — the bad-input cases of issue 21, written by make_bad.py (which passes
itself as `mb` for its helpers): claims of work far beyond a file's size, values that
would end as wrong numbers (overflow, integers outside int32, layer names outside
0..L-1, token rows of the wrong length) and input whose message used to mislead
(F64 values that overflow F32, control characters in names)."""
import json

import numpy as np

from stbuild import entry, npy_bytes, st_bytes

BIG = 20_000_000  # examples a 104-byte file once claimed


def denial_of_service(mb):
    """A tensor of T = 0 holds no bytes whatever B, L and H claim: refused up front."""
    def zero_t(name, header, subs):
        mb.hdr_case(name, header, 0, ["attentions", "T = 0 tokens"] + subs)

    zero_t("dos_t0_many_examples.safetensors",
           {"attentions": entry("F32", [1, BIG, 1, 0, 0], 0, 0)}, ["20000000 examples"])
    zero_t("dos_t0_one_example.safetensors",
           {"attentions": entry("F32", [1, 1, 1, 0, 0], 0, 0)}, ["1 examples"])
    zero_t("dos_t0_many_heads.safetensors",
           {"attentions": entry("F32", [4, 100000, 16000, 0, 0], 0, 0)}, ["100000 examples"])
    zero_t("dos_t0_per_layer.safetensors",
           {"attentions.0": entry("F32", [BIG, 1, 0, 0], 0, 0),
            "attentions.1": entry("F32", [BIG, 1, 0, 0], 0, 0)}, ["attentions.0"])
    zero_t("dos_t0_with_grads_and_mask.safetensors",
           {"attention_grads": entry("F32", [1, BIG, 1, 0, 0], 0, 0),
            "attention_mask": entry("I64", [BIG, 0], 0, 0),
            "attentions": entry("F32", [1, BIG, 1, 0, 0], 0, 0)}, [])
    zero_t("dos_t0_bf16_stacked_grads_only_t.safetensors",
           {"attentions": entry("BF16", [1, 3, 1, 0, 0], 0, 0)}, ["3 examples"])
    zero_t("dos_t0_f16.safetensors",
           {"attentions": entry("F16", [2, BIG, 2, 0, 0], 0, 0)}, [])
    hdr = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 20000000, 1, 0, 0), }"
    mb.npy_dir("dos_npy_t0", npy_bytes(raw_header=hdr, data=b""),
               subs=["dos_npy_t0/attentions.npy", "T = 0 tokens", "20000000 examples"])


def layer_names(mb):
    """attentions.N must be N in 0..L-1 in canonical decimal: anything else is refused."""
    p, _ = mb.base(per_layer=True, grads=True)

    def extra(name, bad, subs, role="attentions"):
        t = dict(p)
        t[bad] = p[role + ".1"]
        mb.st_case(name, t, None, [bad if "\x1b" not in bad else "not a layer"] + subs)

    extra("layer_leading_zero.safetensors", "attentions.01", ["not a layer of attentions"])
    extra("layer_double_zero.safetensors", "attentions.00", ["not a layer of attentions"])
    extra("layer_huge_number.safetensors", "attentions.100001", ["0..65535"])
    extra("layer_past_limit.safetensors", "attentions.65536", ["0..65535"])
    extra("layer_not_a_number.safetensors", "attentions.x", ["not a layer of attentions"])
    extra("layer_negative.safetensors", "attentions.-1", ["not a layer of attentions"])
    extra("layer_plus_sign.safetensors", "attentions.+1", ["not a layer of attentions"])
    extra("layer_space.safetensors", "attentions. 1", ["not a layer of attentions"])
    extra("layer_empty_suffix.safetensors", "attentions.", ["not a layer of attentions"])
    extra("layer_suffix_junk.safetensors", "attentions.1x", ["not a layer of attentions"])
    extra("layer_grads_huge_number.safetensors", "attention_grads.100001",
          ["not a layer of attention_grads"], role="attention_grads")
    extra("layer_grads_leading_zero.safetensors", "attention_grads.01",
          ["not a layer of attention_grads"], role="attention_grads")
    # a gap the numbering check sees: layers 0 and 2 of a far larger claimed L
    t = {"attentions.0": p["attentions.0"], "attentions.65535": p["attentions.1"]}
    mb.st_case("layer_sparse_max.safetensors", t, None,
               ["attentions.N", "numbered 0..65535 without gaps"])


def integers(mb):
    """Labels, predictions and ids are stored as I32: values outside it are refused."""
    lb, lm = mb.base(labels=True)

    def lab(name, tensor, values, dtype, subs):
        t = dict(lb)
        t[tensor] = np.array(values, dtype=dtype)
        mb.st_case(name, t, lm, [tensor, "does not fit in 32 bits"] + subs)

    lab("int_labels_i64_big.safetensors", "labels", [0, 2**40], np.int64,
        ["value 1099511627776 at example 1"])
    lab("int_labels_i64_negative.safetensors", "labels", [-2**40, 1], np.int64,
        ["value -1099511627776 at example 0"])
    lab("int_labels_u32_big.safetensors", "labels", [3_000_000_000, 1], np.uint32,
        ["value 3000000000"])
    lab("int_labels_u64_wraps.safetensors", "labels", [1, 2**64 - 5], np.uint64,
        ["at example 1"])
    lab("int_predictions_i64_big.safetensors", "predictions", [2**31, 0], np.int64,
        ["value 2147483648 at example 0"])
    lab("int_predictions_u64_max.safetensors", "predictions", [0, 2**64 - 1], np.uint64,
        ["at example 1"])
    t, m = mb.base()
    mask = t["attention_mask"].astype(np.uint64)
    mask[1, 0] = 2**64 - 1  # read as -1 once, when U64 wrapped through int64
    mb.st_case("int_mask_u64_max.safetensors", dict(t, attention_mask=mask), m,
               ["attention_mask", "example 1, position 0 is not 0 or 1"])
    sp, spm = mb.base(special=True)
    ids = sp["input_ids"].astype(np.uint64)
    ids[0, 1] = 2**64 - 1
    mb.st_case("int_input_ids_u64_max.safetensors", dict(sp, input_ids=ids), spm,
               ["input_ids", "example 0, position 1", "does not fit in 32 bits"])
    lb2 = dict(lb)
    lb2["labels"] = np.array([0, 2**40], dtype=np.int64)
    mb.write("int_npy_labels_big/attentions.npy", npy_bytes(lb["attentions"]))
    mb.write("int_npy_labels_big/labels.npy", npy_bytes(lb2["labels"]))
    mb.case("int_npy_labels_big", ["int_npy_labels_big/labels.npy", "labels",
                                   "does not fit in 32 bits"])


def token_rows(mb):
    """attnmap.tokens rows hold T strings (one per position) or the example's valid tokens."""
    t, _ = mb.base()  # lengths 4 and 3, T = 4

    def tok(name, rows, subs):
        mb.st_case(name, t, {"attnmap.tokens": json.dumps(rows)},
                   ["attnmap.tokens"] + subs)

    tok("tokens_row_short.safetensors", [["a", "b"], ["c", "d", "e"]],
        ["entry 0 is not an array of T=4 strings", "or of 4"])
    tok("tokens_row_between.safetensors", [["a"] * 4, ["b"] * 2],
        ["entry 1 is not an array of T=4 strings", "or of 3"])
    tok("tokens_row_long.safetensors", [["a"] * 4, ["b"] * 5], ["entry 1", "or of 3"])
    tok("tokens_row_empty.safetensors", [["a"] * 4, []], ["entry 1", "or of 3"])


def overflow(mb):
    """Finite inputs whose products overflow F32: refused, never cosine -1 or JSD 0."""
    t, m = mb.base()
    g = np.where(t["attentions"] > 0, np.float32(3e38), np.float32(0))
    # only an analysis computes the maps: inspect, which checks the inputs, accepts it
    mb.st_case("num_grads_products_overflow.safetensors", dict(t, attention_grads=g), m,
               ["example 0", "grad_rollout is not finite", "overflow F32"], inspect=0)
    h, hm = mb.base(dtype=np.float64)
    g = h["attention_grads"].copy()
    g[1, 0, 1, 2, 2] = 1e300
    mb.st_case("num_grads_f64_overflows_f32.safetensors", dict(h, attention_grads=g), hm,
               ["attention_grads", "example 0, layer 1, head 1, query position 2",
                "F64 value 1e+300 does not fit in F32"])
    a = h["attentions"].copy()
    a[0, 1, 0, 1, 0] = 1e300
    mb.st_case("num_attentions_f64_overflows_f32.safetensors", dict(h, attentions=a), hm,
               ["attentions", "example 1, layer 0, head 0, query position 1",
                "F64 value 1e+300 does not fit in F32"])
    s, sm = mb.base(saliency=True)
    sal = s["saliency.ig"].astype(np.float64)
    sal[0, 2] = -1e300
    mb.st_case("num_saliency_f64_overflows_f32.safetensors", dict(s, **{"saliency.ig": sal}),
               sm, ["saliency.ig", "example 0, position 2", "does not fit in F32"], inspect=0)


def control_characters(mb):
    """Names from files reach the terminal escaped: \\x1b[...m never colours it."""
    p, _ = mb.base(per_layer=True, grads=False)
    t = dict(p)
    t["attentions.\x1b[31m"] = p["attentions.1"]
    mb.st_case("ctrl_esc_in_tensor_name.safetensors", t, None,
               ["attentions.\\x1b[31m", "not a layer"])
    t = dict(p)
    t["attentions.\x9b2J"] = p["attentions.1"]  # C1 CSI, as UTF-8
    mb.st_case("ctrl_c1_in_tensor_name.safetensors", t, None,
               ["attentions.\\u009b2J", "not a layer"])
    t = dict(p)
    t["attentions.\n1"] = p["attentions.1"]
    mb.st_case("ctrl_newline_in_tensor_name.safetensors", t, None,
               ["attentions. 1", "not a layer"])
    mb.hdr_case("ctrl_bell_in_dtype.safetensors",
                {"attentions": entry("F\x0732", [1, 1, 1, 1, 1], 0, 4)}, 4,
                ["attentions", "unknown dtype"])
    mb.hdr_case("ctrl_esc_in_metadata_key.safetensors",
                {"__metadata__": {"mo\x1bdel": 3}, "attentions": mb.ATT}, 4,
                ["__metadata__ key mo\\x1bdel", "not a string"])


def write_all(mb):
    denial_of_service(mb)
    layer_names(mb)
    integers(mb)
    token_rows(mb)
    overflow(mb)
    control_characters(mb)
