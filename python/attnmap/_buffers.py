"""_buffers.py - turns what a user passes (numpy arrays, PyTorch tensors on the CPU or a
GPU, objects with __cuda_array_interface__ or DLPack) into raw pointers for the C library,
without copies where the memory is already C-contiguous in a supported dtype.

Host memory that is not contiguous (or a Python list) is made contiguous with numpy, which
copies. Device memory is never copied here: a non-contiguous device tensor is an error.
"""
import ctypes

import numpy as np

_NUMPY_DTYPES = {
    np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.float64): "F64",
    np.dtype(np.int8): "I8", np.dtype(np.int16): "I16", np.dtype(np.int32): "I32",
    np.dtype(np.int64): "I64", np.dtype(np.uint8): "U8", np.dtype(np.uint16): "U16",
    np.dtype(np.uint32): "U32", np.dtype(np.uint64): "U64", np.dtype(np.bool_): "BOOL",
}
_TORCH_DTYPES = {
    "torch.float32": "F32", "torch.float16": "F16", "torch.bfloat16": "BF16",
    "torch.float64": "F64", "torch.int8": "I8", "torch.int16": "I16", "torch.int32": "I32",
    "torch.int64": "I64", "torch.uint8": "U8", "torch.bool": "BOOL",
}
# __cuda_array_interface__ typestr (little-endian) -> attnmap dtype
_TYPESTR = {
    "<f4": "F32", "<f2": "F16", "<f8": "F64", "|i1": "I8", "<i2": "I16", "<i4": "I32",
    "<i8": "I64", "|u1": "U8", "<u2": "U16", "<u4": "U32", "<u8": "U64", "|b1": "BOOL",
}
# DLPack (code, bits) -> attnmap dtype; codes: 0 int, 1 uint, 2 float, 4 bfloat, 6 bool
_DLPACK = {
    (2, 32): "F32", (2, 16): "F16", (2, 64): "F64", (4, 16): "BF16", (0, 8): "I8",
    (0, 16): "I16", (0, 32): "I32", (0, 64): "I64", (1, 8): "U8", (1, 16): "U16",
    (1, 32): "U32", (1, 64): "U64", (6, 8): "BOOL",
}
_KDL_CPU, _KDL_CUDA, _KDL_CUDA_HOST, _KDL_CUDA_MANAGED = 1, 2, 3, 13


class Buffer:
    """A C-contiguous block: .ptr (int), .dtype (attnmap name), .shape, .device ("cpu" or
    "cuda"), .keep (the object that owns the memory, kept alive while the Buffer is)."""

    def __init__(self, ptr, dtype, shape, device, keep):
        self.ptr, self.dtype, self.shape, self.device, self.keep = ptr, dtype, tuple(
            shape), device, keep

    @property
    def itemsize(self):
        return {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2,
                "BF16": 2, "I16": 2, "U16": 2}.get(self.dtype, 1)

    def nbytes_per(self, axis):
        n = self.itemsize
        for d in self.shape[axis + 1:]:
            n *= d
        return n


def _is_torch(x):
    return type(x).__module__.startswith("torch") and hasattr(x, "data_ptr")


def _c_contiguous(shape, strides, itemsize):
    if strides is None:
        return True
    expect = itemsize
    for d, s in zip(reversed(shape), reversed(strides)):
        if d > 1 and s != expect:
            return False
        expect *= d
    return True


def _from_torch(x, name):
    if x.requires_grad:
        x = x.detach()
    dtype = _TORCH_DTYPES.get(str(x.dtype))
    if dtype is None:
        raise TypeError("attnmap: %s: torch dtype %s is not supported" % (name, x.dtype))
    if x.device.type == "cuda":
        if not x.is_contiguous():
            raise ValueError(
                "attnmap: %s: the CUDA tensor is not contiguous; attnmap reads device "
                "memory in place and does not copy it (call .contiguous())" % name)
        return Buffer(x.data_ptr(), dtype, x.shape, "cuda", x)
    if x.device.type != "cpu":
        raise ValueError("attnmap: %s: tensors on %s are not supported" % (name, x.device))
    if not x.is_contiguous():
        x = x.contiguous()  # host copy
    return Buffer(x.data_ptr(), dtype, x.shape, "cpu", x)


def _from_cai(x, name):
    cai = x.__cuda_array_interface__
    dtype = _TYPESTR.get(cai["typestr"])
    if dtype is None:
        raise TypeError("attnmap: %s: typestr %s is not supported" % (name, cai["typestr"]))
    shape = tuple(cai["shape"])
    buf = Buffer(cai["data"][0], dtype, shape, "cuda", x)
    if not _c_contiguous(shape, cai.get("strides"), buf.itemsize):
        raise ValueError("attnmap: %s: the device array is not C-contiguous" % name)
    return buf


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


def _from_dlpack_device(x, name):
    """A DLPack capsule read in place (not consumed: its own destructor frees it)."""
    capsule = x.__dlpack__()
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    t = _DLTensor.from_address(get(capsule, b"dltensor"))
    dtype = _DLPACK.get((t.dtype.code, t.dtype.bits))
    if dtype is None or t.dtype.lanes != 1:
        raise TypeError("attnmap: %s: DLPack dtype (%d, %d) is not supported"
                        % (name, t.dtype.code, t.dtype.bits))
    shape = tuple(t.shape[i] for i in range(t.ndim))
    strides = tuple(t.strides[i] for i in range(t.ndim)) if t.strides else None
    buf = Buffer((t.data or 0) + t.byte_offset, dtype, shape, "cuda", (x, capsule))
    if strides is not None and not _c_contiguous(shape, [s * buf.itemsize for s in strides],
                                                 buf.itemsize):
        raise ValueError("attnmap: %s: the DLPack tensor is not C-contiguous" % name)
    return buf


def as_buffer(x, name):
    """The Buffer of x: a torch tensor, a device array, or anything numpy can hold."""
    if _is_torch(x):
        return _from_torch(x, name)
    if hasattr(x, "__cuda_array_interface__"):
        return _from_cai(x, name)
    if not isinstance(x, np.ndarray) and hasattr(x, "__dlpack_device__"):
        dev = x.__dlpack_device__()[0]
        if dev in (_KDL_CUDA, _KDL_CUDA_MANAGED):
            return _from_dlpack_device(x, name)
        if dev in (_KDL_CPU, _KDL_CUDA_HOST) and hasattr(np, "from_dlpack"):
            x = np.from_dlpack(x)
    a = np.ascontiguousarray(x)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    dtype = _NUMPY_DTYPES.get(a.dtype.newbyteorder("="))
    if dtype is None:
        raise TypeError("attnmap: %s: numpy dtype %s is not supported" % (name, a.dtype))
    return Buffer(a.ctypes.data, dtype, a.shape, "cpu", a)


def to_host(x, name):
    """A host Buffer of a small array (mask, saliency, embeddings): device tensors of
    PyTorch are copied to the host; other device arrays are refused."""
    if _is_torch(x) and x.device.type != "cpu":
        x = x.detach().cpu()
    b = as_buffer(x, name)
    if b.device != "cpu":
        raise ValueError("attnmap: %s: pass this array in host memory" % name)
    return b
