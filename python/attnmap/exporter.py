#!/usr/bin/env python3
"""attnmap.exporter - runs a Hugging Face model over a dataset and writes attnmap shards
(docs/design.md §2) or, with --run, the run folder of their analysis: attentions (eager
attention) and their gradients w.r.t. one target logit per example (or, with --form long,
the long-context form: queries, keys, values and the gradients of the heads' outputs),
attention_mask, special_tokens_mask, input_ids, token strings, labels, predictions,
inputs_embeds and their gradients, optionally integrated-gradients saliency (Captum). See
docs/exporter.md.

    attnmap-export --model bert-base-finetuned-sst2/ --data dev.jsonl \\
        --out shards/ --dtype f16
    attnmap analyze shards/ -o run/

With --run DIR instead of --out, each batch is analysed in memory (attnmap.hf, a live run)
and the run folder DIR is written directly, no shards; attnmap analyze options go after
`--`.

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

from . import export_gen
from . import export_shards as shards_mod
from . import hf_batch, hf_data, hf_tasks
from .export_shards import SHARD
from .hf_batch import DTYPES, FORMS, batch_size



def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder or hub name (cached)")
    p.add_argument("--data", required=True, help="FILE.txt, FILE.jsonl or hf:NAME[:CONFIG]:SPLIT")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="folder of shards to write (then: attnmap analyze)")
    where.add_argument("--run", metavar="DIR", help="analyse live: write the run folder DIR "
                       "directly (attnmap.RunWriter), no shards; attnmap analyze options "
                       "go after `--` (e.g. -- --methods rollout,grad_rollout --topk 10)")
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
    p.add_argument("--target", default=None,
                   help="the row the analysis should read, recorded in the shards' "
                   "metadata and printed as the analyze command: cls (classifiers), last "
                   "(default of causal-lm: decoders), mean (default of embedding-probe: "
                   "the score reads the mean of all positions); generation: gen (default "
                   "of --generate: the generated tokens) or A:B (valid positions A..B-1; "
                   "0: is the default of seq2seq: every decoder row; a negative A is "
                   "written --target=-3:)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="f16",
                   help="storage dtype of attentions, gradients and embeddings")
    p.add_argument("--form", choices=FORMS, default="matrix",
                   help="matrix (default): attentions and attention_grads [L,B,H,T,T], the "
                   "model loaded with eager attention; long: the long-context form, "
                   "queries.{l}, keys.{l}, values.{l} (post-RoPE, KV heads not repeated) and "
                   "attention_output_grads.{l}, O(T*d) per head, with the model's own "
                   "attention (SDPA where available; docs/long-context.md): GPT-2, BERT "
                   "family, ViT, Llama, Qwen2, Mistral")
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
                   "examples and options, checked) are kept, the rest are written; with "
                   "--run: continue DIR.partial from its last checkpoint")
    p.add_argument("--sort-by-length", action="store_true",
                   help="group texts of similar length into shards (less padding)")
    p.add_argument("--limit", type=int, default=0, help="first N examples only")
    p.add_argument("--embeds", choices=("full", "saliency", "none"), default=None,
                   help="full (default): write inputs_embeds and inputs_embeds_grads "
                   "[B,T,D]; saliency (default of --generate): write only the [B,T] maps "
                   "attnmap derives from them (saliency.grad_l2, saliency.grad_x_input, "
                   "saliency.abs_grad_x_input; [B,S,T] per step with --step-grads), "
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
    p.add_argument("--force", action="store_true", help="replace shards in --out (the run "
                   "folder with --run)")
    p.add_argument("--backend", default=None, help="--run: attnmap's backend (cpu, cuda, "
                   "cuda:N, auto; default: where --device is)")
    p.add_argument("--checkpoint", type=float, default=2.0, metavar="S",
                   help="--run: seconds between checkpoints of the partial run folder "
                   "(0: after every batch), what --resume continues from")
    p.add_argument("--threads", type=int, default=0, help="--run: attnmap's CPU threads "
                   "(0: all cores)")
    g = p.add_argument_group("generation (decoders and encoder-decoder models; "
                             "docs/exporter.md, docs/generation.md)")
    g.add_argument("--generate", action="store_true",
                   help="greedy model.generate on each batch of prompts (causal-lm) or "
                   "sources (seq2seq), then one forward over prompt + generated tokens with "
                   "attentions: writes generation_start and one shard per --batch-size "
                   "examples; seq2seq models without it are teacher-forced on "
                   "--output-field")
    g.add_argument("--max-new-tokens", type=int, default=20, help="tokens generated at most")
    g.add_argument("--step-grads", action="store_true",
                   help="also each step's own gradients: step_attention_grads.{l} "
                   "[B,S,H,T,T] (seq2seq: and step_cross_attention_grads.{l}) and per-step "
                   "saliency [B,S,T]; one backward per step")
    g.add_argument("--padding-side", choices=("left", "right"), default="left",
                   help="causal-lm: the layout written (generate itself pads prompts on "
                   "the left): left keeps generate's (generation_start the same for a "
                   "batch), right puts each row's tokens first")
    g.add_argument("--output-field", default="output",
                   help="seq2seq teacher forcing: the JSONL field of the output text")
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:cut])
    # the generation mode has its own default (export_gen.GenJob); others write full
    args.embeds_given = args.embeds is not None
    args.embeds = args.embeds or ("saliency" if args.generate else "full")
    args.analyze_options = analyze_options(argv[cut + 1:], p)
    if args.analyze_options and not args.run:
        p.error("options after -- are attnmap analyze options of --run")
    return args


def analyze_options(words, parser):
    """`--name value` and `--flag` words (attnmap analyze's options) as keyword arguments of
    attnmap.RunWriter: {"name": "value" | True}; the library checks names and values."""
    out, i = {}, 0
    while i < len(words):
        w = words[i]
        if not w.startswith("--") or w == "--":
            parser.error("after --: %r is not an attnmap analyze option (--name [value])" % w)
        name, eq, value = w[2:].partition("=")
        if not eq and i + 1 < len(words) and not words[i + 1].startswith("--"):
            value, i = words[i + 1], i + 1
        elif not eq:
            value = True
        out[name.replace("-", "_")] = value
        i += 1
    return out


# ---- model -------------------------------------------------------------------------
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
            texts = [r["text"] for r in recs[i:i + args.batch_size]]
            batch = {k: v.to(device) for k, v in
                     hf_batch.encode_texts(proc, texts, args.max_length).items()}
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


# ---- main ------------------------------------------------------------------------------
def _exported_by_us(path):
    """True when path is a shard this exporter wrote (its attnmap.exporter metadata)."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n > 100_000_000:
                return False
            header = json.loads(f.read(n))
        return "attnmap.exporter" in (header.get("__metadata__") or {})
    except (OSError, ValueError, AttributeError):
        return False


def prepare_out(args):
    os.makedirs(args.out, exist_ok=True)
    shards_mod.clean_own_temporaries(args.out)
    old = sorted(f for f in os.listdir(args.out) if f.endswith(".safetensors"))
    if args.resume:
        return
    if old and not args.force:
        raise SystemExit("attnmap-export: %s already holds shards (--resume continues an "
                         "interrupted export, --force replaces them)" % args.out)
    # --force replaces only shards this exporter wrote: a model's weights or a user's
    # file in the same folder are never deleted (issue 21)
    foreign = [f for f in old if not _exported_by_us(os.path.join(args.out, f))]
    if foreign:
        raise SystemExit("attnmap-export: %s holds %s, which the exporter did not write; not "
                         "replacing it (choose another --out)" % (args.out, foreign[0]))
    for f in old:
        os.remove(os.path.join(args.out, f))


def make_job(args):
    """The records and the Job (attnmap.hf_batch) of the command line: the model loaded
    with eager attention, its processor, labels, the probe of embedding-probe."""
    torch.manual_seed(args.seed)
    import transformers as tf

    config = tf.AutoConfig.from_pretrained(args.model)
    task = args.task or hf_tasks.detect_task(config, args.probe or args.fit_probe)
    device = torch.device(args.device)
    recs = hf_data.load_records(args.data, args.text_field, args.label_field, args.id_field,
                                args.image_field, args.split_field, args.limit)
    labels, names = hf_data.label_ids(recs, config)
    if args.out:
        prepare_out(args)
    proc = make_tokenizer(args.model, task)
    model = hf_tasks.load_model(args.model, task, device, eager=args.form == "matrix")
    if task != "image-cls" and model.config.pad_token_id is None:
        model.config.pad_token_id = proc.pad_token_id
    probe, probe_info = None, None
    if task == "embedding-probe":
        probe, probe_info = prepare_probe(model, proc, recs, labels, names, args, device)
    job = hf_batch.Job(model, proc, task, target=args.target, target_class=args.target_class,
                       dtype=args.dtype, embeds=args.embeds, ig_steps=args.ig_steps,
                       max_length=args.max_length, probe=probe, probe_info=probe_info,
                       label_names=names, labels=labels,
                       model_name=args.model_name or args.model, form=args.form)
    return job, recs


def export_shard(s, idx, job, recs, args, st):
    """Runs every batch of one shard and writes it (or keeps it, resuming)."""
    path = os.path.join(args.out, SHARD % s)
    ids = [recs[i]["id"] for i in idx]
    if args.resume and shards_mod.finished(path, json.dumps(ids), job.extra):
        st["bar"].update(len(idx))
        st["kept"] += 1
        return
    batch_all = job.encode([recs[i] for i in idx], idx)  # padded to the shard's longest
    shard = shards_mod.ShardBuilder(len(idx))
    for j in range(0, len(idx), args.batch_size):
        b = {k: v[j:j + args.batch_size].to(job.device) for k, v in batch_all.items()}
        shard.add(job.tensors(job.run(b), b))
        st["bar"].update(b[next(iter(b))].shape[0])
    tensors = shard.tensors()
    T = batch_size(tensors)[1]
    shards_mod.write_shard(path, tensors, job.metadata(ids, job.tokens(batch_all), T))


def main(argv=None):
    args = parse_args(argv)
    if export_gen.wanted(args):
        export_gen.run_args(args)
        return
    if args.target not in (None, "cls", "last", "mean"):
        raise SystemExit("attnmap-export: --target %s: cls, last or mean (gen and A:B are "
                         "for --generate and seq2seq models)" % args.target)
    job, recs = make_job(args)
    if args.run:
        from . import hf

        hf.run_job(job, recs, args.run, batch_size=args.batch_size,
                   sort_by_length=args.sort_by_length, progress=args.progress,
                   quiet=args.quiet, resume=args.resume, force=args.force,
                   backend=args.backend, threads=args.threads, checkpoint=args.checkpoint,
                   **args.analyze_options)
        job.close()
        return
    tokens = job.n_tok if job.task == "image-cls" else args.max_length
    per_shard = shards_mod.examples_per_shard(job.model.config, tokens, args, job.long)
    lengths = job.lengths(recs) if args.sort_by_length else [0] * len(recs)
    shards = hf_data.groups(lengths, per_shard, args.sort_by_length)
    st = {"bar": shards_mod.Progress(len(recs), args.progress, args.quiet), "kept": 0}
    for s, idx in enumerate(shards):
        export_shard(s, idx, job, recs, args, st)
    st["bar"].close()
    job.close()
    note = (" (max |IG completeness delta| %.3g)" % job.ig_delta
            if job.ig_delta is not None else "")
    kept = " (%d finished shards kept)" % st["kept"] if st["kept"] else ""
    shards_mod.note("wrote %d examples in %d shards of at most %d to %s%s%s; analyse with: "
                    "attnmap analyze %s -o RUN/ (it reads target %s from the shards)"
                    % (len(recs), len(shards), per_shard, args.out, kept, note, args.out,
                       job.target), args)


if __name__ == "__main__":
    main()
