#!/usr/bin/env python3
"""attnmap.faithfulness - faithfulness by perturbation, the model side (issue 17,
docs/faithfulness.md): reads a run's maps (attnmap.read_run, which checks the run) and the
dataset it was made from, ranks each example's valid, non-special tokens by every map and by a
seeded random ranking, runs the model on every perturbed input in sorted, padded batches
(torch.no_grad; the GPU when there is one) and writes the target-class probabilities to
PROBS.safetensors, which `attnmap faithfulness RUN PROBS -o FRUN` turns into scores.

    attnmap analyze DATA -o RUN/
    attnmap-faithfulness --run RUN --data DATA --model MODEL -o PROBS.safetensors
    attnmap faithfulness RUN/ PROBS.safetensors -o FRUN/ && attnmap report FRUN/
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from . import faith_inputs

WHAT = "attnmap-faithfulness"
DEFAULT_BINS = "1,5,10,20,50"


def fail(msg):
    raise SystemExit("%s: %s" % (WHAT, msg))


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog=WHAT, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder of `attnmap analyze DATA`")
    p.add_argument("--data", required=True, help="the dataset RUN was made from (shards)")
    p.add_argument("--model", required=True, help="model folder (or cached hub name)")
    p.add_argument("-o", "--out", required=True, help="PROBS.safetensors to write")
    p.add_argument("--maps", help="comma-separated maps of the run (default: every map)")
    p.add_argument("--bins", default=DEFAULT_BINS,
                   help="percentages of the rankable tokens, strictly increasing in (0,100] "
                   "(default %s, ERASER's)" % DEFAULT_BINS)
    p.add_argument("--mode", choices=faith_inputs.MODES,
                   help="delete the removed tokens (default of text models), or replace "
                   "them by the mask or the pad token id (attention mask unchanged); image "
                   "models: "
                   "image_baseline (the default: the patch set to 0 in normalised pixels)")
    p.add_argument("--rank", choices=("signed", "abs"), default="signed",
                   help="signed: top tokens by value (default); abs: by |value|, as the "
                   "agreement metrics' top-k")
    p.add_argument("--seed", type=int, default=0, help="seed of the random ranking")
    p.add_argument("--batch", type=int, default=64, help="model inputs per forward")
    p.add_argument("--target", choices=("predicted", "label"), default="predicted",
                   help="the class c: predicted on the full input (default) or the label")
    p.add_argument("--task", help="the model's kind (default: the dataset's exporter "
                   "metadata, else the model config): seq-cls, embedding-probe, causal-lm")
    p.add_argument("--probe", help="embedding-probe: the linear probe (default: the file the "
                   "dataset's metadata names, next to DATA)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch's CPU threads (default 0: torch's own setting, 1 with Debian's "
                   "torch; more helps only on cores nobody else uses)")
    p.add_argument("--model-name", help="the `model` recorded (default: the dataset's)")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    args.bins = parse_bins(args.bins)
    if args.batch < 1:
        fail("--batch must be at least 1")
    return args


def parse_bins(text):
    try:
        bins = [float(b) for b in text.split(",")]
    except ValueError:
        fail("--bins %r: not a comma-separated list of numbers" % text)
    bins = [int(b) if b == int(b) else b for b in bins]
    if not bins or any(b <= 0 or b > 100 for b in bins) or \
            any(b >= c for b, c in zip(bins, bins[1:])):
        fail("--bins %r: not strictly increasing percentages in (0, 100]" % text)
    return bins


# ---- the dataset ----------------------------------------------------------------------
def read_data(path):
    """Per example (in the order attnmap analyze reads the dataset: shards in name order):
    ids of its valid tokens, rankable flags, valid positions, label; plus the shards'
    metadata and (name, bytes) of each shard."""
    from safetensors import safe_open

    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if f.endswith(".safetensors"))
    else:
        files = [path]
    if not files or not all(f.endswith(".safetensors") for f in files):
        fail("%s: no .safetensors shards (the dataset attnmap analyze read)" % path)
    rows, meta = [], {}
    for f in files:
        try:
            with safe_open(f, "numpy") as s:
                names = set(s.keys())
                if "attention_mask" not in names or not names & {"input_ids", "images"}:
                    fail("%s: needs attention_mask and input_ids (text) or images (image "
                         "models): what the model reads" % f)
                mask = s.get_tensor("attention_mask") != 0
                ids = (s.get_tensor("input_ids").astype(np.int64) if "input_ids" in names
                       else np.zeros(mask.shape, np.int64))
                special = (s.get_tensor("special_tokens_mask") != 0
                           if "special_tokens_mask" in names else np.zeros_like(mask))
                labels = s.get_tensor("labels") if "labels" in names else None
                images = s.get_tensor("images") if "images" in names else None
                meta = meta or (s.metadata() or {})
        except (OSError, ValueError) as e:
            fail("%s: not a readable safetensors file (%s)" % (f, e))
        if ids.shape != mask.shape or special.shape != mask.shape:
            fail("%s: input_ids, attention_mask, special_tokens_mask differ in shape" % f)
        for b in range(ids.shape[0]):
            pos = np.flatnonzero(mask[b])
            rows.append({"ids": ids[b, pos], "rankable": ~special[b, pos], "pos": pos,
                         "T": ids.shape[1], "image": images[b] if images is not None else None,
                         "label": int(labels[b]) if labels is not None else None})
    return rows, meta, [(f, os.path.getsize(f)) for f in files]


def check_match(run, rows, files, run_path, data_path):
    """Refuses a run that was not made from this dataset: example count, the inputs recorded
    in summary.json (names and sizes), and every example's mask."""
    N = len(run.examples["lengths"])
    if N != len(rows):
        fail("%s holds %d examples, %s %d: the run was not made from this dataset"
             % (run_path, N, data_path, len(rows)))
    inputs = run.summary.get("provenance", {}).get("inputs") or []
    if inputs:
        got = [(os.path.basename(f), b) for f, b in files]
        want = [(os.path.basename(i.get("path", "")), i.get("bytes")) for i in inputs]
        if got != want:
            fail("%s records the inputs %s, %s holds %s: the run was not made from this "
                 "dataset" % (run_path, want, data_path, got))
    mask = run.examples["mask"]
    for i, r in enumerate(rows):
        if not np.array_equal(np.flatnonzero(mask[i]), r["pos"]):
            fail("example %d: its valid tokens in %s differ from %s: the run was not made "
                 "from this dataset" % (i, run_path, data_path))


