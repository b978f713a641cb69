"""attnmap.export_gen - the exporter's generation mode (docs/exporter.md "Generation",
docs/generation.md): decoders (`causal-lm`) generate from each batch of prompts; encoder-
decoder models (`seq2seq`) generate or are teacher-forced on the data's output texts. Each
batch is one shard: attentions (decoder self-attention, and cross-attention for seq2seq),
the gradients of the summed step scores and, with step_grads, of each step's score,
per-step saliency, masks, ids, generation_start, token strings.

    attnmap-export --model gpt2/ --data prompts.txt --out shards/ --generate \\
        --max-new-tokens 20 --step-grads
    attnmap analyze shards/ -o run/          # reads --target gen from the shards

From Python: attnmap.export_gen.export_model(model, tokenizer, prompts, "shards/")."""
import json
import os
import types

import torch

from . import export_shards, gen_grads, hf_data, hf_gen, hf_seq2seq, hf_tasks
from .export_shards import SHARD
from .hf_batch import DTYPES, to_storage

TASKS = ("causal-lm", "seq2seq")


class GenJob:
    """What every batch of a generation export needs: the model (eager attention, eval,
    parameters not requiring grad), its tokenizer, the mode and the storage options."""

    def __init__(self, model, tok, task, *, generate=True, max_new_tokens=20,
                 step_grads=False, padding_side="left", target=None, dtype="f32",
                 embeds=None, max_length=128, model_name="", what="attnmap-export"):
        self.what = what
        if task not in TASKS:
            self.fail("generation needs a causal-lm or seq2seq model, not %s" % task)
        if task == "causal-lm" and not generate:
            self.fail("a causal-lm model exports generations only (--generate)")
        embeds = embeds or "saliency"
        if step_grads and embeds == "full":
            self.fail("--step-grads writes per-step saliency maps: use --embeds saliency "
                      "(the default of generation) or none, not full")
        if generate and max_new_tokens < 1:
            self.fail("--max-new-tokens %d: generate at least 1" % max_new_tokens)
        if dtype not in DTYPES:
            self.fail("dtype %r is not one of %s" % (dtype, sorted(DTYPES)))
        target = target or ("gen" if task == "causal-lm" else "0:")
        spec = gen_grads.parse_target(target)
        if spec is None or (spec == "gen" and not generate):
            self.fail("target %r: gen (generated tokens) or A:B (valid positions A..B-1)"
                      % target)
        self.model, self.tok, self.task, self.target = model, tok, task, target
        self.generate, self.max_new_tokens, self.step_grads = generate, max_new_tokens, step_grads
        self.padding_side, self.dtype, self.embeds = padding_side, dtype, embeds
        self.max_length, self.model_name = max_length, model_name
        self.device = next(model.parameters()).device
        # the embeddings' output made a leaf that requires grad: the parameters do not, so
        # without it the forward would build no graph to differentiate
        emb = model.get_input_embeddings()
        if task == "seq2seq":  # BART's decoder has its own (weight-sharing) module
            emb = getattr(model.get_decoder(), "embed_tokens", None) or emb
        self.capture = hf_tasks.Capture(emb)
        self.extra = {"task": task, "target": target, "mode": "generate" if generate else
                      "teacher-forcing", "score": "log-probability of the token after each "
                      "step row (docs/exporter.md)", "dtype": dtype, "embeds": embeds,
                      "step_grads": bool(step_grads)}
        if generate:
            self.extra.update(max_new_tokens=max_new_tokens, decoding="greedy")
        if task == "causal-lm":
            self.extra["padding_side"] = padding_side

    def fail(self, text):
        raise SystemExit("%s: %s" % (self.what, text))

    def close(self):
        self.capture.remove()

    def lengths(self, recs):
        return [len(self.tok(r["text"], truncation=True, max_length=self.max_length)
                    ["input_ids"]) for r in recs]

    def batch(self, recs):
        """One forward batch: (tensors of a shard, {"tokens", "source_tokens"})."""
        if any(not r.get("text") for r in recs):
            self.fail("every example needs a text (the prompt or source)")
        texts = [r["text"] for r in recs]
        if self.task == "causal-lm":
            return self.decoder_batch(texts)
        return self.seq2seq_batch(texts, [r.get("output") for r in recs])

    # ---- decoders -------------------------------------------------------------------
    def decoder_batch(self, texts):
        ids, mask, start = hf_gen.generate(self.model, self.tok, texts, self.max_new_tokens,
                                           self.max_length, self.padding_side)
        rows = gen_grads.step_rows(mask, start, self.target)
        dev = self.device
        res = hf_gen.run(self.model, ids.to(dev), mask.to(dev), rows.to(dev), self.capture,
                         self.step_grads, embeds=self.embeds != "none")
        t = {"attentions": self.store(res["attentions"], "attentions"),
             "attention_grads": self.store(res["attention_grads"], "attention_grads")}
        for l, g in enumerate(res.get("step_attention_grads", ())):
            t["step_attention_grads.%d" % l] = self.store(g, "step_attention_grads.%d" % l)
        t.update(self.common(ids, mask, rows, res))
        t["generation_start"] = start.to(torch.int32)
        t.update(self.embed_tensors(res, mask))
        return t, {"tokens": self.tokens(ids, mask)}

    # ---- encoder-decoder models -------------------------------------------------------
    def seq2seq_batch(self, texts, outputs):
        src, src_mask = hf_seq2seq.encode_sources(self.tok, texts, self.max_length)
        if self.generate:
            out, out_mask = hf_seq2seq.generate(self.model, self.tok, src, src_mask,
                                                self.max_new_tokens)
        elif any(o is None for o in outputs):
            self.fail("seq2seq without --generate needs every example's output text "
                      "(--output-field) for teacher forcing")
        else:
            out, out_mask = hf_seq2seq.encode_outputs(self.tok, outputs, self.max_length)
        dec, mask = hf_seq2seq.decoder_inputs(self.model, out, out_mask, self.tok.pad_token_id)
        B = dec.shape[0]
        start = torch.ones(B, dtype=torch.long)  # dec[:, 0] is the decoder start token
        rows = gen_grads.step_rows(mask, start, self.target)
        dev = self.device
        res = hf_seq2seq.run(self.model, src.to(dev), src_mask.to(dev), dec.to(dev),
                             mask.to(dev), out.to(dev), rows.to(dev), self.step_grads,
                             self.capture if self.embeds != "none" else None)
        t = {}
        for role in ("attentions", "attention_grads", "cross_attentions",
                     "cross_attention_grads", "step_attention_grads",
                     "step_cross_attention_grads"):
            for l, x in enumerate(res.get(role, ())):
                t["%s.%d" % (role, l)] = self.store(x, "%s.%d" % (role, l))
        t.update(self.common(dec, mask, rows, res))
        t.update(self.embed_tensors(res, mask))
        t["encoder_attention_mask"] = src_mask.to(torch.uint8)
        t["encoder_input_ids"] = src.to(torch.int32)
        if self.generate:
            t["generation_start"] = start.to(torch.int32)
        return t, {"tokens": self.tokens(dec, mask),
                   "source_tokens": self.tokens(src, src_mask)}

    # ---- shared -----------------------------------------------------------------------
    def store(self, x, name):
        return to_storage(x, DTYPES[self.dtype], name, self.what).cpu()

    def embed_tensors(self, res, mask):
        """--embeds full: the [B,T,D] embeddings of the (decoder) tokens and their gradients
        (shared score); saliency: the three maps, [B,S,T] with step_grads."""
        if "embeds" not in res:
            return {}
        if self.embeds == "full":
            return {"inputs_embeds": self.store(res["embeds"], "inputs_embeds"),
                    "inputs_embeds_grads": self.store(res["embeds_grads"],
                                                      "inputs_embeds_grads")}
        return gen_grads.saliency(res["embeds"], res["embeds_grads"], mask.to(self.device))

    def common(self, ids, mask, rows, res):
        """Masks, ids and the exporter's extras (ignored by attnmap): score_rows [B,S] the
        step rows (-1 past), score_ids and token_scores [B,T] every real row's scored token
        and its log-probability, target_score [B] the sum of the step scores."""
        special = torch.isin(ids, torch.tensor(self.tok.all_special_ids, dtype=ids.dtype))
        rows = rows.cpu()
        scores = res["token_scores"].cpu()
        steps = gen_grads.step_scores(scores, rows)
        return {"attention_mask": mask.to(torch.uint8),
                "special_tokens_mask": (special & mask.bool()).to(torch.uint8),
                "input_ids": ids.to(torch.int32),
                "score_rows": rows.to(torch.int32),
                "score_ids": res["score_ids"].cpu().to(torch.int32),
                "token_scores": scores.float().contiguous(),
                "target_score": steps.sum(1).float()}

    def tokens(self, ids, mask):
        return [self.tok.convert_ids_to_tokens([i for i, v in zip(r, m) if v])
                for r, m in zip(ids.tolist(), mask.tolist())]

    def metadata(self, ids, toks, T):
        meta = {"model": self.model_name, "attnmap.ids": json.dumps(ids),
                "attnmap.tokens": json.dumps(toks["tokens"], ensure_ascii=False),
                "attnmap.exporter": json.dumps(dict(self.extra, tokens=int(T)),
                                               sort_keys=True)}
        if "source_tokens" in toks:
            meta["attnmap.source_tokens"] = json.dumps(toks["source_tokens"],
                                                       ensure_ascii=False)
        return meta


