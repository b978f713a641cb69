"""analyze.py - attnmap's analyses on arrays in memory (am_analyze_arrays).

    res = attnmap.analyze(out.attentions, grads, attention_mask=mask, target="cls")
    res.maps["rollout"]        # [B,T] float32, padding 0, as RUN/examples.safetensors
    res.head_stats["entropy"]  # [B,L,H]
    res.agreement["spearman"]  # [B,P], columns res.pairs

The numbers are those `attnmap analyze` writes for a dataset holding the same tensors.
"""
import ctypes

import numpy as np

from . import _lib
from ._buffers import as_buffer, to_host


class Context:
    """An attnmap context: a backend ("cpu", "cuda", "cuda:N", "auto") and a thread count
    (0 = all cores). Reuse one for many calls; close() or `with` frees it."""

    def __init__(self, backend="cpu", threads=0):
        settings = Settings()
        settings.set(backend=backend, threads=threads)
        handle = ctypes.c_void_p()
        err = ctypes.create_string_buffer(1024)
        st = _lib.am_ctx_create(ctypes.byref(settings.c.ctx), ctypes.byref(handle), err,
                                len(err))
        if st != 0:
            raise _lib.AttnmapError(_lib.STATUS_NAMES.get(st, str(st)),
                                    err.value.decode("utf-8", "replace"))
        self._h = handle

    @property
    def handle(self):
        if not self._h:
            raise ValueError("attnmap: the context is closed")
        return self._h

    @property
    def backend(self):
        return _lib.am_ctx_backend_name(self.handle).decode()

    @property
    def device(self):
        return _lib.am_ctx_device_name(self.handle).decode()

    @property
    def threads(self):
        return _lib.am_ctx_threads(self.handle)

    def close(self):
        if getattr(self, "_h", None):
            _lib.am_ctx_destroy(self._h)
            self._h = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def analyze(self, *args, **kwargs):
        return analyze(*args, context=self, **kwargs)


class Result:
    """The outputs of one analyze() call, named as in a run folder (docs/run-folder.md).

    maps: {name: [B,T]}; head_stats: {statistic: [B,L,H]}; head_importance: [B,L,H] or
    None; agreement: {metric: [B,P]}; pairs: the P pair names; rollout_rows,
    grad_rollout_rows: [B,T,T] or None; lengths: [B] int32; mask: [B,T] uint8."""

    def __init__(self):
        self.maps, self.head_stats, self.agreement = {}, {}, {}
        self.pairs = []
        self.head_importance = self.rollout_rows = self.grad_rollout_rows = None
        self.lengths = self.mask = None

    def tensors(self):
        """Every output under its RUN/examples.safetensors name."""
        out = {"mask": self.mask, "lengths": self.lengths}
        out.update(self.maps)
        out.update({"head." + k: v for k, v in self.head_stats.items()})
        if self.head_importance is not None:
            out["head.importance"] = self.head_importance
        out.update({"agreement." + k: v for k, v in self.agreement.items()})
        if self.rollout_rows is not None:
            out["rollout.rows"] = self.rollout_rows
        if self.grad_rollout_rows is not None:
            out["grad_rollout.rows"] = self.grad_rollout_rows
        return out

    def __repr__(self):
        return "attnmap.Result(maps=%s, pairs=%d, head_stats=%d)" % (
            list(self.maps), len(self.pairs), len(self.head_stats))


class Settings:
    """am_settings_t filled through am_settings_set: every value is checked by the
    library against the option's range or choices (am_option_get), so Python states no
    name or bound of its own. Texts the library borrows are kept alive here."""

    def __init__(self):
        self.c = _lib.Settings()
        _lib.am_settings_init(ctypes.byref(self.c))
        self._keep = []

    def set(self, **options):
        for name, value in options.items():
            text = _option_text(name, value).encode()
            self._keep.append(text)
            err = ctypes.create_string_buffer(512)
            st = _lib.am_settings_set(ctypes.byref(self.c), name.encode(), text, err,
                                      len(err))
            if st != 0:
                raise ValueError("attnmap: " + err.value.decode("utf-8", "replace"))
        return self


