#!/usr/bin/python3
"""torch_long.py - the PyTorch peer of the long-context form (bench/long_context.py): what a
user does today with a model that returns Q, K, V and dO, materialising the attention as
eager attention does. Per layer, from the top down: A = softmax(scale Q K^T + causal mask)
[H,T,T] and G = dO V^T [H,T,T] in float32 (K and V repeated over each group of query
heads); rollout v <- v rownorm(mean_h A + I) (Abnar & Zuidema 2020), gradient rollout
v <- v + v mean_h max(0, G * A) (Chefer et al. 2021), both as row vectors from the target
row (last); attention_last (row `last` of mean_h A of the last layer); per-head entropy
and importance sum_i |sum_j a_ij g_ij|. Memory: two [H,T,T] float32 tensors and the
softmax's temporaries, 8 GiB each at T = 16k for H = 8.

  usage: /usr/bin/python3 bench/peers/torch_long.py LONG.safetensors [--threads 2]
                                                     [--check RUN]
--check RUN: rollout, grad_rollout, attention_last, head.entropy and head.importance of
attnmap's run folder must agree within 1e-4 of their largest value; the last line says
how close.
Prints one line: "ok T=... max_rel=..." or raises (MemoryError/RuntimeError when the
address-space limit of the caller stops it).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from long_context import read_safetensors  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = read_safetensors(args.path)
    with open(args.path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(size))["__metadata__"]
    attn = json.loads(meta["attnmap.attention"])
    L = sum(1 for k in x if k.startswith("queries."))
    H, T, d = x["queries.0"].shape[1:]
    Hkv = x["keys.0"].shape[1]
    scale = attn.get("scale") or 1.0 / np.sqrt(d)
    t = T - 1  # target last
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    v_roll = torch.zeros(T, dtype=torch.float64)
    v_roll[t] = 1.0
    v_grad = v_roll.clone()
    entropy, importance = torch.zeros(L, H), torch.zeros(L, H)
    last = None
    for l in reversed(range(L)):
        q = torch.from_numpy(x[f"queries.{l}"][0]).float()
        k = torch.from_numpy(x[f"keys.{l}"][0]).float().repeat_interleave(H // Hkv, 0)
        v = torch.from_numpy(x[f"values.{l}"][0]).float().repeat_interleave(H // Hkv, 0)
        do = torch.from_numpy(x[f"attention_output_grads.{l}"][0]).float()
        s = torch.matmul(q, k.transpose(1, 2)) * scale
        s.masked_fill_(causal, float("-inf"))
        a = torch.softmax(s, dim=-1)
        del s
        g = torch.matmul(do, v.transpose(1, 2))
        entropy[l] = -torch.special.xlogy(a, a).sum(-1).mean(-1)
        importance[l] = (a * g).sum(-1).abs().sum(-1)
        fused = a.mean(0)
        fused.diagonal().add_(1.0)
        fused /= fused.sum(-1, keepdim=True)
        if l == L - 1:
            last = a.mean(0)[t].double()
        cam = (g * a).clamp_(min=0).mean(0)
        del a, g
        v_roll = v_roll @ fused.double()
        v_grad = v_grad + v_grad @ cam.double()
        del fused, cam
    worst = float("nan")
    if args.check:
        run = read_safetensors(os.path.join(args.check, "examples.safetensors"))
        worst = 0.0
        for name, mine in (("rollout", v_roll), ("grad_rollout", v_grad),
                           ("attention_last", last), ("head.entropy", entropy),
                           ("head.importance", importance)):
            ref = np.asarray(run[name], np.float64).ravel()
            got = mine.numpy().ravel()
            scale_ = np.abs(ref).max()
            err = float(np.abs(got - ref).max() / scale_)
            worst = max(worst, err)
            if err > 1e-4:
                raise SystemExit(f"check failed: {name} differs from attnmap's by {err:.2e} "
                                 "of its largest value")
    print(f"ok T={T} L={L} H={H}: largest difference to attnmap's maps {worst:.1e} "
          "of their largest value")


if __name__ == "__main__":
    main()
