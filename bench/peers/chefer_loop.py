#!/usr/bin/python3
"""chefer_loop.py - gradient-weighted rollout the way hila-chefer/Transformer-MM-
Explainability computes it (generate_relevance: avg_heads, apply_self_attention_rules),
re-created in our own words, one example at a time: R = I; for each layer from the
first, cam = (grad * attention).clamp(min=0).mean(dim=0) and R = R + cam @ R; the map
is row 0 of R. Their code takes the attention and its gradient from hooks on a model;
here both come from the dataset file, cropped to the example's valid tokens.

Run: /usr/bin/python3 bench/peers/chefer_loop.py DATASET --run RUN_GRAD_ROLLOUT
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


def avg_heads(cam, grad):
    return (grad * cam).clamp(min=0).mean(dim=0)


def apply_self_attention_rules(R_ss, cam_ss):
    return torch.matmul(cam_ss, R_ss)


def generate_relevance(attentions, grads):
    """attentions, grads: lists of [H,n,n] tensors, first layer first. Returns [n,n]."""
    n = attentions[0].shape[-1]
    R = torch.eye(n, n)
    for cam, grad in zip(attentions, grads):
        cam = avg_heads(cam, grad)
        R = R + apply_self_attention_rules(R, cam)
    return R


def analyse(ds, shard, lo, hi, pairs, k):
    mask = np.asarray(shard["attention_mask"][0][lo:hi]) != 0
    T = mask.shape[1]
    out = np.zeros((hi - lo, T), np.float32)
    for e in range(hi - lo):
        v = common.valid_positions(mask[e])
        s, t = v[0], v[-1] + 1
        atts, grads = [], []
        for l in range(ds.L):
            atts.append(torch.from_numpy(common.to_f32(
                shard["attentions"][0][l, lo + e, :, s:t, s:t], ds.dtype)))
            grads.append(torch.from_numpy(common.to_f32(
                shard["attention_grads"][0][l, lo + e, :, s:t, s:t], ds.dtype)))
        with torch.no_grad():
            out[e, s:t] = generate_relevance(atts, grads)[0].numpy()
    return {"grad_rollout": out}


def setup(args):
    torch.set_num_threads(args.threads)


if __name__ == "__main__":
    common.main("chefer_loop", analyse, chunk_default=8, setup=setup)