def _option_text(name, value):
    """The text of a Python value for am_settings_set; ints stay exact (2**32 + 3 is
    refused by the library's range check, never wrapped by ctypes)."""
    info = _lib.OPTIONS.get(name)
    if info is None:
        raise ValueError("attnmap: unknown option %r" % name)
    if info.kind == 4:  # AM_OPTION_FLAG
        return "1" if value else "0"
    if isinstance(value, bool) or value is None:
        raise ValueError("attnmap: %s: expected %s, not %r"
                         % (name, "a number" if info.kind in (0, 1) else "a string", value))
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, str):
        return value
    raise ValueError("attnmap: %s: expected a number or a string, not %r" % (name, value))


def _plan(target, fusion, discard, normalize, topk, include_special, methods, pairs,
          all_rows, row_tolerance, include_target=False):
    options = dict(target=target, fusion=fusion, discard=discard, normalize=normalize,
                   topk=topk, include_special=include_special, all_rows=all_rows,
                   row_tolerance=row_tolerance, include_target=include_target)
    if methods is not None:
        options["methods"] = methods
    if pairs is not None:
        options["pairs"] = pairs
    return Settings().set(**options)


NO_WEIGHTS = ("the model returned no attention weights (%s) - its attention implementation "
              "(e.g. SDPA or flash attention, the default of recent transformers) does not "
              "materialise them. Load it with attn_implementation=\"eager\" (e.g. "
              "AutoModel.from_pretrained(name, attn_implementation=\"eager\")) and call it "
              "with output_attentions=True; or, without weights (any attention implementation, "
              "contexts too long for [B,H,T,T]), capture the long-context form: "
              "attnmap.hf.analyze_model(model, data, run, form=\"long\") or attnmap-export "
              "--form long (queries, keys, values and their gradients; docs/long-context.md)")


def _no_weights(x, name):
    """Why x holds no attention weights (an empty sequence, None entries, or an object
    array of them, which is what output_attentions gives under SDPA), or None."""
    if x is None:
        return "%s is None" % name
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            return "%s is an empty %s" % (name, type(x).__name__)
        missing = [i for i, a in enumerate(x) if a is None]
        if missing:
            return "%s[%d] is None (%d of %d layers)" % (name, missing[0], len(missing), len(x))
    if getattr(x, "dtype", None) is not None and str(x.dtype) == "object":
        return "%s is an array of Python objects" % name
    return None


def _layers(x, name, square=True):
    """[L] Buffers of [B,H,T,T] from a stacked [L,B,H,T,T] array or a sequence of L
    (square=False: of [B,H,T,d], the long-context form's)."""
    why = _no_weights(x, name) if square else None
    if why:
        raise ValueError("attnmap: " + NO_WEIGHTS % why)
    if isinstance(x, (list, tuple)):
        bufs = [as_buffer(a, "%s[%d]" % (name, i)) for i, a in enumerate(x)]
        ptrs = [b.ptr for b in bufs]
    else:
        whole = as_buffer(x, name)
        if len(whole.shape) != 5:
            raise ValueError("attnmap: %s: expected [L,B,H,T,T] or a list of [B,H,T,T], got "
                             "shape %s" % (name, whole.shape))
        step = whole.nbytes_per(0)
        bufs = [_LayerView(whole, whole.shape[1:])] * whole.shape[0]
        ptrs = [whole.ptr + l * step for l in range(whole.shape[0])]
    shapes = {b.shape for b in bufs}
    dtypes = {b.dtype for b in bufs}
    devices = {b.device for b in bufs}
    if not bufs or len(shapes) != 1 or len(dtypes) != 1 or len(devices) != 1:
        raise ValueError("attnmap: %s: every layer needs the same shape, dtype and device"
                         % name)
    shape = bufs[0].shape
    if len(shape) != 4 or (square and shape[2] != shape[3]):
        raise ValueError("attnmap: %s: a layer must be %s, got %s"
                         % (name, "[B,H,T,T]" if square else "[B,heads,T,d]", shape))
    return bufs, ptrs


class _LayerView:
    """One layer's shape, dtype and device of a stacked Buffer (the pointer is computed)."""

    def __init__(self, whole, shape):
        self.shape, self.dtype, self.device, self.keep = tuple(shape), whole.dtype, \
            whole.device, whole


def _host2d(x, name, B, T, floats):
    b = to_host(x, name)
    if b.shape != (B, T):
        raise ValueError("attnmap: %s: expected shape (%d, %d), got %s" % (name, B, T, b.shape))
    if floats and b.dtype not in ("F32", "F16", "BF16", "F64"):
        b = to_host(np.asarray(b.keep, dtype=np.float32), name)
    return b


