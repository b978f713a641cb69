"""attnmap for Python: the analyses of attnmap (rollout, gradient-weighted rollout, head
statistics, head importance, saliency, agreement) on numpy arrays and PyTorch tensors in
memory, and run folders read into numpy arrays. A ctypes binding of libattnmap.so; see
docs/python.md of the attnmap repository.

    import attnmap
    res = attnmap.analyze(attentions, attention_grads, attention_mask=mask)
    run = attnmap.read_run("examples/runs/minilm-sentiment")
    with attnmap.RunWriter("runs/live", examples=N, max_tokens=T) as w:
        w.add(attentions, attention_grads, attention_mask=mask, tokens=tokens)
"""
__version__ = "0.1.0"

# The names below load libattnmap.so on first use (PEP 562), so that the exporter
# (attnmap.exporter, `attnmap-export`), which needs only torch and transformers, runs on a
# machine where the C library is not built.
_LAZY = {"AttnmapError": "_lib", "library_path": "_lib", "version": "_lib",
         "Context": "analyze", "Result": "analyze", "analyze": "analyze",
         "analyze_long": "analyze",
         "RunWriter": "live", "Run": "run", "read_dataset": "run", "read_run": "run", "read_safetensors": "run"}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError("module 'attnmap' has no attribute %r" % name)
    import importlib
    import sys

    value = getattr(importlib.import_module("." + _LAZY[name], __name__), name)
    globals()[name] = value
    # importing a submodule binds its name in the package (attnmap.analyze, the module):
    # the object of that name is what the package means
    for lazy, where in _LAZY.items():
        if lazy in globals() and globals()[lazy] is sys.modules.get(__name__ + "." + lazy):
            globals()[lazy] = getattr(importlib.import_module("." + where, __name__), lazy)
    return value
__all__ = ["AttnmapError", "Context", "Result", "Run", "RunWriter", "analyze", "analyze_long",
           "library_path",
           "read_dataset", "read_run", "read_safetensors", "version"]
