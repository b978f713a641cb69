#!/usr/bin/env python3
"""attnmap.exporter - runs a Hugging Face model over a dataset and writes attnmap shards
(docs/design.md §2): attentions (eager attention) and their gradients w.r.t. one target logit per
example, attention_mask, special_tokens_mask, input_ids, token strings, labels,
predictions, inputs_embeds and their gradients, optionally integrated-gradients saliency
(Captum). See docs/exporter.md.

    attnmap-export --model bert-base-finetuned-sst2/ --data dev.jsonl \\
        --out shards/ --dtype f16
    attnmap analyze shards/ -o run/

Data: a .txt file (one text a line), a .jsonl file (--text-field, --label-field,
--id-field, --image-field), or a `datasets` split `hf:NAME[:CONFIG]:SPLIT` (loaded from
the local cache; HF_HUB_OFFLINE=1 works). Needs torch, transformers (eager attention:
>= 4.36) and safetensors; captum for --ig-steps.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

from . import export_shards as shards_mod
from . import hf_tasks
from .export_shards import DTYPES, SHARD



def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder or hub name (cached)")
    p.add_argument("--data", required=True, help="FILE.txt, FILE.jsonl or hf:NAME[:CONFIG]:SPLIT")
    p.add_argument("--out", required=True, help="folder of shards to write")
    p.add_argument("--task", choices=hf_tasks.TASKS, help="default: from the model config")
    p.add_argument("--probe", help="embedding-probe: linear probe (.safetensors, W [C,D], b [C])")
    p.add_argument("--fit-probe", metavar="FILE", help="embedding-probe: fit a logistic-"
                   "regression probe on the labels (rows whose --split-field is 'train', "
                   "else all), write it to FILE, and use it")
    p.add_argument("--probe-l2", type=float, default=1e-2, help="L2 penalty of --fit-probe")
    p.add_argument("--split-field", default="split", help="JSONL field naming the split")
    p.add_argument("--text-field", default="text")
    p.add_argument("--label-field", default="label")
    p.add_argument("--id-field", default="id")
    p.add_argument("--image-field", default="image")
    p.add_argument("--target-class", default="predicted",
                   help="whose logit is the target score: predicted (default), label, or "
                   "a class index (a token id for causal-lm)")
    p.add_argument("--target", choices=("cls", "last", "mean"), default=None,
                   help="the row the analysis should read, recorded in the shards' "
                   "metadata and printed as the analyze command: cls (classifiers), last "
                   "(default of causal-lm: decoders), mean (default of embedding-probe: "
                   "the score reads the mean of all positions)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="f16",
                   help="storage dtype of attentions, gradients and embeddings")
    p.add_argument("--max-length", type=int, default=128, help="tokens per text at most")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--examples-per-shard", type=int, default=0,
                   help="examples per shard (default: as many as --shard-memory holds)")
    p.add_argument("--shard-memory", type=int, default=1024, metavar="MIB",
                   help="memory budget of one shard's tensors in MiB (default 1024): sizes "
                   "the shards from the model's layers, heads and --max-length; the "
                   "exporter holds about twice this while it writes a shard")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted export into --out: finished shards (same "
                   "examples and options, checked) are kept, the rest are written")
    p.add_argument("--sort-by-length", action="store_true",
                   help="group texts of similar length into shards (less padding)")
    p.add_argument("--limit", type=int, default=0, help="first N examples only")
    p.add_argument("--embeds", choices=("full", "saliency", "none"), default="full",
                   help="full: write inputs_embeds and inputs_embeds_grads [B,T,D]; "
                   "saliency: write only the [B,T] maps attnmap derives from them "
                   "(saliency.grad_l2, saliency.grad_x_input, saliency.abs_grad_x_input), "
                   "computed in float32; none: neither")
    p.add_argument("--ig-steps", type=int, default=0,
                   help="> 0: integrated gradients (Captum) with this many steps, written "
                   "as saliency.ig")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-name", help="the shards' `model` metadata (default: --model)")
    p.add_argument("--progress", choices=("auto", "always", "never", "on", "off"),
                   default="auto", help="auto: a progress line on a terminal only; always: "
                   "also in logs, a plain line every 10 s ($ATTNMAP_PROGRESS_INTERVAL); "
                   "never (on/off: always/never)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, no notes")
    p.add_argument("--force", action="store_true", help="replace shards in --out")
    return p.parse_args(argv)


# ---- data ------------------------------------------------------------------------------
def load_records(args):
    """[{text|image, label, id, split}] from a text file, a JSONL file or a datasets split."""
    src = args.data
    recs = []
    if src.startswith("hf:"):
        try:
            import datasets
        except ImportError:
            raise SystemExit("attnmap-export: --data %s needs the `datasets` package, which is "
                             "not installed: pip install datasets (or give a .txt or .jsonl "
                             "file)" % src) from None
        parts = src[3:].split(":")
        name, split = parts[0], parts[-1]
        config = parts[1] if len(parts) == 3 else None
        for i, row in enumerate(datasets.load_dataset(name, config, split=split)):
            recs.append({"text": row.get(args.text_field), "image": row.get(args.image_field),
                         "label": row.get(args.label_field), "id": row.get(args.id_field, i)})
    elif src.endswith(".jsonl"):
        with open(src, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if not line.strip():
                    continue
                row = json.loads(line)
                image = row.get(args.image_field)
                if isinstance(image, str) and not os.path.isabs(image):
                    image = os.path.join(os.path.dirname(os.path.abspath(src)), image)
                recs.append({"text": row.get(args.text_field), "image": image,
                             "label": row.get(args.label_field),
                             "id": row.get(args.id_field, i),
                             "split": row.get(args.split_field)})
    else:
        with open(src, encoding="utf-8") as f:
            recs = [{"text": t.rstrip("\n"), "id": i} for i, t in enumerate(f) if t.strip()]
    if args.limit:
        recs = recs[:args.limit]
    if not recs:
        raise SystemExit("attnmap-export: %s holds no examples" % src)
    return recs


def label_ids(recs, config):
    """Integer labels (None when the data has none) and the label names."""
    raw = [r.get("label") for r in recs]
    if any(v is None for v in raw):
        return None, None
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in raw):
        id2label = getattr(config, "id2label", None) or {}
        n = max(max(raw) + 1, len(id2label))
        return [int(v) for v in raw], [str(id2label.get(i, i)) for i in range(n)]
    label2id = {str(k).lower(): v for k, v in (getattr(config, "label2id", None) or {}).items()}
    names = sorted({str(v) for v in raw})
    if label2id and all(str(v).lower() in label2id for v in raw):
        n = max(label2id.values()) + 1
        inv = {v: k for k, v in label2id.items()}
        return [label2id[str(v).lower()] for v in raw], [inv.get(i, str(i)) for i in range(n)]
    return [names.index(str(v)) for v in raw], names


def load_image(x):
    from PIL import Image

    if isinstance(x, str):
        if x.endswith(".npy"):
            return Image.fromarray(np.load(x).astype(np.uint8))
        return Image.open(x).convert("RGB")
    return x.convert("RGB") if hasattr(x, "convert") else Image.fromarray(np.asarray(x))


def encode(recs, proc, task, args):
    """The model inputs of recs (padded to the longest of them)."""
    if task == "image-cls":
        enc = proc(images=[load_image(r["image"]) for r in recs], return_tensors="pt")
        return {"pixel_values": enc["pixel_values"]}
    enc = proc([r["text"] for r in recs], padding=True, truncation=True,
               max_length=args.max_length, return_special_tokens_mask=True,
               return_tensors="pt")
    return dict(enc)


def make_tokenizer(model_path, task):
    import transformers as tf

    if task == "image-cls":
        return tf.AutoImageProcessor.from_pretrained(model_path)
    tok = tf.AutoTokenizer.from_pretrained(model_path)
    if tok.pad_token is None:  # GPT-2 family: pad with EOS, on the right
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"  # what GPT-2's classifier head and position ids expect
    return tok


# ---- the probe of embedding-probe models ----------------------------------------------
def pooled_all(model, proc, recs, args, device):
    """[n, D] float64 normalised mean-pooled embeddings of every record (no gradients)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(recs), args.batch_size):
            batch = {k: v.to(device) for k, v in encode(recs[i:i + args.batch_size], proc,
                                                        "embedding-probe", args).items()}
            h = model(**hf_tasks.model_inputs(batch, "embedding-probe")).last_hidden_state
            out.append(hf_tasks.pooled_embedding(h, batch["attention_mask"]).double().cpu())
    return torch.cat(out).numpy()