def analyze(attentions, attention_grads=None, attention_mask=None, special_tokens_mask=None,
            saliency=None, inputs_embeds=None, inputs_embeds_grads=None, *, grid=None,
            target="cls", fusion="mean", discard=0.0, normalize="none", topk=5,
            include_special=False, methods=None, pairs=None, all_rows=False,
            row_tolerance=0.0, include_target=False, backend="cpu", threads=0,
            context=None):
    """Runs attnmap's per-example analyses (docs/design.md §3) on arrays in memory.

    attentions: [L,B,H,T,T] or a sequence of L [B,H,T,T] (Hugging Face's
    `output_attentions` tuple as it is), F32/F16/BF16/F64; numpy arrays, PyTorch tensors
    (CPU or CUDA), __cuda_array_interface__ or DLPack objects. attention_grads: the same
    layout and dtype, or None. attention_mask, special_tokens_mask: [B,T] integers or
    bools. saliency: an array [B,T] (map "saliency.given") or {name: [B,T]}.
    inputs_embeds, inputs_embeds_grads: [B,T,D]. grid: "14x14+1" for ViT patches.
    Options as `attnmap analyze`: target ("cls", "last", "mean" or an int), fusion,
    discard, normalize, topk, include_special, methods (names; explicit), pairs
    (["rollout~grad_rollout", ...]), all_rows, row_tolerance, include_target (the target
    token takes part in agreement; by default it is left out, docs/analyses.md).

    Attentions and gradients in device memory are read in place by the cuda backend
    (backend="cuda" or a cuda Context); the cpu backend refuses them rather than copy.
    """
    own = context is None
    ctx = Context(backend, threads) if own else context
    try:
        return _analyze(ctx, attentions, attention_grads, attention_mask,
                        special_tokens_mask, saliency, inputs_embeds, inputs_embeds_grads,
                        grid, _plan(target, fusion, discard, normalize, topk,
                                    include_special, methods, pairs, all_rows, row_tolerance,
                                    include_target))
    finally:
        if own:
            ctx.close()


def _fill_inputs(arr, keep, attention_grads, attention_mask, special_tokens_mask, saliency,
                 inputs_embeds, inputs_embeds_grads, B, T):
    """Fills the optional fields of arr; keep collects what must outlive the call."""
    for field, value in (("attention_mask", attention_mask),
                         ("special_tokens_mask", special_tokens_mask)):
        if value is not None:
            b = _host2d(value, field, B, T, floats=False)
            keep.append(b)
            setattr(arr, field, b.ptr)
            setattr(arr, field + "_dtype", _lib.DTYPES[b.dtype])
    if saliency is not None:
        items = saliency.items() if isinstance(saliency, dict) else [("given", saliency)]
        bufs = [_host2d(v, "saliency." + k, B, T, floats=True) for k, v in items]
        if len({b.dtype for b in bufs}) > 1:
            bufs = [_host2d(np.asarray(b.keep, np.float32), "saliency", B, T, True)
                    for b in bufs]
        names = (ctypes.c_char_p * len(bufs))(*[k.encode() for k, _ in items])
        ptrs = (ctypes.c_void_p * len(bufs))(*[b.ptr for b in bufs])
        keep += [bufs, names, ptrs]
        arr.saliency_count, arr.saliency_names, arr.saliency = len(bufs), names, ptrs
        arr.saliency_dtype = _lib.DTYPES[bufs[0].dtype] if bufs else 0
    if (inputs_embeds is None) != (inputs_embeds_grads is None):
        raise ValueError("attnmap: inputs_embeds and inputs_embeds_grads go together")
    if inputs_embeds is not None:
        e = to_host(inputs_embeds, "inputs_embeds")
        g = to_host(inputs_embeds_grads, "inputs_embeds_grads")
        if e.dtype != g.dtype:
            e = to_host(np.asarray(e.keep, np.float32), "inputs_embeds")
            g = to_host(np.asarray(g.keep, np.float32), "inputs_embeds_grads")
        if len(e.shape) != 3 or e.shape[:2] != (B, T) or g.shape != e.shape:
            raise ValueError("attnmap: inputs_embeds and its gradients must be [B,T,D] "
                             "with B=%d, T=%d" % (B, T))
        keep += [e, g]
        arr.embed_dim, arr.embeds_dtype = e.shape[2], _lib.DTYPES[e.dtype]
        arr.inputs_embeds, arr.inputs_embeds_grads = e.ptr, g.ptr


