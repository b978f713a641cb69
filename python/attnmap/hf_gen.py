"""attnmap.hf_gen - decoder-only models in the exporter's generation mode
(attnmap.export_gen): greedy `model.generate` on a batch of prompts, the padded layout of
prompt + generated tokens (left or right padding), and one forward with attentions over it
whose step scores (attnmap.gen_grads) are differentiated.

Steps are the generated positions (`generation_start[b]` and after, docs/generation.md
`--target gen`); step s's score is the log-probability the output at its row gives to the
token that follows it: the next generated token, and after the last one the token greedy
decoding would add next (the argmax of that row's logits; not part of the sequence)."""
import inspect

import torch

from . import gen_grads


def eos_ids(model):
    """The ids that end a generation (the generation config's eos_token_id), as a list."""
    e = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if e is None:
        e = model.config.eos_token_id
    return [] if e is None else ([e] if isinstance(e, int) else list(e))


def generated_mask(gen, eos):
    """[B,N] 1 for the generated tokens up to and including the first end-of-sequence token
    (what `generate` writes after it is padding)."""
    if not eos:
        return torch.ones_like(gen, dtype=torch.long)
    is_eos = torch.isin(gen, torch.tensor(eos, dtype=gen.dtype)).long()
    before = is_eos.cumsum(1) - is_eos  # end tokens strictly before this position
    return (before == 0).long()


def allow_generate():
    """Lets `model.generate` run where torch.distributed.fsdp cannot be imported (Debian's
    torch 1.13 on Python 3.11: a dataclass error at import): transformers 4.46 imports it
    only to ask whether the model is FSDP-managed, which it cannot be then."""
    try:
        import torch.distributed.fsdp  # noqa: F401
    except Exception:  # noqa: BLE001  any import failure means no FSDP
        import transformers.generation.utils as gu

        gu.is_fsdp_managed_module = lambda module: False


def generate(model, tok, texts, max_new_tokens, max_length, padding_side="left"):
    """Greedy generation. Returns CPU tensors ids [B,T] (int64), mask [B,T] and
    generation_start [B]: left padding keeps generate's layout (pads, prompt, generated,
    padding after an early end), so generation_start is the padded prompt length for the
    whole batch; right padding moves each row's real tokens to the front."""
    device = next(model.parameters()).device
    side = tok.padding_side
    tok.padding_side = "left"  # what generate needs for a decoder-only model
    try:
        enc = tok(texts, padding=True, truncation=True, max_length=max_length,
                  return_tensors="pt")
    finally:
        tok.padding_side = side
    allow_generate()
    with torch.no_grad():
        out = model.generate(input_ids=enc["input_ids"].to(device),
                             attention_mask=enc["attention_mask"].to(device),
                             max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                             pad_token_id=tok.pad_token_id).cpu()
    P = enc["input_ids"].shape[1]
    mask = torch.cat([enc["attention_mask"].long(), generated_mask(out[:, P:], eos_ids(model))], 1)
    keep = int(mask.any(0).nonzero().max()) + 1  # no all-padding columns at the end
    ids, mask = out[:, :keep], mask[:, :keep]
    start = torch.full((ids.shape[0],), P, dtype=torch.long)
    if padding_side == "right":
        return to_right(ids, mask, P, tok.pad_token_id)
    return ids, mask, start


def to_right(ids, mask, P, pad):
    """The layout with each row's real tokens first (prompt, then generated) and padding
    after; generation_start[b] = the row's prompt length."""
    B = ids.shape[0]
    n = mask.sum(1)
    T = int(n.max())
    out_ids = torch.full((B, T), pad, dtype=ids.dtype)
    out_mask = torch.zeros((B, T), dtype=torch.long)
    for b in range(B):
        real = ids[b][mask[b].bool()]
        out_ids[b, :real.numel()] = real
        out_mask[b, :real.numel()] = 1
    return out_ids, out_mask, mask[:, :P].sum(1)


def position_kwargs(model, mask):
    """position_ids counted over real tokens (as generate counts them under left padding),
    for the models whose forward takes them."""
    if "position_ids" not in inspect.signature(model.forward).parameters:
        return {}
    return {"position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}


def next_ids(ids, mask, logits):
    """[B,T] the token each real row's score is of (-1 at padding): the next real token,
    and after the last one the argmax of the row's logits."""
    nxt = torch.full_like(ids, -1)
    follow = torch.zeros_like(mask)
    nxt[:, :-1] = ids[:, 1:]
    follow[:, :-1] = mask[:, 1:]
    nxt = torch.where(follow.bool(), nxt, logits.argmax(-1))
    return torch.where(mask.bool(), nxt, torch.full_like(nxt, -1))


def run(model, ids, mask, rows, capture, per_step, embeds=True):
    """Forward with attentions over a generated batch (tensors on the model's device) and
    the gradients of its step scores (rows [B,S]: gen_grads.step_rows); capture: the
    embedding capture (hf_tasks.Capture) that makes the graph. Returns a dict: attentions,
    attention_grads [L,B,H,T,T], step_attention_grads [L] x [B,S,H,T,T] (per_step), with
    embeds: embeds and embeds_grads ([B,T,D], or [B,S,T,D] per step), score_ids and
    token_scores [B,T] (every real row's score)."""
    out = model(input_ids=ids, attention_mask=mask, output_attentions=True,
                **position_kwargs(model, mask))
    atts = list(out.attentions)
    if not atts or any(a is None for a in atts):
        from .hf_tasks import NO_WEIGHTS
        raise SystemExit(NO_WEIGHTS)
    nxt = next_ids(ids, mask, out.logits)
    scores = gen_grads.row_scores(out.logits, nxt)
    steps = gen_grads.step_scores(scores, rows)
    inputs = {"attentions.%d" % l: a for l, a in enumerate(atts)}
    if embeds and capture.embeds is not None:
        inputs["embeds"] = capture.embeds
    shared, per = gen_grads.gradients(steps, inputs, per_step)
    L = len(atts)
    res = {"attentions": torch.stack([a.detach() for a in atts]),
           "attention_grads": torch.stack([shared["attentions.%d" % l] for l in range(L)]),
           "score_ids": nxt, "token_scores": scores.detach()}
    if per is not None:
        res["step_attention_grads"] = [per["attentions.%d" % l] for l in range(L)]
    if "embeds" in inputs:
        res["embeds"] = capture.embeds.detach()
        res["embeds_grads"] = per["embeds"] if per is not None else shared["embeds"]
    return res
