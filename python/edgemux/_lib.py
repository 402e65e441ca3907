"""ctypes bindings of libedgemux (include/edgemux/edgemux.h and client.h).

Only this module knows the C layouts. The library is found, in order:

1. ``$EDGEMUX_LIB`` (a path to libedgemux.so);
2. the build tree next to this package: ``<repo>/build/lib/libedgemux.so``
   when the package is used from ``<repo>/python``;
3. ``libedgemux.so.0`` on the dynamic loader's path (ld.so.conf,
   ``LD_LIBRARY_PATH``), then whatever :func:`ctypes.util.find_library`
   reports for ``edgemux``.
"""

import ctypes
import ctypes.util
import os
import threading

import numpy as np

# ---- constants (edgemux.h) ---------------------------------------------------

EMX_MAX_DIMS = 8

#: EMX_E* codes by name, as in EMX_ERRNO_MAP.
ERRNO = {
    "EMX_EINVAL": -1,
    "EMX_ENOMEM": -2,
    "EMX_ENOENT": -3,
    "EMX_EBUSY": -4,
    "EMX_ETIMEDOUT": -5,
    "EMX_ECANCELED": -6,
    "EMX_ESHUTDOWN": -7,
    "EMX_EMODEL": -8,
    "EMX_EUNSUPPORTED": -9,
    "EMX_EDEVICE": -10,
    "EMX_EIO": -11,
    "EMX_ECOUNT": -12,
    "EMX_ESIZE": -13,
    "EMX_EDTYPE": -14,
    "EMX_EAGAIN": -15,
    "EMX_EALREADY": -16,
    "EMX_EEXIST": -17,
    "EMX_EDISCONNECTED": -18,
    "EMX_EPROTO": -19,
}
globals().update(ERRNO)
ERRNO_NAMES = {v: k for k, v in ERRNO.items()}

EMX_PRIORITY_LOW, EMX_PRIORITY_NORMAL, EMX_PRIORITY_HIGH = 0, 1, 2

#: emx_dtype (= TfLiteType) -> numpy type, as tflite_runtime maps them.
DTYPES = {
    1: np.float32,
    2: np.int32,
    3: np.uint8,
    4: np.int64,
    5: np.bytes_,  # kTfLiteString; edgemux never serves string tensors
    6: np.bool_,
    7: np.int16,
    8: np.complex64,
    9: np.int8,
    10: np.float16,
    11: np.float64,
}
DTYPE_CODES = {np.dtype(v): k for k, v in DTYPES.items() if k != 5}


# ---- structs -----------------------------------------------------------------


class Tensor(ctypes.Structure):
    """emx_tensor"""

    _fields_ = [
        ("dtype", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("size", ctypes.c_size_t),
    ]


class TensorInfo(ctypes.Structure):
    """emx_tensor_info"""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("dtype", ctypes.c_int),
        ("rank", ctypes.c_int),
        ("dims", ctypes.c_int32 * EMX_MAX_DIMS),
        ("bytes", ctypes.c_size_t),
        ("scale", ctypes.c_float),
        ("zero_point", ctypes.c_int32),
    ]


class Timings(ctypes.Structure):
    """emx_timings"""

    _fields_ = [
        ("submitted_ns", ctypes.c_int64),
        ("started_ns", ctypes.c_int64),
        ("finished_ns", ctypes.c_int64),
        ("device_ns", ctypes.c_int64),
        ("device", ctypes.c_int),
        ("batch", ctypes.c_int),
    ]


class ClientConfig(ctypes.Structure):
    """emx_client_config"""

    _fields_ = [
        ("socket_path", ctypes.c_char_p),
        ("arena_bytes", ctypes.c_size_t),
        ("timeout_ns", ctypes.c_int64),
    ]


class ClientOptions(ctypes.Structure):
    """emx_client_options"""

    _fields_ = [("priority", ctypes.c_int), ("timeout_ns", ctypes.c_int64)]


