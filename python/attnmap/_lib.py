"""_lib.py - finds libattnmap.so and declares the part of include/attnmap.h that Python
uses: contexts, plans, the in-memory arrays entry point (am_analyze_arrays) and the live
run writer (am_run_writer_*).

The library is looked for, in order: the file named by $ATTNMAP_LIBRARY; a
libattnmap.so next to this package; the CMake build folders of the repository this
package sits in (build/, build-py/); the system's library path (ctypes.util). The struct
mirrors below follow attnmap.h field for field: their sizes and the constants written here
are checked against the library at import (_check_abi), and tests/python/test_module.py
checks the field names against the header. Names (statuses, dtypes, methods, options) are
read from the library, never copied.
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

PART_MAPS, PART_PAIRS, PART_METRICS, PART_STATS = 0, 1, 2, 3
HAS_HEAD_IMPORTANCE, HAS_ROLLOUT_ROWS, HAS_GRAD_ROLLOUT_ROWS = 1, 2, 4
LIST_METHODS, LIST_STATS, LIST_METRICS, LIST_FUSIONS, LIST_TARGETS, LIST_NORMALIZE = range(6)

c_float_p = ctypes.POINTER(ctypes.c_float)


class CtxOptions(ctypes.Structure):
    _fields_ = [("backend", ctypes.c_char_p), ("threads", ctypes.c_int)]


class Tensor(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("ndim", ctypes.c_int),
                ("shape", ctypes.c_int64 * 8), ("data", ctypes.c_void_p),
                ("nbytes", ctypes.c_size_t)]


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
        ("target_stop", ctypes.c_int),
        ("target_slice", ctypes.c_int),
    ]


class RunOptions(ctypes.Structure):
    _fields_ = [
        ("progress", ctypes.c_void_p),
        ("progress_user", ctypes.c_void_p),
        ("force", ctypes.c_int),
        ("checksums", ctypes.c_int),
        ("resume", ctypes.c_int),
        ("checkpoint_s", ctypes.c_double),
    ]


class ReportOptions(ctypes.Structure):
    _fields_ = [
        ("baseline", ctypes.c_char_p),
        ("drift", ctypes.c_double),
        ("examples", ctypes.c_int),
        ("views", ctypes.c_int),
        ("topk_heads", ctypes.c_int),
        ("dataset", ctypes.POINTER(ctypes.c_char_p)),
        ("ndataset", ctypes.c_int),
        ("out_dir", ctypes.c_char_p),
        ("stratify_length", ctypes.c_int),
        ("overlay_colormap", ctypes.c_int),
        ("overlay_alpha", ctypes.c_double),
        ("overlay_sheet", ctypes.c_int),
    ]


class Settings(ctypes.Structure):
    _fields_ = [("ctx", CtxOptions), ("plan", Plan), ("run", RunOptions),
                ("report", ReportOptions)]


class OptionInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("kind", ctypes.c_int),
        ("scope", ctypes.c_int),
        ("min", ctypes.c_double),
        ("max", ctypes.c_double),
        ("max_open", ctypes.c_int),
        ("choices", ctypes.c_char_p),
        ("metavar", ctypes.c_char_p),
        ("help", ctypes.c_char_p),
        ("fallback", ctypes.c_char_p),
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
        ("kv_heads", ctypes.c_int),
        ("head_dim", ctypes.c_int),
        ("queries", ctypes.POINTER(ctypes.c_void_p)),
        ("keys", ctypes.POINTER(ctypes.c_void_p)),
        ("values", ctypes.POINTER(ctypes.c_void_p)),
        ("attention_output_grads", ctypes.POINTER(ctypes.c_void_p)),
        ("attn_scale", ctypes.c_double),
        ("attn_causal", ctypes.c_int),
        ("attn_sliding_window", ctypes.c_int),
        ("attn_softcap", ctypes.c_double),
    ]


class StreamInfo(ctypes.Structure):
    _fields_ = [
        ("examples", ctypes.c_int64),
        ("max_tokens", ctypes.c_int),
        ("model", ctypes.c_char_p),
        ("grid", ctypes.c_char_p),
        ("target", ctypes.c_char_p),
    ]


class BatchExtras(ctypes.Structure):
    _fields_ = [
        ("input_ids", ctypes.c_void_p),
        ("input_ids_dtype", ctypes.c_int),
        ("labels", ctypes.c_void_p),
        ("labels_dtype", ctypes.c_int),
        ("predictions", ctypes.c_void_p),
        ("predictions_dtype", ctypes.c_int),
        ("tokens", ctypes.POINTER(ctypes.c_char_p)),
        ("token_offsets", ctypes.POINTER(ctypes.c_int64)),
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
am_status_name = _decl("am_status_name", ctypes.c_char_p, ctypes.c_int)
am_dtype_name = _decl("am_dtype_name", ctypes.c_char_p, ctypes.c_int)
am_dtype_size = _decl("am_dtype_size", ctypes.c_size_t, ctypes.c_int)
am_list_count = _decl("am_list_count", ctypes.c_int, ctypes.c_int)
am_list_name = _decl("am_list_name", ctypes.c_char_p, ctypes.c_int, ctypes.c_int)
am_option_count = _decl("am_option_count", ctypes.c_int)
am_option_get = _decl("am_option_get", ctypes.POINTER(OptionInfo), ctypes.c_int)
am_settings_init = _decl("am_settings_init", None, ctypes.POINTER(Settings))
am_settings_set = _decl("am_settings_set", ctypes.c_int, ctypes.POINTER(Settings),
                        ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t)
am_abi_sizeof = _decl("am_abi_sizeof", ctypes.c_size_t, ctypes.c_char_p)
am_abi_constant = _decl("am_abi_constant", ctypes.c_int, ctypes.c_char_p,
                        ctypes.POINTER(ctypes.c_longlong))
am_run_open = _decl("am_run_open", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                    ctypes.POINTER(ctypes.c_void_p))
am_run_close = _decl("am_run_close", None, ctypes.c_void_p)
am_run_examples = _decl("am_run_examples", ctypes.c_void_p, ctypes.c_void_p)
am_run_summary = _decl("am_run_summary", ctypes.c_char_p, ctypes.c_void_p)
am_run_pair_count = _decl("am_run_pair_count", ctypes.c_int, ctypes.c_void_p)
am_run_pair_name = _decl("am_run_pair_name", ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int)
am_run_map_count = _decl("am_run_map_count", ctypes.c_int, ctypes.c_void_p)
am_run_map_name = _decl("am_run_map_name", ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int)
am_file_open = _decl("am_file_open", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                     ctypes.POINTER(ctypes.c_void_p))
am_file_close = _decl("am_file_close", None, ctypes.c_void_p)
am_file_tensor_count = _decl("am_file_tensor_count", ctypes.c_int, ctypes.c_void_p)
am_file_tensor_name = _decl("am_file_tensor_name", ctypes.c_char_p, ctypes.c_void_p,
                            ctypes.c_int)
am_file_tensor = _decl("am_file_tensor", ctypes.POINTER(Tensor), ctypes.c_void_p,
                       ctypes.c_int)
am_file_metadata_count = _decl("am_file_metadata_count", ctypes.c_int, ctypes.c_void_p)
am_file_metadata_key = _decl("am_file_metadata_key", ctypes.c_char_p, ctypes.c_void_p,
                             ctypes.c_int)
am_file_metadata = _decl("am_file_metadata", ctypes.c_char_p, ctypes.c_void_p,
                         ctypes.c_char_p)
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
am_run_writer_open = _decl("am_run_writer_open", ctypes.c_int, _vp, ctypes.c_char_p,
                           ctypes.POINTER(Plan), ctypes.POINTER(RunOptions),
                           ctypes.POINTER(StreamInfo), ctypes.POINTER(_vp),
                           ctypes.POINTER(ctypes.c_int64))
am_run_writer_add = _decl("am_run_writer_add", ctypes.c_int, _vp, ctypes.POINTER(Arrays),
                          ctypes.POINTER(BatchExtras))
am_run_writer_close = _decl("am_run_writer_close", ctypes.c_int, _vp)
am_run_writer_abort = _decl("am_run_writer_abort", None, _vp)


# ---- names and numbers, read from the library (never copied) ---------------------------
STATUS_NAMES = {i: am_status_name(i).decode() for i in range(64) if am_status_name(i)}


def _constant(name):
    value = ctypes.c_longlong()
    if am_abi_constant(name.encode(), ctypes.byref(value)) != 0:
        raise ImportError("attnmap: %s does not know %s; the Python package and the library "
                          "are of different versions" % (library_path, name))
    return value.value


def _names(which):
    return [am_list_name(which, i).decode() for i in range(am_list_count(which))]


DTYPES = {am_dtype_name(i).decode(): i for i in range(_constant("AM_DTYPE_COUNT"))}
DTYPE_SIZES = {name: am_dtype_size(i) for name, i in DTYPES.items()}
FUSIONS = {n: i for i, n in enumerate(_names(LIST_FUSIONS))}
TARGETS = {n: i for i, n in enumerate(_names(LIST_TARGETS))}
NORMALIZE = {n: i for i, n in enumerate(_names(LIST_NORMALIZE))}
METHODS = {n: 1 << i for i, n in enumerate(_names(LIST_METHODS))}
METHOD_DEFAULT = _constant("AM_METHOD_DEFAULT")
OPTIONS = {}
for _i in range(am_option_count()):
    _o = am_option_get(_i).contents
    OPTIONS[_o.name.decode()] = _o


def _check_abi():
    """The mirrors above against the library: struct sizes and the constants this module
    writes down, so that a package and a library of different versions fail at import
    with a message rather than pass wrong numbers."""
    structs = {"am_tensor_t": Tensor, "am_ctx_options_t": CtxOptions, "am_plan_t": Plan,
               "am_run_options_t": RunOptions, "am_report_options_t": ReportOptions,
               "am_settings_t": Settings, "am_option_info_t": OptionInfo,
               "am_arrays_t": Arrays, "am_arrays_result_t": ArraysResult,
               "am_stream_info_t": StreamInfo, "am_batch_extras_t": BatchExtras}
    for cname, mirror in structs.items():
        size = am_abi_sizeof(cname.encode())
        if size != ctypes.sizeof(mirror):
            raise ImportError("attnmap: %s is %d bytes in %s but %d in this package; the "
                              "package and the library are of different versions"
                              % (cname, size, library_path, ctypes.sizeof(mirror)))
    consts = {"AM_ARRAYS_MAPS": PART_MAPS, "AM_ARRAYS_PAIRS": PART_PAIRS,
              "AM_ARRAYS_METRICS": PART_METRICS, "AM_ARRAYS_STATS": PART_STATS,
              "AM_ARRAYS_HAS_HEAD_IMPORTANCE": HAS_HEAD_IMPORTANCE,
              "AM_ARRAYS_HAS_ROLLOUT_ROWS": HAS_ROLLOUT_ROWS,
              "AM_ARRAYS_HAS_GRAD_ROLLOUT_ROWS": HAS_GRAD_ROLLOUT_ROWS,
              "AM_TARGET_INDEX": TARGETS.get("index"), "AM_MAX_DIMS": 8,
              "AM_LIST_COUNT": LIST_NORMALIZE + 1}
    for cname, mine in consts.items():
        if _constant(cname) != mine:
            raise ImportError("attnmap: %s is %d in %s but %r in this package; the package "
                              "and the library are of different versions"
                              % (cname, _constant(cname), library_path, mine))


_check_abi()


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
