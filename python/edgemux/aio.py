"""asyncio client: many concurrent requests over one edgemuxd connection.

::

    client = await edgemux.aio.connect()
    outs = await client.infer("face_detection_short_range", [image])
    many = await asyncio.gather(*(client.infer(model, [x]) for x in images))
    await client.close()

``infer`` copies the inputs into the connection's shared arena, submits the
request (emx_client_submit, which only sends a packet) and awaits a future.
A waiter thread per client calls emx_client_request_wait on the requests in
submission order — the daemon completes a connection's requests in that
order — copies the outputs out and resolves the futures on the event loop
(loop.call_soon_threadsafe); the loop itself never blocks on the daemon.
"""

import asyncio
import ctypes
import os
import queue
import threading
import weakref

import numpy as np

from . import _client, _lib
from .errors import EdgemuxError, EdgemuxValueError

__all__ = ["connect", "AsyncClient", "AsyncModel"]

DEFAULT_MAX_INFLIGHT = 128


def _describe(t):
    return {"name": t["name"], "shape": t["shape"],
            "dtype": _lib.DTYPES[t["dtype"]], "bytes": t["bytes"],
            "quantization": (t["scale"], t["zero_point"])}


class AsyncModel:
    """A model opened on an AsyncClient (what ``await client.model()``
    returns); ``inputs``/``outputs`` describe its tensors: dicts with name,
    shape (a tuple), dtype (a numpy type), bytes and quantization
    (scale, zero_point)."""

    __slots__ = ("name", "_model", "_gen")

    def __init__(self, model, gen):
        self._model = model
        self._gen = gen
        self.name = model.name

    @property
    def inputs(self):
        return [_describe(t) for t in self._model.inputs]

    @property
    def outputs(self):
        return [_describe(t) for t in self._model.outputs]

    def __repr__(self):
        return "<edgemux.aio.AsyncModel %r>" % self.name


def _deliver(client_ref, fut, outs, exc):
    """On the loop: hand a completion to its client (if still alive)."""
    client = client_ref()
    if client is not None:
        client._resolve(fut, outs, exc)
    elif not fut.done():
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(outs)


class _Entry:
    """A submitted request as the loop sees it: cancel() may race the
    waiter thread's destroy, so both take the lock."""

    __slots__ = ("lock", "req")

    def __init__(self, req):
        self.lock = threading.Lock()
        self.req = req

    def cancel(self):
        """Ask the daemon to drop the request if it is still queued (as
        grpc.aio sends RST_STREAM for a cancelled call)."""
        with self.lock:
            if self.req is not None:
                _lib.lib().emx_client_request_cancel(self.req)


def _waiter(conn, q, client_ref):
    """The waiter thread: completes requests in submission order, then
    destroys the connection when told to stop. It holds no strong reference
    to the client, so an unclosed client can still be collected."""
    lib = _lib.lib()
    while True:
        item = q.get()
        if item is None:
            break
        req, tensors, nin, infos, loop, fut, entry = item
        rc = lib.emx_client_request_wait(req, -1)
        outs = exc = None
        if rc == 0:
            try:
                outs = [_lib.view(t.data, t.size,
                                  _lib.numpy_dtype(i["dtype"]),
                                  i["shape"]).copy()
                        for t, i in zip(tensors[nin:], infos)]
            except BaseException as e:  # e.g. MemoryError
                exc = e
        else:
            exc = conn._error(rc, _lib.decode(
                lib.emx_client_request_error(req)))
        with entry.lock:  # a canceller on the loop must not see it freed
            entry.req = None
            lib.emx_client_request_destroy(req)
        for t in tensors:
            conn.free(t)
        try:
            loop.call_soon_threadsafe(_deliver, client_ref, fut, outs, exc)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more
    conn.close()