def _analyze(ctx, attentions, attention_grads, attention_mask, special_tokens_mask, saliency,
             inputs_embeds, inputs_embeds_grads, grid, plan):
    keep = []
    bufs, ptrs = _layers(attentions, "attentions")
    L = len(ptrs)
    B, H, T, _ = bufs[0].shape
    arr = _lib.Arrays(layers=L, batch=B, heads=H, tokens=T, dtype=_lib.DTYPES[bufs[0].dtype])
    att_ptrs = (ctypes.c_void_p * L)(*ptrs)
    arr.attentions = att_ptrs
    keep += [bufs, att_ptrs]
    device = bufs[0].device
    if attention_grads is not None:
        gbufs, gptrs = _layers(attention_grads, "attention_grads")
        if len(gptrs) != L or gbufs[0].shape != bufs[0].shape or gbufs[0].dtype != \
                bufs[0].dtype or gbufs[0].device != device:
            raise ValueError("attnmap: attention_grads must match attentions in layers, "
                             "shape, dtype and device")
        grad_ptrs = (ctypes.c_void_p * L)(*gptrs)
        arr.attention_grads = grad_ptrs
        keep += [gbufs, grad_ptrs]
    arr.device_pointers = 1 if device == "cuda" else 0
    if grid is not None:
        arr.grid = grid.encode()
    _fill_inputs(arr, keep, attention_grads, attention_mask, special_tokens_mask, saliency,
                 inputs_embeds, inputs_embeds_grads, B, T)
    return _run(ctx, arr, plan, attention_mask, B, L, H, T)


ATTENTION_KEYS = ("scale", "causal", "sliding_window", "softcap")


def _long_arrays(keep, queries, keys, values, dout, attention):
    """am_arrays_t of a long-context batch and its Buffers (docs/long-context.md)."""
    qb, qp = _layers(queries, "queries", square=False)
    L = len(qp)
    B, H, T, d = qb[0].shape
    sets = {"queries": (qb, qp)}
    for name, x in (("keys", keys), ("values", values), ("attention_output_grads", dout)):
        if x is None and name != "attention_output_grads":
            raise ValueError("attnmap: the long-context form needs queries, keys and values")
        if x is not None:
            sets[name] = _layers(x, name, square=False)
    Hkv = sets["keys"][0][0].shape[1]
    for name, (b, p) in sets.items():
        want = (B, Hkv, T, d) if name in ("keys", "values") else (B, H, T, d)
        if len(p) != L or b[0].shape != want or b[0].dtype != qb[0].dtype or \
                b[0].device != qb[0].device:
            raise ValueError("attnmap: %s: expected %d layers of %s %s on %s like the "
                             "queries', got %d of %s %s on %s"
                             % (name, L, list(want), qb[0].dtype, qb[0].device, len(p),
                                list(b[0].shape), b[0].dtype, b[0].device))
    att = dict(attention or {})
    unknown = sorted(set(att) - set(ATTENTION_KEYS))
    if unknown:
        raise ValueError("attnmap: attention: unknown key %r (expected %s)"
                         % (unknown[0], ", ".join(ATTENTION_KEYS)))
    arr = _lib.Arrays(layers=L, batch=B, heads=H, tokens=T, dtype=_lib.DTYPES[qb[0].dtype],
                      kv_heads=Hkv, head_dim=d, attn_scale=float(att.get("scale") or 0.0),
                      attn_causal=1 if att.get("causal") else 0,
                      attn_sliding_window=int(att.get("sliding_window") or 0),
                      attn_softcap=float(att.get("softcap") or 0.0))
    bufs = []
    for name, (b, p) in sets.items():
        ptrs = (ctypes.c_void_p * L)(*p)
        setattr(arr, name, ptrs)
        keep += [b, ptrs]
        bufs += b
    keep.append(arr)
    return arr, bufs



