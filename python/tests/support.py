"""Test support: a private edgemuxd, and the oracle (the C engine run
in-process through ctypes) that the daemon's outputs must equal bit for bit.

Paths come from the repository layout (override with EDGEMUX_BIN_DIR,
EDGEMUX_MODELS_DIR, EDGEMUX_REPO_DIR). The daemon is started once per test
process, on a socket in a fresh temporary directory, with --device
cpu:workers=2 (and --no-client-models when a test passes
allow_load=False), and stopped at exit. EDGEMUX_SOCKET is set to it, so
child processes (fork or spawn) find it too.
"""

import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "python"))

import numpy as np  # noqa: E402

from edgemux import _lib  # noqa: E402

BIN_DIR = os.environ.get("EDGEMUX_BIN_DIR", os.path.join(ROOT, "build", "bin"))
MODELS_DIR = os.environ.get("EDGEMUX_MODELS_DIR",
                            os.path.join(ROOT, ".deps", "models"))
REPO_DIR = os.environ.get("EDGEMUX_REPO_DIR", os.path.join(ROOT, ".deps", "repo"))

FACE = os.path.join(MODELS_DIR, "face_detection_short_range.tflite")
HAND = os.path.join(MODELS_DIR, "hand_landmark_lite.tflite")
FACE_FULL = os.path.join(MODELS_DIR, "face_detection_full_range.tflite")


