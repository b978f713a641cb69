"""live.py - attnmap.RunWriter: a run folder written batch by batch while a model runs
(am_run_writer_*, docs/live-runs.md), with no attention tensor written to disk.

    with attnmap.RunWriter("runs/nightly", examples=N, max_tokens=T, resume=True) as w:
        for i, batch in enumerate(batches):
            if seen < w.resume_from: ...        # examples already stored: skip them
            out = model(**batch, output_attentions=True)
            w.add(out.attentions, grads, attention_mask=batch["attention_mask"],
                  ids=batch["input_ids"], tokens=tokens, labels=labels)

The run folder is the one `attnmap analyze` writes for the same batches stored as shards
(bit for bit). Leaving the `with` block normally closes the run (summary.json, then the
rename of RUN.partial to RUN); leaving it by an exception aborts, keeping RUN.partial
resumable. One writer may be shared by threads: its calls are serialised by a lock.
"""
import ctypes
import threading

from . import _lib
from ._buffers import to_host
from .analyze import Context, Settings, _fill_inputs, _layers, _long_arrays


def _plan_settings(plan):
    """Plan options by their library names (as attnmap.analyze takes them, plus worst,
    bins and chunk); each checked by the library."""
    for name in plan:
        info = _lib.OPTIONS.get(name)
        if info is None or info.scope != 1:  # AM_SCOPE_PLAN
            raise TypeError("attnmap.RunWriter: unknown option %r" % name)
    settings = Settings().set(**{k: v for k, v in plan.items() if v is not None})
    return settings


def _host1d(x, name, B):
    b = to_host(x, name)
    if b.shape != (B,):
        raise ValueError("attnmap: %s: expected shape (%d,), got %s" % (name, B, b.shape))
    return b


def _tokens(tokens, B):
    """The flat UTF-8 strings and the B+1 offsets of tokens (B lists of str)."""
    if len(tokens) != B:
        raise ValueError("attnmap: tokens: expected %d lists of strings, got %d"
                         % (B, len(tokens)))
    flat, offsets = [], [0]
    for b, row in enumerate(tokens):
        for t in row:
            if not isinstance(t, str):
                raise TypeError("attnmap: tokens: example %d holds %r, not a str" % (b, t))
            flat.append(t.encode("utf-8"))
        offsets.append(len(flat))
    strings = (ctypes.c_char_p * max(len(flat), 1))(*flat)
    offs = (ctypes.c_int64 * (B + 1))(*offsets)
    return strings, offs


def _synchronize(bufs):
    """Device memory is read on attnmap's own stream: PyTorch's work that produced it must
    be finished first (its current stream on that device)."""
    for b in bufs:
        keep = getattr(b, "keep", None)
        if b.device == "cuda" and hasattr(keep, "device") and hasattr(keep, "data_ptr"):
            import torch

            torch.cuda.current_stream(keep.device).synchronize()
            return


