"""One connection to edgemuxd (an emx_client) and the models opened on it.

Used by edgemux.interpreter (one connection per Interpreter) and edgemux.aio
(one connection shared by many concurrent requests). A Connection belongs to
the process that made it: after fork() the owner notices (``pid``) and makes
a new one; :meth:`Connection.abandon` drops an inherited one without
touching the parent's connection.
"""

import ctypes
import hashlib
import os
import re

import numpy as np

from . import _lib
from .errors import EdgemuxError, EdgemuxValueError, error

DEFAULT_ARENA_BYTES = 64 << 20
_ALIGN = 64
_NAME_MAX = 63  # edgemuxd's model names are 1..63 bytes

_libc_free = ctypes.CDLL(None).free
_libc_free.argtypes = [ctypes.c_void_p]
_libc_free.restype = None


def default_socket():
    """The socket a client uses without configuration ($EDGEMUX_SOCKET,
    else $XDG_RUNTIME_DIR/edgemux.sock for non-root users, else
    /run/edgemux/edgemux.sock)."""
    buf = ctypes.create_string_buffer(4096)
    _lib.lib().emx_client_default_socket(buf, len(buf))
    return _lib.decode(buf.value)


def _aligned(n):
    return max(_ALIGN, (n + _ALIGN - 1) // _ALIGN * _ALIGN)


class Model:
    """A model opened on a Connection: its handle and tensor descriptions."""

    __slots__ = ("conn", "handle", "name", "inputs", "outputs")

    def __init__(self, conn, handle, name):
        lib = _lib.lib()
        self.conn = conn
        self.handle = handle
        self.name = name
        ti = _lib.TensorInfo()
        self.inputs = []
        for i in range(lib.emx_client_model_input_count(handle)):
            conn.check(lib.emx_client_model_input_info(handle, i,
                                                       ctypes.byref(ti)))
            self.inputs.append(_lib.info_to_dict(ti))
        self.outputs = []
        for i in range(lib.emx_client_model_output_count(handle)):
            conn.check(lib.emx_client_model_output_info(handle, i,
                                                        ctypes.byref(ti)))
            self.outputs.append(_lib.info_to_dict(ti))

    def arena_bytes(self):
        return sum(_aligned(t["bytes"]) for t in self.inputs + self.outputs)


class Connection:
    """An emx_client: a connection to edgemuxd with its shared arena."""

    def __init__(self, socket=None, arena_bytes=DEFAULT_ARENA_BYTES,
                 timeout=5.0):
        lib = _lib.lib()
        self.socket = os.fspath(socket) if socket else default_socket()
        self.arena_bytes = int(arena_bytes)
        self.pid = os.getpid()
        cfg = _lib.ClientConfig()
        lib.emx_client_config_init(ctypes.byref(cfg))
        cfg.socket_path = self.socket.encode()
        cfg.arena_bytes = self.arena_bytes
        cfg.timeout_ns = int(timeout * 1e9)
        handle = ctypes.c_void_p()
        rc = lib.emx_client_connect(ctypes.byref(handle), ctypes.byref(cfg))
        if rc < 0:
            raise self._error(rc, _lib.decode(lib.emx_client_last_error(None)))
        self.handle = handle

    # ---- errors -------------------------------------------------------------

    def _error(self, rc, msg=None):
        if not msg:
            msg = _lib.strerror(rc)
        if rc == _lib.EMX_EDISCONNECTED and self.socket not in msg:
            msg = "%s [edgemuxd socket %s]" % (msg, self.socket)
        return error(rc, msg)

    def last_error(self):
        return _lib.decode(_lib.lib().emx_client_last_error(self.handle))

    def check(self, rc):
        """Raise the error for a negative status of a call on this client."""
        if rc < 0:
            raise self._error(rc, self.last_error())
        return rc

    # ---- lifetime -----------------------------------------------------------

    @property
    def alive(self):
        return self.handle is not None and self.pid == os.getpid()

    def close(self):
        """Close the connection (every tensor and model handle dies)."""
        h, self.handle = self.handle, None
        if h is not None and _lib is not None:
            # In a forked child this resets the inherited copy without a
            # byte to the parent's connection: closes our copy of the socket
            # and unmaps our view of the arena.
            _lib.lib().emx_client_destroy(h)

    abandon = close

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ---- models -------------------------------------------------------------

    def open(self, name):
        """Open a model the daemon has (from its repository, or loaded)."""
        h = ctypes.c_void_p()
        self.check(_lib.lib().emx_client_model_open(
            self.handle, name.encode(), ctypes.byref(h)))
        return Model(self, h, name)

    def load(self, name, path):
        """Ask the daemon to load the .tflite file at path under name."""
        h = ctypes.c_void_p()
        self.check(_lib.lib().emx_client_model_load(
            self.handle, name.encode(), os.fsencode(path), ctypes.byref(h)))
        return Model(self, h, name)

    def load_bytes(self, name, content):
        """Send a model's bytes (a sealed memfd) to the daemon under name."""
        h = ctypes.c_void_p()
        content = bytes(content)
        self.check(_lib.lib().emx_client_model_load_bytes(
            self.handle, name.encode(), content, len(content),
            ctypes.byref(h)))
        return Model(self, h, name)

    def unload(self, name):
        """Unload a model this user loaded."""
        self.check(_lib.lib().emx_client_model_unload(self.handle,
                                                      name.encode()))

    def models(self):
        names = []
        cb = _lib._MODELS_FN(lambda n, u: names.append(_lib.decode(n)))
        self.check(_lib.lib().emx_client_models(self.handle, cb, None))
        return names

    def ping(self):
        self.check(_lib.lib().emx_client_ping(self.handle))

    def status(self):
        lib = _lib.lib()
        p = ctypes.c_void_p()
        self.check(lib.emx_client_status(self.handle, ctypes.byref(p)))
        try:
            return _lib.decode(ctypes.string_at(p.value))
        finally:
            _libc_free(p)

    # ---- tensors ------------------------------------------------------------

    def alloc(self, dtype, nbytes):
        """An emx_tensor of nbytes in the arena (raises on EMX_ENOMEM)."""
        t = _lib.Tensor()
        self.check(_lib.lib().emx_client_tensor_alloc(
            self.handle, dtype, nbytes, ctypes.byref(t)))
        return t

    def free(self, t):
        if self.handle is not None and t.data:
            _lib.lib().emx_client_tensor_free(self.handle, ctypes.byref(t))


# ---- resolving a model: by name, by path, or from bytes ---------------------


def _stem_name(path):
    stem = os.path.splitext(os.path.basename(path))[0] or "model"
    # The daemon takes printable ASCII names without spaces, quotes,
    # backslashes or slashes (a newline would forge its log lines).
    stem = re.sub(r'[^\x21-\x7e]|["\\/]', "_", stem)
    if len(stem.encode()) > _NAME_MAX:
        stem = _hashed("", path)
    return stem


def _hashed(stem, key):
    h = hashlib.sha256(key.encode() if isinstance(key, str) else key)
    digest = h.hexdigest()[:12]
    stem = stem.encode()[: _NAME_MAX - 13].decode("utf-8", "ignore")
    return ("%s-%s" % (stem, digest)) if stem else "model-" + digest


_LOADED_FROM = re.compile(r'already loaded from "(.*)"')


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _load_hint(conn, name, e):
    """A clearer error for a daemon that does not load by path."""
    if e.code != _lib.EMX_EINVAL or "--no-client-models" not in e.message:
        return e
    msg = e.message
    try:
        if name in conn.models():
            msg += ("; a model named \"%s\" is in its repository: pass "
                    "model_name=\"%s\" to use it" % (name, name))
    except EdgemuxError:
        pass
    return EdgemuxError(e.code, msg)


def resolve_model(conn, model_path=None, model_content=None, model_name=None):
    """Open the model on conn; return (Model, the daemon's name for it).

    - model_name only: the daemon's model of that name (its repository, or
      one another client loaded).
    - model_path: LOAD the file (under model_name, else the file's stem). A
      name taken by the same file (e.g. the repository's copy behind a
      symlink) is reused; a name taken by another file makes the name
      unique with a hash of the path, unless model_name was given.
    - model_content: the bytes are written to a temporary file the daemon
      loads, named model_name or "model-<sha256 prefix>".
    """
    if model_path is None and model_content is None:
        if not model_name:
            raise EdgemuxValueError(_lib.EMX_EINVAL,
                                    "give model_path, model_content or "
                                    "model_name")
        return conn.open(model_name), model_name
    if model_content is not None:
        return _resolve_content(conn, bytes(model_content), model_name)
    path = os.fspath(model_path)
    real = os.path.realpath(path)
    if not os.path.isfile(real):
        raise EdgemuxValueError(_lib.EMX_ENOENT,
                                "Could not open '%s'." % path)
    name = model_name or _stem_name(real)
    try:
        return conn.load(name, real), name
    except EdgemuxError as e:
        if e.code != _lib.EMX_EEXIST:
            raise _load_hint(conn, name, e) from None
        m = _LOADED_FROM.search(e.message)
        if m and _same_file(m.group(1), real):
            return conn.open(name), name
        if model_name:
            raise
    unique = _hashed(name, real)
    return conn.load(unique, real), unique


def _resolve_content(conn, content, model_name):
    name = model_name or _hashed("", content)
    try:
        return conn.load_bytes(name, content), name
    except EdgemuxError as e:
        # A hash-derived name taken means the same bytes: reuse it.
        if e.code == _lib.EMX_EEXIST and not model_name:
            return conn.open(name), name
        raise


def connect_for(model_path, model_content, model_name, socket,
                arena_bytes=None):
    """A Connection with an arena big enough for the model, and the model."""
    conn = Connection(socket, arena_bytes or DEFAULT_ARENA_BYTES)
    model, name = resolve_model(conn, model_path, model_content, model_name)
    need = model.arena_bytes()
    if need > conn.arena_bytes:
        conn.close()
        conn = Connection(socket, need + (1 << 20))
        model, name = resolve_model(conn, model_path, model_content,
                                    model_name)
    return conn, model, name


# ---- numpy checks shared by set_tensor and aio ------------------------------

_TYPE_NAMES = {1: "FLOAT32", 2: "INT32", 3: "UINT8", 4: "INT64", 5: "STRING",
               6: "BOOL", 7: "INT16", 8: "COMPLEX64", 9: "INT8",
               10: "FLOAT16", 11: "FLOAT64"}


def type_name(code):
    return _TYPE_NAMES.get(code, "UNKNOWN")


def check_value(value, info, what, index):
    """value as a C-contiguous array of info's dtype and shape, or the
    ValueError tflite_runtime raises (an EdgemuxValueError)."""
    arr = np.asarray(value)
    code = _lib.DTYPE_CODES.get(arr.dtype)
    if code != info["dtype"]:
        got = type_name(code) if code else str(arr.dtype).upper()
        raise EdgemuxValueError(
            _lib.EMX_EDTYPE,
            "Cannot set tensor: Got value of type %s but expected type %s "
            "for %s %d, name: %s" % (got, type_name(info["dtype"]), what,
                                     index, info["name"]))
    shape = info["shape"]
    if arr.ndim != len(shape):
        raise EdgemuxValueError(
            _lib.EMX_ESIZE,
            "Cannot set tensor: Dimension mismatch. Got %d but expected %d "
            "for %s %d (shape %s, expected %s)."
            % (arr.ndim, len(shape), what, index, list(arr.shape),
               list(shape)))
    for d, (got, want) in enumerate(zip(arr.shape, shape)):
        if got != want:
            raise EdgemuxValueError(
                _lib.EMX_ESIZE,
                "Cannot set tensor: Dimension mismatch. Got %d but expected "
                "%d for dimension %d of %s %d (shape %s, expected %s; "
                "edgemux serves fixed shapes)."
                % (got, want, d, what, index, list(arr.shape), list(shape)))
    return np.ascontiguousarray(arr)


def write(t, arr):
    """Copy a C-contiguous array into emx_tensor t (sizes checked)."""
    if arr.nbytes != t.size:
        raise EdgemuxValueError(
            _lib.EMX_ESIZE, "Cannot set tensor: %d bytes given, the tensor "
            "holds %d" % (arr.nbytes, t.size))
    ctypes.memmove(t.data, arr.ctypes.data, arr.nbytes)
