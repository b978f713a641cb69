"""attnmap.hf_long - capture of the long-context form (docs/long-context.md) from a Hugging
Face model while it runs its own attention (eager, SDPA or flash: nothing here depends on
which): per layer the query and key states as the attention consumed them (after RoPE and
any q/k-norm), the value states, with Hkv heads under grouped-query attention (never
repeated), and dO, the gradient of the target score with respect to each head's attention
output before the output projection; plus the attention's settings (scale, causal, sliding
window, soft-cap) for the shards' attnmap.attention metadata.

Where each tensor is taken (forward hooks on the model's own modules, one wrapped function):
- GPT-2: q, k, v from the output of attn.c_attn (split into heads), dO from the input of
  attn.c_proj;
- BERT family (bert, roberta, xlm-roberta, electra, camembert) and ViT: q, k, v from the
  outputs of the query/key/value linears of the self-attention, dO from the input of the
  attention's output.dense;
- Llama, Qwen2, Mistral: q, k as returned by the modeling module's apply_rotary_pos_emb (the
  attention of every implementation calls it before repeat_kv), v from v_proj, dO from the
  input of o_proj.
dO is the gradient of that input (retain_grad), whose columns h*d..(h+1)*d are head h's
attention output [B,T,H*d]; so G = dO V^T per head is the gradient with respect to the
attention probabilities that output_attentions + retain_grad gives (tests/python/
test_long_capture.py checks both identities per family).
"""
import sys

import torch

ROLES = ("queries", "keys", "values", "attention_output_grads")
BERT_LIKE = ("bert", "roberta", "xlm-roberta", "electra", "camembert", "vit")
ROPE = ("llama", "qwen2", "mistral")
FAMILIES = ("gpt2",) + BERT_LIKE + ROPE

# modeling module -> (its original apply_rotary_pos_emb, the captures listening to it):
# one wrapper per module however many captures run, restored when the last is removed
_ROPE_PATCHES = {}


def _patch_rope(mod, cap):
    if mod not in _ROPE_PATCHES:
        orig, listeners = mod.apply_rotary_pos_emb, []

        def wrapped(*args, **kwargs):
            q, k = orig(*args, **kwargs)
            for c in list(listeners):
                c._rope(q, k)
            return q, k

        mod.apply_rotary_pos_emb = wrapped
        _ROPE_PATCHES[mod] = (orig, listeners)
    _ROPE_PATCHES[mod][1].append(cap)


def _unpatch_rope(mod, cap):
    orig, listeners = _ROPE_PATCHES[mod]
    listeners.remove(cap)
    if not listeners:
        mod.apply_rotary_pos_emb = orig
        del _ROPE_PATCHES[mod]


class _Site:
    """One layer's attention: the module whose forward brackets it, the modules the tensors
    come from, and its head counts."""

    def __init__(self, attn, out, H, Hkv, d, q=None, k=None, v=None, qkv=None, factor=1.0):
        self.attn, self.out, self.H, self.Hkv, self.d = attn, out, H, Hkv, d
        self.q, self.k, self.v, self.qkv, self.factor = q, k, v, qkv, factor


def _refuse(what, why, how="use the matrix form (--form matrix)"):
    raise SystemExit("attnmap: the long-context form cannot be captured from %s: %s; %s"
                     % (what, why, how))


def _sites(model):
    """(model_type, [_Site] per layer) of a supported model, or a one-line refusal."""
    cfg = model.config
    kind = getattr(cfg, "model_type", "")
    base = model.base_model
    if kind == "gpt2":
        if getattr(cfg, "add_cross_attention", False):
            _refuse("this GPT-2", "cross-attention layers are not captured")
        out = []
        for i, blk in enumerate(base.h):
            a = blk.attn
            f = 1.0 / (i + 1) if cfg.scale_attn_by_inverse_layer_idx else 1.0
            out.append(_Site(a, a.c_proj, a.num_heads, a.num_heads, a.head_dim, qkv=a.c_attn,
                             factor=f))
        return kind, out
    if kind in BERT_LIKE:
        if kind != "vit" and (getattr(cfg, "position_embedding_type", "absolute") != "absolute"
                              or getattr(cfg, "is_decoder", False)):
            _refuse("this %s" % kind, "relative position scores or decoder (causal/cross) "
                    "attention are not captured")
        out = []
        for blk in base.encoder.layer:
            s = getattr(blk.attention, "self", None) or blk.attention.attention
            H = s.num_attention_heads
            out.append(_Site(s, blk.attention.output.dense, H, H, s.attention_head_size,
                             q=s.query, k=s.key, v=s.value))
        return kind, out
    if kind in ROPE:
        if getattr(cfg, "pretraining_tp", 1) > 1:
            _refuse("this %s" % kind, "pretraining_tp > 1 bypasses v_proj")
        out = []
        H = cfg.num_attention_heads  # newer transformers drop a.num_heads: the config's
        Hkv = getattr(cfg, "num_key_value_heads", None) or H
        d = getattr(cfg, "head_dim", None) or cfg.hidden_size // H
        for blk in base.layers:
            a = blk.self_attn  # the module's own figures where it has them
            out.append(_Site(a, a.o_proj, getattr(a, "num_heads", H),
                             getattr(a, "num_key_value_heads", Hkv),
                             getattr(a, "head_dim", d), v=a.v_proj))
        return kind, out
    _refuse("model type %r" % kind, "its attention is not one attnmap knows where to read "
            "(%s)" % ", ".join(FAMILIES), "export the matrix form with attn_implementation="
            "\"eager\" (--form matrix)")


