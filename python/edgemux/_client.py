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
import threading

import numpy as np

from . import _lib
from .errors import EdgemuxError, EdgemuxValueError, error

DEFAULT_ARENA_BYTES = 64 << 20
_ALIGN = 64
_NAME_MAX = 63  # edgemuxd's model names are 1..63 bytes

_libc_free = ctypes.CDLL(None).free
_libc_free.argtypes = [ctypes.c_void_p]
_libc_free.restype = None


# This process's pid, kept current by a fork hook: every invoke() checks
# that its connection belongs to this process, and os.getpid() is a system
# call (0.3-3 us here; three per invoke were 1% of a 1 ms model's time).
_pid = os.getpid()


def _after_fork_in_child():
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)


def own_pid():
    """os.getpid(), without its system call."""
    return _pid


SYSTEM_SOCKET = "/run/edgemux/edgemux.sock"


def default_socket():
    """The socket a client uses without configuration: $EDGEMUX_SOCKET;
    else, for users other than root, $XDG_RUNTIME_DIR/edgemux.sock when a
    daemon listens there; else the machine-wide daemon's
    /run/edgemux/edgemux.sock (packaging/systemd). A per-user path that
    does not exist falls back to the system daemon, which is where a user
    of a packaged install finds it."""
    buf = ctypes.create_string_buffer(4096)
    _lib.lib().emx_client_default_socket(buf, len(buf))
    path = _lib.decode(buf.value)
    if (not os.environ.get("EDGEMUX_SOCKET") and path != SYSTEM_SOCKET
            and not os.path.exists(path) and os.path.exists(SYSTEM_SOCKET)):
        return SYSTEM_SOCKET
    return path


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
        self.handle = None
        #: Models opened on this connection, by the daemon's name.
        self.opened = {}
        #: Set when a call found the daemon gone: the next user reconnects.
        self.broken = False
        rc = lib.emx_client_connect(ctypes.byref(handle), ctypes.byref(cfg))
        if rc < 0:
            raise self._error(rc, refusal_hint(
                self.socket, _lib.decode(lib.emx_client_last_error(None))))
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
        return (self.handle is not None and self.pid == _pid
                and not self.broken)

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
        m = self.opened.get(name)
        if m is not None:
            return m
        h = ctypes.c_void_p()
        self.check(_lib.lib().emx_client_model_open(
            self.handle, name.encode(), ctypes.byref(h)))
        m = self.opened[name] = Model(self, h, name)
        return m

    def load(self, name, path):
        """Ask the daemon to load the .tflite file at path under name."""
        h = ctypes.c_void_p()
        self.check(_lib.lib().emx_client_model_load(
            self.handle, name.encode(), os.fsencode(path), ctypes.byref(h)))
        return Model(self, h, name)

    def load_bytes(self, name, content, placement=None):
        """Send a model's bytes (a sealed memfd) to the daemon under name;
        a name this connection already opened is reused (callers make names
        from the bytes' hash, so the same name is the same bytes)."""
        content = bytes(content)
        key = (name, content, placement)  # a name alone could be another's
        m = self.opened.get(key)
        if m is not None:
            return m
        h = ctypes.c_void_p()
        self.check(_lib.lib().emx_client_model_load_placed(
            self.handle, name.encode(), content, len(content),
            placement.encode() if placement else None, ctypes.byref(h)))
        m = self.opened[key] = Model(self, h, name)
        return m

    def unload(self, name):
        """Unload a model this user loaded."""
        for k in [k for k in self.opened
                  if k == name or (isinstance(k, tuple) and k[0] == name)]:
            del self.opened[k]
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


# ---- refusals -----------------------------------------------------------------


def refusal_hint(socket, msg):
    """msg, plus what to do when the daemon or the socket refused us: which
    limit or permission, and how to get past it."""
    if "--max-conns-per-uid" in msg:
        return (msg + "; edgemux's Python package already shares one "
                "connection among all Interpreters of a process, so this "
                "user runs many processes (or other clients) at once: ask the "
                "administrator to raise edgemuxd's --max-conns-per-uid")
    if "Permission denied" in msg or "Operation not permitted" in msg:
        return (msg + "; the machine-wide daemon's socket %s is for the "
                "edgemux group: join it (sudo usermod -aG edgemux $USER, "
                "then log in again), or set EDGEMUX_SOCKET to a daemon you "
                "may use" % socket)
    return msg