class EngineConfig(ctypes.Structure):
    """emx_engine_config"""

    _fields_ = [
        ("devices", ctypes.POINTER(ctypes.c_char_p)),
        ("device_count", ctypes.c_size_t),
        ("queue_capacity", ctypes.c_size_t),
        ("log_level", ctypes.c_int),
    ]


COMPLETION_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int,
                                 ctypes.c_void_p)


class RequestDesc(ctypes.Structure):
    """emx_request_desc"""

    _fields_ = [
        ("model", ctypes.c_void_p),
        ("inputs", ctypes.POINTER(Tensor)),
        ("input_count", ctypes.c_size_t),
        ("outputs", ctypes.POINTER(Tensor)),
        ("output_count", ctypes.c_size_t),
        ("priority", ctypes.c_int),
        ("deadline_ns", ctypes.c_int64),
        ("enqueue_timeout_ns", ctypes.c_int64),
        ("stream", ctypes.c_void_p),
        ("on_complete", COMPLETION_FN),
        ("user", ctypes.c_void_p),
    ]


# ---- loading -----------------------------------------------------------------

_P = ctypes.c_void_p
_I = ctypes.c_int
_SZ = ctypes.c_size_t
_S = ctypes.c_char_p
_I64 = ctypes.c_int64
_MODELS_FN = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)

# name: (restype, argtypes)
_PROTOS = {
    "emx_version": (_S, []),
    "emx_strerror": (_S, [_I]),
    "emx_err_name": (_S, [_I]),
    "emx_dtype_name": (_S, [_I]),
    "emx_now_ns": (_I64, []),
    # client.h
    "emx_client_config_init": (None, [ctypes.POINTER(ClientConfig)]),
    "emx_client_default_socket": (_S, [ctypes.c_char_p, _SZ]),
    "emx_client_connect": (_I, [ctypes.POINTER(_P),
                                ctypes.POINTER(ClientConfig)]),
    "emx_client_destroy": (None, [_P]),
    "emx_client_last_error": (_S, [_P]),
    "emx_client_models": (_I, [_P, _MODELS_FN, _P]),
    "emx_client_model_open": (_I, [_P, _S, ctypes.POINTER(_P)]),
    "emx_client_model_load": (_I, [_P, _S, _S, ctypes.POINTER(_P)]),
    "emx_client_model_load_bytes": (_I, [_P, _S, ctypes.c_char_p,
                                         ctypes.c_size_t,
                                         ctypes.POINTER(_P)]),
    "emx_client_model_unload": (_I, [_P, _S]),
    "emx_client_model_input_count": (_SZ, [_P]),
    "emx_client_model_output_count": (_SZ, [_P]),
    "emx_client_model_input_info": (_I, [_P, _SZ,
                                         ctypes.POINTER(TensorInfo)]),
    "emx_client_model_output_info": (_I, [_P, _SZ,
                                          ctypes.POINTER(TensorInfo)]),
    "emx_client_tensor_alloc": (_I, [_P, _I, _SZ, ctypes.POINTER(Tensor)]),
    "emx_client_tensor_free": (None, [_P, ctypes.POINTER(Tensor)]),
    "emx_client_infer": (_I, [_P, _P, ctypes.POINTER(Tensor), _SZ,
                              ctypes.POINTER(Tensor), _SZ,
                              ctypes.POINTER(Timings)]),
    "emx_client_submit": (_I, [_P, _P, ctypes.POINTER(Tensor), _SZ,
                               ctypes.POINTER(Tensor), _SZ,
                               ctypes.POINTER(ClientOptions),
                               ctypes.POINTER(_P)]),
    "emx_client_request_wait": (_I, [_P, _I64]),
    "emx_client_request_poll": (_I, [_P]),
    "emx_client_request_cancel": (_I, [_P]),
    "emx_client_request_timings": (None, [_P, ctypes.POINTER(Timings)]),
    "emx_client_request_error": (_S, [_P]),
    "emx_client_request_destroy": (None, [_P]),
    "emx_client_ping": (_I, [_P]),
    "emx_client_status": (_I, [_P, ctypes.POINTER(ctypes.c_void_p)]),
    # edgemux.h (the in-process engine)
    "emx_engine_config_init": (None, [ctypes.POINTER(EngineConfig)]),
    "emx_engine_create": (_I, [ctypes.POINTER(_P),
                               ctypes.POINTER(EngineConfig)]),
    "emx_engine_destroy": (None, [_P]),
    "emx_engine_last_error": (_S, [_P]),
    "emx_model_load_file": (_I, [_P, _S, _S, ctypes.POINTER(_P)]),
    "emx_model_input_count": (_SZ, [_P]),
    "emx_model_output_count": (_SZ, [_P]),
    "emx_model_input_info": (_I, [_P, _SZ, ctypes.POINTER(TensorInfo)]),
    "emx_model_output_info": (_I, [_P, _SZ, ctypes.POINTER(TensorInfo)]),
    "emx_request_desc_init": (None, [ctypes.POINTER(RequestDesc)]),
    "emx_infer": (_I, [_P, ctypes.POINTER(RequestDesc),
                       ctypes.POINTER(Timings)]),
}

