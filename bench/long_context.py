#!/usr/bin/env python3
"""long_context.py - the long-context form end to end (issue 14, docs/long-context.md):
for a small decoder shape (L=2, H=8, Hkv=2, d=64, causal, F16 Q/K/V/dO, one example), at
each T it writes a long-form dataset (queries/keys/values/attention_output_grads), then
times, each in a process of its own under /usr/bin/time (wall, user+sys CPU, peak RSS):

  long     `attnmap analyze` on the long form (rollout, grad rollout, attention_last,
           head statistics, importance; target last);
  matrix   `attnmap analyze` on its matrix-form twin (attentions/attention_grads formed
           by torch in float64 from the same Q, K, V, dO, stored F32) where the file
           fits under --matrix-max-gib; its outputs are compared with the long run's;
  torch    a PyTorch peer that materialises A = softmax(scale Q K^T + causal mask) and
           G = dO V^T per layer (the eager-attention way) and computes rollout, gradient
           rollout, attention_last, entropy and importance from them; run under an
           address-space limit (--peer-limit-gib) so that it fails instead of taking
           the shared machine's memory. Checked against the long run's rollout and grad
           rollout where it finishes.

A row that is not run says why (the file size, or the failure's last line). Data are made
on the fly under --work and deleted after each T. Prints one JSON line per row, then a
markdown table.
  usage: python3 bench/long_context.py --attnmap build/attnmap [--tokens 1024,4096,16384]
                                       [--threads 2] [--work DIR] [--matrix-max-gib 4]
                                       [--peer-limit-gib 12]
Needs numpy and torch (Debian's python3-torch).
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import time

import numpy as np

L, H, HKV, D = 2, 8, 2, 64
SCALE = 0.125


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, dtype string, numpy array); data 8-byte aligned."""
    header, offset = {"__metadata__": metadata}, 0
    for name, dt, arr in tensors:
        header[name] = {"dtype": dt, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, arr in tensors:
            f.write(np.ascontiguousarray(arr).tobytes())


def read_safetensors(path):
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
    base = 8 + size
    types = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
             "U8": np.uint8, "BOOL": np.uint8, "F64": np.float64}
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] not in types:
            continue
        a, b = t["data_offsets"]
        out[name] = np.fromfile(path, dtype=types[t["dtype"]], count=(b - a) //
                                np.dtype(types[t["dtype"]]).itemsize,
                                offset=base + a).reshape(t["shape"])
    return out


def make_inputs(T, seed=11):
    rng = np.random.default_rng(seed)
    spread = np.sqrt(3.0)  # uniform of unit variance, as bench/bench_long.c
    x = {}
    for l in range(L):
        x[f"queries.{l}"] = rng.uniform(-spread, spread, (1, H, T, D)).astype(np.float16)
        x[f"keys.{l}"] = rng.uniform(-spread, spread, (1, HKV, T, D)).astype(np.float16)
        x[f"values.{l}"] = rng.uniform(-spread, spread, (1, HKV, T, D)).astype(np.float16)
        x[f"attention_output_grads.{l}"] = (
            0.1 * rng.uniform(-spread, spread, (1, H, T, D))).astype(np.float16)
    return x


ATTN_META = json.dumps({"scale": SCALE, "causal": True, "sliding_window": None,
                        "softcap": None})


def write_long(path, x, T):
    mask = np.ones((1, T), dtype=np.int64)
    tensors = [(n, "F16", a) for n, a in x.items()] + [("attention_mask", "I64", mask)]
    write_safetensors(path, tensors, {"attnmap.attention": ATTN_META})


def write_matrix(path, x, T):
    """A and G formed in float64 from the stored F16 values, stored F32, layer by layer
    (one [1,H,T,T] pair in memory at a time)."""
    import torch
    header, offset, order = {"__metadata__": {}}, 0, []
    for l in range(L):
        for name in (f"attentions.{l}", f"attention_grads.{l}"):
            header[name] = {"dtype": "F32", "shape": [1, H, T, T],
                            "data_offsets": [offset, offset + H * T * T * 4]}
            offset += H * T * T * 4
            order.append(name)
    header["attention_mask"] = {"dtype": "I64", "shape": [1, T],
                                "data_offsets": [offset, offset + 8 * T]}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for l in range(L):
            q, k, v, do = (torch.from_numpy(x[f"{n}.{l}"][0].astype(np.float64)) for n in
                           ("queries", "keys", "values", "attention_output_grads"))
            a_heads, g_heads = [], []
            for h in range(H):
                kv = h // (H // HKV)
                s = SCALE * (q[h] @ k[kv].T)
                s.masked_fill_(causal, float("-inf"))
                a_heads.append(torch.softmax(s, dim=-1).float().numpy())
                g_heads.append((do[h] @ v[kv].T).float().numpy())
            for block in (a_heads, g_heads):
                for arr in block:
                    f.write(arr.tobytes())
        f.write(np.ones((1, T), dtype=np.int64).tobytes())