def write_shards(job, recs, out, *, batch_size=8, sort_by_length=False, resume=False,
                 progress="auto", quiet=False):
    """One shard per forward batch into out (prepared: empty, or resuming). Returns the
    number of shards."""
    lengths = job.lengths(recs) if sort_by_length else [0] * len(recs)
    batches = hf_data.groups(lengths, batch_size, sort_by_length)
    bar = export_shards.Progress(len(recs), progress, quiet)
    for s, idx in enumerate(batches):
        path = os.path.join(out, SHARD % s)
        ids = [recs[i]["id"] for i in idx]
        if not (resume and export_shards.finished(path, json.dumps(ids), job.extra)):
            t, toks = job.batch([recs[i] for i in idx])
            T = t["attention_mask"].shape[1]
            export_shards.write_shard(path, t, job.metadata(ids, toks, T))
        bar.update(len(idx))
    bar.close()
    return len(batches)


def export_model(model, tokenizer, data, out, *, task=None, batch_size=8,
                 sort_by_length=False, force=False, resume=False, progress="auto",
                 quiet=False, model_name=None, **options):
    """Writes the generation shards of model over data (prompts or sources: strings or
    dicts with "text", optional "output" and "id") into out; returns out. options: GenJob's
    (generate, max_new_tokens, step_grads, padding_side, target, dtype, embeds,
    max_length). model: loaded with attn_implementation="eager"; it is put in eval mode
    and its parameters kept from accumulating gradients for the call. A tokenizer without
    a pad token (GPT-2 family) gets its end token as pad token, as attnmap-export does."""
    from . import exporter, hf

    recs = hf_data.as_records(data)
    task = task or hf_tasks.detect_task(model.config, False)
    exporter.prepare_out(types.SimpleNamespace(out=out, resume=resume, force=force))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    with hf._grad_free(model):
        job = GenJob(model, tokenizer, task, model_name=model_name or hf._model_name(model),
                     **options)
        try:
            write_shards(job, recs, out, batch_size=batch_size, sort_by_length=sort_by_length,
                         resume=resume, progress=progress, quiet=quiet)
        finally:
            job.close()
    return out