def analyze_long(queries, keys, values, attention_output_grads=None, attention_mask=None,
                 special_tokens_mask=None, saliency=None, inputs_embeds=None,
                 inputs_embeds_grads=None, *, attention=None, grid=None, target="cls",
                 normalize="none", topk=5, include_special=False, methods=None, pairs=None,
                 row_tolerance=0.0, include_target=False, backend="cpu", threads=0,
                 context=None):
    """analyze() for the long-context form (docs/long-context.md): every analysis but
    attention flow from the heads' queries, keys and values (and the gradients of their
    outputs), tile by tile, never a [T,T] matrix, equal to analyze() on the attention
    softmax(scale Q K^T + mask) and its gradient dO V^T.

    queries, attention_output_grads: [L,B,H,T,d] or a sequence of L [B,H,T,d]; keys,
    values: [L,B,Hkv,T,d] or a sequence (H a multiple of Hkv: grouped-query attention),
    all of one dtype (F32/F16/BF16), host memory. attention: {"scale": s (default
    1/sqrt(d)), "causal": bool, "sliding_window": w, "softcap": c}. The other arguments
    and options as analyze(); fusion, discard and all_rows need the matrices and are not
    offered (the library refuses attention flow here)."""
    own = context is None
    ctx = Context(backend, threads) if own else context
    try:
        keep = []
        arr, bufs = _long_arrays(keep, queries, keys, values, attention_output_grads,
                                 attention)
        L = arr.layers
        B, H, T = arr.batch, arr.heads, arr.tokens
        arr.device_pointers = 1 if bufs[0].device == "cuda" else 0  # refused, never read
        if grid is not None:
            arr.grid = grid.encode()
        _fill_inputs(arr, keep, attention_output_grads, attention_mask, special_tokens_mask,
                     saliency, inputs_embeds, inputs_embeds_grads, B, T)
        plan = _plan(target, "mean", 0.0, normalize, topk, include_special, methods, pairs,
                     False, row_tolerance, include_target)
        return _run(ctx, arr, plan, attention_mask, B, L, H, T)
    finally:
        if own:
            ctx.close()


def _run(ctx, arr, plan, attention_mask, B, L, H, T):
    desc = ctypes.c_void_p()
    _lib.check(_lib.am_arrays_describe(ctx.handle, ctypes.byref(arr), ctypes.byref(plan.c.plan),
                                       ctypes.byref(desc)), ctx.handle)
    try:
        names = {}
        for part in (_lib.PART_MAPS, _lib.PART_PAIRS, _lib.PART_METRICS, _lib.PART_STATS):
            n = _lib.am_arrays_desc_count(desc, part)
            names[part] = [_lib.am_arrays_desc_name(desc, part, i).decode() for i in range(n)]
        flags = _lib.am_arrays_desc_flags(desc)
    finally:
        _lib.am_arrays_desc_destroy(desc)
    res = Result()
    P = len(names[_lib.PART_PAIRS])
    res.pairs = names[_lib.PART_PAIRS]
    res.maps = {m: np.zeros((B, T), np.float32) for m in names[_lib.PART_MAPS]}
    res.head_stats = {s: np.zeros((B, L, H), np.float32) for s in names[_lib.PART_STATS]}
    res.agreement = {k: np.zeros((B, P), np.float32) for k in names[_lib.PART_METRICS]}
    res.lengths = np.zeros(B, np.int32)
    if flags & _lib.HAS_HEAD_IMPORTANCE:
        res.head_importance = np.zeros((B, L, H), np.float32)
    if flags & _lib.HAS_ROLLOUT_ROWS:
        res.rollout_rows = np.zeros((B, T, T), np.float32)
    if flags & _lib.HAS_GRAD_ROLLOUT_ROWS:
        res.grad_rollout_rows = np.zeros((B, T, T), np.float32)

    def fptr(a):
        return a.ctypes.data_as(_lib.c_float_p) if a is not None else None

    def table(d):
        return (_lib.c_float_p * max(len(d), 1))(*[fptr(a) for a in d.values()])

    out = _lib.ArraysResult(
        maps=table(res.maps), head_stats=table(res.head_stats),
        head_importance=fptr(res.head_importance), agreement=table(res.agreement),
        rollout_rows=fptr(res.rollout_rows), grad_rollout_rows=fptr(res.grad_rollout_rows),
        lengths=res.lengths.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)))
    _lib.check(_lib.am_analyze_arrays(ctx.handle, ctypes.byref(arr), ctypes.byref(plan.c.plan),
                                      ctypes.byref(out)), ctx.handle)
    if attention_mask is not None:
        res.mask = (np.asarray(to_host(attention_mask, "attention_mask").keep) != 0) \
            .astype(np.uint8).reshape(B, T)
    else:
        res.mask = np.ones((B, T), np.uint8)
    return res
