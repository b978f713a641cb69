"""common.py - what every peer of bench/run.sh shares: reading the synth dataset (a
.safetensors file or a directory of shards, read with numpy memory maps: no safetensors
package needed), reading attnmap's run folder, the agreement metrics written the way users
write them (scipy.stats, scipy.spatial), the one-time check against attnmap's output, and
the timing loop with its one-line JSON report.

A peer module defines `analyse(ds, lo, hi, want_agreement) -> dict of numpy arrays`
(examples lo..hi-1, padded to the shard's T, keys as in examples.safetensors: "rollout",
"grad_rollout", "attention_last", "head.entropy", ..., "agreement.spearman") and calls
main(name, analyse, ...).
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64,
          "I64": np.int64, "I32": np.int32, "U8": np.uint8, "BOOL": np.uint8,
          "I8": np.int8, "I16": np.int16}
STATS = ["entropy", "entropy_norm", "confidence", "to_first", "to_last", "to_self",
         "to_prev", "to_next", "distance"]
METRICS = ["spearman", "kendall", "pearson", "cosine", "jaccard@{k}",
           "feature_agreement@{k}", "rank_agreement@{k}", "jsd", "tvd"]


def read_safetensors(path):
    """name -> (numpy memmap view, dtype string); __metadata__ -> dict."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out, meta = {}, header.pop("__metadata__", {})
    for name, t in header.items():
        lo, hi = t["data_offsets"]
        raw = mm[8 + size + lo:8 + size + hi]
        out[name] = (raw.view(DTYPES[t["dtype"]]).reshape(t["shape"]), t["dtype"])
    return out, meta


def to_f32(arr, dtype):
    """A float32 copy of a stored float array (BF16 widened by a shift)."""
    if dtype == "BF16":
        return (np.asarray(arr).astype(np.uint32) << 16).view(np.float32)
    return np.asarray(arr, dtype=np.float32)


class Dataset:
    """The shards of a synth dataset in name order, stacked attentions [L,B,H,T,T]."""

    def __init__(self, path):
        files = ([os.path.join(path, f) for f in sorted(os.listdir(path))
                  if f.endswith(".safetensors")] if os.path.isdir(path) else [path])
        self.shards = [read_safetensors(f)[0] for f in files]
        a, self.dtype = self.shards[0]["attentions"]
        self.L, self.H = a.shape[0], a.shape[2]
        self.sizes = [s["attentions"][0].shape[1] for s in self.shards]
        self.N = sum(self.sizes)

    def rows(self):
        """(shard, first global index, B) for every shard."""
        g = 0
        for s, b in zip(self.shards, self.sizes):
            yield s, g, b
            g += b

    def bytes_per_example(self):
        s = self.shards[0]
        a = s["attentions"][0]
        per = a.nbytes / a.shape[1]
        return per * (2 if "attention_grads" in s else 1)


def valid_positions(mask_row):
    return np.nonzero(np.asarray(mask_row) != 0)[0]


