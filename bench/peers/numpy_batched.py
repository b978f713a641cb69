#!/usr/bin/env python3
"""numpy_batched.py - the same analyses as torch_batched.py in batched NumPy (float32): a
batch of examples padded to T, rollout as the full-matrix product of (mean_h A + I) /
rowsum with np.matmul (O(L T^3)), Chefer's rule with np.matmul, the head statistics and
head importance as masked reductions (0 ln 0 = 0 through np.where), agreement with scipy.

Run: python3 bench/peers/numpy_batched.py DATASET --run RUN
(OpenBLAS threads follow OPENBLAS_NUM_THREADS; bench/run.sh sets it.)
Prints one JSON line (bench/peers/common.py).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def head_stats(a, g, m, n, first, last, dist, stats, imp, l):
    """a, g [B,H,T,T] float32; m [B,T] valid queries; n [B] valid tokens."""
    w = (m / n[:, None])[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(a > 0, a * np.log(a), 0.0).sum(-1)
    stats["entropy"][:, l] = (ent * w).sum(-1)
    logn = np.log(np.maximum(n, 2))[:, None]
    stats["entropy_norm"][:, l] = np.where(n[:, None] > 1, stats["entropy"][:, l] / logn, 0)
    stats["confidence"][:, l] = (a.max(-1) * w).sum(-1)
    b = np.arange(a.shape[0])
    stats["to_first"][:, l] = (a[b, :, :, first] * w).sum(-1)
    stats["to_last"][:, l] = (a[b, :, :, last] * w).sum(-1)
    stats["to_self"][:, l] = (np.diagonal(a, 0, -2, -1) * w).sum(-1)
    stats["to_prev"][:, l] = (np.diagonal(a, -1, -2, -1) * w[..., 1:]).sum(-1)
    stats["to_next"][:, l] = (np.diagonal(a, 1, -2, -1) * w[..., :-1]).sum(-1)
    stats["distance"][:, l] = ((a * dist).sum(-1) * w).sum(-1)
    if g is not None:
        imp[:, l] = np.abs((a * g).sum(-1)).sum(-1)


def analyse(ds, shard, lo, hi, pairs, k):
    L, H = ds.L, ds.H
    mask = np.asarray(shard["attention_mask"][0][lo:hi]) != 0
    m = mask.astype(np.float32)
    B, T = m.shape
    n = m.sum(1)
    first = mask.argmax(1)
    last = T - 1 - mask[:, ::-1].argmax(1)
    b = np.arange(B)
    eye = np.broadcast_to(np.eye(T, dtype=np.float32), (B, T, T))
    pos = np.arange(T, dtype=np.float32)
    dist = np.abs(pos[:, None] - pos[None, :])
    has_g = "attention_grads" in shard
    stats = {s: np.zeros((B, L, H), np.float32) for s in common.STATS}
    imp = np.zeros((B, L, H), np.float32)
    roll, grad_r = None, eye.copy()
    for l in range(L):
        a = common.to_f32(shard["attentions"][0][l, lo:hi], ds.dtype)
        g = common.to_f32(shard["attention_grads"][0][l, lo:hi], ds.dtype) if has_g else None
        fused = a.mean(1) + eye
        fused /= fused.sum(-1, keepdims=True)
        roll = fused if roll is None else np.matmul(fused, roll)
        if has_g:
            cam = np.maximum(g * a, 0).mean(1)
            grad_r = grad_r + np.matmul(cam, grad_r)
        head_stats(a, g, m, n, first, last, dist, stats, imp, l)
        if l == L - 1:
            att_last = a.mean(1)[b, first]
    res = {"rollout": roll[b, first], "attention_last": att_last}
    if has_g:
        res["grad_rollout"] = grad_r[b, first]
        res["head.importance"] = imp
    res.update({"head." + s: v for s, v in stats.items()})
    if pairs:
        maps = {key: res[key] for key in ("rollout", "grad_rollout", "attention_last")
                if key in res}
        res.update(common.agreement_block(shard, lo, hi, maps, pairs, k))
    return res


if __name__ == "__main__":
    common.main("numpy_batched", analyse, chunk_default=16)
