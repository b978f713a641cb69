"""attnmap.hf_tasks - the model side of the exporter (attnmap.exporter): loads a Hugging Face model with eager
attention, defines the target score of each kind of model, and runs one batch forward and
backward to collect attentions, attention gradients, input embeddings and their gradients;
fits and applies the linear probe of sentence-embedding models; integrated gradients.

Kinds (--task): seq-cls (AutoModelForSequenceClassification: BERT family, and GPT-2 family
classifiers), image-cls (AutoModelForImageClassification: ViT), causal-lm
(AutoModelForCausalLM: GPT-2 family, the next-token logit at the last valid token) and
embedding-probe (AutoModel: mean-pooled, L2-normalised sentence embedding followed by a
linear probe, e.g. sentence-transformers/all-MiniLM-L6-v2); seq2seq
(AutoModelForSeq2SeqLM: T5, BART family) in the generation mode only (attnmap.export_gen).
The target score of every kind is one logit per example: the predicted class (argmax),
the example's label, or a fixed class, as --target-class says.
"""
import numpy as np
import torch

TASKS = ("seq-cls", "image-cls", "causal-lm", "embedding-probe", "seq2seq")


def detect_task(config, probe):
    """The kind of a model from its config's architectures (or a probe given)."""
    if probe:
        return "embedding-probe"
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"  # T5, BART family: the exporter's generation mode (export_gen)
    arch = " ".join(getattr(config, "architectures", None) or [])
    if "ForImageClassification" in arch:
        return "image-cls"
    if "ForSequenceClassification" in arch:
        return "seq-cls"
    if "LMHead" in arch or "CausalLM" in arch:
        return "causal-lm"
    raise SystemExit("attnmap-export: cannot tell the task of %s from its config; pass --task "
                     "(%s)" % (arch or "this model", ", ".join(TASKS)))


def load_model(path, task, device, dtype=torch.float32, eager=True):
    """The model of path; eager: with attn_implementation="eager" (the matrix form needs
    its weights), else the implementation transformers picks (SDPA where torch allows)."""
    import transformers as tf

    cls = {"seq-cls": tf.AutoModelForSequenceClassification,
           "image-cls": tf.AutoModelForImageClassification,
           "causal-lm": tf.AutoModelForCausalLM, "embedding-probe": tf.AutoModel,
           "seq2seq": tf.AutoModelForSeq2SeqLM}[task]
    impl = {"attn_implementation": "eager"} if eager else {}
    model = cls.from_pretrained(path, torch_dtype=dtype, **impl)
    model.eval().to(device)
    model.requires_grad_(False)  # gradients flow to the captured embeddings only
    return model


def embedding_module(model, task):
    """The module whose output the exporter calls inputs_embeds: the word embeddings of a text
    model (what Hugging Face's inputs_embeds argument replaces), the patch + position
    embeddings (with CLS) of a ViT."""
    if task == "image-cls":
        return model.base_model.embeddings
    return model.get_input_embeddings()


class Capture:
    """A forward hook that replaces the embedding module's output by a leaf tensor that
    requires grad, so that its gradient is the gradient w.r.t. inputs_embeds."""

    def __init__(self, module):
        self.embeds, self.on = None, True
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        if not self.on:
            return None
        out = output[0] if isinstance(output, tuple) else output
        leaf = out.detach().requires_grad_(True)
        self.embeds = leaf
        return (leaf,) + tuple(output[1:]) if isinstance(output, tuple) else leaf

    def remove(self):
        self.handle.remove()


def last_valid(mask):
    """[b] index of the last position whose mask is 1 (either padding side)."""
    pos = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), pos, torch.full_like(pos, -1)).max(dim=1).values


def pooled_embedding(hidden, mask):
    """sentence-transformers' mean pooling over real tokens, then L2 normalisation."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def model_inputs(batch, task):
    if task == "image-cls":
        return {"pixel_values": batch["pixel_values"]}
    keys = ("input_ids", "attention_mask", "token_type_ids")
    return {k: batch[k] for k in keys if k in batch}


def logits_of(model, task, out, batch, probe):
    """[b, C] logits of the target score's classes (next-token vocabulary for causal-lm)."""
    if task == "causal-lm":
        rows = torch.arange(out.logits.shape[0], device=out.logits.device)
        return out.logits[rows, last_valid(batch["attention_mask"])]
    if task == "embedding-probe":
        z = pooled_embedding(out.last_hidden_state, batch["attention_mask"])
        return z @ probe["W"].t().to(z) + probe["b"].to(z)
    return out.logits


def choose_class(logits, labels, target_class):
    """[b] class whose logit is the target score."""
    if target_class == "predicted":
        return logits.argmax(-1)
    if target_class == "label":
        if labels is None:
            raise SystemExit("attnmap-export: --target-class label needs labels in the data")
        return labels.to(logits.device)
    return torch.full((logits.shape[0],), int(target_class), device=logits.device,
                      dtype=torch.long)


NO_WEIGHTS = ("attnmap: the model returned no attention weights (its attention "
              "implementation, SDPA or flash, does not materialise them): load it with "
              "attn_implementation=\"eager\", or capture the long-context form instead "
              "(attnmap-export --form long, attnmap.hf.analyze_model(..., form=\"long\"): "
              "queries, keys, values and their gradients, no T x T matrix; "
              "docs/long-context.md)")


