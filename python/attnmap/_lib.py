"""_lib.py - finds libattnmap.so and declares the part of include/attnmap.h that Python
uses: contexts, plans and the in-memory arrays entry point (am_analyze_arrays).

The library is looked for, in order: the file named by $ATTNMAP_LIBRARY; a
libattnmap.so next to this package; the CMake build folders of the repository this
package sits in (build/, build-py/); the system's library path (ctypes.util). The struct
mirrors below follow attnmap.h field for field; tests/python/test_module.py checks them
against the header.
"""
import ctypes
import ctypes.util
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


class AttnmapError(RuntimeError):
    """A failure reported by libattnmap: .status is the am_status name, str() the message
    (naming the array, example, layer, head and position where they are known)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _candidates():
    env = os.environ.get("ATTNMAP_LIBRARY")
    if env:
        return [env]
    out = [os.path.join(_HERE, "libattnmap.so")]
    repo = os.path.dirname(os.path.dirname(_HERE))  # python/attnmap -> repository root
    for build in ("build", "build-py", "build-release"):
        out.append(os.path.join(repo, build, "libattnmap.so"))
    found = ctypes.util.find_library("attnmap")
    if found:
        out.append(found)
    return out


def _load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path + " (missing)")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError(
        "attnmap: libattnmap.so not found; build attnmap with CMake and set "
        "ATTNMAP_LIBRARY=/path/to/libattnmap.so. Tried: " + "; ".join(tried)
    )


lib, library_path = _load()

# ---- enums of attnmap.h (fixed numbers) ------------------------------------------------
STATUS_NAMES = {
    0: "OK", 1: "INVALID_ARGUMENT", 2: "BAD_INPUT", 3: "IO", 4: "OUT_OF_MEMORY",
    5: "NO_DEVICE", 6: "DEVICE", 7: "UNSUPPORTED", 8: "INTERNAL",
}
DTYPES = {
    "F32": 0, "F16": 1, "BF16": 2, "F64": 3, "I8": 4, "I16": 5, "I32": 6, "I64": 7,
    "U8": 8, "U16": 9, "U32": 10, "U64": 11, "BOOL": 12,
}
DTYPE_SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I8": 1, "I16": 2, "I32": 4,
               "I64": 8, "U8": 1, "U16": 2, "U32": 4, "U64": 8, "BOOL": 1}
FUSIONS = {"mean": 0, "max": 1, "min": 2}
TARGETS = {"cls": 0, "last": 1, "index": 2, "mean": 3}
NORMALIZE = {"none": 0, "max": 1, "sum": 2, "minmax": 3}
METHODS = {
    "attention_last": 1 << 0, "rollout": 1 << 1, "grad_rollout": 1 << 2, "flow": 1 << 3,
    "head_stats": 1 << 4, "head_importance": 1 << 5, "saliency": 1 << 6,
    "agreement": 1 << 7,
}
METHOD_DEFAULT = 0xF7
PART_MAPS, PART_PAIRS, PART_METRICS, PART_STATS = 0, 1, 2, 3
HAS_HEAD_IMPORTANCE, HAS_ROLLOUT_ROWS, HAS_GRAD_ROLLOUT_ROWS = 1, 2, 4

c_float_p = ctypes.POINTER(ctypes.c_float)


class CtxOptions(ctypes.Structure):
    _fields_ = [("backend", ctypes.c_char_p), ("threads", ctypes.c_int)]


class Plan(ctypes.Structure):
    _fields_ = [
        ("methods", ctypes.c_uint),
        ("methods_explicit", ctypes.c_int),
        ("fusion", ctypes.c_int),
        ("target", ctypes.c_int),
        ("target_index", ctypes.c_int),
        ("discard", ctypes.c_double),
        ("normalize", ctypes.c_int),
        ("topk", ctypes.c_int),
        ("include_special", ctypes.c_int),
        ("all_rows", ctypes.c_int),
        ("worst", ctypes.c_int),
        ("pairs", ctypes.c_char_p),
        ("chunk", ctypes.c_int64),
        ("histogram_bins", ctypes.c_int),
        ("row_tolerance", ctypes.c_double),
        ("target_recorded", ctypes.c_int),
        ("include_target", ctypes.c_int),
    ]


class Arrays(ctypes.Structure):
    _fields_ = [
        ("layers", ctypes.c_int),
        ("batch", ctypes.c_int),
        ("heads", ctypes.c_int),
        ("tokens", ctypes.c_int),
        ("dtype", ctypes.c_int),
        ("attentions", ctypes.POINTER(ctypes.c_void_p)),
        ("attention_grads", ctypes.POINTER(ctypes.c_void_p)),
        ("attention_mask", ctypes.c_void_p),
        ("attention_mask_dtype", ctypes.c_int),
        ("special_tokens_mask", ctypes.c_void_p),
        ("special_tokens_mask_dtype", ctypes.c_int),
        ("saliency_count", ctypes.c_int),
        ("saliency_names", ctypes.POINTER(ctypes.c_char_p)),
        ("saliency", ctypes.POINTER(ctypes.c_void_p)),
        ("saliency_dtype", ctypes.c_int),
        ("embed_dim", ctypes.c_int),
        ("embeds_dtype", ctypes.c_int),
        ("inputs_embeds", ctypes.c_void_p),
        ("inputs_embeds_grads", ctypes.c_void_p),
        ("grid", ctypes.c_char_p),
        ("device_pointers", ctypes.c_int),
    ]


class ArraysResult(ctypes.Structure):
    _fields_ = [
        ("maps", ctypes.POINTER(c_float_p)),
        ("head_stats", ctypes.POINTER(c_float_p)),
        ("head_importance", c_float_p),
        ("agreement", ctypes.POINTER(c_float_p)),
        ("rollout_rows", c_float_p),
        ("grad_rollout_rows", c_float_p),
        ("lengths", ctypes.POINTER(ctypes.c_int32)),
    ]


def _decl(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


_vp = ctypes.c_void_p
am_version = _decl("am_version", ctypes.c_char_p)
am_status_str = _decl("am_status_str", ctypes.c_char_p, ctypes.c_int)
am_ctx_create = _decl("am_ctx_create", ctypes.c_int, ctypes.POINTER(CtxOptions),
                      ctypes.POINTER(_vp), ctypes.c_char_p, ctypes.c_size_t)
am_ctx_destroy = _decl("am_ctx_destroy", None, _vp)
am_last_error = _decl("am_last_error", ctypes.c_char_p, _vp)
am_ctx_backend_name = _decl("am_ctx_backend_name", ctypes.c_char_p, _vp)
am_ctx_device_name = _decl("am_ctx_device_name", ctypes.c_char_p, _vp)
am_ctx_threads = _decl("am_ctx_threads", ctypes.c_int, _vp)
am_plan_init = _decl("am_plan_init", None, ctypes.POINTER(Plan))
am_arrays_describe = _decl("am_arrays_describe", ctypes.c_int, _vp,
                           ctypes.POINTER(Arrays), ctypes.POINTER(Plan),
                           ctypes.POINTER(_vp))
am_arrays_desc_destroy = _decl("am_arrays_desc_destroy", None, _vp)
am_arrays_desc_count = _decl("am_arrays_desc_count", ctypes.c_int, _vp, ctypes.c_int)
am_arrays_desc_name = _decl("am_arrays_desc_name", ctypes.c_char_p, _vp, ctypes.c_int,
                            ctypes.c_int)
am_arrays_desc_flags = _decl("am_arrays_desc_flags", ctypes.c_uint, _vp)
am_analyze_arrays = _decl("am_analyze_arrays", ctypes.c_int, _vp, ctypes.POINTER(Arrays),
                          ctypes.POINTER(Plan), ctypes.POINTER(ArraysResult))


def check(status, ctx=None):
    """Raises AttnmapError for a status other than OK, with the context's message."""
    if status == 0:
        return
    msg = am_last_error(ctx).decode("utf-8", "replace") if ctx else ""
    name = STATUS_NAMES.get(status, str(status))
    raise AttnmapError(name, msg or am_status_str(status).decode())


def version():
    """The library's version string ("0.1.0")."""
    return am_version().decode()
