"""A drop-in for ``tflite_runtime.interpreter`` that runs through edgemuxd.

Change one line of a TensorFlow Lite program::

    import tflite_runtime.interpreter as tflite   # before
    import edgemux.interpreter as tflite          # after

and every ``tflite.Interpreter`` becomes a client of the machine's edgemuxd:
the model's bytes are sent to the daemon (one copy there, whichever
processes send them), tensors live in a shared-memory arena the daemon
reads and writes in place, and ``invoke()`` queues on the daemon's devices
together with every other process's requests. All Interpreters of a
process share one connection. The methods mirror TensorFlow Lite 2.9's
Python API; where edgemux cannot do what TFLite does it raises a clear
error (docs/python.md lists each difference).
"""

import ctypes
import os
import sys

import numpy as np

from . import _client, _devices, _lib, _tflite
from ._delegates import Delegate, load_delegate
from .errors import EdgemuxError, EdgemuxValueError

__all__ = ["Interpreter", "load_delegate", "Delegate", "SignatureRunner"]

_REFERENCE_HELD = (
    "There is at least 1 reference to internal data\n"
    "      in the interpreter in the form of a numpy array or slice. Be sure "
    "to\n      only hold the function returned from tensor() if you are "
    "using raw\n      data access.")


class _Session:
    """An Interpreter's model on a connection and, once allocated, its
    input and output tensors in that connection's arena."""

    def __init__(self, conn, model):
        self.conn = conn
        self.model = model
        self.pid = conn.pid
        self.tensors = None
        self.bufs = None
        self.batch = 1
        self.in_arr = None
        self.out_arr = None
        self.items = None
        #: invoke()'s call at batch 1, (function, arguments), made once per
        #: allocation: emx_client_infer without argtypes, on arguments
        #: already ctypes objects, converts nothing per call (half the cost
        #: of the checked prototype); None when not allocated or batched.
        self.call = None
        self.nin = len(model.inputs)
        self.nout = len(model.outputs)

    @property
    def alive(self):
        return self.conn.alive and self.pid == _client.own_pid()

    def allocate(self, batch):
        infos = self.model.inputs + self.model.outputs
        ts = []
        try:
            for info in infos:
                ts.append(self.conn.alloc(info["dtype"], info["bytes"] * batch))
        except BaseException:
            for t in ts:
                self.conn.free(t)
            raise
        self.free()
        bufs = []
        for t in ts:
            buf = (ctypes.c_char * max(t.size, 1)).from_address(t.data)
            # A view keeps the connection (hence the arena mapping) alive.
            buf._edgemux_owner = self.conn
            bufs.append(buf)
        self.batch = batch
        self.tensors = ts
        self.bufs = bufs
        if batch == 1:
            self.in_arr = (_lib.Tensor * max(self.nin, 1))(*ts[: self.nin])
            self.out_arr = (_lib.Tensor * max(self.nout, 1))(*ts[self.nin:])
            # The handles are the connection's and the model's own
            # c_void_p objects (never reassigned while the connection is
            # alive, which invoke() checks first); arrays pass as pointers;
            # the counts must be size_t-wide; no timings (NULL).
            self.call = (_lib.unchecked("emx_client_infer", ctypes.c_int),
                         (self.conn.handle, self.model.handle, self.in_arr,
                          ctypes.c_size_t(self.nin), self.out_arr,
                          ctypes.c_size_t(self.nout), None))
            return
        self.call = None
        # A batch of n is n requests in one message, each on its slice:
        # the daemon's batching merges them where the model allows.
        self.items = (_lib.BatchItem * batch)()
        self._slices = []
        for b in range(batch):
            sl = []
            for t, info in zip(ts, infos):
                n = info["bytes"]
                sl.append(_lib.Tensor(t.dtype, t.data + b * n, n))
            ins = (_lib.Tensor * max(self.nin, 1))(*sl[: self.nin])
            outs = (_lib.Tensor * max(self.nout, 1))(*sl[self.nin:])
            self._slices.append((ins, outs))
            it = self.items[b]
            it.model = self.model.handle
            it.inputs = ins
            it.nin = self.nin
            it.outputs = outs
            it.nout = self.nout

    def free(self):
        if self.tensors is not None and self.conn.handle is not None \
                and self.pid == _client.own_pid():
            for t in self.tensors:
                self.conn.free(t)
        self.tensors = None
        self.call = None

    def run(self):
        """Run once; returns (rc, message)."""
        if self.call is not None:
            fn, args = self.call
            rc = fn(*args)
            return rc, (self.conn.last_error() if rc < 0 else "")
        lib = _lib.lib()
        if self.batch == 1:  # not allocated: the library says what is wrong
            rc = lib.emx_client_infer(self.conn.handle, self.model.handle,
                                      self.in_arr, self.nin, self.out_arr,
                                      self.nout, None)
            return rc, (self.conn.last_error() if rc < 0 else "")
        reqs = (ctypes.c_void_p * self.batch)()
        rc = lib.emx_client_submit_batch(self.conn.handle, self.items,
                                         self.batch, None, reqs)
        if rc < 0:
            return rc, self.conn.last_error()
        first, msg = 0, ""
        for r in reqs:
            rc = lib.emx_client_request_wait(r, -1)
            if rc < 0 and first == 0:
                first = rc
                msg = _lib.decode(lib.emx_client_request_error(r))
            lib.emx_client_request_destroy(r)
        return first, msg


