"""attnmap.hf - live runs of Hugging Face models: the model runs over an evaluation set
batch by batch and attnmap consumes each batch while its tensors are in memory
(attnmap.RunWriter); the run folder is the one `attnmap analyze` writes from the same
batches exported as shards, with no attention tensor written to disk.

    import attnmap.hf
    attnmap.hf.analyze_model(model, ["a text", ...], "run/", processor=tokenizer)
    attnmap.hf.analyze_model(model, [{"text": t, "label": y, "id": k}, ...], "run/",
                             processor=tokenizer, target="cls", methods="rollout,grad_rollout")

The command line is `attnmap-export ... --run DIR` (examples/export_hf.py). The batch side
(forward with attentions, backward of the target score, masks, tokens) is attnmap.hf_batch,
shared with the exporter's shards.
"""
import contextlib
import sys

from . import export_shards, hf_batch, hf_data, hf_long, hf_tasks

WHAT = "attnmap"


def analyze_model(model, data, run_dir, *, processor=None, task=None, target=None,
                  target_class="predicted", probe=None, dtype="f32", embeds="full",
                  ig_steps=0, max_length=128, batch_size=16, sort_by_length=False,
                  model_name=None, progress="auto", quiet=False, resume=False, force=False,
                  backend=None, threads=0, checkpoint=2.0, form="matrix",
                  **analyze_options):
    """Runs model over data and writes the run folder run_dir; returns its path.

    model: a Hugging Face model (seq-cls, image-cls, causal-lm, or the body of a
    sentence-embedding model with probe={"W": [C,D], "b": [C]}: embedding-probe), loaded
    with attn_implementation="eager" for the matrix form; form="long" streams the
    long-context form instead (queries, keys, values and the gradients of the heads'
    outputs, attnmap.hf_long: GPT-2, BERT family, ViT, Llama, Qwen2, Mistral) with the
    model's own attention, eager or SDPA, no T x T matrix; it is put in eval mode and its parameters are kept
    from accumulating gradients for the duration of the call (both restored after).
    data: a sequence of records - dicts with "text" or "image", optional "label" (int) and
    "id" -, of strings (texts) or of images, which the driver batches (batch_size,
    max_length, sort_by_length); or a sequence of batches as the processor returns them
    (dicts of tensors: input_ids, attention_mask, special_tokens_mask, optional
    token_type_ids and labels; or pixel_values and optional labels), used as they are.
    processor: the tokenizer or image processor (with batches: for the token strings and
    missing special-token masks; optional). The options are attnmap-export's
    (docs/exporter.md): task (default: from the config), target (the row the analysis
    reads: cls, last, mean; default from the task), target_class, dtype (what the analysis
    reads: "f32" the model's values, "f16"/"bf16" as a shard stores them), embeds,
    ig_steps; progress ("auto": a progress line on a terminal), quiet; resume continues
    RUN.partial/ after an interruption (checkpoint: seconds between checkpoints, 0 after
    every batch), force replaces a run folder attnmap wrote; backend (default: the model's
    device, "cpu" or "cuda:N"; "cpu" with a model on a GPU copies each batch to the host)
    and threads are attnmap's; analyze_options are attnmap.analyze's (methods, pairs,
    topk, ...)."""
    data = list(data)
    given = bool(data) and all(hf_batch.is_batch(x) for x in data)
    if processor is None and not given:
        raise SystemExit("%s: analyze_model needs processor= (the model's tokenizer or image "
                         "processor) to batch records" % WHAT)
    task = task or hf_tasks.detect_task(model.config, probe is not None)
    if given:
        recs, labels, names = None, None, None
    else:
        recs = hf_data.as_records(data)
        labels, names = hf_data.label_ids(recs, model.config)
    if task != "image-cls" and processor is not None and \
            getattr(processor, "pad_token", True) is None:
        raise SystemExit("%s: the tokenizer has no pad token (GPT-2 family: set "
                         "tokenizer.pad_token = tokenizer.eos_token and padding_side = "
                         "\"right\")" % WHAT)
    opts = dict(progress=progress, quiet=quiet, resume=resume, force=force, backend=backend,
                threads=threads, checkpoint=checkpoint, **analyze_options)
    with _grad_free(model):
        job = hf_batch.Job(model, processor, task, target=target, target_class=target_class,
                           dtype=dtype, embeds=embeds, ig_steps=ig_steps,
                           max_length=max_length, probe=probe, label_names=names,
                           labels=labels, model_name=model_name or _model_name(model),
                           what=WHAT, form=form)
        try:
            if given:
                return run_batches(job, data, run_dir, **opts)
            return run_job(job, recs, run_dir, batch_size=batch_size,
                           sort_by_length=sort_by_length, **opts)
        finally:
            job.close()


