#!/usr/bin/env python3
"""compare_runs.py - two run folders of `attnmap analyze` (e.g. --backend cuda against
--backend cpu) compared within the parity suite's tolerances (tests/test_parity.c):
examples.safetensors tensor by tensor (same names, shapes and dtypes; integers and masks
exactly; floats |x - ref| <= atol + rtol |ref| per element with atol = rtol * max|ref|,
normalised MSE <= rtol^2, NaN only where the reference has NaN; *.rows and agreement.*
with their own bounds below) and summary.json number by number with the same rule,
leaving out provenance (backend, device, timings, checksums).

  usage: python3 bench/compare_runs.py GOT_RUN REF_RUN [--rtol 1e-5] [--rtol-rows 1e-4]
Prints one line per tensor and a verdict; exit status 0 when everything agrees.
Needs numpy only (the safetensors header is read by hand).
"""
import argparse
import json
import math
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I32": np.int32,
          "I64": np.int64, "U8": np.uint8, "BOOL": np.uint8, "I8": np.int8,
          "I16": np.int16, "BF16": np.uint16}


def read(path):
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, t in header.items():
        lo, hi = t["data_offsets"]
        out[name] = (np.frombuffer(data[lo:hi], dtype=DTYPES[t["dtype"]]).reshape(t["shape"]),
                     t["dtype"])
    return out, meta


def close(got, ref, rtol):
    """(ok, worst relative error, count of failing elements)."""
    got = got.astype(np.float64)
    ref = ref.astype(np.float64)
    nan_r, nan_g = np.isnan(ref), np.isnan(got)
    bad = int(np.count_nonzero(nan_r != nan_g))
    fin = ~nan_r & ~nan_g
    if not fin.any():
        return bad == 0, 0.0, bad
    r, g = ref[fin], got[fin]
    atol = rtol * float(np.max(np.abs(r)))
    err = np.abs(g - r)
    bad += int(np.count_nonzero(err > atol + rtol * np.abs(r)))
    denom = float(np.sum(r * r))
    nmse = float(np.sum((g - r) ** 2)) / denom if denom > 0 else 0.0
    worst = float(np.max(err / (atol + np.abs(r) + 1e-300)))
    return bad == 0 and nmse <= rtol * rtol, worst, bad


def compare_examples(got_dir, ref_dir, rtol, rtol_rows, rtol_agree):
    got, gmeta = read(got_dir + "/examples.safetensors")
    ref, rmeta = read(ref_dir + "/examples.safetensors")
    ok = True
    if sorted(got) != sorted(ref):
        print("tensors differ: only in got %s, only in ref %s" %
              (sorted(set(got) - set(ref)), sorted(set(ref) - set(got))))
        ok = False
    if gmeta.get("attnmap.pairs") != rmeta.get("attnmap.pairs"):
        print("attnmap.pairs differ")
        ok = False
    for name in sorted(set(got) & set(ref)):
        (g, gd), (r, rd) = got[name], ref[name]
        if g.shape != r.shape or gd != rd:
            print("%-40s shape/dtype %s %s vs %s %s" % (name, g.shape, gd, r.shape, rd))
            ok = False
            continue
        if gd not in ("F32", "F64", "F16"):
            same = np.array_equal(g, r)
            print("%-40s %-8s exact %s" % (name, gd, "ok" if same else "DIFFERENT"))
            ok &= same
            continue
        tol = rtol_rows if name.endswith(".rows") else (
            rtol_agree if name.startswith("agreement.") else rtol)
        good, worst, bad = close(g, r, tol)
        print("%-40s rtol %-7g worst %.3g of the bound, %d failing %s" %
              (name, tol, worst, bad, "ok" if good else "FAIL"))
        ok &= good
    return ok


SKIP = {"provenance", "timings", "backend", "device", "created", "inputs", "threads"}


def walk(a, b, path, rtol, errors):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            if k in SKIP:
                continue
            if k not in a or k not in b:
                errors.append("%s.%s only in one run" % (path, k))
                continue
            walk(a[k], b[k], path + "." + k, rtol, errors)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            errors.append("%s: lengths %d and %d" % (path, len(a), len(b)))
            return
        nums = [x for x in b if isinstance(x, (int, float)) and not isinstance(x, bool)]
        scale = max([abs(x) for x in nums if math.isfinite(x)] or [0.0])
        for i, (x, y) in enumerate(zip(a, b)):
            if isinstance(y, (int, float)) and not isinstance(y, bool) and \
                    isinstance(x, (int, float)):
                if not number_ok(x, y, rtol, scale):
                    errors.append("%s[%d]: %r vs %r" % (path, i, x, y))
            else:
                walk(x, y, "%s[%d]" % (path, i), rtol, errors)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            not isinstance(a, bool):
        if not number_ok(a, b, rtol, abs(b) if math.isfinite(b) else 0.0):
            errors.append("%s: %r vs %r" % (path, a, b))
    elif a != b:
        errors.append("%s: %r vs %r" % (path, a, b))


def number_ok(x, y, rtol, scale):
    if isinstance(x, float) and math.isnan(x) or isinstance(y, float) and math.isnan(y):
        return isinstance(x, float) and isinstance(y, float) and math.isnan(x) and \
            math.isnan(y)
    return abs(x - y) <= rtol * scale + rtol * abs(y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("got")
    ap.add_argument("ref")
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--rtol-rows", type=float, default=1e-4)
    # agreement metrics are computed in double from the maps, but a map value moved by
    # rtol can swap a rank or a top-k member: ranks and counts then move by a step
    ap.add_argument("--rtol-agreement", type=float, default=1e-5)
    ap.add_argument("--summary-rtol", type=float, default=1e-4)
    args = ap.parse_args()
    ok = compare_examples(args.got, args.ref, args.rtol, args.rtol_rows, args.rtol_agreement)
    with open(args.got + "/summary.json") as f:
        gs = json.load(f)
    with open(args.ref + "/summary.json") as f:
        rs = json.load(f)
    errors = []
    walk(gs, rs, "summary", args.summary_rtol, errors)
    for e in errors[:20]:
        print("summary.json:", e)
    print("summary.json: %d differences beyond rtol %g" % (len(errors), args.summary_rtol))
    ok &= not errors
    print("VERDICT:", "runs agree" if ok else "runs DIFFER")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