# ---- the command line (attnmap.exporter) ----------------------------------------------
def wanted(args):
    """True when the command line asks for the generation mode: --generate, or a seq2seq
    model (by --task or its config)."""
    if args.generate or args.task == "seq2seq":
        return True
    if args.task is not None:
        return False
    import transformers as tf

    return bool(getattr(tf.AutoConfig.from_pretrained(args.model), "is_encoder_decoder",
                        False))


def run_args(args):
    """attnmap-export in the generation mode (see the module's docstring)."""
    from . import exporter

    what = "attnmap-export"
    for bad, why in ((args.run, "--run (live runs) does not take generations yet: write "
                      "shards with --out, then attnmap analyze"),
                     (args.form != "matrix", "--form long does not take generations"),
                     (args.ig_steps, "--ig-steps does not take generations"),
                     (args.fit_probe or args.probe, "a probe does not take generations")):
        if bad:
            raise SystemExit("%s: %s" % (what, why))
    torch.manual_seed(args.seed)
    import transformers as tf

    task = args.task or hf_tasks.detect_task(tf.AutoConfig.from_pretrained(args.model), False)
    recs = hf_data.load_records(args.data, args.text_field, args.label_field, args.id_field,
                                args.image_field, args.split_field, args.limit,
                                output_field=args.output_field)
    exporter.prepare_out(args)
    tok = exporter.make_tokenizer(args.model, task)
    model = hf_tasks.load_model(args.model, task, torch.device(args.device))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    job = GenJob(model, tok, task, generate=args.generate, max_new_tokens=args.max_new_tokens,
                 step_grads=args.step_grads, padding_side=args.padding_side,
                 target=args.target, dtype=args.dtype,
                 embeds=args.embeds if args.embeds_given else None,
                 max_length=args.max_length, model_name=args.model_name or args.model)
    try:
        n = write_shards(job, recs, args.out, batch_size=args.batch_size,
                         sort_by_length=args.sort_by_length, resume=args.resume,
                         progress=args.progress, quiet=args.quiet)
    finally:
        job.close()
    export_shards.note("wrote %d examples in %d shards (one a batch) to %s; analyse with: "
                       "attnmap analyze %s -o RUN/ (it reads target %s from the shards)"
                       % (len(recs), n, args.out, args.out, job.target), args)