# ---- agreement, as users write it (scipy) -----------------------------------------
def agreement(x, y, k):
    """The nine metrics of two importance vectors (float64), NaN where undefined."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import kendalltau, pearsonr, spearmanr
    import warnings
    m = len(x)
    out = [math.nan] * 9
    if m == 0 or np.isnan(x).any() or np.isnan(y).any():
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if m >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0:
            out[0] = float(spearmanr(x, y)[0])
            out[1] = float(kendalltau(x, y)[0])
            out[2] = float(pearsonr(x, y)[0])
        nx, ny = np.linalg.norm(x), np.linalg.norm(y)
        if nx > 0 and ny > 0:
            out[3] = float(np.dot(x, y) / (nx * ny))
    kk = min(k, m)
    tx = sorted(range(m), key=lambda i: (-abs(x[i]), i))[:kk]
    ty = sorted(range(m), key=lambda i: (-abs(y[i]), i))[:kk]
    common, union = len(set(tx) & set(ty)), len(set(tx) | set(ty))
    out[4], out[5] = common / union, common / kk
    out[6] = sum(1 for r in range(kk) if tx[r] == ty[r]) / kk
    ax, ay = np.abs(x), np.abs(y)
    if ax.sum() > 0 and ay.sum() > 0:
        p, q = ax / ax.sum(), ay / ay.sum()
        out[7] = float(jensenshannon(p, q)) ** 2
        out[8] = float(0.5 * np.abs(p - q).sum())
    return out


def saliency_maps(shard, b):
    """Maps of example b from the file: saliency.<name> given, and from embeddings."""
    maps = {}
    for name, (arr, dt) in shard.items():
        if name == "saliency":
            maps["saliency.given"] = to_f32(arr[b], dt)
        elif name.startswith("saliency."):
            maps[name] = to_f32(arr[b], dt)
    if "inputs_embeds" in shard and "inputs_embeds_grads" in shard:
        x = to_f32(*(lambda t: (t[0][b], t[1]))(shard["inputs_embeds"])).astype(np.float64)
        g = to_f32(*(lambda t: (t[0][b], t[1]))(shard["inputs_embeds_grads"])).astype(
            np.float64)
        gx = (g * x).sum(-1)
        maps["saliency.grad_l2"] = np.sqrt((g * g).sum(-1))
        maps["saliency.grad_x_input"] = gx
        maps["saliency.abs_grad_x_input"] = np.abs(gx)
    return maps


def agreement_block(shard, lo, hi, maps, pairs, k):
    """agreement.<metric> [hi-lo, P] for examples lo..hi-1 of a shard; maps: name ->
    [hi-lo, T] computed by the peer; pairs: ["a~b", ...] as attnmap names them."""
    mask = shard["attention_mask"][0]
    special = shard["special_tokens_mask"][0] if "special_tokens_mask" in shard else None
    out = np.full((len(METRICS), hi - lo, len(pairs)), np.nan)
    for e in range(hi - lo):
        keep = np.asarray(mask[lo + e]) != 0
        if special is not None:
            keep &= np.asarray(special[lo + e]) == 0
        allmaps = dict(saliency_maps(shard, lo + e))
        allmaps.update({name: m[e] for name, m in maps.items()})
        for p, pair in enumerate(pairs):
            a, b = pair.split("~")
            x = np.asarray(allmaps[a], dtype=np.float32)[keep].astype(np.float64)
            y = np.asarray(allmaps[b], dtype=np.float32)[keep].astype(np.float64)
            out[:, e, p] = agreement(x, y, k)
    return {"agreement." + METRICS[i].format(k=k): out[i] for i in range(len(METRICS))}


# ---- the check against attnmap -------------------------------------------------------
def check(results, run_dir, lo, hi, rtol, atol):
    """Largest |x - ref| / (atol + rtol |ref|) per output key over examples lo..hi-1 of
    attnmap's examples.safetensors (maps compared at the valid positions only)."""
    ref, _ = read_safetensors(os.path.join(run_dir, "examples.safetensors"))
    mask = np.asarray(ref["mask"][0][lo:hi]) != 0
    worst = {}
    for key, got in results.items():
        if key not in ref:
            continue
        r = np.asarray(ref[key][0][lo:hi], dtype=np.float64)
        g = np.asarray(got, dtype=np.float64)[:, :r.shape[1]] if r.ndim == 2 else np.asarray(
            got, dtype=np.float64)
        tol_r = rtol * (20 if key.startswith("agreement.") else 1)
        err = np.abs(g - r) / (atol + tol_r * np.abs(r))
        both_nan = np.isnan(g) & np.isnan(r)
        err = np.where(both_nan, 0.0, err)
        if r.ndim == 2 and r.shape[1] == mask.shape[1] and not key.startswith("agreement"):
            err = np.where(mask, err, 0.0)
        if key.startswith("agreement."):  # near-ties may rank differently: the median
            worst[key] = float(np.nanmedian(err)) if err.size else 0.0
        else:
            worst[key] = float(np.nanmax(err)) if err.size else 0.0
    return worst


def pairs_of(run_dir):
    _, meta = read_safetensors(os.path.join(run_dir, "examples.safetensors"))
    return json.loads(meta.get("attnmap.pairs", "[]"))


# ---- the timing loop --------------------------------------------------------------------
def main(name, analyse, chunk_default=16, setup=None):
    ap = argparse.ArgumentParser(description="peer %s of bench/run.sh" % name)
    ap.add_argument("dataset")
    ap.add_argument("--run", help="attnmap's run folder on the same dataset (the check)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-examples", type=int, default=0,
                    help="time only the first N examples (slow loops; examples/s holds)")
    ap.add_argument("--chunk", type=int, default=chunk_default)
    ap.add_argument("--no-agreement", action="store_true")
    ap.add_argument("--topk", type=int, default=5)
    args = ap.parse_args()
    if setup:
        setup(args)
    ds = Dataset(args.dataset)
    pairs = pairs_of(args.run) if args.run else []
    want = [] if args.no_agreement else pairs
    todo = ds.N if args.max_examples <= 0 else min(ds.N, args.max_examples)
    report = {"peer": name, "examples": todo, "threads": args.threads}

    def one_pass(check_run):
        done, worst = 0, {}
        for shard, g0, B in ds.rows():
            for lo in range(0, B, args.chunk):
                hi = min(B, lo + args.chunk, lo + todo - done)
                if hi <= lo:
                    break
                res = analyse(ds, shard, lo, hi, want, args.topk)
                if check_run:
                    for k, v in check(res, check_run, g0 + lo, g0 + hi, 1e-3, 1e-5).items():
                        worst[k] = max(worst.get(k, 0.0), v)
                done += hi - lo
            if done >= todo:
                break
        return worst

    if args.run:  # the check, once, before timing (on the first chunk)
        saved = todo
        todo = min(todo, args.chunk)
        worst = one_pass(args.run)
        todo = saved
        report["check_worst"] = max(worst.values()) if worst else None
        report["check_keys"] = len(worst)
        report["check_ok"] = bool(worst) and max(worst.values()) <= 1.0
        report["check_detail"] = {k: round(v, 4) for k, v in worst.items() if v > 0.1}
    times = []
    for _ in range(max(1, args.repeats)):
        t0 = time.perf_counter()
        one_pass(None)
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    report.update({"seconds": med, "examples_per_s": todo / med,
                   "gbs": todo * ds.bytes_per_example() / med / 1e9,
                   "agreement": bool(want), "repeats": len(times)})
    print(json.dumps(report), flush=True)
