"""attnmap.gen_grads - the scores of a generated sequence and their gradients, for the
generation mode of the exporter (attnmap.export_gen; docs/generation.md, docs/exporter.md).

The convention (the same for decoders and encoder-decoder models): the score of a row r is
the log-probability that the model's output at r gives to the token that follows r
(`next_ids[b, r]`): the row that an attnmap target reads is the row whose output is scored,
as for the classifier's CLS row and the causal LM's last row. A step is a row; step s of an
example is its s-th step row (`step_rows`). The shared score is the sum of the step scores,
so `attention_grads` is the sum of the `step_attention_grads` rows."""
import torch


def row_scores(logits, next_ids):
    """[B,T] float32 log-softmax of logits [B,T,V] at next_ids [B,T] (-1: not scored, 0)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    take = next_ids.clamp(min=0).long()
    s = logp.gather(-1, take.unsqueeze(-1)).squeeze(-1)
    return torch.where(next_ids >= 0, s, torch.zeros_like(s))


def parse_target(target):
    """"gen", or "A:B" as (A, B) with None for a bound left out (Python slice rules over an
    example's valid tokens, docs/generation.md); None when target is neither."""
    if target == "gen":
        return "gen"
    a, colon, b = str(target).partition(":")
    try:
        return (int(a) if a else None, int(b) if b else None) if colon else None
    except ValueError:
        return None


def step_rows(mask, start, target):
    """[B,S] padded positions of each example's steps, in order, -1 past its steps: for
    target "gen" its valid positions >= start[b] (generation_start), for "A:B" its valid
    positions A..B-1. S is the largest number of steps (at least 1)."""
    spec = parse_target(target)
    B, T = mask.shape
    picked = []
    for b in range(B):
        valid = mask[b].bool().nonzero().flatten()
        if spec == "gen":
            picked.append(valid[valid >= int(start[b])])
        else:
            picked.append(valid[slice(*spec)])
    S = max([1] + [p.numel() for p in picked])
    rows = torch.full((B, S), -1, dtype=torch.long, device=mask.device)
    for b, p in enumerate(picked):
        rows[b, :p.numel()] = p
    return rows


def step_scores(scores, rows):
    """[B,S] the row scores [B,T] at the step rows (0 past an example's steps)."""
    got = scores.gather(1, rows.clamp(min=0))
    return torch.where(rows >= 0, got, torch.zeros_like(got))


def gradients(steps, inputs, per_step):
    """Gradients of the step scores steps [B,S] w.r.t. each tensor of inputs ({name:
    tensor}, tensors of the graph whose first dimension is the batch).

    Returns ({name: d(sum of every step score)/d tensor}, {name: [B,S,...] per-step
    gradients} or None). Examples of a batch do not interact, so the backward of
    steps[:, s].sum() gives every example's step-s gradient: one backward per step, not
    per example and step; an example with fewer steps gets zeros in the rows past them."""
    names = list(inputs)
    xs = [inputs[k] for k in names]
    total = torch.autograd.grad(steps.sum(), xs, retain_graph=per_step, allow_unused=True)
    shared = {k: _zeros_if_none(g, x) for k, g, x in zip(names, total, xs)}
    if not per_step:
        return shared, None
    rows = {k: [] for k in names}
    S = steps.shape[1]
    for s in range(S):
        gs = torch.autograd.grad(steps[:, s].sum(), xs, retain_graph=s + 1 < S,
                                 allow_unused=True)
        for k, g, x in zip(names, gs, xs):
            rows[k].append(_zeros_if_none(g, x))
    return shared, {k: torch.stack(v, dim=1) for k, v in rows.items()}


def _zeros_if_none(g, x):
    return torch.zeros_like(x) if g is None else g.detach()


def saliency(embeds, grads, mask):
    """The three maps attnmap derives from embedding gradients (docs/analyses.md), in
    float32, padding 0: embeds [B,T,D] with grads [B,T,D] ([B,T] maps) or grads [B,S,T,D]
    (per-step [B,S,T] maps)."""
    x, g = embeds.float(), grads.float()
    m = mask.float()
    if g.dim() == 4:
        x, m = x.unsqueeze(1), m.unsqueeze(1)
    gx = (g * x).sum(-1) * m
    return {"saliency.grad_l2": (g.norm(dim=-1) * m).contiguous().cpu(),
            "saliency.grad_x_input": gx.contiguous().cpu(),
            "saliency.abs_grad_x_input": gx.abs().contiguous().cpu()}
