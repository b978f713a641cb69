"""attnmap.export_shards - the shard side of the exporter (attnmap.exporter): how many
examples a shard holds (from a memory budget), a shard built batch by batch straight into
the storage dtype (never a float32 copy of the whole shard), its metadata, the atomic write,
resuming an interrupted export, and the progress line."""
import json
import os
import re
import sys
import time

import torch

from .hf_batch import DTYPES, batch_size

SHARD = "shard-%05d.safetensors"
OWN_TMP = re.compile(r"^shard-\d{5}\.safetensors\.tmp-\d+$")  # what write_shard leaves


# ---- sizing ----------------------------------------------------------------------------
def example_bytes(config, tokens, args, long=None):
    """Bytes one example of `tokens` positions takes in a shard: attentions and their
    gradients [L,H,T,T] (long: queries, keys, values, attention_output_grads [L,H|Hkv,T,d]),
    plus inputs_embeds and their gradients [T,D] with --embeds full."""
    size = torch.empty((), dtype=DTYPES[args.dtype]).element_size()
    L, H = config.num_hidden_layers, config.num_attention_heads
    n = 2 * L * H * tokens * tokens if long is None else long.example_bytes(tokens, 1)
    if args.embeds == "full":
        n += 2 * tokens * config.hidden_size
    return n * size


def examples_per_shard(config, tokens, args, long=None):
    """--examples-per-shard when given, else as many as --shard-memory MiB holds (at least
    one); an explicit count above the budget is lowered to it, with a note."""
    per = example_bytes(config, tokens, args, long)
    fit = max(1, int(args.shard_memory * 2 ** 20 // per))
    k = args.examples_per_shard or fit
    if args.examples_per_shard and args.examples_per_shard > fit:
        note("--examples-per-shard %d would hold %.0f MiB per shard (%.1f MiB an example at "
             "T=%d); lowered to %d to stay within --shard-memory %d MiB"
             % (args.examples_per_shard, args.examples_per_shard * per / 2 ** 20,
                per / 2 ** 20, tokens, fit, args.shard_memory), args)
        k = fit
    return k


def note(text, args):
    if not getattr(args, "quiet", False):
        print("attnmap-export: " + text, file=sys.stderr)


# ---- one shard -------------------------------------------------------------------------
class ShardBuilder:
    """One shard's tensors, filled batch by batch from Job.tensors (attnmap.hf_batch): the
    [L,B,H,T,T] and [B,T,D] tensors are allocated once in the storage dtype and each batch
    is copied in as it arrives, so the exporter holds the shard once in that dtype plus one
    batch; the small tensors are concatenated at the end."""

    BIG = {"attentions": 1, "attention_grads": 1, "inputs_embeds": 0,
           "inputs_embeds_grads": 0}  # name: the axis of the examples
    LONG = ("queries.", "keys.", "values.", "attention_output_grads.")  # [B,H,T,d]: axis 0

    def __init__(self, examples):
        self.B, self.rows = examples, 0
        self.names, self.big, self.small = [], {}, {}

    def add(self, t):
        """t: one batch's tensors (Job.tensors), padded to the shard's length."""
        for name, x in t.items():
            if name not in self.names:
                self.names.append(name)
            if name in self.BIG or name.startswith(self.LONG):
                dim = self.BIG.get(name, 0)
                if name not in self.big:
                    shape = list(x.shape)
                    shape[dim] = self.B
                    self.big[name] = torch.empty(shape, dtype=x.dtype)
                self.big[name].narrow(dim, self.rows, x.shape[dim]).copy_(x.cpu())
            else:
                self.small.setdefault(name, []).append(x.cpu())
        self.rows += batch_size(t)[0]

    def tensors(self):
        """The docs/design.md §2 tensors of the shard, in the order of the batches'."""
        return {k: self.big[k] if k in self.big else torch.cat(self.small[k])
                for k in self.names}


def write_shard(path, tensors, meta):
    from safetensors.torch import save_file

    tmp = path + ".tmp-%d" % os.getpid()
    save_file(tensors, tmp, metadata=meta)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


# ---- resume ----------------------------------------------------------------------------
def finished(path, ids_json, extra):
    """True when path is a complete shard of this export: it opens (safetensors checks that
    the header's offsets fit the file), holds the same examples (attnmap.ids) and was made
    with the same options (attnmap.exporter but the padded length). A shard file that
    exists and is something else stops the export rather than be overwritten."""
    from safetensors import safe_open

    if not os.path.exists(path):
        return False
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            keys = set(f.keys())
    except Exception as e:  # noqa: BLE001  any unreadable file is "not this shard"
        raise SystemExit("attnmap-export: %s: cannot be read as a shard (%s); remove it or "
                         "use --force" % (path, str(e).splitlines()[0])) from None
    try:
        rec = json.loads(meta.get("attnmap.exporter", "{}"))
    except ValueError:
        rec = {}
    rec.pop("tokens", None)
    want = dict(extra)
    want.pop("tokens", None)
    if meta.get("attnmap.ids") != ids_json or rec != want or \
            not keys & {"attentions", "attentions.0", "queries.0"}:
        raise SystemExit("attnmap-export: %s holds other examples or options than this "
                         "export would write there; use another --out, or --force to start "
                         "afresh" % path)
    return True


def clean_own_temporaries(out):
    """Removes the temporary files an interrupted write_shard left (shard-NNNNN.safetensors
    .tmp-PID): attnmap-export made them, and they are never complete."""
    for f in os.listdir(out):
        if OWN_TMP.match(f):
            os.remove(os.path.join(out, f))


# ---- progress --------------------------------------------------------------------------
class Progress:
    """--progress auto (terminal only), always, never; --quiet silences. On a terminal the
    line is rewritten in place; elsewhere (a nightly log) a plain line at most every
    $ATTNMAP_PROGRESS_INTERVAL seconds (default 10) and one at the end."""

    def __init__(self, total, mode, quiet, what="attnmap-export"):
        mode = {"on": "always", "off": "never"}.get(mode, mode)
        self.tty = sys.stderr.isatty()
        self.on = not quiet and (mode == "always" or (mode == "auto" and self.tty))
        self.total, self.done, self.what = total, 0, what
        self.start, self.last = time.monotonic(), None
        try:
            self.interval = float(os.environ.get("ATTNMAP_PROGRESS_INTERVAL", "10"))
        except ValueError:
            self.interval = 10.0

    def update(self, n):
        self.done += n
        if not self.on:
            return
        now = time.monotonic()
        if not self.tty and self.last is not None and now - self.last < self.interval \
                and self.done < self.total:
            return
        self.last = now
        dt = now - self.start
        rate = self.done / dt if dt > 0 else 0.0
        eta = ("%.0f s" % ((self.total - self.done) / rate) if rate > 0 and
               self.done < self.total else "done in %.1f s" % dt)
        line = "%s: %d/%d examples (%3.0f%%)  %.1f examples/s  ETA %s" % (
            self.what, self.done, self.total, 100.0 * self.done / max(self.total, 1), rate, eta)
        if self.tty:
            print("\r" + line + "   ", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self):
        if self.on and self.tty:
            print(file=sys.stderr)