def prepare_probe(model, proc, recs, labels, names, args, device):
    """The probe {W, b} (torch) and its description for the shards' metadata."""
    from safetensors.torch import load_file, save_file

    if args.probe:
        t = load_file(args.probe)
        return {"W": t["W"].float(), "b": t["b"].float()}, {"probe": os.path.basename(args.probe)}
    if not args.fit_probe:
        raise SystemExit("attnmap-export: embedding-probe needs --probe FILE or --fit-probe FILE")
    if labels is None:
        raise SystemExit("attnmap-export: --fit-probe needs labels in the data")
    Z = pooled_all(model, proc, recs, args, device)
    y = np.array(labels)
    split = np.array([r.get("split") for r in recs], dtype=object)
    train = split == "train" if (split == "train").any() else np.ones(len(recs), bool)
    W, b = hf_tasks.fit_probe(Z[train], y[train], len(names), l2=args.probe_l2)
    pred = hf_tasks.probe_logits(Z, W, b).argmax(1)
    info = {"probe": os.path.basename(args.fit_probe), "l2": args.probe_l2,
            "train_examples": int(train.sum()),
            "train_accuracy": float((pred[train] == y[train]).mean())}
    if (~train).any():
        info["heldout_examples"] = int((~train).sum())
        info["heldout_accuracy"] = float((pred[~train] == y[~train]).mean())
    meta = {"attnmap.probe": json.dumps(info), "attnmap.label_names": json.dumps(names)}
    save_file({"W": torch.from_numpy(W).float(), "b": torch.from_numpy(b).float()},
              args.fit_probe, metadata=meta)
    print("probe: %s" % json.dumps(info), file=sys.stderr)
    return {"W": torch.from_numpy(W).float(), "b": torch.from_numpy(b).float()}, info


