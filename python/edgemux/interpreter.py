"""A drop-in for ``tflite_runtime.interpreter`` that runs through edgemuxd.

Change one line of a TensorFlow Lite program::

    import tflite_runtime.interpreter as tflite   # before
    import edgemux.interpreter as tflite          # after

and every ``tflite.Interpreter`` becomes a client of the machine's edgemuxd:
the model is registered with the daemon (by path, or by name from its
repository), tensors live in a shared-memory arena the daemon reads and
writes in place, and ``invoke()`` queues on the daemon's devices together
with every other process's requests. See docs/python.md.
"""

import ctypes
import os
import warnings

import numpy as np

from . import _client, _lib
from .errors import EdgemuxError, EdgemuxValueError

__all__ = ["Interpreter", "load_delegate", "Delegate"]


class Delegate:
    """What :func:`load_delegate` returns: the library name and options,
    remembered, never loaded. edgemuxd owns the devices; an Edge TPU
    delegate only says which device the program asked for."""

    def __init__(self, library, options=None):
        self._library = os.fspath(library)
        self._options = {str(k): str(v) for k, v in (options or {}).items()}

    @property
    def library(self):
        return self._library

    @property
    def options(self):
        return dict(self._options)

    @property
    def is_edgetpu(self):
        return "edgetpu" in os.path.basename(self._library).lower()

    @property
    def device(self):
        """The Edge TPU this delegate asks for ("usb:0", "pci", ":0", ...);
        "edgetpu" for any; None for a delegate that is not an Edge TPU's."""
        if not self.is_edgetpu:
            return None
        return self._options.get("device") or "edgetpu"

    def __repr__(self):
        return "Delegate(%r, %r)" % (self._library, self._options)

    def __reduce__(self):
        return (Delegate, (self._library, self._options))


def load_delegate(library, options=None):
    """Like ``tflite_runtime.interpreter.load_delegate``, without loading
    anything: ``load_delegate('libedgetpu.so.1', {'device': 'usb:0'})``
    (what pycoral passes) makes the Interpreter ask edgemuxd for that Edge
    TPU."""
    return Delegate(library, options)


class _Session:
    """An Interpreter's connection, its model and (once allocated) the
    tensors in the connection's arena. Owned by one process (pid)."""

    def __init__(self, conn, model):
        self.conn = conn
        self.model = model
        self.pid = conn.pid
        self.broken = False
        self.tensors = None
        self.views = None
        self.in_arr = None
        self.out_arr = None
        self.nin = len(model.inputs)
        self.nout = len(model.outputs)

    def allocate(self):
        if self.tensors is not None:
            return
        infos = self.model.inputs + self.model.outputs
        ts = []
        try:
            for info in infos:
                ts.append(self.conn.alloc(info["dtype"], info["bytes"]))
        except BaseException:
            for t in ts:
                self.conn.free(t)
            raise
        views = []
        for t, info in zip(ts, infos):
            buf = (ctypes.c_char * max(t.size, 1)).from_address(t.data)
            # A view keeps the connection (hence the arena mapping) alive;
            # the connection refers to no view, so there is no cycle and
            # dropping the session closes the connection at once.
            buf._edgemux_owner = self.conn
            arr = np.frombuffer(buf, dtype=_lib.numpy_dtype(info["dtype"]),
                                count=int(np.prod(info["shape"], dtype=np.int64)))
            views.append(arr.reshape(info["shape"]))
        self.in_arr = (_lib.Tensor * max(self.nin, 1))(*ts[: self.nin])
        self.out_arr = (_lib.Tensor * max(self.nout, 1))(*ts[self.nin:])
        self.views = views
        self.tensors = ts


