#!/usr/bin/env python3
"""joint_attention_loop.py - attention rollout the way samiraabnar/attention_flow's
compute_joint_attention computes it, re-created in our own words, one example at a time
in NumPy float64: the head-mean layer matrices (their notebooks average the heads first),
+ I, divided by the row sums, then joint[0] = aug[0] and joint[i] = aug[i] . joint[i-1]
for every layer; the map is row 0 of the last joint attention. Each example is cropped
to its valid tokens.

Run: python3 bench/peers/joint_attention_loop.py DATASET --run RUN_ROLLOUT
Prints one JSON line (bench/peers/common.py).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def compute_joint_attention(att_mat, add_residual=True):
    """att_mat: [L,n,n]. Returns [L,n,n] joint attentions."""
    if add_residual:
        residual_att = np.eye(att_mat.shape[1])[None, ...]
        aug_att_mat = att_mat + residual_att
        aug_att_mat = aug_att_mat / aug_att_mat.sum(axis=-1)[..., None]
    else:
        aug_att_mat = att_mat
    joint_attentions = np.zeros(aug_att_mat.shape)
    layers = joint_attentions.shape[0]
    joint_attentions[0] = aug_att_mat[0]
    for i in np.arange(1, layers):
        joint_attentions[i] = aug_att_mat[i].dot(joint_attentions[i - 1])
    return joint_attentions


def analyse(ds, shard, lo, hi, pairs, k):
    mask = np.asarray(shard["attention_mask"][0][lo:hi]) != 0
    T = mask.shape[1]
    out = np.zeros((hi - lo, T), np.float32)
    for e in range(hi - lo):
        v = common.valid_positions(mask[e])
        s, t = v[0], v[-1] + 1
        att = common.to_f32(shard["attentions"][0][:, lo + e, :, s:t, s:t], ds.dtype)
        att_mat = att.astype(np.float64).mean(axis=1)
        out[e, s:t] = compute_joint_attention(att_mat)[-1][0]
    return {"rollout": out}


if __name__ == "__main__":
    common.main("joint_attention_loop", analyse, chunk_default=8)