def run_batch(model, task, batch, capture, probe, target_class, long=None):
    """Forward with attentions, backward of the summed target logits (each example's score
    depends on its own inputs only, so one backward gives every example's gradients).
    Returns a dict of detached tensors on the model's device. long: an
    attnmap.hf_long.LongCapture, whose Q, K, V and dO replace the attentions (the model then
    runs its own attention, no weights asked for)."""
    if long is not None:
        long.start()
    try:
        out = model(**model_inputs(batch, task), output_attentions=long is None)
    finally:
        if long is not None:
            long.stop()
    atts = out.attentions if long is None else ()
    if long is None and (not atts or any(a is None for a in atts)):
        raise SystemExit(NO_WEIGHTS)
    for a in atts:
        a.retain_grad()
    logits = logits_of(model, task, out, batch, probe)
    cls = choose_class(logits, batch.get("labels"), target_class)
    score = logits.gather(1, cls[:, None]).squeeze(1)
    score.sum().backward()
    res = {
        "predictions": logits.argmax(-1).detach(),
        "target_class": cls.detach(),
        "score": score.detach(),
    }
    if long is None:
        res["attentions"] = torch.stack([a.detach() for a in atts])
        res["attention_grads"] = torch.stack([a.grad for a in atts])
    else:
        res["long"] = long.collect()
    if capture is not None and capture.embeds is not None:
        res["inputs_embeds"] = capture.embeds.detach()
        res["inputs_embeds_grads"] = capture.embeds.grad
    return res


def integrated_gradients(model, task, batch, probe, target, steps, emb_module):
    """Captum integrated gradients of the target logit, one value per position [b, T]:
    text models through the word embeddings (LayerIntegratedGradients; baseline: the
    [PAD] embedding at every position but the special tokens, which are kept), summed over
    the embedding dimension; image models on the pixels (baseline: zeros), summed over
    each patch's pixels and channels, prefix tokens (CLS) 0. Returns (saliency, |delta|)."""
    from captum.attr import IntegratedGradients, LayerIntegratedGradients

    if task == "image-cls":
        def fwd_img(pixels):
            out = model(pixel_values=pixels)
            return out.logits

        ig = IntegratedGradients(fwd_img)
        px = batch["pixel_values"]
        attr, delta = ig.attribute(px, baselines=torch.zeros_like(px), target=target,
                                   n_steps=steps, return_convergence_delta=True)
        return patch_sums(model, attr), delta.abs()

    def fwd(ids, mask, *rest):
        b = {"input_ids": ids, "attention_mask": mask}
        if rest:
            b["token_type_ids"] = rest[0]
        out = model(**b)
        return logits_of(model, task, out, b, probe)

    ids, mask = batch["input_ids"], batch["attention_mask"]
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    keep = batch["special_tokens_mask"].bool() & mask.bool()
    base = torch.where(keep, ids, torch.full_like(ids, pad))
    extra = (mask,) + ((batch["token_type_ids"],) if "token_type_ids" in batch else ())
    lig = LayerIntegratedGradients(fwd, emb_module)
    attr, delta = lig.attribute(ids, baselines=base, additional_forward_args=extra,
                                target=target, n_steps=steps, return_convergence_delta=True)
    return attr.sum(-1) * mask, delta.abs()


def patch_sums(model, attr):
    """[b, prefix + patches] per-patch sums of pixel attributions [b, C, H, W]."""
    p = model.config.patch_size
    b, _, h, w = attr.shape
    s = attr.sum(1).reshape(b, h // p, p, w // p, p).sum((2, 4)).reshape(b, -1)
    n_tokens = model.base_model.embeddings.position_embeddings.shape[1]
    prefix = n_tokens - s.shape[1]
    return torch.cat([torch.zeros(b, prefix, dtype=s.dtype, device=s.device), s], 1)


# ---- the linear probe of embedding-probe models ---------------------------------------
def fit_probe(Z, y, classes, l2=1e-2, iterations=100):
    """Multinomial logistic regression on features Z [n, D] (float64) and labels y [n]:
    minimises mean cross-entropy + l2/2 * |W|^2 (bias not penalised) by Newton's method on
    all C*(D+1) parameters (numpy only, deterministic). Returns W [C, D], b [C]."""
    n, D = Z.shape
    X = np.hstack([Z, np.ones((n, 1))])
    Y = np.eye(classes)[y]
    theta = np.zeros((D + 1, classes))
    reg = np.full(D + 1, l2)
    reg[D] = 0.0
    for _ in range(iterations):
        logits = X @ theta
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        grad = X.T @ (p - Y) / n + reg[:, None] * theta
        # Hessian of the flattened parameters, class-major blocks
        H = np.zeros(((D + 1) * classes, (D + 1) * classes))
        for a in range(classes):
            for c in range(classes):
                w = p[:, a] * ((a == c) - p[:, c])
                H[a * (D + 1):(a + 1) * (D + 1), c * (D + 1):(c + 1) * (D + 1)] = \
                    (X * w[:, None]).T @ X / n
        H += np.diag(np.tile(reg, classes)) + 1e-10 * np.eye(H.shape[0])
        step = np.linalg.solve(H, grad.T.reshape(-1)).reshape(classes, D + 1).T
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta[:D].T.copy(), theta[D].copy()


def probe_logits(Z, W, b):
    return Z @ W.T + b