class Interpreter:
    """``tflite_runtime.interpreter.Interpreter``, served by edgemuxd.

    Args:
      model_path: a .tflite file. This process reads it and sends its
        bytes (refused by a daemon run with ``--no-client-models``) under
        ``model_name``, else the file's stem
        (``face_detection_short_range.tflite`` → ``face_detection_short_range``);
        a model of that name already loaded from the same file (e.g. the
        daemon's repository) is shared.
      model_content: the model's bytes, instead of a path.
      experimental_delegates: ``[load_delegate('libedgetpu.so.1',
        {'device': 'usb:0'})]`` selects the daemon's Edge TPU; no library is
        loaded (see :class:`Delegate`).
      num_threads: accepted for compatibility; the daemon's device
        configuration decides threads.
      model_name: a model of the daemon's repository (without model_path),
        or the name to register model_path under.
      socket: edgemuxd's socket (default ``$EDGEMUX_SOCKET``, else the
        per-user or machine-wide default).
      arena_bytes: size of the shared tensor arena (default 64 MiB, grown
        to fit the model).

    Tensor indices: inputs are 0..n-1 and outputs n..n+m-1, in the order
    of ``get_input_details()`` and ``get_output_details()``.

    Errors are :class:`edgemux.EdgemuxError` (a RuntimeError carrying the
    EMX_E* ``code``, its ``name`` and the daemon's message), or
    :class:`edgemux.EdgemuxValueError` (also a ValueError) where
    tflite_runtime raises ValueError.

    An Interpreter is safe to use after fork() (the child makes its own
    connection on first use, with the tensors' values copied) and can be
    pickled to spawn/forkserver workers (it reconnects there).
    """

    def __init__(self, model_path=None, model_content=None,
                 experimental_delegates=None, num_threads=None,
                 experimental_op_resolver_type=None,
                 experimental_preserve_all_tensors=False, *,
                 model_name=None, socket=None, arena_bytes=None):
        if model_path is None and model_content is None and not model_name:
            raise ValueError("`model_path`, `model_content` or `model_name` "
                             "must be specified.")
        if model_path is not None and model_content is not None:
            raise ValueError("Can't both provide `model_path` and "
                             "`model_content`")
        if model_path is not None and not os.path.isfile(model_path):
            raise EdgemuxValueError(_lib.EMX_ENOENT,
                                    "Could not open '%s'." % model_path)
        if num_threads is not None:
            if not isinstance(num_threads, int):
                raise ValueError("type of num_threads should be int")
            if num_threads < -1:
                raise ValueError("num_threads should >= 1 or just -1 to let "
                                 "TfLite runtime set the value.")
        delegates = list(experimental_delegates or [])
        device = None
        for d in delegates:
            if not isinstance(d, Delegate):
                raise ValueError("experimental_delegates must hold objects "
                                 "from edgemux.interpreter.load_delegate, "
                                 "got %r" % (d,))
            if d.is_edgetpu:
                device = d.device
            else:
                warnings.warn(
                    "edgemux: delegate %r is not loaded: edgemuxd decides "
                    "which devices run the model" % d.library,
                    RuntimeWarning, stacklevel=2)
        self._spec = {
            "model_path": (os.path.realpath(os.fspath(model_path))
                           if model_path is not None else None),
            "model_content": (bytes(model_content)
                              if model_content is not None else None),
            "model_name": model_name,
            "socket": os.fspath(socket) if socket else None,
            "arena_bytes": arena_bytes,
        }
        #: The Edge TPU the program asked for ("usb:0", "pci:0", "edgetpu"
        #: for any), from an Edge TPU delegate; None without one. Recorded
        #: for the daemon: requests run on the daemon's devices.
        self.device = device
        #: The delegates passed (remembered, never loaded).
        self.delegates = delegates
        #: num_threads as given (the daemon's devices decide).
        self.num_threads = num_threads
        self._allocated = False
        self._session = None
        self._inputs = None
        self._outputs = None
        #: The daemon's name for the model (set once connected).
        self.model_name = None
        if self._spec["socket"] is None:
            self._spec["socket"] = _client.default_socket()
        self._get_session()  # connect now: errors surface here, as in TFLite

    # ---- connection ---------------------------------------------------------

    @property
    def socket(self):
        """The edgemuxd socket this Interpreter talks to."""
        return self._spec["socket"]

    def _get_session(self):
        s = self._session
        if s is not None and not s.broken and s.pid == os.getpid():
            return s
        return self._reconnect(s)

    def _reconnect(self, old):
        sp = self._spec
        conn, model, name = _client.connect_for(
            sp["model_path"], sp["model_content"], sp["model_name"],
            sp["socket"], sp["arena_bytes"])
        s = _Session(conn, model)
        if self._inputs is not None and (
                [(t["dtype"], t["shape"]) for t in self._inputs + self._outputs]
                != [(t["dtype"], t["shape"])
                    for t in model.inputs + model.outputs]):
            raise EdgemuxError(
                _lib.EMX_EMODEL,
                "model \"%s\" on edgemuxd at %s no longer has the tensors "
                "this Interpreter was made for" % (name, conn.socket))
        self.model_name = name
        self._inputs = model.inputs
        self._outputs = model.outputs
        if self._allocated or (old is not None and old.tensors is not None):
            s.allocate()
            if old is not None and old.views is not None:
                # The old arena is still mapped here (an inherited one until
                # its Connection is collected): carry the values over, as a
                # forked TFLite interpreter would have them.
                for dst, src in zip(s.views, old.views):
                    np.copyto(dst, src)
        # Dropping `old` closes its connection once no view refers to it;
        # in a forked child that only closes the child's copies.
        self._session = s
        return s

    def close(self):
        """Disconnect now (reconnects if used again). Views from tensor()
        keep the arena mapped while they live."""
        self._session = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        return {
            "spec": self._spec,
            "device": self.device,
            "delegates": self.delegates,
            "num_threads": self.num_threads,
            "allocated": self._allocated,
            "model_name": self.model_name,
            "inputs": self._inputs,
            "outputs": self._outputs,
        }

    def __setstate__(self, st):
        self._spec = st["spec"]
        self.device = st["device"]
        self.delegates = st["delegates"]
        self.num_threads = st["num_threads"]
        self._allocated = st["allocated"]
        self.model_name = st["model_name"]
        self._inputs = st["inputs"]
        self._outputs = st["outputs"]
        self._session = None  # connect lazily, in this process

    def __repr__(self):
        return "<edgemux.Interpreter model=%r socket=%r device=%r>" % (
            self.model_name, self.socket, self.device)

    # ---- tensors ------------------------------------------------------------

    def _infos(self):
        if self._inputs is None:
            self._get_session()
        return self._inputs, self._outputs

    def _info(self, index):
        ins, outs = self._infos()
        try:
            index = int(index)
        except (TypeError, ValueError):
            raise ValueError("tensor index must be an int, got %r"
                             % (index,)) from None
        if 0 <= index < len(ins):
            return ins[index], "input", index
        if len(ins) <= index < len(ins) + len(outs):
            return outs[index - len(ins)], "output", index - len(ins)
        raise EdgemuxValueError(
            _lib.EMX_EINVAL,
            "Invalid tensor index %d: model \"%s\" has inputs 0..%d and "
            "outputs %d..%d (edgemux exposes only input and output tensors)"
            % (index, self.model_name, len(ins) - 1, len(ins),
               len(ins) + len(outs) - 1))

    def _details(self, info, index):
        shape = np.array(info["shape"], dtype=np.int32)
        scale, zp = info["scale"], info["zero_point"]
        quantized = scale != 0.0
        return {
            "name": info["name"],
            "index": index,
            "shape": shape,
            "shape_signature": shape.copy(),
            "dtype": _lib.DTYPES[info["dtype"]],
            "quantization": (scale, zp),
            "quantization_parameters": {
                "scales": np.array([scale] if quantized else [],
                                   dtype=np.float32),
                "zero_points": np.array([zp] if quantized else [],
                                        dtype=np.int32),
                "quantized_dimension": 0,
            },
            "sparsity_parameters": {},
        }

    def allocate_tensors(self):
        """Reserve the model's input and output tensors in the shared arena
        (the daemon reads and writes them there). Idempotent."""
        self._get_session().allocate()
        self._allocated = True

    def _allocated_session(self):
        s = self._get_session()
        if s.tensors is None:
            s.allocate()
            self._allocated = True
        return s

    def get_input_details(self):
        ins, _ = self._infos()
        return [self._details(t, i) for i, t in enumerate(ins)]

    def get_output_details(self):
        ins, outs = self._infos()
        return [self._details(t, len(ins) + i) for i, t in enumerate(outs)]

    def get_tensor_details(self):
        """The inputs' and outputs' details (the only tensors edgemux
        exposes)."""
        return self.get_input_details() + self.get_output_details()

    def set_tensor(self, tensor_index, value):
        """Copy value into the tensor. Like tflite_runtime, the value's
        dtype and shape must be the tensor's exactly (ValueError)."""
        info, what, i = self._info(tensor_index)
        arr = _client.check_value(value, info, what, i)
        s = self._allocated_session()
        _client.write(s.tensors[tensor_index], arr)

    def get_tensor(self, tensor_index, subgraph_index=0):
        """A copy of the tensor's value."""
        self._info(tensor_index)
        return self._allocated_session().views[tensor_index].copy()

    def tensor(self, tensor_index):
        """A function returning a numpy view of the tensor in the shared
        arena (no copy), as tflite_runtime's tensor(). Do not keep the view
        across fork()."""
        self._info(tensor_index)

        def view():
            return self._allocated_session().views[tensor_index]

        return view

    def resize_tensor_input(self, input_index, tensor_size, strict=False):
        """Accepts only the input's current shape: edgemux serves fixed
        shapes."""
        info, what, i = self._info(input_index)
        if what != "input":
            raise ValueError("resize_tensor_input: tensor %d is an output"
                             % input_index)
        want = tuple(int(d) for d in np.asarray(tensor_size).reshape(-1))
        if want != tuple(info["shape"]):
            raise EdgemuxValueError(
                _lib.EMX_ESIZE,
                "edgemux serves fixed shapes: input %d (\"%s\") of model "
                "\"%s\" is %s and cannot be resized to %s; export the model "
                "with the shape you need"
                % (i, info["name"], self.model_name, list(info["shape"]),
                   list(want)))

    def invoke(self):
        """Run the model on the daemon with the current inputs; outputs are
        written in place."""
        s = self._allocated_session()
        rc = _lib.lib().emx_client_infer(
            s.conn.handle, s.model.handle, s.in_arr, s.nin, s.out_arr, s.nout,
            None)
        if rc < 0:
            if rc == _lib.EMX_EDISCONNECTED:
                s.broken = True  # the next call reconnects
            raise s.conn._error(rc, s.conn.last_error())

    def reset_all_variables(self):
        pass  # models served by edgemux keep no state between invokes

    def get_signature_list(self):
        """{}: edgemux serves the model's plain inputs and outputs, no
        SignatureDefs."""
        return {}

    def get_signature_runner(self, signature_key=None):
        raise ValueError("edgemux: model \"%s\" is served without "
                         "signatures; use set_tensor/invoke/get_tensor"
                         % self.model_name)
