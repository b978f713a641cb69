#!/usr/bin/python3
"""torch_batched.py - the peer written the way a PyTorch user writes it today: a batch of
examples at once, padded to T, every layer's [B,H,T,T] widened to float32; attention
rollout as the full-matrix product of (mean_h A + I) / rowsum with torch.bmm (O(L T^3),
Abnar & Zuidema 2020 / vit-explain with keepdim), Chefer's rule R <- R + mean_h(G*A)^+ R
with torch.bmm, the head statistics and Michel's head importance as masked reductions,
and the agreement of every pair of maps with scipy.stats / scipy.spatial per example.

Run with Debian's python3-torch (CPU), e.g.
  /usr/bin/python3 bench/peers/torch_batched.py DATASET --run RUN --threads 2
Prints one JSON line (bench/peers/common.py).
"""
import os
import sys
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def layer(shard, key, l, lo, hi, dtype):
    """Layer l of examples lo..hi-1 as a float32 torch tensor [B,H,T,T]."""
    arr = shard[key][0][l, lo:hi]
    if dtype == "BF16":
        return torch.from_numpy(np.ascontiguousarray(arr).view(np.int16)).view(
            torch.bfloat16).float()
    return torch.from_numpy(np.ascontiguousarray(arr)).float()


def head_stats(a, g, m, n, first, last, dist, stats, imp, l):
    """Masked reductions of one layer: a, g [B,H,T,T]; m [B,T] valid queries."""
    w = (m / n[:, None])[:, None, :]  # mean over valid query rows
    ent = -torch.special.xlogy(a, a).sum(-1)
    stats["entropy"][:, l] = (ent * w).sum(-1)
    stats["entropy_norm"][:, l] = torch.where(
        n[:, None] > 1, stats["entropy"][:, l] / torch.log(n)[:, None], 0.0)
    stats["confidence"][:, l] = (a.amax(-1) * w).sum(-1)
    B, H, T, _ = a.shape
    idx_first = first[:, None, None, None].expand(B, H, T, 1)
    idx_last = last[:, None, None, None].expand(B, H, T, 1)
    stats["to_first"][:, l] = (a.gather(-1, idx_first)[..., 0] * w).sum(-1)
    stats["to_last"][:, l] = (a.gather(-1, idx_last)[..., 0] * w).sum(-1)
    stats["to_self"][:, l] = (torch.diagonal(a, 0, -2, -1) * w).sum(-1)
    # a[i, i-1] for rows 1..T-1 (the first valid row reads a padded key: 0)
    stats["to_prev"][:, l] = (torch.diagonal(a, -1, -2, -1) * w[..., 1:]).sum(-1)
    stats["to_next"][:, l] = (torch.diagonal(a, 1, -2, -1) * w[..., :-1]).sum(-1)
    stats["distance"][:, l] = ((a * dist).sum(-1) * w).sum(-1)
    if g is not None:
        imp[:, l] = (a * g).sum(-1).abs().sum(-1)


def analyse(ds, shard, lo, hi, pairs, k):
    L, H = ds.L, ds.H
    mask = torch.from_numpy(np.asarray(shard["attention_mask"][0][lo:hi]) != 0)
    m = mask.float()
    B, T = m.shape
    n = m.sum(1)
    first = mask.float().argmax(1)
    last = T - 1 - mask.flip(1).float().argmax(1)
    rows = torch.arange(B)
    eye = torch.eye(T).expand(B, T, T)
    pos = torch.arange(T, dtype=torch.float32)
    dist = (pos[:, None] - pos[None, :]).abs()
    has_g = "attention_grads" in shard
    stats = {s: torch.zeros(B, L, H) for s in common.STATS}
    imp = torch.zeros(B, L, H)
    roll, grad_r = None, eye.clone()
    for l in range(L):
        a = layer(shard, "attentions", l, lo, hi, ds.dtype)
        g = layer(shard, "attention_grads", l, lo, hi, ds.dtype) if has_g else None
        fused = a.mean(1) + eye
        fused = fused / fused.sum(-1, keepdim=True)
        roll = fused if roll is None else torch.bmm(fused, roll)
        if has_g:
            cam = (g * a).clamp(min=0).mean(1)
            grad_r = grad_r + torch.bmm(cam, grad_r)
        head_stats(a, g, m, n, first, last, dist, stats, imp, l)
        if l == L - 1:
            att_last = a.mean(1)[rows, first]
    res = {"rollout": roll[rows, first], "attention_last": att_last}
    if has_g:
        res["grad_rollout"] = grad_r[rows, first]
        res["head.importance"] = imp
    res.update({"head." + s: v for s, v in stats.items()})
    res = {key: v.numpy() for key, v in res.items()}
    if pairs:
        maps = {key: res[key] for key in ("rollout", "grad_rollout", "attention_last")
                if key in res}
        res.update(common.agreement_block(shard, lo, hi, maps, pairs, k))
    return res


def setup(args):
    torch.set_num_threads(args.threads)


if __name__ == "__main__":
    common.main("torch_batched", analyse, chunk_default=16, setup=setup)
