#!/usr/bin/env python3
"""check_reference.py - re-runs the published reference functions on a dataset's own
tensors and compares attnmap's rollout and gradient-weighted rollout with them:

  - attention rollout: Abnar & Zuidema's `compute_joint_attention` (samiraabnar/
    attention_flow, attention_graph_util.py, add_residual=True) on the head-mean
    attention of the valid tokens, row `cls` (the first valid token) or the mean of the
    rows (--target) of the last layer's joint attention;
  - gradient-weighted rollout: Chefer et al.'s relevance rule (hila-chefer/
    Transformer-MM-Explainability: `avg_heads`, `apply_self_attention_rules` and the
    `R += ...` loop over the blocks), in PyTorch as the authors wrote it (numpy when torch
    is missing), the same row of R.

attnmap's numbers come from a run folder made by `attnmap analyze DATASET -o RUN`
(--run) and/or from the Python module on the same tensors in memory (--module). Every
value must agree within --rtol (default 1e-5) relative: |x - ref| <= rtol * |ref|, plus
an absolute 1e-12 for exact zeros. Exit status 0 when all agree, 1 otherwise.

    attnmap analyze examples/data/minilm-sentiment -o RUN/ --target mean
    python3 examples/check_reference.py examples/data/minilm-sentiment --run RUN/ --module \
        --target mean
"""
import argparse
import glob
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))


# ---- samiraabnar/attention_flow, attention_graph_util.py (verbatim) -------------------
def compute_joint_attention(att_mat, add_residual=True):
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


# ---- hila-chefer/Transformer-MM-Explainability (their torch code) ----------------------
def chefer_relevance(attentions, grads):
    """attentions, grads: lists over blocks (forward order) of [H,n,n] float64 arrays."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None:  # the same rules in numpy
        R = np.eye(attentions[0].shape[-1])
        for cam, grad in zip(attentions, grads):
            cam = np.clip(grad * cam, 0, None).mean(axis=0)
            R = R + cam @ R
        return R

    # rule 5 from paper
    def avg_heads(cam, grad):
        cam = cam.reshape(-1, cam.shape[-2], cam.shape[-1])
        grad = grad.reshape(-1, grad.shape[-2], grad.shape[-1])
        cam = grad * cam
        cam = cam.clamp(min=0).mean(dim=0)
        return cam

    # rule 6 from paper
    def apply_self_attention_rules(R_ss, cam_ss):
        R_ss_addition = torch.matmul(cam_ss, R_ss)
        return R_ss_addition

    num_tokens = attentions[0].shape[-1]
    R = torch.eye(num_tokens, num_tokens, dtype=torch.float64)
    for cam, grad in zip(attentions, grads):
        cam = avg_heads(torch.from_numpy(cam), torch.from_numpy(grad))
        R += apply_self_attention_rules(R, cam)
    return R.numpy()


# ---- the dataset ---------------------------------------------------------------------
def load_shards(path):
    import attnmap

    files = sorted(glob.glob(os.path.join(path, "*.safetensors"))) if os.path.isdir(path) \
        else [path]
    return [attnmap.read_safetensors(f)[0] for f in files]


def references(shard, target):
    """(valid positions, rollout row, grad rollout row) per example, float64; the row is
    that of the first valid token (cls) or the mean of all rows (mean)."""
    A = shard["attentions"].astype(np.float64)  # [L,B,H,T,T]
    G = shard["attention_grads"].astype(np.float64)
    mask = shard["attention_mask"].astype(bool)
    out = []
    for b in range(A.shape[1]):
        idx = np.flatnonzero(mask[b])
        ix = np.ix_(range(A.shape[0]), range(A.shape[2]), idx, idx)
        a, g = A[:, b][ix], G[:, b][ix]  # [L,H,n,n]
        joint = compute_joint_attention(a.mean(axis=1), add_residual=True)
        R = chefer_relevance(list(a), list(g))
        pick = (lambda M: M.mean(axis=0)) if target == "mean" else (lambda M: M[0])
        out.append((idx, pick(joint[-1]), pick(R)))
    return out


def compare(name, got, want, rtol):
    err = np.abs(got - want)
    bad = err > rtol * np.abs(want) + 1e-12
    rel = float((err / np.maximum(np.abs(want), 1e-30)).max()) if want.size else 0.0
    return int(bad.sum()), rel


def check(shards, source, maps_of, rtol, target):
    worst = {"rollout": 0.0, "grad_rollout": 0.0}
    failures = 0
    row = 0
    for s, shard in enumerate(shards):
        maps = maps_of(s, shard)
        for b, (idx, roll, grad) in enumerate(references(shard, target)):
            for key, ref in (("rollout", roll), ("grad_rollout", grad)):
                got = maps[key][row + b if source == "run" else b][idx].astype(np.float64)
                n, rel = compare(key, got, ref, rtol)
                worst[key] = max(worst[key], rel)
                if n:
                    failures += n
                    print("%s: shard %d example %d: %s differs at %d positions (max rel %.3g)"
                          % (source, s, b, key, n, rel))
        row += shard["attentions"].shape[1]
    print("%s: %d examples, target %s, max relative error rollout %.3g, grad_rollout %.3g "
          "(rtol %g): %s" % (source, row, target, worst["rollout"], worst["grad_rollout"], rtol,
             "ok" if failures == 0 else "%d values differ" % failures))
    return failures == 0, worst


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset")
    p.add_argument("--run", help="run folder of `attnmap analyze DATASET -o RUN`")
    p.add_argument("--module", action="store_true", help="also through python/attnmap")
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--target", choices=("cls", "mean"), default="cls",
                   help="the row compared (the run folder must use the same --target)")
    args = p.parse_args(argv)
    if not args.run and not args.module:
        p.error("give --run RUN and/or --module")
    shards = load_shards(args.dataset)
    ok = True
    if args.run:
        import attnmap

        run = attnmap.read_run(args.run)
        opts = run.summary["provenance"]["options"]
        if opts.get("target", args.target) != args.target:
            p.error("the run was made with --target %s" % opts.get("target"))
        good, _ = check(shards, "run", lambda s, sh: run.examples, args.rtol, args.target)
        ok &= good
    if args.module:
        import attnmap

        def module_maps(s, sh):
            return attnmap.analyze(sh["attentions"], sh["attention_grads"],
                                   attention_mask=sh["attention_mask"],
                                   methods=["rollout", "grad_rollout"],
                                   target=args.target).maps

        good, _ = check(shards, "module", module_maps, args.rtol, args.target)
        ok &= good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