@contextlib.contextmanager
def _grad_free(model):
    """eval() and no parameter gradients while the driver runs (gradients flow to the
    attention probabilities and the captured embeddings only), then as they were."""
    training = model.training
    wants = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    model.requires_grad_(False)
    try:
        yield
    finally:
        for p, r in wants:
            p.requires_grad_(r)
        model.train(training)


def _model_name(model):
    return getattr(model.config, "_name_or_path", "") or type(model).__name__


def plan(job, recs, batch_size, sort_by_length):
    """The forward batches (record indices, in the order the run stores them) and the
    padded length T of the longest, known before any forward pass (the run's header
    needs it): each text is tokenized once."""
    lengths = job.lengths(recs)
    batches = hf_data.groups(lengths, batch_size, sort_by_length)
    return batches, max(lengths)


def run_job(job, recs, run_dir, *, batch_size=16, sort_by_length=False, **opts):
    """The live run of job over records recs into run_dir (see analyze_model)."""
    batches, T = plan(job, recs, batch_size, sort_by_length)
    steps = [(len(idx), lambda idx=idx: job.batch(recs, idx)) for idx in batches]
    return write_run(job, steps, len(recs), T, run_dir,
                     "--batch-size %d" % batch_size, **opts)


def run_batches(job, batches, run_dir, **opts):
    """The live run of job over batches the caller made (see analyze_model)."""
    shapes = [job.batch_shape(b, k) for k, b in enumerate(batches)]
    steps = [(n, lambda b=b: job.given_batch(b)) for b, (n, _) in zip(batches, shapes)]
    return write_run(job, steps, sum(n for n, _ in shapes), max(t for _, t in shapes),
                     run_dir, "the same batches", **opts)


def write_run(job, steps, N, T, run_dir, same, *, progress="auto", quiet=False,
              resume=False, force=False, backend=None, threads=0, **analyze_options):
    """steps: [(examples, () -> (tensors, tokens))] in order; N examples, T tokens at
    most. Resuming skips the steps the writer already holds."""
    import attnmap

    dev = job.device
    if backend is None:  # attnmap where the model is: device tensors are read in place
        backend = "cuda:%d" % (dev.index or 0) if dev.type == "cuda" else "cpu"
    # the long-context form is read from host memory only (no backend reads it in place)
    to_host = dev.type != "cpu" and (backend == "cpu" or job.long is not None)
    bar = export_shards.Progress(N, progress, quiet, what=WHAT)
    with attnmap.RunWriter(run_dir, examples=N, max_tokens=T, backend=backend,
                           threads=threads, force=force, resume=resume,
                           model=job.model_name, grid=job.grid, recorded_target=job.target,
                           **analyze_options) as w:
        skip = w.resume_from
        if skip and not quiet:
            print("%s: resuming after %d examples stored in %s.partial" % (WHAT, skip, run_dir),
                  file=sys.stderr)
        done = 0
        for n, step in steps:
            if done + n <= skip:  # stored before the interruption
                done += n
                bar.update(n)
                continue
            if done < skip:
                raise SystemExit("%s: %s.partial holds %d examples, which is not a batch "
                                 "boundary of this run: resume with %s as the interrupted "
                                 "run" % (WHAT, run_dir, skip, same))
            t, tokens = step()
            if to_host:  # asked for: the cpu backend reads host memory only
                t = {k: v.cpu() for k, v in t.items()}
            w.add(**attention_arrays(job, t),
                  attention_mask=t["attention_mask"],
                  special_tokens_mask=t["special_tokens_mask"],
                  saliency=saliency_maps(t),
                  inputs_embeds=t.get("inputs_embeds"),
                  inputs_embeds_grads=t.get("inputs_embeds_grads"),
                  tokens=tokens, ids=t.get("input_ids"), labels=t.get("labels"),
                  predictions=t["predictions"])
            done += n
            bar.update(n)
    bar.close()
    if not quiet:
        delta = (" (max |IG completeness delta| %.3g)" % job.ig_delta
                 if job.ig_delta is not None else "")
        print("%s: analysed %d examples live into %s%s; report with: attnmap report %s"
              % (WHAT, N, run_dir, delta, run_dir), file=sys.stderr)
    return run_dir


def attention_arrays(job, t):
    """RunWriter.add's attention arguments of a batch's tensors: attentions and their
    gradients, or the long-context form's per-layer lists and attnmap.attention."""
    if job.long is None:
        return {"attentions": t["attentions"], "attention_grads": t["attention_grads"]}
    out = {role: [t["%s.%d" % (role, l)] for l in range(job.long.L)]
           for role in hf_long.ROLES}
    out["attention"] = job.long.attention
    return out


def saliency_maps(t):
    """{name: [B,T]} of a batch's saliency.* tensors, in name order as a shard file holds
    them (the order of the run's maps and pairs), or None."""
    maps = {k[len("saliency."):]: v for k, v in sorted(t.items()) if k.startswith("saliency.")}
    return maps or None
