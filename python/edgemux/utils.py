"""pycoral's helpers (``pycoral.utils.edgetpu``) over edgemux.

A pycoral program changes its imports::

    from pycoral.utils.edgetpu import make_interpreter   # before
    from edgemux.utils import make_interpreter           # after

and keeps the rest; pycoral's pure-Python adapters (``pycoral.adapters.
common``, ``classify``, ``detect``) work on the Interpreter it returns.
"""

import os

import numpy as np

from . import _devices
from .interpreter import Interpreter, load_delegate

__all__ = ["make_interpreter", "load_edgetpu_delegate", "list_edge_tpus",
           "run_inference", "get_runtime_version", "EDGETPU_SHARED_LIB"]

#: The library name pycoral passes to load_delegate (never loaded here).
EDGETPU_SHARED_LIB = "libedgetpu.so.1"


def load_edgetpu_delegate(options=None):
    """pycoral's load_edgetpu_delegate: load_delegate('libedgetpu.so.1')."""
    return load_delegate(EDGETPU_SHARED_LIB, options or {})


def make_interpreter(model_path_or_content, device=None, delegate=None,
                     **kwargs):
    """An :class:`edgemux.Interpreter` on the daemon's Edge TPUs, like
    ``pycoral.utils.edgetpu.make_interpreter``.

    Args:
      model_path_or_content: a .tflite path, or the model's bytes.
      device: None (any Edge TPU), ":N" (the Nth), "usb", "usb:N", "pci",
        "pci:N", as pycoral takes them; the Interpreter is pinned to that
        device. ValueError when the daemon has no such healthy Edge TPU.
      delegate: a Delegate from load_delegate, instead of device.
      kwargs: passed to Interpreter (socket, model_name, ...).
    """
    if delegate is None:
        opts = {"device": device} if device else {}
        if kwargs.get("socket"):
            opts["socket"] = kwargs["socket"]
        delegate = load_edgetpu_delegate(opts)
    if isinstance(model_path_or_content, (bytes, bytearray, memoryview)):
        return Interpreter(model_content=bytes(model_path_or_content),
                           experimental_delegates=[delegate], **kwargs)
    return Interpreter(model_path=os.fspath(model_path_or_content),
                       experimental_delegates=[delegate], **kwargs)


def list_edge_tpus(socket=None):
    """The daemon's healthy Edge TPUs as pycoral lists them: dicts with
    "type" ("usb" or "pci") and "path" (the device's name in the daemon;
    edgemuxd, not this process, opens the device)."""
    out = []
    for d in _devices.tpus(_devices.devices(socket)):
        out.append({"type": d["type"] or "usb", "path": d["name"]})
    return out


def run_inference(interpreter, input_data):
    """pycoral's run_inference: copy raw bytes (bytes, a 1-D numpy array
    or a (ctypes.c_void_p, size) pair) into input 0 and invoke()."""
    det = interpreter.get_input_details()[0]
    expected = int(np.prod(det["shape"])) * np.dtype(det["dtype"]).itemsize
    if isinstance(input_data, bytes):
        data = np.frombuffer(input_data, dtype=np.uint8)
    elif isinstance(input_data, tuple) and len(input_data) == 2:
        import ctypes

        pointer, size = input_data
        if not isinstance(pointer, ctypes.c_void_p) or \
                not isinstance(size, int):
            raise TypeError("input data type is not supported.")
        if size != expected:
            raise ValueError("input size={}, expected={}.".format(
                size, expected))
        data = np.frombuffer((ctypes.c_char * size).from_address(
            pointer.value), dtype=np.uint8)
    elif isinstance(input_data, np.ndarray):
        data = input_data.reshape(-1).view(np.uint8)
    else:
        raise TypeError("input data type is not supported.")
    if data.nbytes != expected:
        raise ValueError("input size={}, expected={}.".format(
            data.nbytes, expected))
    interpreter.set_tensor(det["index"],
                           data.view(det["dtype"]).reshape(det["shape"]))
    interpreter.invoke()


def get_runtime_version():
    """What pycoral reports for libedgetpu; here edgemux's version."""
    from . import library_version

    return "edgemux " + library_version()
