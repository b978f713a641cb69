"""attnmap.hf_batch - one batch of a Hugging Face model as attnmap tensors, shared by the
two consumers: the exporter's shards (attnmap.export_shards) and live runs (attnmap.hf,
attnmap.RunWriter). A Job holds what every batch needs (model, processor, task, target
score, probe, storage dtype, the embedding capture); Job.run does the forward with
attentions and the backward of the target score (plus integrated gradients), and
Job.tensors turns the result into the docs/design.md §2 tensors of the batch in the storage
dtype, so that a shard of one batch and a live batch hold the same bytes."""
import json

import torch

from . import hf_long, hf_tasks
from .hf_data import load_image

DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}
FORMS = ("matrix", "long")
# what a batch made by the caller may hold that the model or the run reads
GIVEN = ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask", "labels",
         "pixel_values")


def is_batch(x):
    """True for a batch of model inputs (a dict or BatchEncoding of tensors), not a
    record."""
    return hasattr(x, "keys") and any(len(getattr(x.get(k), "shape", ())) >= 2
                                      for k in ("input_ids", "pixel_values"))


def to_storage(t, dtype, name, what="attnmap-export"):
    """t detached in the storage dtype, contiguous, on its own device; non-finite values
    (an F16 overflow) stop with a message."""
    t = t.detach().to(dtype).contiguous()
    if not torch.isfinite(t).all():
        raise SystemExit("%s: %s does not fit %s (overflow); use --dtype f32 or bf16"
                         % (what, name, dtype))
    return t


def batch_size(t):
    """(B, T) of a batch's or shard's tensors, in either form."""
    if "attentions" in t:
        return t["attentions"].shape[1], t["attentions"].shape[-1]
    return t["queries.0"].shape[0], t["queries.0"].shape[2]


def encode_texts(proc, texts, max_length):
    """The tokenizer's batch of texts, padded to the longest, truncated to max_length."""
    return dict(proc(texts, padding=True, truncation=True, max_length=max_length,
                     return_special_tokens_mask=True, return_tensors="pt"))


def default_target(task):
    """The row the analysis reads: last for decoders, mean when the score pools every
    position, else cls."""
    return {"causal-lm": "last", "embedding-probe": "mean"}.get(task, "cls")