# ---- shards ----------------------------------------------------------------------------
def shard_metadata(recs, batch, proc, task, args, extra):
    meta = {"model": args.model_name or args.model,
            "attnmap.ids": json.dumps([r["id"] for r in recs]),
            "attnmap.exporter": json.dumps(extra, sort_keys=True)}
    if task == "image-cls":
        T = extra["tokens"]
        side = int(round((T - extra["prefix"]) ** 0.5))
        meta["attnmap.grid"] = "%dx%d+%d" % (side, side, extra["prefix"])
    else:
        toks = []
        for ids, m in zip(batch["input_ids"].tolist(), batch["attention_mask"].tolist()):
            toks.append(proc.convert_ids_to_tokens([i for i, v in zip(ids, m) if v]))
        meta["attnmap.tokens"] = json.dumps(toks, ensure_ascii=False)
    return meta


# ---- main ------------------------------------------------------------------------------
def prepare_out(args):
    os.makedirs(args.out, exist_ok=True)
    shards_mod.clean_own_temporaries(args.out)
    old = sorted(f for f in os.listdir(args.out) if f.endswith(".safetensors"))
    if args.resume:
        return
    if old and not args.force:
        raise SystemExit("attnmap-export: %s already holds shards (--resume continues an "
                         "interrupted export, --force replaces them)" % args.out)
    for f in old:
        os.remove(os.path.join(args.out, f))


def shard_order(recs, proc, task, args, k):
    order = list(range(len(recs)))
    if args.sort_by_length and task != "image-cls":
        n = [len(proc(r["text"], truncation=True, max_length=args.max_length)["input_ids"])
             for r in recs]
        order.sort(key=lambda i: n[i])  # stable: equal lengths keep their order
    k = max(1, k)
    return [order[i:i + k] for i in range(0, len(order), k)]