# ---- one connection per process ---------------------------------------------

_shared_lock = threading.Lock()
_shared = {}  # socket path -> Connection of this process


def shared(socket=None):
    """This process's connection to the daemon at socket (default: the
    default socket), made on first use and again after fork() or once a
    call found the daemon gone. Every Interpreter of the process uses it:
    a daemon limits connections per user (--max-conns-per-uid)."""
    socket = os.fspath(socket) if socket else default_socket()
    with _shared_lock:
        c = _shared.get(socket)
        if c is None or not c.alive:
            c = _shared[socket] = Connection(socket)
        return c


# ---- resolving a model: by name, by path, or from bytes ---------------------


def _stem(path):
    stem = os.path.splitext(os.path.basename(path))[0] or "model"
    return stem


def content_name(stem, content, placement=None):
    """The daemon's name for these bytes: stem-<12 hex of their SHA-256>
    (content identity: a file edited after it was loaded is new bytes, so
    a new name; the same bytes from any process are one model), then
    "@<placement>" for bytes pinned to devices (another model there)."""
    digest = hashlib.sha256(content).hexdigest()[:12]
    tail = "-" + digest
    if placement:
        tail += "@" + re.sub(r"[^A-Za-z0-9_.-]", "+", placement)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem or "model")
    stem = stem.encode()[: max(_NAME_MAX - len(tail), 1)].decode(
        "utf-8", "ignore")
    return ((stem or "model") + tail)[:_NAME_MAX]


def read_model(path):
    """The bytes of a model file, read with this process's rights (the
    daemon never opens a client's path), or tflite_runtime's ValueError."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise EdgemuxValueError(
            _lib.EMX_ENOENT, "Could not open '%s': %s" % (path, e.strerror)
        ) from None


def resolve_model(conn, model_path=None, model_content=None, model_name=None,
                  stem=None, placement=None):
    """Open the model on conn; return (Model, the daemon's name for it).

    - model_name only: the daemon's model of that name (its repository, or
      one another client loaded).
    - model_path: the file's bytes, read here and sent, under model_name,
      else "<file stem>-<sha256 prefix>".
    - model_content: the bytes, under model_name, else
      "model-<sha256 prefix>".
    """
    if model_path is None and model_content is None:
        if not model_name:
            raise EdgemuxValueError(_lib.EMX_EINVAL,
                                    "give model_path, model_content or "
                                    "model_name")
        return conn.open(model_name), model_name
    if model_content is None:
        model_content = read_model(os.fspath(model_path))
        stem = _stem(os.fspath(model_path))
    else:
        stem = stem or "model"
    content = bytes(model_content)
    name = model_name or content_name(stem, content, placement)
    try:
        return conn.load_bytes(name, content, placement), name
    except EdgemuxError as e:
        if e.code == _lib.EMX_EMODEL:
            # tflite_runtime raises ValueError for a model it cannot build.
            raise EdgemuxValueError(e.code, e.message) from None
        if e.code == _lib.EMX_EINVAL and "--no-client-models" in e.message:
            raise _repo_hint(conn, stem, e) from None
        raise


def _repo_hint(conn, stem, e):
    """A daemon that serves only its repository: name the model there."""
    try:
        if stem in conn.models():
            return EdgemuxError(
                e.code, e.message + "; a model named \"%s\" is in its "
                "repository: pass model_name=\"%s\" (without model_path) "
                "to use it" % (stem, stem))
    except EdgemuxError:
        pass
    return e


def connect_for(model_path, model_content, model_name, socket,
                arena_bytes=None, stem=None, placement=None):
    """A Connection with an arena big enough for the model, and the model:
    the process's shared one, else (a model too big for it, or an explicit
    arena size) one of its own."""
    if not arena_bytes:
        conn = shared(socket)
        model, name = resolve_model(conn, model_path, model_content,
                                    model_name, stem, placement)
        if model.arena_bytes() <= conn.arena_bytes // 2:
            return conn, model, name
        arena_bytes = model.arena_bytes()
    conn = Connection(socket, max(arena_bytes, 1 << 20))
    model, name = resolve_model(conn, model_path, model_content, model_name,
                                stem, placement)
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
