"""attnmap.hf_seq2seq - encoder-decoder models (T5, BART family) in the exporter's
generation mode (attnmap.export_gen): the decoder tokens come from the data (teacher
forcing: an output text per example) or from greedy `model.generate`; one forward with
attentions over source and decoder tokens, whose row scores (attnmap.gen_grads) are
differentiated w.r.t. the decoder's self-attention and its cross-attention.

The decoder input is the decoder start token followed by the output tokens but the last
(Hugging Face's shift of `labels`); row r's score is the log-probability of output token r,
the token that follows row r, so every output token is some row's score."""
import torch

from . import gen_grads, hf_gen


def start_token(model):
    s = model.config.decoder_start_token_id
    if s is None:
        s = getattr(model.generation_config, "decoder_start_token_id", None)
    if s is None:
        raise SystemExit("attnmap-export: the model's config has no decoder_start_token_id")
    return int(s)


def encode_sources(tok, texts, max_length):
    """Source ids and mask [B,Tenc] (the tokenizer's padding, truncation)."""
    enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"].long()


def encode_outputs(tok, texts, max_length):
    """Output ids and mask [B,N] of teacher forcing (the tokenizer's targets), right padded."""
    side = tok.padding_side
    tok.padding_side = "right"
    try:
        enc = tok(text_target=texts, padding=True, truncation=True, max_length=max_length,
                  return_tensors="pt")
    finally:
        tok.padding_side = side
    return enc["input_ids"], enc["attention_mask"].long()


def generate(model, tok, src, src_mask, max_new_tokens):
    """Greedy generation: output ids and mask [B,N] (up to and including the first end
    token; what generate writes after it is padding)."""
    device = next(model.parameters()).device
    hf_gen.allow_generate()
    with torch.no_grad():
        out = model.generate(input_ids=src.to(device), attention_mask=src_mask.to(device),
                             max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                             pad_token_id=tok.pad_token_id).cpu()
    gen = out[:, 1:]  # out[:, 0] is the decoder start token
    mask = hf_gen.generated_mask(gen, hf_gen.eos_ids(model))
    keep = max(1, int(mask.sum(1).max()))
    return gen[:, :keep], mask[:, :keep]


def decoder_inputs(model, out_ids, out_mask, pad):
    """Decoder input ids and mask [B,N]: the start token, then the outputs but the last;
    row r is real when output r is (row r's score is output r's log-probability)."""
    B = out_ids.shape[0]
    start = torch.full((B, 1), start_token(model), dtype=out_ids.dtype)
    ids = torch.cat([start, out_ids[:, :-1]], 1)
    return torch.where(out_mask.bool(), ids, torch.full_like(ids, pad)), out_mask.clone()


def run(model, src, src_mask, dec, dec_mask, out_ids, rows, per_step, capture=None):
    """Forward with attentions (tensors on the model's device) and the gradients of the
    step scores (rows [B,S]: decoder positions). Returns per-layer lists attentions,
    attention_grads, cross_attentions, cross_attention_grads (and step_attention_grads,
    step_cross_attention_grads [B,S,...] per step), score_ids and token_scores [B,Tdec];
    with capture (hf_tasks.Capture of the decoder's token embeddings, which runs after the
    encoder's where the module is shared): embeds [B,Tdec,D] and embeds_grads ([B,S,Tdec,D]
    per step)."""
    out = model(input_ids=src, attention_mask=src_mask, decoder_input_ids=dec,
                decoder_attention_mask=dec_mask, output_attentions=True)
    selfs, cross = list(out.decoder_attentions), list(out.cross_attentions)
    if not selfs or any(a is None for a in selfs + cross):
        from .hf_tasks import NO_WEIGHTS
        raise SystemExit(NO_WEIGHTS)
    nxt = torch.where(dec_mask.bool(), out_ids, torch.full_like(out_ids, -1))
    scores = gen_grads.row_scores(out.logits, nxt)
    steps = gen_grads.step_scores(scores, rows)
    inputs = {("attentions", l): a for l, a in enumerate(selfs)}
    inputs.update({("cross_attentions", l): a for l, a in enumerate(cross)})
    if capture is not None and capture.embeds is not None:
        if capture.embeds.shape[:2] != dec.shape:
            raise SystemExit("attnmap-export: the decoder's embeddings were not captured "
                             "(%s); use --embeds none" % (tuple(capture.embeds.shape),))
        inputs["embeds"] = capture.embeds
    shared, per = gen_grads.gradients(steps, inputs, per_step)
    res = {"score_ids": nxt, "token_scores": scores.detach()}
    if "embeds" in inputs:
        res["embeds"] = capture.embeds.detach()
        res["embeds_grads"] = per["embeds"] if per is not None else shared["embeds"]
    for role, atts in (("attentions", selfs), ("cross_attentions", cross)):
        L = range(len(atts))
        grad = role[:-1] + "_grads"  # attention_grads, cross_attention_grads
        res[role] = [a.detach() for a in atts]
        res[grad] = [shared[(role, l)] for l in L]
        if per is not None:
            res["step_" + grad] = [per[(role, l)] for l in L]
    return res
