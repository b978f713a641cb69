#!/usr/bin/python3
"""vit_explain_loop.py - attention rollout the way jacobgil/vit-explain's vit_rollout.py
computes it, re-created in our own words, one example at a time as users loop over a
dataset: for each layer (first to last) fuse the heads (mean), zero the smallest
`discard` share of the flattened weights except index 0 (torch.topk), add the identity,
halve, divide by the row sums and multiply onto the running product (torch.matmul);
the map is row 0 of the product.

One difference from the published code, on purpose: vit-explain divides by
`a.sum(dim=-1)` without keepdim, which broadcasts the row sums along the columns (its
issue #16); here the division keeps the dimension (the same cost) so that the result is
the rollout of the paper and can be checked against attnmap's. Each example's attentions
are cropped to its valid tokens, as a per-example script sees them.

Run: /usr/bin/python3 bench/peers/vit_explain_loop.py DATASET --run RUN_ROLLOUT
Prints one JSON line (bench/peers/common.py).
"""
import os
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


def rollout(attentions, discard_ratio=0.0):
    """attentions: list of [1,H,n,n] tensors, first layer first. Returns [n,n]."""
    result = torch.eye(attentions[0].size(-1))
    with torch.no_grad():
        for attention in attentions:
            fused = attention.mean(dim=1)
            flat = fused.view(fused.size(0), -1)
            _, indices = flat.topk(int(flat.size(-1) * discard_ratio), -1, False)
            indices = indices[indices != 0]
            flat[0, indices] = 0
            eye = torch.eye(fused.size(-1))
            a = (fused + 1.0 * eye) / 2
            a = a / a.sum(dim=-1, keepdim=True)
            result = torch.matmul(a, result)
    return result[0]


def analyse(ds, shard, lo, hi, pairs, k):
    mask = np.asarray(shard["attention_mask"][0][lo:hi]) != 0
    T = mask.shape[1]
    out = np.zeros((hi - lo, T), np.float32)
    for e in range(hi - lo):
        v = common.valid_positions(mask[e])
        s, t = v[0], v[-1] + 1  # synth pads on one side: a contiguous span
        layers = []
        for l in range(ds.L):
            a = common.to_f32(shard["attentions"][0][l, lo + e, :, s:t, s:t], ds.dtype)
            layers.append(torch.from_numpy(a)[None])
        out[e, s:t] = rollout(layers)[0].numpy()
    return {"rollout": out}


def setup(args):
    torch.set_num_threads(args.threads)


if __name__ == "__main__":
    common.main("vit_explain_loop", analyse, chunk_default=8, setup=setup)
