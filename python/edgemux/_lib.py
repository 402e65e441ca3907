"""ctypes bindings of libedgemux-client (include/edgemux/client.h) and, for
in-process use and the tests' oracle, libedgemux (the engine, edgemux.h).

Only this module knows the C layouts. The error and dtype tables are read
from the library (emx_err_at, emx_dtype_at), and every struct mirrored here
is checked against the library's size for it (emx_struct_size) at import:
a library whose layouts differ from these is refused with an ImportError
rather than corrupting memory.

The client library is found, in order:

1. ``$EDGEMUX_LIB`` (a path to libedgemux-client.so);
2. the build tree next to this package:
   ``<repo>/build/lib/libedgemux-client.so`` when the package is used from
   ``<repo>/python``;
3. ``libedgemux-client.so.0`` on the dynamic loader's path (ld.so.conf,
   ``LD_LIBRARY_PATH``), then whatever :func:`ctypes.util.find_library`
   reports for ``edgemux-client``.

The engine (:func:`engine_lib`) likewise from ``$EDGEMUX_ENGINE_LIB``,
``<repo>/build/lib/libedgemux.so`` or ``libedgemux.so.0``.
"""

import ctypes
import ctypes.util
import os
import threading

import numpy as np

# ---- constants (edgemux.h) ---------------------------------------------------

EMX_MAX_DIMS = 8

EMX_PRIORITY_LOW, EMX_PRIORITY_NORMAL, EMX_PRIORITY_HIGH = 0, 1, 2

#: Filled from the library at import (see _tables): EMX_E* codes by name,
#: names by code, emx_dtype -> numpy type (as tflite_runtime maps them),
#: numpy dtype -> emx_dtype.
ERRNO = {}
ERRNO_NAMES = {}
DTYPES = {}
DTYPE_CODES = {}


# ---- structs -----------------------------------------------------------------


class _Sized(ctypes.Structure):
    """A size-led struct (edgemux.h, "ABI"): struct_size is set on
    construction to this mirror's size, which the import-time check has
    found equal to the library's."""

    def __init__(self, *args, **kw):
        super().__init__(ctypes.sizeof(type(self)), *args, **kw)


class Tensor(ctypes.Structure):
    """emx_tensor"""

    _fields_ = [
        ("dtype", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("size", ctypes.c_size_t),
    ]


class TensorInfo(_Sized):
    """emx_tensor_info"""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("name", ctypes.c_char_p),
        ("dtype", ctypes.c_int),
        ("rank", ctypes.c_int),
        ("dims", ctypes.c_int32 * EMX_MAX_DIMS),
        ("bytes", ctypes.c_size_t),
        ("scale", ctypes.c_float),
        ("zero_point", ctypes.c_int32),
    ]


class Timings(_Sized):
    """emx_timings"""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("submitted_ns", ctypes.c_int64),
        ("started_ns", ctypes.c_int64),
        ("finished_ns", ctypes.c_int64),
        ("device_ns", ctypes.c_int64),
        ("device", ctypes.c_int),
        ("batch", ctypes.c_int),
    ]


class ClientConfig(_Sized):
    """emx_client_config"""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("socket_path", ctypes.c_char_p),
        ("arena_bytes", ctypes.c_size_t),
        ("timeout_ns", ctypes.c_int64),
    ]


class ClientOptions(_Sized):
    """emx_client_options"""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("priority", ctypes.c_int),
        ("timeout_ns", ctypes.c_int64),
    ]


class EngineConfig(_Sized):
    """emx_engine_config"""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("devices", ctypes.POINTER(ctypes.c_char_p)),
        ("device_count", ctypes.c_size_t),
        ("queue_capacity", ctypes.c_size_t),
        ("log_level", ctypes.c_int),
    ]


class BatchItem(ctypes.Structure):
    """emx_client_batch_item (frozen, like emx_tensor: no struct_size)"""

    _fields_ = [
        ("model", ctypes.c_void_p),
        ("inputs", ctypes.POINTER(Tensor)),
        ("nin", ctypes.c_size_t),
        ("outputs", ctypes.POINTER(Tensor)),
        ("nout", ctypes.c_size_t),
    ]


COMPLETION_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int,
                                 ctypes.c_void_p)