class Job:
    """What every batch of one export or live run needs. model: a Hugging Face model with
    eager attention, in eval mode, its parameters not requiring grad (hf_tasks.load_model);
    proc: its tokenizer (text) or image processor; labels: the data's integer labels by
    record index (or None); probe: {W, b} of embedding-probe. form: "matrix" (attentions
    and their gradients, eager attention) or "long" (queries, keys, values and
    attention_output_grads per layer, attnmap.hf_long, any attention implementation)."""

    def __init__(self, model, proc, task, *, target=None, target_class="predicted",
                 dtype="f16", embeds="full", ig_steps=0, max_length=128, probe=None,
                 probe_info=None, label_names=None, labels=None, model_name="",
                 what="attnmap-export", form="matrix"):
        if dtype not in DTYPES:
            raise SystemExit("%s: dtype %r is not one of %s" % (what, dtype, sorted(DTYPES)))
        if form not in FORMS:
            raise SystemExit("%s: form %r is not one of %s" % (what, form, FORMS))
        if task == "seq2seq":
            raise SystemExit("%s: encoder-decoder models are exported in the generation "
                             "mode only (attnmap-export --generate or --output-field, "
                             "attnmap.export_gen.export_model; docs/exporter.md)" % what)
        self.model, self.proc, self.task = model, proc, task
        self.target = target or default_target(task)
        self.target_class, self.dtype, self.embeds = target_class, dtype, embeds
        self.ig_steps, self.max_length, self.probe = ig_steps, max_length, probe
        self.labels, self.model_name, self.what = labels, model_name, what
        self.device = next(model.parameters()).device
        self.prefix = self.n_tok = 0
        if task == "image-cls":
            cfg = model.config
            self.n_tok = model.base_model.embeddings.position_embeddings.shape[1]
            self.prefix = self.n_tok - (cfg.image_size // cfg.patch_size) ** 2
        self.emb_module = hf_tasks.embedding_module(model, task)
        self.capture = hf_tasks.Capture(self.emb_module)
        self.form = form
        self.long = hf_long.LongCapture(model) if form == "long" else None
        self.ig_delta = None
        # the options recorded in the shards (attnmap.exporter) and checked on resume
        self.extra = {"task": task, "target": self.target, "target_class": target_class,
                      "score": "logit of target_class" + (" at the last valid token"
                                                          if task == "causal-lm" else ""),
                      "prefix": self.prefix, "ig_steps": ig_steps, "dtype": dtype,
                      "embeds": embeds}
        if probe_info:
            self.extra["probe"] = probe_info
        if self.long is not None:  # matrix-form shards keep the record they always had
            self.extra["form"] = "long"
            self.extra["attention"] = self.long.attention
        if label_names and task == "causal-lm":
            self.extra["data_label_names"] = label_names  # classes of data_labels
        elif label_names:
            self.extra["label_names"] = label_names

    @property
    def grid(self):
        """attnmap.grid of an image model ("4x4+1"), else None."""
        if self.task != "image-cls":
            return None
        side = int(round((self.n_tok - self.prefix) ** 0.5))
        return "%dx%d+%d" % (side, side, self.prefix)

    def close(self):
        self.capture.remove()
        if self.long is not None:
            self.long.remove()

    # ---- inputs --------------------------------------------------------------------
    def encode(self, recs, idx=None):
        """The model inputs of recs on the CPU, padded to the longest of them, with their
        labels when the data has labels (idx: the records' indices into the data)."""
        if self.task == "image-cls":
            images = [load_image(r["image"]) for r in recs]
            batch = {"pixel_values": self.proc(images=images, return_tensors="pt")
                     ["pixel_values"]}
        else:
            batch = encode_texts(self.proc, [r["text"] for r in recs], self.max_length)
        if self.labels is not None and idx is not None:
            batch["labels"] = torch.tensor([self.labels[i] for i in idx])
        return batch

    def lengths(self, recs):
        """Tokens of each record after truncation (what encode pads to); image models:
        the model's token count."""
        if self.task == "image-cls":
            return [self.n_tok] * len(recs)
        return [len(self.proc(r["text"], truncation=True, max_length=self.max_length)
                    ["input_ids"]) for r in recs]

    def tokens(self, batch):
        """The token strings of the real positions of each text (attnmap.tokens)."""
        if self.task == "image-cls":
            return None
        out = []
        for ids, m in zip(batch["input_ids"].tolist(), batch["attention_mask"].tolist()):
            out.append(self.proc.convert_ids_to_tokens([i for i, v in zip(ids, m) if v]))
        return out

    # ---- one forward batch ---------------------------------------------------------
    def run(self, b):
        """Forward and backward of one batch b (tensors on the model's device):
        hf_tasks.run_batch's results, plus saliency.ig with ig_steps > 0."""
        res = hf_tasks.run_batch(self.model, self.task, b, self.capture, self.probe,
                                 self.target_class, long=self.long)
        if self.ig_steps > 0:
            self.capture.on = False
            try:
                sal, delta = hf_tasks.integrated_gradients(
                    self.model, self.task, b, self.probe, res["target_class"],
                    self.ig_steps, self.emb_module)
            finally:
                self.capture.on = True
            res["saliency.ig"] = sal.detach()
            d = float(delta.max())
            self.ig_delta = d if self.ig_delta is None else max(self.ig_delta, d)
        return res

    def tensors(self, res, b):
        """The docs/design.md §2 tensors of one batch: attentions and gradients (and
        embeddings) in the storage dtype on the model's device, the rest on the CPU."""
        dt, what = DTYPES[self.dtype], self.what
        out = self.attention_tensors(res)
        out["predictions"] = res["predictions"].cpu().to(torch.int32)
        B, T = batch_size(out)
        if self.task == "image-cls":
            mask = torch.ones(B, T, dtype=torch.uint8)
            special = torch.zeros(B, T, dtype=torch.uint8)
            special[:, :self.prefix] = 1
            out["attention_mask"], out["special_tokens_mask"] = mask, special
            images = self.images(b)
            if images is not None:
                out["images"] = images
        else:
            mask = b["attention_mask"].cpu().to(torch.uint8)
            out["attention_mask"] = mask
            out["special_tokens_mask"] = b["special_tokens_mask"].cpu().to(torch.uint8) & mask
            out["input_ids"] = b["input_ids"].cpu().to(torch.int32)
        if "labels" in b and self.task == "causal-lm" and self.target_class != "label":
            # predictions are next-token ids; the data's class labels are another quantity,
            # kept under a name attnmap does not read (as `labels` every example would be
            # "misclassified")
            out["data_labels"] = b["labels"].cpu().to(torch.int32)
        elif "labels" in b:
            out["labels"] = b["labels"].cpu().to(torch.int32)
        if "inputs_embeds" in res and self.embeds == "full":
            for k in ("inputs_embeds", "inputs_embeds_grads"):
                out[k] = to_storage(res[k], dt, k, what)
        elif "inputs_embeds" in res and self.embeds == "saliency":
            x, g = res["inputs_embeds"].float().cpu(), res["inputs_embeds_grads"].float().cpu()
            m = mask.float()
            gx = (g * x).sum(-1) * m  # the formulas of docs/analyses.md, padding 0
            out["saliency.grad_l2"] = (g.norm(dim=-1) * m).contiguous()
            out["saliency.grad_x_input"] = gx.contiguous()
            out["saliency.abs_grad_x_input"] = gx.abs().contiguous()
        if "saliency.ig" in res:
            out["saliency.ig"] = res["saliency.ig"].cpu().float().contiguous()
        # exporter extras, ignored by attnmap: the class whose logit was differentiated and
        # its value
        out["target_class"] = res["target_class"].cpu().to(torch.int32)
        out["target_score"] = res["score"].cpu().float()
        return out

    def images(self, b):
        """`images` U8 [B,H,W,3] (docs/formats.md): the picture the model saw, i.e. the
        processor's pixel_values (resized, cropped) de-normalised with its own image_mean,
        image_std and rescale_factor, rounded to the nearest byte and clipped. None without
        a processor that records them or for pixel_values that are not 3-channel."""
        px, proc = b.get("pixel_values"), self.proc
        mean, std = getattr(proc, "image_mean", None), getattr(proc, "image_std", None)
        if px is None or px.dim() != 4 or px.shape[1] != 3 or mean is None or std is None:
            return None
        if not getattr(proc, "do_normalize", True):
            mean, std = [0.0] * 3, [1.0] * 3
        if isinstance(mean, (int, float)):
            mean, std = [mean] * 3, [std] * 3
        scale = getattr(proc, "rescale_factor", 1 / 255) if getattr(proc, "do_rescale",
                                                                    True) else 1.0
        x = px.detach().cpu().double()
        x = x * torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1) + \
            torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
        x = (x / scale).round().clamp(0, 255).to(torch.uint8)
        return x.permute(0, 2, 3, 1).contiguous()

    def attention_tensors(self, res):
        """attentions and attention_grads [L,B,H,T,T], or the long-context form's
        queries.{l}, keys.{l}, values.{l}, attention_output_grads.{l}, in the storage
        dtype."""
        dt, what = DTYPES[self.dtype], self.what
        if self.long is None:
            return {k: to_storage(res[k], dt, k, what)
                    for k in ("attentions", "attention_grads")}
        return {"%s.%d" % (role, l): to_storage(x, dt, "%s.%d" % (role, l), what)
                for role in hf_long.ROLES for l, x in enumerate(res["long"][role])}

    def batch(self, recs, idx):
        """encode + run + tensors of the records idx (one forward batch): the tensors and
        the batch's token strings."""
        b = {k: v.to(self.device) for k, v in self.encode([recs[i] for i in idx], idx).items()}
        t = self.tensors(self.run(b), b)
        return t, self.tokens(b)

    # ---- batches the caller made (attnmap.hf.analyze_model) ---------------------------
    def batch_shape(self, b, k):
        """(examples, padded length) of batch number k as the caller made it."""
        x = b["pixel_values"] if self.task == "image-cls" else b.get("input_ids")
        if x is None or len(getattr(x, "shape", ())) < 2:
            raise SystemExit("%s: batch %d: %s is not a [B,...] tensor" % (
                self.what, k, "pixel_values" if self.task == "image-cls" else "input_ids"))
        return int(x.shape[0]), self.n_tok if self.task == "image-cls" else int(x.shape[1])

    def given_batch(self, b):
        """run + tensors of a batch the caller made (dict of tensors as the processor
        returns them): the tensors and the token strings (None without a processor)."""
        b = {k: torch.as_tensor(v) for k, v in b.items() if k in GIVEN}
        if self.task != "image-cls":
            ids = b["input_ids"]
            b.setdefault("attention_mask", torch.ones_like(ids))
            if "special_tokens_mask" not in b:
                if self.proc is None:
                    raise SystemExit("%s: a batch without special_tokens_mask needs "
                                     "processor= (or the tokenizer's "
                                     "return_special_tokens_mask=True)" % self.what)
                b["special_tokens_mask"] = torch.tensor(
                    [self.proc.get_special_tokens_mask(row, already_has_special_tokens=True)
                     for row in ids.tolist()])
        b = {k: v.to(self.device) for k, v in b.items()}
        t = self.tensors(self.run(b), b)
        return t, self.tokens(b) if self.proc is not None else None

    def metadata(self, ids, tokens, T):
        """A shard's __metadata__ (the examples' ids, their token strings, T)."""
        meta = {"model": self.model_name,
                "attnmap.ids": json.dumps(ids),
                "attnmap.exporter": json.dumps(dict(self.extra, tokens=int(T)),
                                               sort_keys=True)}
        if self.long is not None:
            meta["attnmap.attention"] = json.dumps(self.long.attention, sort_keys=True)
        if self.grid:
            meta["attnmap.grid"] = self.grid
        else:
            meta["attnmap.tokens"] = json.dumps(tokens, ensure_ascii=False)
        return meta