class Daemon:
    """An edgemuxd of our own: start() waits until it answers a ping."""

    def __init__(self, devices=("cpu:workers=2",), allow_load=True,
                 repo=REPO_DIR, extra=(), env=None):
        self.dir = tempfile.mkdtemp(prefix="emx-py-")
        self.socket = os.path.join(self.dir, "edgemux.sock")
        self.log = os.path.join(self.dir, "edgemuxd.log")
        args = [os.path.join(BIN_DIR, "edgemuxd"), "--socket", self.socket,
                "--log-level", "info"]
        # The daemon dies with the test process even when that is killed
        # (a timeout, ^C): setpriv sets PR_SET_PDEATHSIG, then execs it.
        # (It fires when the thread that started it exits: start daemons
        # from the main thread.)
        if shutil.which("setpriv"):
            args = ["setpriv", "--pdeathsig", "TERM", "--"] + args
        if repo:
            args += ["--models", repo]
        for d in devices:
            args += ["--device", d]
        if not allow_load:
            args.append("--no-client-models")
        args += list(extra)
        self.args = args
        self.env = env
        self.proc = None

    def start(self, timeout=60.0):
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL,
                                         env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("edgemuxd exited with %s:\n%s"
                                   % (self.proc.returncode, self.log_text()))
            if os.path.exists(self.socket) and self._ping():
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError("edgemuxd did not start:\n" + self.log_text())

    def _ping(self):
        lib = _lib.lib()
        cfg = _lib.ClientConfig()
        lib.emx_client_config_init(ctypes.byref(cfg))
        cfg.socket_path = self.socket.encode()
        cfg.arena_bytes = 0
        h = ctypes.c_void_p()
        if lib.emx_client_connect(ctypes.byref(h), ctypes.byref(cfg)) < 0:
            return False
        rc = lib.emx_client_ping(h)
        lib.emx_client_destroy(h)
        return rc == 0

    def status(self):
        """The daemon's status report (a connection of its own)."""
        from edgemux import _client

        c = _client.Connection(self.socket, arena_bytes=0)
        try:
            return c.status()
        finally:
            c.close()

    def devices(self):
        """{device name: {key: value}} from the status report."""
        from edgemux import _devices

        return {d["name"]: d for d in _devices.parse_status(self.status())}

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, timeout=10.0):
        """SIGTERM, wait; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


_daemon = None


def tpu_daemon(tpus=2, cpu="cpu:workers=1"):
    """A daemon with a CPU and `tpus` Edge TPUs through the stub
    libedgetpu (USB devices usb:0..), on lock files of its own."""
    lock_dir = tempfile.mkdtemp(prefix="emx-py-stub-")
    env = dict(os.environ)
    env["EMX_STUB_EDGETPU_LOCK_DIR"] = lock_dir
    env["EMX_STUB_EDGETPU_DEVICES"] = ",".join(
        "usb:/sys/bus/usb/devices/emx-test-%d" % i for i in range(tpus))
    devs = [cpu] + ["edgetpu:usb:%d,lib=%s" % (i, STUB_EDGETPU)
                    for i in range(tpus)]
    d = Daemon(devices=devs, repo=None, env=env).start()
    d.lock_dir = lock_dir
    return d


def daemon():
    """The test run's shared daemon (started on first use, stopped at exit);
    EDGEMUX_SOCKET points at it."""
    global _daemon
    if _daemon is None:
        d = Daemon().start()
        atexit.register(d.cleanup)
        _daemon = d
        os.environ["EDGEMUX_SOCKET"] = d.socket
    return _daemon


# ---- the oracle: the C engine, in-process -----------------------------------


class Oracle:
    """emx_engine with one single-threaded CPU device; infer() is emx_infer
    on the model file: the expected outputs, computed without the daemon."""

    _engines = {}

    def __init__(self, path):
        lib = _lib.engine_lib()
        self.lib = lib
        self._pid = os.getpid()
        cfg = _lib.EngineConfig()
        lib.emx_engine_config_init(ctypes.byref(cfg))
        self._devs = (ctypes.c_char_p * 1)(b"cpu:workers=1,threads=1")
        cfg.devices = self._devs
        cfg.device_count = 1
        self.engine = ctypes.c_void_p()
        rc = lib.emx_engine_create(ctypes.byref(self.engine), ctypes.byref(cfg))
        if rc < 0:
            raise RuntimeError("emx_engine_create: %s"
                               % _lib.decode(lib.emx_engine_last_error(None)))
        self.model = ctypes.c_void_p()
        rc = lib.emx_model_load_file(self.engine, b"oracle", path.encode(),
                                     ctypes.byref(self.model))
        if rc < 0:
            raise RuntimeError("emx_model_load_file: %s"
                               % _lib.decode(lib.emx_engine_last_error(self.engine)))
        self.inputs = self._infos(lib.emx_model_input_count,
                                  lib.emx_model_input_info)
        self.outputs = self._infos(lib.emx_model_output_count,
                                   lib.emx_model_output_info)

    @classmethod
    def get(cls, path):
        o = cls._engines.get(path)
        if o is None:
            o = cls._engines[path] = cls(path)
            atexit.register(o.close)
        return o

    def close(self):
        if self.engine and os.getpid() == self._pid:
            self.lib.emx_engine_destroy(self.engine)
        self.engine = None

    def _infos(self, count, info):
        out = []
        ti = _lib.TensorInfo()
        for i in range(count(self.model)):
            assert info(self.model, i, ctypes.byref(ti)) == 0
            out.append(_lib.info_to_dict(ti))
        return out

    def random_inputs(self, seed):
        rng = np.random.default_rng(seed)
        arrays = []
        for t in self.inputs:
            dt = _lib.numpy_dtype(t["dtype"])
            if dt.kind == "f":
                a = rng.uniform(-1.0, 1.0, size=t["shape"]).astype(dt)
            else:
                info = np.iinfo(dt)
                a = rng.integers(info.min, info.max, size=t["shape"],
                                 endpoint=True, dtype=dt)
            arrays.append(a)
        return arrays

    def infer(self, arrays):
        lib = self.lib
        ins = [np.ascontiguousarray(a) for a in arrays]
        outs = [np.empty(t["shape"], _lib.numpy_dtype(t["dtype"]))
                for t in self.outputs]
        tin = (_lib.Tensor * len(ins))(
            *[_lib.Tensor(t["dtype"], a.ctypes.data, a.nbytes)
              for a, t in zip(ins, self.inputs)])
        tout = (_lib.Tensor * len(outs))(
            *[_lib.Tensor(t["dtype"], a.ctypes.data, a.nbytes)
              for a, t in zip(outs, self.outputs)])
        desc = _lib.RequestDesc()
        lib.emx_request_desc_init(ctypes.byref(desc))
        desc.model = self.model
        desc.inputs = tin
        desc.input_count = len(ins)
        desc.outputs = tout
        desc.output_count = len(outs)
        rc = lib.emx_infer(self.engine, ctypes.byref(desc), None)
        if rc < 0:
            raise RuntimeError("emx_infer: %s"
                               % _lib.decode(lib.emx_engine_last_error(self.engine)))
        return outs


def expected(path, seeds):
    """{seed: (inputs, outputs)} from the oracle."""
    o = Oracle.get(path)
    out = {}
    for s in seeds:
        ins = o.random_inputs(s)
        out[s] = (ins, o.infer(ins))
    return out


# ---- TensorFlow Lite's own C API (what tflite_runtime wraps) ----------------

TFLITE_C = os.environ.get(
    "EDGEMUX_TFLITE_C", os.path.join(ROOT, ".deps", "tflite", "lib",
                                     "libtensorflowlite_c.so"))
FIXTURES = os.environ.get("EMX_FIXTURES_DIR",
                          os.path.join(ROOT, "build", "fixtures"))
STUB_EDGETPU = os.path.join(ROOT, "build", "lib", "libedgetpu_stub.so")

_tfl = None


def tflite_c():
    """libtensorflowlite_c.so through ctypes (prototypes set)."""
    global _tfl
    if _tfl is None:
        lib = ctypes.CDLL(TFLITE_C)
        P, I = ctypes.c_void_p, ctypes.c_int32
        for name, res, args in (
                ("TfLiteModelCreate", P, [ctypes.c_char_p, ctypes.c_size_t]),
                ("TfLiteModelDelete", None, [P]),
                ("TfLiteInterpreterOptionsCreate", P, []),
                ("TfLiteInterpreterOptionsDelete", None, [P]),
                ("TfLiteInterpreterOptionsSetNumThreads", None, [P, I]),
                ("TfLiteInterpreterCreate", P, [P, P]),
                ("TfLiteInterpreterDelete", None, [P]),
                ("TfLiteInterpreterAllocateTensors", I, [P]),
                ("TfLiteInterpreterInvoke", I, [P]),
                ("TfLiteInterpreterGetInputTensorCount", I, [P]),
                ("TfLiteInterpreterGetOutputTensorCount", I, [P]),
                ("TfLiteInterpreterGetInputTensor", P, [P, I]),
                ("TfLiteInterpreterGetOutputTensor", P, [P, I]),
                ("TfLiteInterpreterGetInputTensorIndex", I, [P, I]),
                ("TfLiteInterpreterGetOutputTensorIndex", I, [P, I]),
                ("TfLiteTensorCopyFromBuffer", I, [P, P, ctypes.c_size_t]),
                ("TfLiteTensorCopyToBuffer", I, [P, P, ctypes.c_size_t]),
                ("TfLiteTensorByteSize", ctypes.c_size_t, [P])):
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        _tfl = lib
    return _tfl


class TfLiteDirect:
    """A TFLite interpreter in this process (one thread), driven through
    the C API the way tflite_runtime drives the C++ one."""

    def __init__(self, path, threads=1):
        lib = self.lib = tflite_c()
        with open(path, "rb") as f:
            self._bytes = f.read()
        self.model = lib.TfLiteModelCreate(self._bytes, len(self._bytes))
        if not self.model:
            raise RuntimeError("TfLiteModelCreate failed for " + path)
        opts = lib.TfLiteInterpreterOptionsCreate()
        lib.TfLiteInterpreterOptionsSetNumThreads(opts, threads)
        self.interp = lib.TfLiteInterpreterCreate(self.model, opts)
        lib.TfLiteInterpreterOptionsDelete(opts)
        if not self.interp or lib.TfLiteInterpreterAllocateTensors(
                self.interp) != 0:
            raise RuntimeError("TFLite cannot build " + path)

    def io_indices(self):
        lib, it = self.lib, self.interp
        return ([lib.TfLiteInterpreterGetInputTensorIndex(it, i) for i in
                 range(lib.TfLiteInterpreterGetInputTensorCount(it))] +
                [lib.TfLiteInterpreterGetOutputTensorIndex(it, i) for i in
                 range(lib.TfLiteInterpreterGetOutputTensorCount(it))])

    def set_input(self, i, arr):
        t = self.lib.TfLiteInterpreterGetInputTensor(self.interp, i)
        arr = np.ascontiguousarray(arr)
        assert self.lib.TfLiteTensorCopyFromBuffer(
            t, arr.ctypes.data, arr.nbytes) == 0

    def invoke(self):
        assert self.lib.TfLiteInterpreterInvoke(self.interp) == 0

    def get_output(self, i, out):
        t = self.lib.TfLiteInterpreterGetOutputTensor(self.interp, i)
        assert self.lib.TfLiteTensorCopyToBuffer(
            t, out.ctypes.data, out.nbytes) == 0
        return out

    def close(self):
        if self.interp:
            self.lib.TfLiteInterpreterDelete(self.interp)
            self.lib.TfLiteModelDelete(self.model)
        self.interp = None


def tflite_io_indices(path):
    """TFLite's tensor indices of the model's inputs then outputs."""
    d = TfLiteDirect(path)
    try:
        return d.io_indices()
    finally:
        d.close()
