"""attnmap for Python: the analyses of attnmap (rollout, gradient-weighted rollout, head
statistics, head importance, saliency, agreement) on numpy arrays and PyTorch tensors in
memory, and run folders read into numpy arrays. A ctypes binding of libattnmap.so; see
docs/python.md of the attnmap repository.

    import attnmap
    res = attnmap.analyze(attentions, attention_grads, attention_mask=mask)
    run = attnmap.read_run("examples/runs/minilm-sentiment")
"""
__version__ = "0.1.0"

# The names below load libattnmap.so on first use (PEP 562), so that the exporter
# (attnmap.exporter, `attnmap-export`), which needs only torch and transformers, runs on a
# machine where the C library is not built.
_LAZY = {"AttnmapError": "_lib", "library_path": "_lib", "version": "_lib",
         "Context": "analyze", "Result": "analyze", "analyze": "analyze",
         "Run": "run", "read_dataset": "run", "read_run": "run", "read_safetensors": "run"}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError("module 'attnmap' has no attribute %r" % name)
    import importlib

    value = getattr(importlib.import_module("." + _LAZY[name], __name__), name)
    globals()[name] = value
    return value
__all__ = ["AttnmapError", "Context", "Result", "Run", "analyze", "library_path",
           "read_dataset", "read_run", "read_safetensors", "version"]