_lock = threading.Lock()
_lib = None
_lib_path = None


def _candidates():
    env = os.environ.get("EDGEMUX_LIB")
    if env:
        # An explicit choice is the only candidate: never silently use
        # another library than the one asked for.
        return [env], True
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    out = [os.path.join(repo, "build", "lib", "libedgemux.so")]
    out = [p for p in out if os.path.exists(p)]
    out.append("libedgemux.so.0")
    found = ctypes.util.find_library("edgemux")
    if found:
        out.append(found)
    return out, False


def lib():
    """The loaded libedgemux (a ctypes.CDLL with prototypes set)."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        cands, explicit = _candidates()
        errors = []
        handle = None
        for path in cands:
            try:
                handle = ctypes.CDLL(path)
                break
            except OSError as e:
                errors.append("%s: %s" % (path, e))
        if handle is None:
            raise ImportError(
                "edgemux: cannot load the C client library libedgemux "
                "(tried %s). Build it (cmake --build build), install it, or "
                "set EDGEMUX_LIB to its path%s."
                % ("; ".join(errors),
                   "" if not explicit else " (EDGEMUX_LIB is set)"))
        for name, (res, args) in _PROTOS.items():
            fn = getattr(handle, name)
            fn.restype = res
            fn.argtypes = args
        _lib_path = path
        _lib = handle
        return _lib


def lib_path():
    """Where the loaded library came from."""
    lib()
    return _lib_path


def decode(b):
    return b.decode("utf-8", "replace") if b is not None else ""


def err_name(code):
    return ERRNO_NAMES.get(code, "EMX_UNKNOWN")


def strerror(code):
    return decode(lib().emx_strerror(code))


def info_to_dict(ti):
    """An emx_tensor_info as plain Python values."""
    return {
        "name": decode(ti.name),
        "dtype": int(ti.dtype),
        "shape": tuple(int(ti.dims[i]) for i in range(ti.rank)),
        "bytes": int(ti.bytes),
        "scale": float(ti.scale),
        "zero_point": int(ti.zero_point),
    }


def numpy_dtype(code):
    try:
        return np.dtype(DTYPES[code])
    except KeyError:
        raise ValueError("edgemux: tensor type %d has no numpy equivalent"
                         % code) from None


def view(ptr, nbytes, dtype, shape):
    """A writable numpy array over nbytes at address ptr (no copy)."""
    buf = (ctypes.c_char * nbytes).from_address(ptr)
    return np.frombuffer(buf, dtype=dtype).reshape(shape)