def attention_settings(model, kind, sites):
    """attnmap.attention of the model: {scale, causal, sliding_window, softcap} as its
    attention applies them (docs/long-context.md), from the config."""
    cfg, d = model.config, sites[0].d
    scale = d ** -0.5
    if kind == "gpt2" and not cfg.scale_attn_weights:
        scale = 1.0  # per-layer 1/(l+1) of scale_attn_by_inverse_layer_idx: folded into q
    window = getattr(cfg, "sliding_window", None) if kind in ("mistral", "qwen2") else None
    softcap = getattr(cfg, "attn_logit_softcapping", None)
    return {"scale": scale, "causal": kind in ("gpt2",) + ROPE,
            "sliding_window": int(window) if window else None,
            "softcap": float(softcap) if softcap else None}


def _heads(x, heads, d):
    """[B,T,heads*d] -> [B,heads,T,d]."""
    B, T = x.shape[0], x.shape[1]
    return x.reshape(B, T, heads, d).permute(0, 2, 1, 3)


class LongCapture:
    """Hooks on model that record one batch's Q, K, V and dO between start() and stop();
    collect() after the backward gives them per layer. remove() restores the model."""

    def __init__(self, model):
        self.kind, self.sites = _sites(model)
        self.attention = attention_settings(model, self.kind, self.sites)
        s0 = self.sites[0]
        self.L, self.H, self.Hkv, self.d = len(self.sites), s0.H, s0.Hkv, s0.d
        self.on, self.current, self.handles, self.rope_mod = False, None, [], None
        self._clear()
        for i, s in enumerate(self.sites):
            self._hook(s.attn.register_forward_pre_hook(self._enter(i)))
            self._hook(s.attn.register_forward_hook(self._leave))
            self._hook(s.out.register_forward_pre_hook(self._out(i)))
            if s.qkv is not None:
                self._hook(s.qkv.register_forward_hook(self._split(i)))
            for role, m in (("queries", s.q), ("keys", s.k), ("values", s.v)):
                if m is not None:
                    self._hook(m.register_forward_hook(self._linear(i, role)))
        if self.kind in ROPE:
            self.rope_mod = sys.modules[type(s0.attn).__module__]
            _patch_rope(self.rope_mod, self)

    def _hook(self, h):
        self.handles.append(h)

    def _clear(self):
        self.t = {r: [None] * len(self.sites) for r in ROLES}
        self.out_in = [None] * len(self.sites)

    def _enter(self, i):
        def hook(module, args):
            self.current = i if self.on else None
        return hook

    def _leave(self, module, args, output):
        self.current = None

    def _keep(self, role, i, x):
        if self.t[role][i] is not None:
            _refuse("this model", "layer %d's attention ran twice in one forward pass" % i,
                    "run the model without gradient checkpointing or a cache replay")
        self.t[role][i] = x.detach()

    def _linear(self, i, role):
        def hook(module, args, output):
            if self.on:
                s = self.sites[i]
                heads = s.H if role == "queries" else s.Hkv
                x = _heads(output, heads, s.d)
                self._keep(role, i, x * s.factor if role == "queries" else x)
        return hook

    def _split(self, i):
        def hook(module, args, output):  # GPT-2's c_attn: [B,T,3*H*d] = q | k | v
            if self.on:
                s = self.sites[i]
                q, k, v = output.split(s.H * s.d, dim=2)
                self._keep("queries", i, _heads(q, s.H, s.d) * s.factor)
                self._keep("keys", i, _heads(k, s.H, s.d))
                self._keep("values", i, _heads(v, s.H, s.d))
        return hook

    def _rope(self, q, k):
        if self.on and self.current is not None:
            self._keep("queries", self.current, q)
            self._keep("keys", self.current, k)

    def _out(self, i):
        def hook(module, args):
            if not self.on:
                return
            x = args[0]
            if not x.requires_grad:
                raise SystemExit("attnmap: layer %d's attention output does not require "
                                 "gradients, so dO cannot be taken from it" % i)
            x.retain_grad()
            self.out_in[i] = x
        return hook

    def start(self):
        self._clear()
        self.on = True

    def stop(self):
        self.on, self.current = False, None

    def collect(self):
        """{role: [L] tensors [B,H|Hkv,T,d]} of the last forward (and backward): every
        layer's Q, K, V; dO where the score's gradient reached the layer (zeros else)."""
        for i, x in enumerate(self.out_in):
            if x is None or any(self.t[r][i] is None for r in ROLES[:3]):
                _refuse("this model", "layer %d's attention was not seen in the forward "
                        "pass" % i, "report the model type")
            s = self.sites[i]
            g = x.grad if x.grad is not None else torch.zeros_like(x)
            self.t["attention_output_grads"][i] = _heads(g, s.H, s.d).detach()
        out, self.out_in = self.t, [None] * len(self.sites)
        self._clear()
        return out

    def example_bytes(self, tokens, itemsize):
        """Bytes of one example's long-context tensors at `tokens` positions."""
        return self.L * tokens * self.d * (2 * self.H + 2 * self.Hkv) * itemsize

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []
        if self.rope_mod is not None:
            _unpatch_rope(self.rope_mod, self)
            self.rope_mod = None
