"""attnmap.analyze_long: the long-context form in memory (queries, keys, values and the
gradients of the heads' outputs) equals attnmap.analyze on the attention it stands for,
A = softmax(scale Q K^T + mask) and G = dO V^T formed here in float64 (docs/long-context.md:
the two forms differ only in the order of sums), for grouped-query heads, a causal mask,
padding on either side and the targets cls, last and mean; bad inputs are refused."""
import numpy as np
import pytest

import attnmap

L, B, H, HKV, T, D = 2, 3, 4, 2, 21, 8


def _inputs(seed):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((L, B, H, T, D)).astype(np.float32)
    k = rng.standard_normal((L, B, HKV, T, D)).astype(np.float32)
    v = rng.standard_normal((L, B, HKV, T, D)).astype(np.float32)
    do = rng.standard_normal((L, B, H, T, D)).astype(np.float32) * 0.1
    mask = np.ones((B, T), np.int64)
    mask[1, :5] = 0   # padding on the left
    mask[2, 15:] = 0  # and on the right
    return q, k, v, do, mask


def _matrix_form(q, k, v, do, mask, causal):
    """A and G [L,B,H,T,T] in float64 from the same stored values: per query head h its KV
    head h // (H / Hkv); keys outside the mask (and after the query when causal) get
    probability 0; padded query rows are left 0 (attnmap reads only valid rows)."""
    rep = H // HKV
    kk = np.repeat(k.astype(np.float64), rep, axis=2)
    vv = np.repeat(v.astype(np.float64), rep, axis=2)
    s = np.einsum("lbhid,lbhjd->lbhij", q.astype(np.float64), kk) / np.sqrt(D)
    allowed = (mask[:, None, :] != 0) & (mask[:, :, None] != 0)  # [B,T,T]
    if causal:
        allowed = allowed & np.tril(np.ones((T, T), bool))[None]
    s = np.where(allowed[None, :, None], s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m)
    tot = e.sum(-1, keepdims=True)
    a = np.where(tot > 0, e / np.where(tot > 0, tot, 1), 0.0)
    g = np.einsum("lbhid,lbhjd->lbhij", do.astype(np.float64), vv)
    g = np.where(allowed[None, :, None], g, 0.0)
    return a.astype(np.float32), g.astype(np.float32)


@pytest.mark.parametrize("target,causal", [("cls", False), ("last", True), ("mean", False)])
def test_long_form_equals_the_matrix_form(target, causal):
    q, k, v, do, mask = _inputs(7)
    a, g = _matrix_form(q, k, v, do, mask, causal)
    want = attnmap.analyze(a, g, attention_mask=mask, target=target, row_tolerance=1e-4)
    got = attnmap.analyze_long(q, k, v, do, attention_mask=mask, target=target,
                               attention={"causal": causal})
    assert set(got.maps) == set(want.maps) >= {"rollout", "grad_rollout", "attention_last"}
    for name in got.maps:
        np.testing.assert_allclose(got.maps[name], want.maps[name], rtol=1e-4, atol=1e-6,
                                   err_msg=name)
    for name in ("entropy", "confidence", "to_self", "distance"):
        np.testing.assert_allclose(got.head_stats[name], want.head_stats[name], rtol=1e-4,
                                   atol=1e-5, err_msg=name)
    np.testing.assert_allclose(got.head_importance, want.head_importance, rtol=1e-4,
                               atol=1e-6)
    assert (got.lengths == [T, T - 5, 15]).all()


def test_layer_sequences_and_no_gradients():
    q, k, v, do, mask = _inputs(8)
    whole = attnmap.analyze_long(q, k, v, attention_mask=mask)
    listed = attnmap.analyze_long(list(q), list(k), list(v), attention_mask=mask)
    assert "grad_rollout" not in whole.maps and whole.head_importance is None
    for name in whole.maps:
        assert np.array_equal(whole.maps[name], listed.maps[name])


def test_bad_inputs_are_refused():
    q, k, v, do, mask = _inputs(9)
    with pytest.raises(ValueError, match="keys"):
        attnmap.analyze_long(q, k[:, :, :, :T - 1], v, attention_mask=mask)
    with pytest.raises(ValueError, match="unknown key"):
        attnmap.analyze_long(q, k, v, attention={"window": 4})
    bad = q.copy()
    bad[1, 0, 2, 3, 1] = np.nan
    with pytest.raises(attnmap.AttnmapError, match="queries"):
        attnmap.analyze_long(bad, k, v, attention_mask=mask)
