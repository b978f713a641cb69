"""train_tiny_lm.py - a tiny word-level GPT-2 TRAINED on the spot, offline, on an English
text every Debian machine has (/usr/share/common-licenses/GPL-3), saved as a Hugging Face
model folder (config, weights, tokenizer) for examples/generation.sh. A toy: it learns one
license text (and mostly recites it), not English; its use is a model whose generations read
as text and whose attention maps show learned structure, where the hub cannot be reached.

    python examples/train_tiny_lm.py OUT_DIR [--steps 1200] [--text FILE] [--seed 0]

Word-level tokenizer (lower-cased; words and punctuation split as the `Whitespace`
pre-tokenizer does; words seen at least twice, the rest <unk>; <eos> = 0 ends each
paragraph), GPT-2 of 2 layers, 4 heads, 64 dimensions, 64 positions, no dropout; AdamW
(lr 3e-3, cosine to 0) on random 32-token windows, 16 a step, fixed seed, 1 CPU thread.
Writes OUT_DIR/training.json (steps, seconds, final loss = mean of the last 50 steps)."""
import argparse
import collections
import json
import math
import os
import re
import time


def tokenizer_and_ids(text):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Whitespace()
    paras = [p for p in re.split(r"\n\s*\n", text.lower()) if p.strip()]
    words = [[w for w, _ in pre.pre_tokenize_str(p)] for p in paras]
    counts = collections.Counter(w for p in words for w in p)
    vocab = {"<eos>": 0, "<unk>": 1}
    for w, c in sorted(counts.items(), key=lambda x: (-x[1], x[0])):
        if c >= 2:
            vocab[w] = len(vocab)
    t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    t.normalizer = normalizers.Lowercase()
    t.pre_tokenizer = pre
    tok = PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<eos>", unk_token="<unk>",
                                  bos_token="<eos>")
    ids = []
    for p in words:
        ids += [vocab.get(w, 1) for w in p] + [0]
    return tok, ids


def training_args(ap, steps, hidden, batch, lr):
    """The options both toy trainers share (this one and train_tiny_vit.py)."""
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=hidden)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--threads", type=int, default=1)


def train(model, a, loss_of_step, torch):
    """a.steps AdamW steps (weight decay 0.01, lr a.lr with a 50-step warm-up, then cosine
    to 0, gradients clipped at norm 1) on loss_of_step()'s loss; leaves the model in eval
    mode and returns seconds, first loss and final loss (the mean of the last 50 steps)."""
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    model.train()
    losses, t0 = [], time.time()
    for step in range(a.steps):
        for group in opt.param_groups:  # short warm-up, then cosine to 0
            group["lr"] = a.lr * min(1.0, (step + 1) / 50) * 0.5 * (
                1 + math.cos(math.pi * step / max(1, a.steps)))
        loss = loss_of_step()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    seconds = time.time() - t0
    model.eval()
    tail = losses[-50:]
    return {"seconds": round(seconds, 1),
            "first_loss": round(losses[0], 3) if losses else None,
            "final_loss": round(sum(tail) / len(tail), 3) if tail else None}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--text", default="/usr/share/common-licenses/GPL-3")
    ap.add_argument("--context", type=int, default=32)
    training_args(ap, steps=1200, hidden=64, batch=16, lr=3e-3)
    a = ap.parse_args(argv)

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    tok, ids = tokenizer_and_ids(open(a.text, encoding="utf-8").read())
    data = torch.tensor(ids, dtype=torch.long)
    cfg = GPT2Config(vocab_size=len(tok), n_embd=a.hidden, n_layer=a.layers, n_head=a.heads,
                     n_positions=2 * a.context, bos_token_id=0, eos_token_id=0,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     architectures=["GPT2LMHeadModel"])
    model = GPT2LMHeadModel(cfg)
    g = torch.Generator().manual_seed(a.seed)

    def loss_of_step():
        start = torch.randint(0, len(data) - a.context - 1, (a.batch,), generator=g)
        x = torch.stack([data[s:s + a.context] for s in start.tolist()])
        return model(input_ids=x, labels=x).loss

    figures = train(model, a, loss_of_step, torch)
    seconds = figures["seconds"]
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out)
    tok.save_pretrained(a.out)
    info = {"text": a.text, "tokens": len(ids), "vocab": len(tok), "steps": a.steps,
            "seed": a.seed, "layers": a.layers, "heads": a.heads, "hidden": a.hidden,
            "context": a.context, "batch": a.batch, "lr": a.lr, **figures}
    with open(os.path.join(a.out, "training.json"), "w") as f:
        json.dump(info, f, indent=1)
    print("trained %d steps in %.1f s: loss %s -> %s (vocab %d, %d tokens)" % (
        a.steps, seconds, info["first_loss"], info["final_loss"], info["vocab"], len(ids)))


if __name__ == "__main__":
    main()
