"""bench/live_long.py - a live run of the long-context form at long T (issue 14, "Done when"):
one example of a small decoder shape (L layers, H query heads, Hkv KV heads, head dim d,
causal, F16 queries/keys/values/attention_output_grads made from a seed) handed to
attnmap.RunWriter in memory, against `attnmap analyze` of the same example stored as a
long-form shard. Each side runs in a process of its own (peak resident size: getrusage of
the live process, /usr/bin/time -f %M of the CLI); the run folders are then compared
(examples.safetensors byte for byte, summary.json apart from provenance). Prints one JSON
line per side and the comparison.

    ATTNMAP_LIBRARY=build/libattnmap.so ATTNMAP_CLI=build/attnmap \\
        python3 bench/live_long.py --tokens 16384 --threads 2
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ROLES = ("queries", "keys", "values", "attention_output_grads")


def make_shard(path, T, L, H, Hkv, d, seed):
    """The example as a long-form shard (F16), its attention settings in the metadata."""
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    t = {"attention_mask": np.ones((1, T), np.uint8)}
    for l in range(L):
        for role in ROLES:
            heads = Hkv if role in ("keys", "values") else H
            scale = 1e-3 if role == "attention_output_grads" else 1.0
            t["%s.%d" % (role, l)] = (rng.standard_normal((1, heads, T, d), np.float32)
                                      * scale).astype(np.float16)
    att = {"scale": d ** -0.5, "causal": True, "sliding_window": None, "softcap": None}
    save_file(t, path, metadata={"attnmap.attention": json.dumps(att)})
    return att


def live(shard, run, threads):
    """The child: the shard's arrays in memory, one RunWriter.add, close."""
    from safetensors.numpy import load_file

    sys.path.insert(0, os.path.join(ROOT, "python"))
    import attnmap
    from safetensors import safe_open

    with open("/proc/self/statm") as f:  # resident now: Python, numpy, the package
        base = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    with safe_open(shard, framework="np") as f:
        att = json.loads(f.metadata()["attnmap.attention"])
    t = load_file(shard)
    L = sum(1 for k in t if k.startswith("queries."))
    T = t["queries.0"].shape[2]
    start = time.perf_counter()
    with attnmap.RunWriter(run, examples=1, max_tokens=T, threads=threads) as w:
        w.add(attention_mask=t["attention_mask"], attention=att,
              **{r: [t["%s.%d" % (r, l)] for l in range(L)] for r in ROLES})
    wall = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"side": "live", "wall_s": round(wall, 2), "peak_rss_mib": round(rss, 1),
                      "resident_before_inputs_mib": round(base, 1)}))


def analyze(cli, shard, run, threads):
    cmd = ["/usr/bin/time", "-f", "%M", cli, "analyze", shard, "-o", run, "--threads",
           str(threads), "--quiet"]
    start = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit("analyze failed: %s" % p.stderr)
    rss = int(p.stderr.strip().splitlines()[-1]) / 1024.0
    return {"side": "analyze", "wall_s": round(wall, 2), "peak_rss_mib": round(rss, 1)}


def same(a, b):
    ea, eb = (open(os.path.join(x, "examples.safetensors"), "rb").read() for x in (a, b))
    sa, sb = (json.load(open(os.path.join(x, "summary.json"))) for x in (a, b))
    sa.pop("provenance")
    sb.pop("provenance")
    return ea == eb and sa == sb


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=16384)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return live(a.child[0], a.child[1], a.threads)
    cli = os.environ.get("ATTNMAP_CLI", os.path.join(ROOT, "build", "attnmap"))
    tmp = tempfile.mkdtemp(prefix="live_long-")
    try:
        shard = os.path.join(tmp, "shard.safetensors")
        make_shard(shard, a.tokens, a.layers, a.heads, a.kv_heads, a.dim, a.seed)
        shape = {"T": a.tokens, "L": a.layers, "H": a.heads, "Hkv": a.kv_heads, "d": a.dim,
                 "input_mib": round(os.path.getsize(shard) / 2 ** 20, 1),
                 "one_TxT_f16_mib": round(a.layers * a.heads * a.tokens ** 2 * 2 / 2 ** 20)}
        print(json.dumps(shape), flush=True)
        subprocess.run([sys.executable, __file__, "--threads", str(a.threads), "--child",
                        shard, os.path.join(tmp, "live")], check=True)
        print(json.dumps(analyze(cli, shard, os.path.join(tmp, "ref"), a.threads)),
              flush=True)
        print(json.dumps({"identical": same(os.path.join(tmp, "live"),
                                            os.path.join(tmp, "ref"))}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
