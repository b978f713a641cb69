"""attnmap.faith_inputs - the model-free half of attnmap-faithfulness (docs/faithfulness.md):
ranks the rankable tokens of one example by a map, turns a bin or curve step (percent) into a
token count, builds every perturbed input of every example (each distinct input once), runs
them through a forward function in sorted, padded batches and fills the PROBS tensors.

A forward function takes (input_ids LongTensor [b,T], attention_mask LongTensor [b,T]) and
returns logits [b,C]; the target probability is softmax(logits)[c]. attnmap.faithfulness
wraps a Hugging Face model in one; the tests use hand-built ones. With mode image_baseline
the "ids" are token positions (0..n-1), a removed patch's is -1, and the forward function
gets a third argument, the example index of each row [b], to build the pixels from.
"""
import math
from fractions import Fraction

import numpy as np

STEPS = tuple(range(0, 101, 10))
MODES = ("delete", "mask", "pad", "image_baseline")
K_ROUNDING = "ceil(n * percent / 100) tokens, n = the example's rankable tokens"


def k_tokens(n, percent):
    """Tokens in the top `percent`% of n: ceil(n * percent / 100), exact (no float rounding:
    10% of 10 tokens is 1, not 2), so every bin above 0% holds at least one token."""
    return min(n, math.ceil(Fraction(str(percent)) * n / 100))


def rank(values, rankable, how="signed"):
    """Positions (indices into values) of the rankable tokens, most important first.
    signed: by value descending; abs: by |value| descending (the agreement metrics' top-k).
    Equal values go to the lower position first (as the agreement metrics break ties);
    NaN ranks last."""
    pos = np.flatnonzero(rankable)
    v = np.asarray(values, np.float64)[pos]
    key = -np.abs(v) if how == "abs" else -v
    key = np.where(np.isnan(key), np.inf, key)
    return pos[np.lexsort((pos, key))]


def random_rank(rankable, seed, index):
    """The seeded random ranking of example `index`: a permutation of its rankable positions
    from numpy's PCG64 seeded with (seed, index), so that it does not depend on batching or on
    which other examples are in the file."""
    pos = np.flatnonzero(rankable)
    return np.random.default_rng([seed, index]).permutation(pos)


def removal_sets(order, n_tokens, bins):
    """{(kind, j): sorted positions removed} for one ranking: kind "removed"/"kept" per bin j
    (comprehensiveness removes the top k, sufficiency removes the rest), "deletion"/"insertion"
    per curve step j."""
    out = {}
    for j, p in enumerate(bins):
        k = k_tokens(n_tokens, p)
        out[("removed", j)] = order[:k]
        out[("kept", j)] = order[k:]
    for j, p in enumerate(STEPS):
        k = k_tokens(n_tokens, p)
        out[("deletion", j)] = order[:k]
        out[("insertion", j)] = order[k:]
    return out


def perturb(ids, removed, mode, replace_id):
    """The input ids of one example with the positions `removed` deleted (mode delete) or
    replaced by replace_id (mask, pad: the length and attention mask stay)."""
    if mode == "delete":
        keep = np.ones(len(ids), bool)
        keep[removed] = False
        return ids[keep]
    out = ids.copy()
    out[removed] = replace_id
    return out


def run_batches(forward, inputs, targets, batch, pad_id, torch, device, owners=None):
    """Target-class probabilities [len(inputs)] (float64) of the id sequences `inputs`, sorted
    by length (longest first, ties by index), padded on the right with pad_id, `batch` rows at
    a time. targets[i] < 0: the predicted class is taken (and returned in the second array).
    owners: the example index of each input, passed to forward as a third argument."""
    order = sorted(range(len(inputs)), key=lambda i: (-len(inputs[i]), i))
    probs = np.full(len(inputs), np.nan)
    chosen = np.asarray(targets, np.int64).copy()
    with torch.no_grad():
        for s in range(0, len(order), batch):
            rows = order[s:s + batch]
            T = max(1, max(len(inputs[r]) for r in rows))
            ids = np.full((len(rows), T), pad_id, np.int64)
            mask = np.zeros((len(rows), T), np.int64)
            for b, r in enumerate(rows):
                ids[b, :len(inputs[r])] = inputs[r]
                mask[b, :len(inputs[r])] = 1
            args = (torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))
            if owners is not None:
                args += (torch.tensor([owners[r] for r in rows], dtype=torch.long),)
            logits = forward(*args)
            logp = torch.log_softmax(logits.double(), dim=-1)
            c = torch.from_numpy(chosen[rows]).to(logp.device)
            c = torch.where(c < 0, logp.argmax(-1), c)
            p = logp.gather(1, c[:, None]).squeeze(1).exp()
            probs[rows] = p.cpu().numpy()
            chosen[rows] = c.cpu().numpy()
    return probs, chosen