class _Held:
    """The base of every array tensor() hands out: while one lives,
    ``_token`` has an extra reference, which is how TFLite's "reference
    held" check is mirrored."""

    __slots__ = ("__array_interface__", "_buf", "_token", "__weakref__")

    def __init__(self, buf, offset, dtype, shape, token):
        self._buf = buf
        self._token = token
        self.__array_interface__ = {
            "shape": tuple(shape),
            "typestr": np.dtype(dtype).str,
            "data": (ctypes.addressof(buf) + offset, False),
            "version": 3,
        }


class Interpreter:
    """``tflite_runtime.interpreter.Interpreter``, served by edgemuxd.

    Args:
      model_path: a .tflite file. This process reads it (the daemon need
        not be able to) and sends the bytes, named
        ``<file stem>-<12 hex of their SHA-256>``: the same bytes from any
        number of processes are one model in the daemon, and a file edited
        after it was loaded is served as its new bytes.
      model_content: the model's bytes, instead of a path.
      experimental_delegates: ``[load_delegate('libedgetpu.so.1',
        {'device': 'usb:0'})]`` asks for the daemon's Edge TPU (see
        :func:`load_delegate`).
      num_threads: accepted for compatibility; the daemon's device
        configuration decides threads.
      model_name: a model of the daemon's repository (without model_path),
        or the name to register model_path/model_content under.
      socket: edgemuxd's socket (default ``$EDGEMUX_SOCKET``, else the
        per-user socket if a daemon listens there, else the machine-wide
        ``/run/edgemux/edgemux.sock``).
      arena_bytes: give this Interpreter a connection of its own with an
        arena of this size (default: the process's shared connection).

    Tensor indices are the model's, as in TensorFlow Lite.

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
            raise ValueError("`model_path` or `model_content` must be "
                             "specified.")
        if model_path is not None and model_content is not None:
            raise ValueError("Can't both provide `model_path` and "
                             "`model_content`")
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
            device = d.device
        content = None
        if model_path is not None:
            content = _client.read_model(os.fspath(model_path))
        elif model_content is not None:
            content = bytes(model_content)
        #: The model file's description (every tensor, quantization,
        #: signatures); None for a model opened by name only.
        self._file = _tflite.ModelFile(content) if content is not None \
            else None
        stem = (os.path.splitext(os.path.basename(os.fspath(model_path)))[0]
                if model_path is not None else "model")
        self._spec = {
            "content": content,
            "model_name": model_name,
            "socket": os.fspath(socket) if socket else _client.default_socket(),
            "arena_bytes": arena_bytes,
            "stem": stem,
            "placement": None,
        }
        #: The Edge TPU the program asked for ("usb:0", "pci:0", "edgetpu"
        #: for any), from an Edge TPU delegate; None without one.
        self.device = device
        self.delegates = delegates
        self.num_threads = num_threads
        self._allocated = False
        self._session = None
        self._inputs = None
        self._outputs = None
        self._shapes = {}  # input tensor index -> shape asked by resize
        self._token = object()
        self._fast = {}  # tensor index -> (dtype, shape, view, session)
        if content is not None:
            self._spec["placement"] = self._placement()
        #: The daemon's name for the model.
        self.model_name = model_name or (
            _client.content_name(stem, content, self._spec["placement"])
            if content is not None else None)
        self._get_session()  # connect now: errors surface here, as in TFLite

    def _placement(self):
        """Where the daemon runs the model, sent with its bytes: an Edge
        TPU delegate naming a device pins it to that device, one without
        a device to the Edge TPUs; an Edge TPU-compiled model goes to the
        Edge TPUs (no CPU runs its custom op); else None, the daemon's
        choice."""
        edgetpu_model = self._file is not None and self._file.is_edgetpu
        if self.device is None and not edgetpu_model:
            return None
        want = _pycoral_device(self.device)
        found, devs = _devices.find_tpu(self._spec["socket"], want)
        if edgetpu_model:
            found = [d for d in found if d.get("kind") == "edgetpu"]
        if not found:
            if edgetpu_model:
                self._no_edgetpu(devs)
            raise ValueError(
                "Failed to load delegate from libedgetpu.so.1\n(edgemux: "
                "edgemuxd has no healthy Edge TPU%s any more; its devices: "
                "%s)" % (" matching %r" % want if want else "",
                         _devices.describe(devs)))
        if want:
            return found[0]["name"]
        return "|".join(sorted({d["kind"] for d in found}))

    def _no_edgetpu(self, devs):
        raise EdgemuxError(
            _lib.EMX_EDEVICE,
            "the model is compiled for the Edge TPU (its graph is the custom "
            "op %s, which only an Edge TPU runs) and edgemuxd at %s has no "
            "healthy Edge TPU%s (its devices: %s); plug one in, or use the "
            "model as it was before edgetpu_compiler"
            % (_tflite.EDGETPU_CUSTOM_OP, self._spec["socket"],
               " matching %r" % self.device
               if _pycoral_device(self.device) else "",
               _devices.describe(devs)))

    # ---- connection ---------------------------------------------------------

    @property
    def socket(self):
        """The edgemuxd socket this Interpreter talks to."""
        return self._spec["socket"]

    def _get_session(self):
        s = self._session
        if s is not None and s.alive:
            return s
        return self._reconnect(s)

    def _reconnect(self, old):
        sp = self._spec
        conn, model, name = _client.connect_for(
            None, sp["content"], sp["model_name"], sp["socket"],
            sp["arena_bytes"], sp.get("stem"), sp.get("placement"))
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
        if old is not None and old.tensors is not None:
            s.allocate(old.batch)
            # The old arena is still mapped here (an inherited one after
            # fork, or the one of a connection the daemon dropped): carry
            # the values over, as a TFLite interpreter would have them.
            for dst, src, t in zip(s.bufs, old.bufs, s.tensors):
                ctypes.memmove(dst, src, t.size)
        self._session = s
        self._index_views(s)
        return s

    def _index_views(self, s):
        """The fast path of set_tensor/get_tensor: per tensor index, its
        dtype, shape and a view into s's arena (never handed out)."""
        self._fast = {}
        if s.tensors is None:
            return
        ins, outs = self._io()
        for what, idxs in (("input", ins), ("output", outs)):
            for pos, idx in enumerate(idxs):
                info = (self._inputs if what == "input"
                        else self._outputs)[pos]
                dtype = _lib.numpy_dtype(info["dtype"])
                shape = tuple(self._shape(what, pos))
                buf = s.bufs[pos if what == "input" else s.nin + pos]
                view = np.frombuffer(
                    buf, dtype=dtype,
                    count=int(np.prod(shape, dtype=np.int64))).reshape(shape)
                self._fast[idx] = (dtype, shape, view, s)

    def close(self):
        """Release the tensors (reconnects if used again)."""
        s, self._session = self._session, None
        if s is not None:
            s.free()
        self._allocated = False
        self._fast = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        return {
            "spec": self._spec,
            "file": self._file,
            "device": self.device,
            "delegates": self.delegates,
            "num_threads": self.num_threads,
            "allocated": self._allocated,
            "shapes": self._shapes,
            "model_name": self.model_name,
        }

    def __setstate__(self, st):
        self._spec = st["spec"]
        self._file = st["file"]
        self.device = st["device"]
        self.delegates = st["delegates"]
        self.num_threads = st["num_threads"]
        self._shapes = st["shapes"]
        self.model_name = st["model_name"]
        self._allocated = False
        self._session = None
        self._inputs = None
        self._outputs = None
        self._token = object()
        self._fast = {}
        if st["allocated"]:
            self.allocate_tensors()  # connects in this process

    def __repr__(self):
        return "<edgemux.Interpreter model=%r socket=%r device=%r>" % (
            self.model_name, self.socket, self.device)

    # ---- tensor indices -----------------------------------------------------

    def _io(self):
        """(input tensor indices, output tensor indices), the model's."""
        if self._inputs is None:
            self._get_session()
        if self._file is not None:
            return self._file.inputs, self._file.outputs
        n = len(self._inputs)
        return list(range(n)), list(range(n, n + len(self._outputs)))

    def _slot(self, tensor_index):
        """("input"|"output"|None, position) of a tensor index."""
        try:
            tensor_index = int(tensor_index)
        except (TypeError, ValueError):
            raise ValueError("tensor index must be an int, got %r"
                             % (tensor_index,)) from None
        ins, outs = self._io()
        if tensor_index in ins:
            return "input", ins.index(tensor_index)
        if tensor_index in outs:
            return "output", outs.index(tensor_index)
        count = len(self._file.tensors) if self._file is not None \
            else len(ins) + len(outs)
        if not 0 <= tensor_index < count:
            raise ValueError("Tensor with no shape found: %d (edgemux: "
                             "model \"%s\" has tensors 0..%d)"
                             % (tensor_index, self.model_name, count - 1))
        return None, tensor_index

    def _shape(self, what, pos):
        info = (self._inputs if what == "input" else self._outputs)[pos]
        shape = list(info["shape"])
        batch = self._batch()
        if shape and batch != 1:
            shape[0] = batch
        return shape

    def _batch(self):
        """The batch size set by resize_tensor_input (1: the model's)."""
        ins, _ = self._io()
        for pos, idx in enumerate(ins):
            want = self._shapes.get(idx)
            if want is not None:
                base = self._inputs[pos]["shape"]
                if base and base[0] == 1 and list(want[1:]) == list(base[1:]):
                    return int(want[0])
        return 1

    # ---- details ------------------------------------------------------------

    def _details(self, what, pos, index):
        shape = self._shape(what, pos)
        if self._file is not None:
            return self._file.tensors[index].details(shape)
        info = (self._inputs if what == "input" else self._outputs)[pos]
        scale, zp = info["scale"], info["zero_point"]
        q = scale != 0.0
        return {
            "name": info["name"],
            "index": index,
            "shape": np.array(shape, dtype=np.int32),
            "shape_signature": np.array(info["shape"], dtype=np.int32),
            "dtype": _lib.DTYPES[info["dtype"]],
            "quantization": (scale, zp),
            "quantization_parameters": {
                "scales": np.array([scale] if q else [], dtype=np.float32),
                "zero_points": np.array([zp] if q else [], dtype=np.int32),
                "quantized_dimension": 0,
            },
            "sparsity_parameters": {},
        }

    def get_input_details(self):
        ins, _ = self._io()
        return [self._details("input", p, i) for p, i in enumerate(ins)]

    def get_output_details(self):
        _, outs = self._io()
        return [self._details("output", p, i) for p, i in enumerate(outs)]

    def get_tensor_details(self):
        """Every tensor of the model's main graph, as TFLite lists them.
        Only inputs, outputs and constants have values here
        (get_tensor on another raises: the daemon runs the graph)."""
        if self._file is None:
            return self.get_input_details() + self.get_output_details()
        out = []
        for t in self._file.tensors:
            what, pos = self._slot(t.index)
            out.append(self._details(what, pos, t.index) if what
                       else t.details())
        return out

    # ---- allocation -----------------------------------------------------------

    def _safe_to_run(self):
        return sys.getrefcount(self._token) == 2

    def _ensure_safe(self):
        if not self._safe_to_run():
            raise RuntimeError(_REFERENCE_HELD)

    def allocate_tensors(self):
        """Reserve the inputs and outputs in the shared arena (the daemon
        reads and writes them there), at the batch size resize_tensor_input
        set."""
        self._ensure_safe()
        s = self._get_session()
        batch = self._batch()
        if s.tensors is None or s.batch != batch:
            try:
                s.allocate(batch)
            except EdgemuxError as e:
                if e.code != _lib.EMX_ENOMEM or self._spec["arena_bytes"]:
                    raise
                # The shared arena is full: a connection of our own.
                need = (s.model.arena_bytes() * batch) + (1 << 20)
                self._spec["arena_bytes"] = need
                self._session = None
                s = self._get_session()
                s.allocate(batch)
        self._allocated = True
        self._index_views(s)

    def _allocated_session(self, what):
        if not self._allocated:
            raise ValueError(what)
        return self._get_session()

    def _buf_of(self, what, pos):
        s = self._session
        return s.bufs[pos if what == "input" else s.nin + pos]

    def resize_tensor_input(self, input_index, tensor_size, strict=False):
        """Change the batch dimension (dims[0]) of the inputs; the next
        allocate_tensors makes room for that many, and invoke() sends them
        as one batch the daemon's batching serves. Other dimensions are
        fixed by the served model: changing one raises ValueError."""
        self._ensure_safe()
        what, pos = self._slot(input_index)
        if what != "input":
            raise ValueError("Cannot resize tensor %d: it is not an input "
                             "of the model" % int(input_index))
        want = [int(d) for d in np.asarray(tensor_size).reshape(-1)]
        base = list(self._inputs[pos]["shape"])
        sig = base
        if self._file is not None:
            sig = self._file.tensors[int(input_index)].shape_signature
        if strict and any(s_ != -1 and s_ != w for s_, w in zip(sig, want)):
            raise ValueError(
                "ResizeInputTensorStrict only allows mutating unknown "
                "dimensions identified by -1.")
        if want == base:
            self._shapes.pop(int(input_index), None)
        elif (len(want) == len(base) and base and base[0] == 1
              and want[0] >= 1 and want[1:] == base[1:]):
            self._shapes[int(input_index)] = want
        else:
            raise EdgemuxValueError(
                _lib.EMX_ESIZE,
                "edgemux serves the model's shapes: input %d (\"%s\") of "
                "model \"%s\" is %s; only its batch dimension (dims[0] = 1) "
                "can be resized, not to %s. Export the model with the shape "
                "you need" % (int(input_index), self._inputs[pos]["name"],
                              self.model_name, base, want))
        self._allocated = False
        self._fast = {}

    # ---- values ---------------------------------------------------------------

    def set_tensor(self, tensor_index, value):
        """Copy value into an input (or output) tensor. Like tflite_runtime,
        its dtype and shape must be the tensor's exactly (ValueError)."""
        f = self._fast.get(tensor_index)
        if (f is not None and type(value) is np.ndarray
                and value.dtype == f[0] and value.shape == f[1]
                and f[3] is self._session):
            # Same dtype and shape: a plain copy; item assignment parses
            # fewer arguments than np.copyto (0.2 vs 0.5 us).
            f[2][...] = value
            return
        what, pos = self._slot(tensor_index)
        if what is None:
            raise ValueError(
                "Cannot set tensor: tensor %d (\"%s\") is inside the model's "
                "graph; edgemux runs the graph in edgemuxd and takes only its "
                "inputs" % (int(tensor_index),
                            self._file.tensors[pos].name))
        info = dict((self._inputs if what == "input" else self._outputs)[pos])
        info["shape"] = tuple(self._shape(what, pos))
        arr = _client.check_value(value, info, what, pos)
        self._allocated_session(
            "Cannot set tensor: Tensor is unallocated. Try calling "
            "allocate_tensors() first")
        buf = self._buf_of(what, pos)
        if arr.nbytes != len(buf):
            raise EdgemuxValueError(_lib.EMX_ESIZE,
                                    "Cannot set tensor: %d bytes given, the "
                                    "tensor holds %d" % (arr.nbytes, len(buf)))
        ctypes.memmove(buf, arr.ctypes.data, arr.nbytes)

    def _array(self, what, pos, held):
        info = (self._inputs if what == "input" else self._outputs)[pos]
        dtype = _lib.numpy_dtype(info["dtype"])
        shape = self._shape(what, pos)
        buf = self._buf_of(what, pos)
        if held:
            return np.asarray(_Held(buf, 0, dtype, shape, self._token))
        return np.frombuffer(buf, dtype=dtype,
                             count=int(np.prod(shape, dtype=np.int64))
                             ).reshape(shape).copy()

    def _not_available(self, index):
        t = self._file.tensors[index]
        return ValueError(
            "edgemux: tensor %d (\"%s\") is an intermediate tensor of model "
            "\"%s\": edgemuxd runs the whole graph in its own process and "
            "returns only the inputs and outputs, so its value is not "
            "available here" % (index, t.name, self.model_name))

    def get_tensor(self, tensor_index, subgraph_index=0):
        """A copy of the tensor's value (inputs, outputs, constants)."""
        f = self._fast.get(tensor_index)
        if f is not None and subgraph_index == 0 and f[3] is self._session:
            return f[2].copy()
        if subgraph_index != 0:
            raise ValueError("edgemux serves subgraph 0 only, not %r"
                             % (subgraph_index,))
        what, pos = self._slot(tensor_index)
        if what is None:
            v = self._file.tensors[pos].value()
            if v is None:
                raise self._not_available(pos)
            return v.copy()
        self._allocated_session("Tensor data is null. Run allocate_tensors() "
                                "first")
        return self._array(what, pos, held=False)

    def tensor(self, tensor_index):
        """A function returning a numpy view of the tensor in the shared
        arena (no copy), as tflite_runtime's tensor(). While such a view
        lives, allocate_tensors, resize_tensor_input and invoke raise
        RuntimeError, as TFLite's do."""
        what, pos = self._slot(tensor_index)
        if what is None:
            idx = pos

            def const():
                v = self._file.tensors[idx].value()
                if v is None:
                    raise self._not_available(idx)
                return v
            return const

        def view():
            self._allocated_session("Tensor data is null. Run "
                                    "allocate_tensors() first")
            return self._array(what, pos, held=True)

        return view

    # ---- running ----------------------------------------------------------------

    def invoke(self):
        """Run the model on the daemon with the current inputs; outputs are
        written in place. A daemon that restarted since the last call is
        reconnected to and the request sent again, once."""
        self._ensure_safe()
        if not self._allocated:
            raise RuntimeError("Invoke called on model that is not ready. "
                               "(edgemux: call allocate_tensors() first)")
        s = self._get_session()
        rc, msg = s.run()
        if rc == _lib.EMX_EDISCONNECTED:
            s.conn.broken = True
            try:
                s = self._reconnect(s)
            except EdgemuxError:
                raise s.conn._error(rc, msg) from None
            rc, msg = s.run()
        if rc < 0:
            if rc == _lib.EMX_EDISCONNECTED:
                s.conn.broken = True  # the next call reconnects
            raise s.conn._error(rc, msg)

    def reset_all_variables(self):
        """Nothing to reset for a model without variable tensors (what
        edgemux serves); a stateful model raises: its variables would be
        shared by every client of the daemon."""
        if self._file is not None and any(t.is_variable
                                          for t in self._file.tensors):
            raise EdgemuxError(
                _lib.EMX_EMODEL,
                "model \"%s\" has variable tensors: edgemux serves one copy "
                "to every client and cannot reset its variables for this "
                "Interpreter" % self.model_name)

    # ---- signatures ---------------------------------------------------------------

    def _signatures(self):
        return self._file.signatures if self._file is not None else {}

    def _get_full_signature_list(self):
        """{key: {"inputs": {name: tensor index}, "outputs": {...}}}, as
        TFLite 2.9 (pycoral's detect adapter reads it)."""
        return {k: {"inputs": dict(v["inputs"]),
                    "outputs": dict(v["outputs"])}
                for k, v in self._signatures().items()}

    def get_signature_list(self):
        """{key: {"inputs": [names], "outputs": [names]}}, as TFLite 2.9."""
        return {k: {"inputs": list(v["inputs"]),
                    "outputs": list(v["outputs"])}
                for k, v in self._signatures().items()}

    def get_signature_runner(self, signature_key=None):
        sigs = self._signatures()
        if signature_key is None:
            if len(sigs) != 1:
                raise ValueError(
                    "SignatureDef signature_key is None and model has %d "
                    "Signatures. None is only allowed when the model has 1 "
                    "SignatureDef" % len(sigs))
            signature_key = next(iter(sigs))
        if signature_key not in sigs:
            raise ValueError("Invalid signature_key provided.")
        if sigs[signature_key]["subgraph"] != 0:
            raise ValueError(
                "edgemux: signature %r runs subgraph %d; edgemuxd serves a "
                "model's main graph (subgraph 0) only"
                % (signature_key, sigs[signature_key]["subgraph"]))
        return SignatureRunner(self, signature_key)