def choose_maps(run, wanted):
    have = list(run.map_names)
    if not have:
        fail("%s has no maps to rank tokens by" % run.path)
    if not wanted:
        return have
    names = [m.strip() for m in wanted.split(",") if m.strip()]
    for m in names:
        if m == "random":
            fail("--maps: random is always added (last); do not name it")
        if m not in have:
            fail("--maps: %s is not a map of %s (it has: %s)" % (m, run.path, ", ".join(have)))
    if len(set(names)) != len(names):
        fail("--maps names a map twice")
    return names


# ---- the model ------------------------------------------------------------------------
def load(args, meta, rows=None):
    """(forward, tokenizer or image processor, task, device, model name) of the command
    line; rows: read_data's (the images of --mode image_baseline)."""
    import torch
    import transformers as tf

    from . import hf_tasks

    exported = json.loads(meta.get("attnmap.exporter", "{}") or "{}")
    config = tf.AutoConfig.from_pretrained(args.model)
    task = args.task or exported.get("task") or hf_tasks.detect_task(config, args.probe)
    args.mode = args.mode or ("image_baseline" if task == "image-cls" else "delete")
    image = args.mode == "image_baseline"
    if (task == "image-cls") != image:
        fail("--mode %s does not fit the %s model %s (image models: --mode image_baseline; "
             "text models: delete, mask or pad)" % (args.mode, task, args.model))
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and args.threads > 0:
        torch.set_num_threads(args.threads)
    model = hf_tasks.load_model(args.model, task, device, eager=False)
    name = args.model_name or meta.get("model") or args.model
    if image:
        from . import faith_image

        proc = tf.AutoImageProcessor.from_pretrained(args.model)
        if rows is None or any(r["image"] is None for r in rows):
            fail("--mode image_baseline: %s has no images tensor (the exporter writes it "
                 "for image models)" % args.data)
        grid = faith_image.parse_grid(meta.get("attnmap.grid"), args.data)
        fwd = faith_image.forward_images(model, proc, rows, grid, config.patch_size, device,
                                         torch)
        return fwd, proc, task, device, name
    tok = tf.AutoTokenizer.from_pretrained(args.model)
    probe = None
    if task == "embedding-probe":
        probe = load_probe(args, exported)
    if exported.get("target_class") not in (None, args.target) and not args.quiet:
        print("%s: note: the dataset's maps were taken for target class %s, this is "
              "--target %s" % (WHAT, exported.get("target_class"), args.target),
              file=sys.stderr)

    def forward(ids, mask):
        batch = {"input_ids": ids, "attention_mask": mask}
        out = model(**batch)
        return hf_tasks.logits_of(model, task, out, batch, probe).float()

    return forward, tok, task, device, name


