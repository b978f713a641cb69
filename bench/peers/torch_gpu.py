#!/usr/bin/env python3
"""torch_gpu.py - the GPU peer of bench/bench_cuda (issue 3): the analyses of attnmap's
fused pass written the way a PyTorch user writes them on a GPU today, on the same
dataset's tensors already on the device: every layer's [B,H,T,T] widened to float32,
attention rollout as the full product of rownorm(mean_h A + I) with torch.bmm
(O(L T^3), Abnar & Zuidema 2020), Chefer et al.'s R <- R + mean_h(G*A)^+ R with
torch.bmm, the head statistics and Michel et al.'s head importance as masked reductions,
last-layer attention. Timed with CUDA events (median of --repeats after a warm-up) over
the first --examples examples in batches of --batch; checked once against an attnmap run
folder of the same dataset (--run), as bench/peers/common.py checks the CPU peers.

  usage: python3 bench/peers/torch_gpu.py DATASET [--run RUN] [--examples N] [--batch B]
Prints one JSON line: examples/s and GB/s of attention + gradient bytes.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def to_device(arr, dtype, dev):
    """A stored [..] array as a torch tensor on dev in its own 16/32-bit type."""
    a = np.ascontiguousarray(arr)
    if dtype == "BF16":
        return torch.from_numpy(a.view(np.int16)).to(dev).view(torch.bfloat16)
    return torch.from_numpy(a).to(dev)


def analyse(att, grad, mask, stats_names):
    """att, grad: [L,B,H,T,T] on the device (stored type); mask [B,T] bool."""
    L, B, H, T, _ = att.shape
    dev = att.device
    m = mask.float()
    n = m.sum(1)
    w = (m / n.clamp(min=1)[:, None])[:, None, :]
    first = mask.float().argmax(1)
    last = T - 1 - mask.flip(1).float().argmax(1)
    rows = torch.arange(B, device=dev)
    eye = torch.eye(T, device=dev).expand(B, T, T)
    pos = torch.arange(T, dtype=torch.float32, device=dev)
    dist = (pos[:, None] - pos[None, :]).abs()
    stats = {s: torch.zeros(B, L, H, device=dev) for s in stats_names}
    imp = torch.zeros(B, L, H, device=dev)
    roll, grad_r = None, eye.clone()
    for l in range(L):
        a = att[l].float()
        g = grad[l].float() if grad is not None else None
        fused = a.mean(1) + eye
        fused = fused / fused.sum(-1, keepdim=True)
        roll = fused if roll is None else torch.bmm(fused, roll)
        if g is not None:
            cam = (g * a).clamp(min=0).mean(1)
            grad_r = grad_r + torch.bmm(cam, grad_r)
            imp[:, l] = (a * g).sum(-1).abs().sum(-1)
        ent = -torch.special.xlogy(a, a).sum(-1)
        stats["entropy"][:, l] = (ent * w).sum(-1)
        stats["entropy_norm"][:, l] = torch.where(
            n[:, None] > 1, stats["entropy"][:, l] / torch.log(n)[:, None], 0.0)
        stats["confidence"][:, l] = (a.amax(-1) * w).sum(-1)
        idx_f = first[:, None, None, None].expand(B, H, T, 1)
        idx_l = last[:, None, None, None].expand(B, H, T, 1)
        stats["to_first"][:, l] = (a.gather(-1, idx_f)[..., 0] * w).sum(-1)
        stats["to_last"][:, l] = (a.gather(-1, idx_l)[..., 0] * w).sum(-1)
        stats["to_self"][:, l] = (torch.diagonal(a, 0, -2, -1) * w).sum(-1)
        stats["to_prev"][:, l] = (torch.diagonal(a, -1, -2, -1) * w[..., 1:]).sum(-1)
        stats["to_next"][:, l] = (torch.diagonal(a, 1, -2, -1) * w[..., :-1]).sum(-1)
        stats["distance"][:, l] = ((a * dist).sum(-1) * w).sum(-1)
        if l == L - 1:
            att_last = a.mean(1)[rows, first]
    res = {"rollout": roll[rows, first], "attention_last": att_last}
    if grad is not None:
        res["grad_rollout"] = grad_r[rows, first]
        res["head.importance"] = imp
    res.update({"head." + s: v for s, v in stats.items()})
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("--run", help="attnmap run folder of the dataset, for the check")
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"peer": "torch_gpu", "cuda": False}))
        return
    torch.backends.cuda.matmul.allow_tf32 = False  # float products, as attnmap
    dev = torch.device("cuda:0")
    ds = common.Dataset(args.dataset)
    shard = ds.shards[0]
    a_arr, dt = shard["attentions"]
    K = min(args.examples, a_arr.shape[1])
    att = to_device(a_arr[:, :K], dt, dev)
    grad = (to_device(shard["attention_grads"][0][:, :K], dt, dev)
            if "attention_grads" in shard else None)
    mask = torch.from_numpy(np.asarray(shard["attention_mask"][0][:K]) != 0).to(dev)
    batches = [(lo, min(K, lo + args.batch)) for lo in range(0, K, args.batch)]

    def one_pass():
        out = []
        for lo, hi in batches:
            out.append(analyse(att[:, lo:hi], grad[:, lo:hi] if grad is not None else None,
                               mask[lo:hi], common.STATS))
        return out

    report = {"peer": "torch_gpu", "device": torch.cuda.get_device_name(dev),
              "examples": K, "batch": args.batch, "torch": torch.__version__}
    first = one_pass()  # warm-up, and the check
    torch.cuda.synchronize()
    if args.run:
        worst = {}
        for (lo, hi), res in zip(batches, first):
            got = {k: v.cpu().numpy() for k, v in res.items()}
            for k, v in common.check(got, args.run, lo, hi, 1e-3, 1e-5).items():
                worst[k] = max(worst.get(k, 0.0), v)
        report["check_worst"] = max(worst.values()) if worst else None
        report["check_ok"] = bool(worst) and max(worst.values()) <= 1.0
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(max(1, args.repeats)):
        start.record()
        one_pass()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    times.sort()
    med = times[len(times) // 2]
    per = ds.bytes_per_example()
    report.update({"seconds": med, "examples_per_s": K / med, "gbs": K * per / med / 1e9,
                   "repeats": len(times)})
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