def probabilities(examples, maps, forward, *, bins, mode, seed, replace_id=None, pad_id=0,
                  batch=64, rank_by="signed", torch=None, device="cpu"):
    """The PROBS tensors of contract step 2 (FAITHFULNESS-CONTRACT.md).

    examples: list of dicts, one per example in the run's order: "ids" int64 [n] (its valid
    tokens in order), "rankable" bool [n] (valid and not special), "target" int (the class,
    or -1 for the predicted class on the full input).
    maps: {name: list of float arrays [n]} (the map's values at the valid positions); the
    seeded "random" ranking is added last.
    Returns (tensors {name: numpy array}, map names, forwards run)."""
    if torch is None:
        import torch
    if mode not in MODES:
        raise ValueError("mode %r is not one of %s" % (mode, ", ".join(MODES)))
    image = mode == "image_baseline"
    if image:
        replace_id = -1
    if mode != "delete" and replace_id is None:
        raise ValueError("mode %s needs the token id to put in place of removed tokens" % mode)
    names = list(maps) + ["random"]
    N, M, K, S = len(examples), len(names), len(bins), len(STEPS)
    # the full inputs first: they fix the predicted class that every perturbation is read at
    full = [np.asarray(e["ids"], np.int64) for e in examples]
    live = [i for i in range(N) if len(full[i])]
    p_live, c_live = run_batches(forward, [full[i] for i in live],
                                 [int(examples[i]["target"]) for i in live], batch, pad_id,
                                 torch, device, live if image else None)
    p_full = np.full(N, np.nan)
    target = np.array([max(int(e["target"]), 0) for e in examples], np.int64)
    p_full[live], target[live] = p_live, c_live
    # every perturbation of every example and map, each distinct input once
    key_of, inputs, owners, where = {}, [], [], []
    tokens = np.zeros(N, np.int32)
    for i in live:
        rankable = np.asarray(examples[i]["rankable"], bool)
        n = int(rankable.sum())
        tokens[i] = n
        if n == 0:
            continue
        empty = (i, b"")
        key_of[empty] = -1  # nothing removed: the full input, already run
        for m, name in enumerate(names):
            order = (random_rank(rankable, seed, i) if name == "random"
                     else rank(maps[name][i], rankable, rank_by))
            for (kind, j), removed in removal_sets(order, n, bins).items():
                key = (i, np.sort(removed).astype(np.int32).tobytes())
                if key not in key_of:
                    key_of[key] = len(inputs)
                    inputs.append(perturb(full[i], removed, mode, replace_id))
                    owners.append(i)
                where.append((kind, i, m, j, key_of[key]))
    p_in, _ = run_batches(forward, inputs, target[owners] if owners else [], batch, pad_id,
                          torch, device, owners if image else None)
    out = {"removed": np.full((N, M, K), np.nan), "kept": np.full((N, M, K), np.nan),
           "deletion": np.full((N, M, S), np.nan), "insertion": np.full((N, M, S), np.nan)}
    for kind, i, m, j, at in where:
        out[kind][i, m, j] = p_full[i] if at < 0 else p_in[at]
    tensors = {"faithfulness.p_full": p_full.astype(np.float32),
               "faithfulness.p_removed": out["removed"].astype(np.float32),
               "faithfulness.p_kept": out["kept"].astype(np.float32),
               "faithfulness.deletion": out["deletion"].astype(np.float32),
               "faithfulness.insertion": out["insertion"].astype(np.float32),
               "faithfulness.target": target.astype(np.int32),
               "faithfulness.tokens": tokens}
    return tensors, names, len(live) + len(inputs)