def load_probe(args, exported):
    from safetensors.torch import load_file

    path = args.probe
    if not path:
        named = (exported.get("probe") or {}).get("probe")
        base = args.data if os.path.isdir(args.data) else os.path.dirname(args.data)
        for d in (base, os.path.dirname(os.path.abspath(base))):
            if named and os.path.exists(os.path.join(d, named)):
                path = os.path.join(d, named)
                break
    if not path:
        fail("embedding-probe: the probe was not found next to %s; give --probe FILE"
             % args.data)
    t = load_file(path)
    return {"W": t["W"].float(), "b": t["b"].float()}


def replacement(tok, mode, task):
    if mode in ("delete", "image_baseline"):
        return None
    if mode == "pad" and task == "seq-cls" and tok.pad_token_id == tok.eos_token_id:
        # GPT-2-style classifiers read the position before the first pad id: a pad in the
        # middle of the text would move the position the class is read at
        fail("--mode pad: this tokenizer pads with its EOS token, which the classifier head "
             "takes for the end of the text; use --mode delete")
    tid = tok.mask_token_id if mode == "mask" else tok.pad_token_id
    if tid is None:
        fail("--mode %s: the tokenizer has no %s token" % (mode, mode))
    return int(tid)


def checksum(run):
    rec = run.summary.get("provenance", {}).get("files", {}).get("examples.safetensors", {})
    return rec.get("bytes"), rec.get("crc32c")


def write(path, tensors, meta, force):
    from safetensors.numpy import save_file

    if os.path.exists(path) and not force:
        fail("%s exists (--force replaces it)" % path)
    tmp = path + ".tmp%d" % os.getpid()
    save_file(tensors, tmp, metadata={"attnmap.faithfulness": json.dumps(meta)})
    os.replace(tmp, path)


def main(argv=None):
    t0 = time.perf_counter()
    args = parse_args(argv)
    import torch

    from .run import read_run

    run = read_run(args.run)
    names = choose_maps(run, args.maps)
    rows, meta, files = read_data(args.data)
    check_match(run, rows, files, args.run, args.data)
    forward, tok, task, device, model_name = load(args, meta, rows)
    examples = []
    for r in rows:
        if args.target == "label" and r["label"] is None:
            fail("--target label: %s has no labels" % args.data)
        ids = np.arange(len(r["ids"])) if args.mode == "image_baseline" else r["ids"]
        examples.append({"ids": ids, "rankable": r["rankable"],
                         "target": r["label"] if args.target == "label" else -1})
    maps = {m: [run.examples[m][i, r["pos"]] for i, r in enumerate(rows)] for m in names}
    pad_id = getattr(tok, "pad_token_id", None) or 0
    t1 = time.perf_counter()
    tensors, all_names, forwards = faith_inputs.probabilities(
        examples, maps, forward, bins=args.bins, mode=args.mode, seed=args.seed,
        replace_id=replacement(tok, args.mode, task), pad_id=pad_id, batch=args.batch,
        rank_by=args.rank, torch=torch, device=device)
    seconds, model_s = time.perf_counter() - t0, time.perf_counter() - t1
    nbytes, crc = checksum(run)
    out_meta = {"version": 1, "maps": all_names, "bins": args.bins,
                "steps": list(faith_inputs.STEPS), "mode": args.mode, "seed": args.seed,
                "target": args.target, "k_rounding": faith_inputs.K_ROUNDING,
                "rank": args.rank + " value descending, equal values to the lower position",
                "run": {"N": len(rows), "examples_bytes": nbytes, "examples_crc32c": crc},
                "model": model_name, "task": task, "device": str(device),
                "threads": torch.get_num_threads() if device.type == "cpu" else None,
                "forwards": int(forwards), "seconds": round(seconds, 3),
                "model_seconds": round(model_s, 3)}
    write(args.out, tensors, out_meta, args.force)
    if not args.quiet:
        n = len(rows)
        print("%s: %d examples x %d maps (%s and random), bins %s, mode %s: %d forwards "
              "(%.1f per example) in %.1f s, %.1f s of them running the model (%.2f "
              "examples/s, %.0f forwards/s) on %s%s; wrote %s"
              % (WHAT, n, len(all_names), ", ".join(names), args.bins, args.mode, forwards,
                 forwards / max(n, 1), seconds, model_s, n / seconds, forwards / model_s,
                 device, " with %d threads" % torch.get_num_threads()
                 if device.type == "cpu" else "", args.out),
              file=sys.stderr)


if __name__ == "__main__":
    main()
