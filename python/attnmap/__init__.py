"""attnmap for Python: the analyses of attnmap (rollout, gradient-weighted rollout, head
statistics, head importance, saliency, agreement) on numpy arrays and PyTorch tensors in
memory, and run folders read into numpy arrays. A ctypes binding of libattnmap.so; see
docs/python.md of the attnmap repository.

    import attnmap
    res = attnmap.analyze(attentions, attention_grads, attention_mask=mask)
    run = attnmap.read_run("examples/runs/minilm-sentiment")
"""
from ._lib import AttnmapError, library_path, version
from .analyze import Context, Result, analyze
from .run import Run, read_dataset, read_run, read_safetensors

__version__ = "0.1.0"
__all__ = ["AttnmapError", "Context", "Result", "Run", "analyze", "library_path",
           "read_dataset", "read_run", "read_safetensors", "version"]