def timed(cmd, limit_bytes=None):
    """Runs cmd under /usr/bin/time; returns (rc, wall s, cpu s, peak MiB, last line)."""
    pre = ["prlimit", f"--as={limit_bytes}"] if limit_bytes else []
    full = ["/usr/bin/time", "-f", "@@time %e %U %S %M"] + pre + cmd
    t0 = time.monotonic()
    p = subprocess.run(full, capture_output=True, text=True)
    wall = time.monotonic() - t0
    lines = [s for s in p.stderr.splitlines() if s.strip()]
    stats = [s for s in lines if s.startswith("@@time")]
    other = [s for s in lines if not s.startswith("@@time") and "Command exited" not in s
             and "Command terminated" not in s]
    if stats:
        _, e, u, s_, m = stats[-1].split()
        wall, cpu, mib = float(e), float(u) + float(s_), float(m) / 1024.0
    else:
        cpu, mib = float("nan"), float("nan")
    out_last = (p.stdout.strip().splitlines() or [""])[-1]
    return p.returncode, wall, cpu, mib, (other[-1] if other else out_last)


def max_rel(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    floor = 1e-3 * np.abs(b).max()
    keep = np.abs(b) > floor
    return float(np.max(np.abs(a[keep] - b[keep]) / np.abs(b[keep]))) if keep.any() else 0.0


def compare_runs(long_run, ref_run):
    got = read_safetensors(os.path.join(long_run, "examples.safetensors"))
    ref = read_safetensors(os.path.join(ref_run, "examples.safetensors"))
    worst = 0.0
    for name, arr in ref.items():
        if name in got and arr.dtype.kind == "f" and got[name].shape == arr.shape:
            worst = max(worst, max_rel(got[name], arr))
    return worst


def row(T, impl, rc, wall, cpu, mib, note, extra=None):
    r = {"T": T, "impl": impl, "ok": rc == 0, "wall_s": round(wall, 3),
         "cpu_s": round(cpu, 3), "peak_mib": round(mib, 1), "note": note}
    r.update(extra or {})
    print(json.dumps(r), flush=True)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--attnmap", required=True)
    ap.add_argument("--tokens", default="1024,4096,16384")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="/tmp/attnmap-bench/long-context")
    ap.add_argument("--matrix-max-gib", type=float, default=4.0)
    ap.add_argument("--peer-limit-gib", type=float, default=12.0)
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    rows = []
    for T in (int(t) for t in args.tokens.split(",")):
        work = os.path.join(args.work, f"T{T}")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        x = make_inputs(T)
        lpath, mpath = os.path.join(work, "long.safetensors"), os.path.join(work, "matrix.safetensors")
        write_long(lpath, x, T)
        lbytes = os.path.getsize(lpath)
        analyze = [args.attnmap, "analyze", None, "-o", None, "--target", "last", "--quiet",
                   "--threads", str(args.threads), "--force"]
        lrun = os.path.join(work, "run-long")
        cmd = list(analyze)
        cmd[2], cmd[4] = lpath, lrun
        rc, wall, cpu, mib, last = timed(cmd)
        rows.append(row(T, "attnmap analyze, long form", rc, wall, cpu, mib,
                        "" if rc == 0 else last, {"file_mib": round(lbytes / 2**20, 1)}))
        mbytes = 2 * L * H * T * T * 4 + 8 * T
        if mbytes <= args.matrix_max_gib * 2**30:
            write_matrix(mpath, x, T)
            mrun = os.path.join(work, "run-matrix")
            cmd = list(analyze)
            cmd[2], cmd[4] = mpath, mrun
            rc, wall, cpu, mib, last = timed(cmd)
            extra = {"file_mib": round(mbytes / 2**20, 1)}
            if rc == 0 and rows[-1]["ok"]:
                extra["max_rel_diff_long_vs_matrix"] = compare_runs(lrun, mrun)
            rows.append(row(T, "attnmap analyze, matrix form", rc, wall, cpu, mib,
                            "" if rc == 0 else last, extra))
            os.remove(mpath)
        else:
            rows.append(row(T, "attnmap analyze, matrix form", 1, float("nan"),
                            float("nan"), float("nan"),
                            f"not run: its file would be {mbytes / 2**30:.1f} GiB (F32 "
                            f"attentions + attention_grads; > {args.matrix_max_gib:g} GiB)",
                            {"file_mib": round(mbytes / 2**20, 1)}))
        cmd = [sys.executable, os.path.join(here, "peers", "torch_long.py"), lpath,
               "--threads", str(args.threads), "--check", lrun]
        rc, wall, cpu, mib, last = timed(cmd, int(args.peer_limit_gib * 2**30))
        rows.append(row(T, "PyTorch, A materialised", rc, wall, cpu, mib, last))
        shutil.rmtree(work, ignore_errors=True)
    print("\n| T | path | wall s | CPU-s | peak RSS MiB | input file MiB | note |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if r["ok"]:
            note = r["note"] if r["impl"].startswith("PyTorch") else ""
            if "max_rel_diff_long_vs_matrix" in r:
                note = f"outputs equal the long run's within {r['max_rel_diff_long_vs_matrix']:.1e} rel."
            print(f"| {r['T']:,} | {r['impl']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | "
                  f"{r['peak_mib']:.0f} | {r.get('file_mib', '')} | {note} |")
        else:
            print(f"| {r['T']:,} | {r['impl']} | failed | | | {r.get('file_mib', '')} | "
                  f"{r['note'][:160]} |")


if __name__ == "__main__":
    main()