class RequestDesc(_Sized):
    """emx_request_desc"""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
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
        ("flags", ctypes.c_uint),
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
    "emx_version_number": (ctypes.c_uint, []),
    "emx_err_at": (_I, [_SZ]),
    "emx_dtype_at": (_I, [_SZ]),
    "emx_dtype_size": (_SZ, [_I]),
    "emx_struct_size": (_SZ, [_S]),
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
    "emx_client_model_load_placed": (_I, [_P, _S, ctypes.c_char_p,
                                          ctypes.c_size_t, _S,
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
    "emx_client_submit_batch": (_I, [_P, ctypes.POINTER(BatchItem), _SZ,
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
    "emx_client_options_init": (None, [ctypes.POINTER(ClientOptions)]),
}

#: The structs each library's layout must match: emx_struct_size name ->
#: mirror.
_CLIENT_STRUCTS = {
    "tensor": Tensor,
    "tensor_info": TensorInfo,
    "timings": Timings,
    "client_config": ClientConfig,
    "client_options": ClientOptions,
}
_ENGINE_STRUCTS = dict(_CLIENT_STRUCTS, engine_config=EngineConfig,
                       request_desc=RequestDesc)

# edgemux.h: the in-process engine (engine_lib), beside the common functions.
_ENGINE_PROTOS = {
    "emx_version": (_S, []),
    "emx_struct_size": (_SZ, [_S]),
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
_engine = None


def _repo_lib(name):
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    path = os.path.join(repo, "build", "lib", name)
    return [path] if os.path.exists(path) else []


def _candidates(env_name, file_name, short_name):
    env = os.environ.get(env_name)
    if env:
        # An explicit choice is the only candidate: never silently use
        # another library than the one asked for.
        return [env], True
    out = _repo_lib(file_name) + [file_name + ".0"]
    found = ctypes.util.find_library(short_name)
    if found:
        out.append(found)
    return out, False


def _load(env_name, file_name, short_name, what, protos, structs):
    cands, explicit = _candidates(env_name, file_name, short_name)
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
            "edgemux: cannot load %s %s (tried %s). Build it (cmake --build "
            "build), install it, or set %s to its path%s."
            % (what, file_name, "; ".join(errors), env_name,
               "" if not explicit else " (%s is set)" % env_name))
    for name, (res, args) in protos.items():
        try:
            fn = getattr(handle, name)
        except AttributeError:
            raise ImportError(
                "edgemux: %s (%s) lacks %s: it is older than this Python "
                "package; install the matching library or set %s"
                % (file_name, path, name, env_name)) from None
        fn.restype = res
        fn.argtypes = args
    _check_structs(handle, path, structs)
    return handle, path


def _check_structs(handle, path, structs):
    """ImportError unless every mirrored struct has the library's size."""
    bad = []
    for name, cls in structs.items():
        theirs = handle.emx_struct_size(name.encode())
        if theirs != ctypes.sizeof(cls):
            bad.append("emx_%s: library %d bytes, Python %d"
                       % (name, theirs, ctypes.sizeof(cls)))
    if bad:
        raise ImportError(
            "edgemux: the library %s (edgemux %s) does not match this Python "
            "package's struct layouts (%s): install the Python package and the "
            "library from the same edgemux version"
            % (path, decode(handle.emx_version()), "; ".join(bad)))


def _tables(handle):
    """ERRNO and DTYPES from the library, not copied by hand."""
    i = 0
    while True:
        code = handle.emx_err_at(i)
        if code == 0:
            break
        ERRNO[decode(handle.emx_err_name(code))] = code
        i += 1
    ERRNO_NAMES.update({v: k for k, v in ERRNO.items()})
    i = 0
    while True:
        code = handle.emx_dtype_at(i)
        if code == 0:
            break
        name = decode(handle.emx_dtype_name(code))
        # Strings have no fixed element size; edgemux never serves them,
        # but details dicts still name their numpy type.
        DTYPES[code] = np.bytes_ if name == "string" else np.dtype(name).type
        i += 1
    DTYPE_CODES.update({np.dtype(v): k for k, v in DTYPES.items()
                        if v is not np.bytes_})
    globals().update(ERRNO)


def lib():
    """The loaded libedgemux-client (a ctypes.CDLL with prototypes set)."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            handle, path = _load("EDGEMUX_LIB", "libedgemux-client.so",
                                 "edgemux-client", "the C client library",
                                 _PROTOS, _CLIENT_STRUCTS)
            _tables(handle)
            _lib_path = path
            _lib = handle
        return _lib


def engine_lib():
    """The loaded libedgemux, the in-process engine (links TensorFlow
    Lite): for running models without a daemon, as the tests' oracle does."""
    global _engine
    with _lock:
        if _engine is None:
            _engine, _ = _load("EDGEMUX_ENGINE_LIB", "libedgemux.so",
                               "edgemux", "the engine library",
                               _ENGINE_PROTOS, _ENGINE_STRUCTS)
        return _engine


def lib_path():
    """Where the loaded library came from."""
    lib()
    return _lib_path


def unchecked(name, restype):
    """A second function object for lib()'s function name, without
    argtypes: ctypes then checks and converts nothing, so the caller must
    pass ctypes objects of the exact C types (c_void_p, c_size_t, arrays
    or pointers for pointers, None for NULL). For calls made per frame
    with arguments built once; everything else uses lib()'s prototypes."""
    fn = lib()[name]  # [] makes a new object; lib().name is the checked one
    fn.restype = restype
    return fn


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


# The tables (and the struct check) are needed to define the package's
# names, so the client library is loaded at import.
lib()