class AsyncClient:
    """One edgemuxd connection for asyncio programs (see :func:`connect`).

    Safe for any number of concurrent ``infer`` calls from one event loop.
    After fork() a child reconnects on its first call.
    """

    def __init__(self, socket=None, arena_bytes=_client.DEFAULT_ARENA_BYTES,
                 max_inflight=DEFAULT_MAX_INFLIGHT):
        self.socket = os.fspath(socket) if socket else _client.default_socket()
        self.arena_bytes = arena_bytes
        self.max_inflight = max_inflight
        self._pid = None
        self._closed = False
        self._gen = 0
        self._start()

    def _start(self):
        # Blocking (connect + hello): called from a thread by connect().
        self._conn = _client.Connection(self.socket, self.arena_bytes)
        self._pid = os.getpid()
        self._gen += 1
        self._models = {}
        self._queue = queue.SimpleQueue()
        self._pending = set()
        self._inflight = 0
        self._slots = None  # asyncio objects are made on the loop
        self._freed = None
        self._thread = threading.Thread(
            target=_waiter, args=(self._conn, self._queue, weakref.ref(self)),
            name="edgemux-aio-waiter", daemon=True)
        self._thread.start()

    def _check(self):
        if self._closed:
            raise EdgemuxError(_lib.EMX_ESHUTDOWN,
                               "this edgemux.aio client is closed")
        if self._pid != os.getpid():
            # A forked child: the waiter thread and the parent's requests do
            # not exist here. Drop the inherited connection (closing only
            # our copies) and make our own.
            self._conn.close()
            self._start()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_inflight)
            self._freed = asyncio.Event()

    # ---- models -------------------------------------------------------------

    async def model(self, model, model_name=None):
        """Open a model: a name the daemon knows, or a .tflite path (loaded
        as edgemux.Interpreter does). Cached per client."""
        self._check()
        if isinstance(model, AsyncModel):
            if model._gen == self._gen:
                return model
            model = model.name
        key = (os.fspath(model), model_name)
        m = self._models.get(key)
        if m is not None:
            return m
        path = os.fspath(model)
        by_path = path.endswith(".tflite") or os.sep in path
        conn = self._conn
        loop = asyncio.get_running_loop()

        def resolve():
            if by_path:
                return _client.resolve_model(conn, model_path=path,
                                             model_name=model_name)[0]
            return conn.open(path)

        m = AsyncModel(await loop.run_in_executor(None, resolve), self._gen)
        self._models[key] = m
        return m

    async def models(self):
        """The daemon's model names."""
        self._check()
        return await asyncio.get_running_loop().run_in_executor(
            None, self._conn.models)

    async def ping(self):
        self._check()
        await asyncio.get_running_loop().run_in_executor(None,
                                                         self._conn.ping)

    # ---- inference ------------------------------------------------------------

    def _arrays(self, m, inputs):
        ins = m._model.inputs
        if isinstance(inputs, dict):
            names = [t["name"] for t in ins]
            unknown = set(inputs) - set(names)
            if unknown:
                raise EdgemuxValueError(
                    _lib.EMX_ECOUNT, "model \"%s\" has no input named %s "
                    "(its inputs: %s)" % (m.name, sorted(unknown), names))
            missing = [n for n in names if n not in inputs]
            if missing:
                raise EdgemuxValueError(
                    _lib.EMX_ECOUNT, "model \"%s\": inputs %s not given"
                    % (m.name, missing))
            inputs = [inputs[n] for n in names]
        elif isinstance(inputs, np.ndarray):
            inputs = [inputs]
        inputs = list(inputs)
        if len(inputs) != len(ins):
            raise EdgemuxValueError(
                _lib.EMX_ECOUNT, "model \"%s\" takes %d input%s; %d given"
                % (m.name, len(ins), "" if len(ins) == 1 else "s",
                   len(inputs)))
        return [_client.check_value(v, info, "input", i)
                for i, (v, info) in enumerate(zip(inputs, ins))]

    def _alloc(self, model):
        conn = self._conn
        ts = []
        try:
            for info in model.inputs + model.outputs:
                ts.append(conn.alloc(info["dtype"], info["bytes"]))
        except BaseException:
            for t in ts:
                conn.free(t)
            raise
        return ts

    async def infer(self, model, inputs, *, priority=None, timeout=None):
        """Run model (a name, a path or an AsyncModel) on inputs (a list of
        arrays in input order, or a dict by input name); returns the outputs
        as a list of new numpy arrays. ``priority``: edgemux.PRIORITY_*;
        ``timeout``: seconds the request may wait for a device."""
        self._check()
        m = await self.model(model)
        arrays = self._arrays(m, inputs)
        mm = m._model
        async with self._slots:
            while True:
                self._check_gen(m)
                try:
                    tensors = self._alloc(mm)
                    break
                except EdgemuxError as e:
                    if e.code != _lib.EMX_ENOMEM or self._inflight == 0:
                        raise
                self._freed.clear()  # wait for a request to free space
                await self._freed.wait()
            conn = self._conn
            try:
                for t, a in zip(tensors, arrays):
                    _client.write(t, a)
                nin, nout = len(mm.inputs), len(mm.outputs)
                ins = (_lib.Tensor * max(nin, 1))(*tensors[:nin])
                outs = (_lib.Tensor * max(nout, 1))(*tensors[nin:])
                opts = _lib.ClientOptions(
                    _lib.EMX_PRIORITY_NORMAL if priority is None else priority,
                    0 if timeout is None else int(timeout * 1e9))
                req = ctypes.c_void_p()
                conn.check(_lib.lib().emx_client_submit(
                    conn.handle, mm.handle, ins, nin, outs, nout,
                    ctypes.byref(opts), ctypes.byref(req)))
            except BaseException:
                for t in tensors:
                    conn.free(t)
                raise
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._inflight += 1
            self._pending.add(fut)
            entry = _Entry(req)
            self._queue.put((req, tensors, nin, mm.outputs, loop, fut, entry))
            # A cancelled caller (task.cancel(), a wait_for timeout) cancels
            # the daemon's request too, so a queued one never runs for
            # nobody; the waiter still frees its tensors when it completes.
            try:
                return await fut
            except asyncio.CancelledError:
                entry.cancel()
                raise

    def _check_gen(self, m):
        if m._gen != self._gen:
            raise EdgemuxError(_lib.EMX_EDISCONNECTED,
                               "model \"%s\" was opened on an earlier "
                               "connection" % m.name)

    def _resolve(self, fut, outs, exc):
        self._inflight -= 1
        self._pending.discard(fut)
        if self._freed is not None:
            self._freed.set()
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(outs)

    # ---- lifetime -------------------------------------------------------------

    async def close(self):
        """Wait for the requests in flight, then disconnect."""
        if self._closed:
            return
        self._closed = True
        if self._pid != os.getpid():
            self._conn.close()
            return
        if self._pending:
            await asyncio.gather(*list(self._pending),
                                 return_exceptions=True)
        self._queue.put(None)
        await asyncio.get_running_loop().run_in_executor(None,
                                                         self._thread.join)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def __del__(self):
        try:
            if not self._closed and self._pid == os.getpid():
                self._closed = True
                self._queue.put(None)  # the waiter closes the connection
        except Exception:
            pass


async def connect(socket=None, *, arena_bytes=_client.DEFAULT_ARENA_BYTES,
                  max_inflight=DEFAULT_MAX_INFLIGHT):
    """Connect to edgemuxd (``socket``, default ``$EDGEMUX_SOCKET`` or the
    standard path) without blocking the event loop. ``arena_bytes`` bounds
    the tensors of the requests in flight; ``max_inflight`` how many
    requests this client keeps in flight (more wait their turn)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        None, lambda: AsyncClient(socket, arena_bytes, max_inflight))