def export_shard(s, idx, ctx):
    """Runs every batch of one shard and writes it (or keeps it, resuming)."""
    args, task, model, proc = ctx["args"], ctx["task"], ctx["model"], ctx["proc"]
    recs = [ctx["recs"][i] for i in idx]
    path = os.path.join(args.out, SHARD % s)
    if args.resume and shards_mod.finished(path, json.dumps([r["id"] for r in recs]),
                                           ctx["extra"]):
        ctx["bar"].update(len(idx))
        ctx["kept"] = ctx.get("kept", 0) + 1
        return
    batch_all = encode(recs, proc, task, args)
    if ctx["labels"] is not None:
        batch_all["labels"] = torch.tensor([ctx["labels"][i] for i in idx])
    shard = shards_mod.ShardBuilder(len(idx), args, task)
    for j in range(0, len(idx), args.batch_size):
        b = {k: v[j:j + args.batch_size].to(ctx["device"]) for k, v in batch_all.items()}
        res = hf_tasks.run_batch(model, task, b, ctx["capture"], ctx["probe"],
                                 args.target_class)
        if args.ig_steps > 0:
            ctx["capture"].on = False
            sal, delta = hf_tasks.integrated_gradients(model, task, b, ctx["probe"],
                                                       res["target_class"], args.ig_steps,
                                                       ctx["emb_module"])
            ctx["capture"].on = True
            res["saliency.ig"] = sal.detach()
            ctx["ig_delta"] = max(ctx.get("ig_delta", 0.0), float(delta.max()))
        shard.add(res, b.get("attention_mask"))
        del res
        ctx["bar"].update(b[next(iter(b))].shape[0])
    tensors = shard.tensors(batch_all, ctx["prefix"])
    extra = dict(ctx["extra"], tokens=int(tensors["attentions"].shape[-1]))
    meta = shard_metadata(recs, batch_all, proc, task, args, extra)
    shards_mod.write_shard(path, tensors, meta)


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    import transformers as tf

    config = tf.AutoConfig.from_pretrained(args.model)
    task = args.task or hf_tasks.detect_task(config, args.probe or args.fit_probe)
    target = args.target or {"causal-lm": "last", "embedding-probe": "mean"}.get(task, "cls")
    device = torch.device(args.device)
    recs = load_records(args)
    labels, names = label_ids(recs, config)
    prepare_out(args)
    proc = make_tokenizer(args.model, task)
    model = hf_tasks.load_model(args.model, task, device)
    if task != "image-cls" and model.config.pad_token_id is None:
        model.config.pad_token_id = proc.pad_token_id
    probe, probe_info = None, None
    if task == "embedding-probe":
        probe, probe_info = prepare_probe(model, proc, recs, labels, names, args, device)
    prefix, n_tok = 0, 0
    if task == "image-cls":
        n_tok = model.base_model.embeddings.position_embeddings.shape[1]
        prefix = n_tok - (config.image_size // config.patch_size) ** 2
    emb_module = hf_tasks.embedding_module(model, task)
    extra = {"task": task, "target": target, "target_class": args.target_class,
             "score": "logit of target_class" + (" at the last valid token"
                                                  if task == "causal-lm" else ""),
             "prefix": prefix, "ig_steps": args.ig_steps, "dtype": args.dtype,
             "embeds": args.embeds}
    if probe_info:
        extra["probe"] = probe_info
    if names and task == "causal-lm":
        extra["data_label_names"] = names  # classes of data_labels, not of predictions
    elif names:
        extra["label_names"] = names
    ctx = {"args": args, "task": task, "model": model, "proc": proc, "recs": recs,
           "labels": labels, "device": device, "probe": probe, "prefix": prefix,
           "emb_module": emb_module, "capture": hf_tasks.Capture(emb_module),
           "extra": extra,
           "bar": shards_mod.Progress(len(recs), args.progress, args.quiet)}
    tokens = n_tok if task == "image-cls" else args.max_length
    per_shard = shards_mod.examples_per_shard(model.config, tokens, args)
    shards = shard_order(recs, proc, task, args, per_shard)
    for s, idx in enumerate(shards):
        export_shard(s, idx, ctx)
    ctx["bar"].close()
    ctx["capture"].remove()
    note = " (max |IG completeness delta| %.3g)" % ctx["ig_delta"] if "ig_delta" in ctx else ""
    kept = " (%d finished shards kept)" % ctx["kept"] if ctx.get("kept") else ""
    shards_mod.note("wrote %d examples in %d shards of at most %d to %s%s%s; analyse with: "
                    "attnmap analyze %s -o RUN/ (it reads target %s from the shards)"
                    % (len(recs), len(shards), per_shard, args.out, kept, note, args.out,
                       target), args)


if __name__ == "__main__":
    main()