class SignatureRunner:
    """TFLite 2.9's SignatureRunner over an edgemux Interpreter: call it
    with the signature's inputs by name; returns its outputs by name."""

    def __init__(self, interpreter, signature_key):
        self._interpreter = interpreter
        sig = interpreter._signatures()[signature_key]
        self._inputs = sig["inputs"]
        self._outputs = sig["outputs"]

    def __call__(self, **kwargs):
        it = self._interpreter
        if len(kwargs) != len(self._inputs):
            raise ValueError(
                "Invalid number of inputs provided for running a SignatureDef, "
                "expected %s vs provided %s" % (len(self._inputs), len(kwargs)))
        for name, value in kwargs.items():
            if name not in self._inputs:
                raise ValueError("Invalid Input name (%s) for SignatureDef"
                                 % name)
            it.resize_tensor_input(self._inputs[name], np.shape(value))
        it.allocate_tensors()
        for name, value in kwargs.items():
            it.set_tensor(self._inputs[name], value)
        it.invoke()
        return {k: it.get_tensor(i) for k, i in self._outputs.items()}

    def get_input_details(self):
        return {k: self._interpreter._details(
            *self._interpreter._slot(i), i) for k, i in self._inputs.items()}

    def get_output_details(self):
        return {k: self._interpreter._details(
            *self._interpreter._slot(i), i) for k, i in self._outputs.items()}


def _pycoral_device(device):
    """A delegate's device for _devices.tpus: "edgetpu" (any) -> None."""
    return None if device in (None, "", "edgetpu") else device