class RunWriter:
    """A live run into `path`: see the module's text and docs/live-runs.md.

    examples, max_tokens: the N examples the run will hold and the padded length of its
    outputs (the largest T of any batch), declared up front: the examples file is written
    once, row by row. Closing with fewer examples, or adding past N, is an error.
    backend, threads: as attnmap.Context (or context=an open Context). force: replace an
    existing run folder attnmap wrote. resume: continue RUN.partial of an interrupted run
    made with the same options; .resume_from is then the number of examples already stored
    (the caller skips them). checkpoint: seconds between checkpoints (0: after every
    batch). model, grid, recorded_target: what an exporter records in a dataset ("model",
    attnmap.grid, the target of attnmap.exporter); recorded_target is used as analyze uses
    an exporter's target, unless target= is given. Other keywords: the plan options of
    attnmap.analyze (target, fusion, discard, normalize, topk, include_special, methods,
    pairs, all_rows, row_tolerance, include_target) and worst, bins, chunk.
    """

    def __init__(self, path, examples, max_tokens, backend="cpu", threads=0, force=False,
                 resume=False, model=None, grid=None, recorded_target=None, checkpoint=2.0,
                 context=None, **plan):
        self._lock = threading.Lock()
        self._w = None
        self._inflight = None
        self._own = context is None
        self._ctx = Context(backend, threads) if self._own else context
        try:
            self._open(path, examples, max_tokens, force, resume, model, grid,
                       recorded_target, checkpoint, plan)
        except BaseException:
            if self._own:
                self._ctx.close()
            raise

    def _open(self, path, examples, max_tokens, force, resume, model, grid, recorded_target,
              checkpoint, plan):
        explicit_target = plan.get("target") is not None
        settings = _plan_settings(plan)
        settings.set(force=force, resume=resume, checkpoint=checkpoint)
        settings.c.plan.target_recorded = 0 if explicit_target else 1
        self._texts = [None if v is None else str(v).encode() for v in
                       (path, model, grid, recorded_target)]
        self._settings = settings  # texts the plan borrows (pairs)
        info = _lib.StreamInfo(examples=int(examples), max_tokens=int(max_tokens),
                               model=self._texts[1], grid=self._texts[2],
                               target=self._texts[3])
        handle, start = ctypes.c_void_p(), ctypes.c_int64()
        _lib.check(_lib.am_run_writer_open(self._ctx.handle, self._texts[0],
                                           ctypes.byref(settings.c.plan),
                                           ctypes.byref(settings.c.run), ctypes.byref(info),
                                           ctypes.byref(handle), ctypes.byref(start)),
                   self._ctx.handle)
        self._w = handle
        self.path, self.examples, self.max_tokens = path, int(examples), int(max_tokens)
        self.resume_from = start.value
        self.grid = grid

    def add(self, attentions=None, attention_grads=None, attention_mask=None,
            special_tokens_mask=None, saliency=None, inputs_embeds=None,
            inputs_embeds_grads=None, tokens=None, ids=None, labels=None, predictions=None,
            *, queries=None, keys=None, values=None, attention_output_grads=None,
            attention=None):
        """Analyses one batch and writes its rows. attentions and the other arrays as
        attnmap.analyze takes them (numpy, CPU or CUDA torch; CUDA attentions and gradients
        are read in place by the cuda backend and never copied to the host); tokens: B
        lists of str (T per example, or one per valid token); ids: [B,T] input ids;
        labels, predictions: [B]. A failure raises AttnmapError naming the batch; the
        writer is then failed and only close() or abort() remain.

        The long-context form (docs/long-context.md) instead of attentions and
        attention_grads: queries and attention_output_grads [L] x [B,H,T,d] (or stacked
        [L,B,H,T,d]), keys and values [L] x [B,Hkv,T,d], one float dtype; attention: the
        dict a shard's attnmap.attention holds ({"scale", "causal", "sliding_window",
        "softcap"}, each optional), the same for every batch of the run."""
        with self._lock:
            if not self._w:
                raise ValueError("attnmap: the RunWriter is closed")
            keep = []
            long = None if queries is None else (queries, keys, values,
                                                 attention_output_grads, attention)
            arr, extras = self._describe(keep, attentions, attention_grads, attention_mask,
                                         special_tokens_mask, saliency, inputs_embeds,
                                         inputs_embeds_grads, tokens, ids, labels,
                                         predictions, long)
            _lib.check(_lib.am_run_writer_add(self._w, ctypes.byref(arr),
                                              ctypes.byref(extras)), self._ctx.handle)
            # with device pointers the batch may still be read until the next call returns
            self._inflight = keep

    def _describe(self, keep, attentions, attention_grads, attention_mask,
                  special_tokens_mask, saliency, inputs_embeds, inputs_embeds_grads, tokens,
                  ids, labels, predictions, long=None):
        if long is not None:
            if attentions is not None or attention_grads is not None:
                raise ValueError("attnmap: a batch holds attentions or queries (the "
                                 "long-context form), not both")
            arr, bufs = _long_arrays(keep, *long)
            B, T, device = arr.batch, arr.tokens, bufs[0].device
            attention_grads = long[3]  # for _fill_inputs: gradients are there or not
        else:
            bufs, ptrs = _layers(attentions, "attentions")
            L = len(ptrs)
            B, H, T, _ = bufs[0].shape
            arr = _lib.Arrays(layers=L, batch=B, heads=H, tokens=T,
                              dtype=_lib.DTYPES[bufs[0].dtype])
            att = (ctypes.c_void_p * L)(*ptrs)
            arr.attentions = att
            keep += [arr, bufs, att]
            device = bufs[0].device
        if long is None and attention_grads is not None:
            gbufs, gptrs = _layers(attention_grads, "attention_grads")
            if len(gptrs) != L or gbufs[0].shape != bufs[0].shape or \
                    gbufs[0].dtype != bufs[0].dtype or gbufs[0].device != device:
                raise ValueError("attnmap: attention_grads must match attentions in layers, "
                                 "shape, dtype and device")
            grads = (ctypes.c_void_p * L)(*gptrs)
            arr.attention_grads = grads
            keep += [gbufs, grads]
            bufs = bufs + gbufs
        if device == "cuda" and self._ctx.backend != "cuda":
            raise ValueError("attnmap: attentions are in CUDA memory but this RunWriter uses "
                             "the %s backend, which does not read device memory (and "
                             "attnmap does not copy it to the host): open it with "
                             "backend=\"cuda\"" % self._ctx.backend)
        arr.device_pointers = 1 if device == "cuda" else 0
        if self.grid is not None:
            arr.grid = self._texts[2]
        _fill_inputs(arr, keep, attention_grads, attention_mask, special_tokens_mask,
                     saliency, inputs_embeds, inputs_embeds_grads, B, T)
        extras = _lib.BatchExtras()
        keep.append(extras)
        if ids is not None:
            b = to_host(ids, "ids")
            if b.shape != (B, T):
                raise ValueError("attnmap: ids: expected shape (%d, %d), got %s"
                                 % (B, T, b.shape))
            keep.append(b)
            extras.input_ids, extras.input_ids_dtype = b.ptr, _lib.DTYPES[b.dtype]
        for field, value in (("labels", labels), ("predictions", predictions)):
            if value is not None:
                b = _host1d(value, field, B)
                keep.append(b)
                setattr(extras, field, b.ptr)
                setattr(extras, field + "_dtype", _lib.DTYPES[b.dtype])
        if tokens is not None:
            strings, offs = _tokens(tokens, B)
            keep += [strings, offs]
            extras.tokens, extras.token_offsets = strings, offs
        if device == "cuda":
            _synchronize(bufs)
        return arr, extras

    def close(self):
        """Finishes the run: summary.json, then RUN.partial renamed to RUN. Raises
        AttnmapError (fewer examples than declared, an earlier failure); the writer is
        closed either way."""
        with self._lock:
            if not self._w:
                return
            w, self._w = self._w, None
            try:
                _lib.check(_lib.am_run_writer_close(w), self._ctx.handle)
            finally:
                self._inflight = None
                self._release()

    def abort(self):
        """Stops without finishing: RUN.partial stays as its last checkpoint, resumable."""
        with self._lock:
            if self._w:
                w, self._w = self._w, None
                _lib.am_run_writer_abort(w)
                self._inflight = None
                self._release()

    def _release(self):
        if self._own:
            self._ctx.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def __del__(self):
        try:
            self.abort()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass

    def __repr__(self):
        return "attnmap.RunWriter(%r, examples=%d, max_tokens=%d, resume_from=%d)" % (
            self.path, self.examples, self.max_tokens, self.resume_from)

