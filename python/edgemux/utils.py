"""pycoral-style helpers (``pycoral.utils.edgetpu``) over edgemux."""

import os

from .interpreter import Interpreter, load_delegate

__all__ = ["make_interpreter", "EDGETPU_SHARED_LIB"]

#: The library name pycoral passes to load_delegate (never loaded here).
EDGETPU_SHARED_LIB = "libedgetpu.so.1"


def make_interpreter(model_path_or_content, device=None, delegate=None,
                     **kwargs):
    """An :class:`edgemux.Interpreter` for an Edge TPU model, like
    ``pycoral.utils.edgetpu.make_interpreter``.

    Args:
      model_path_or_content: a .tflite path, or the model's bytes.
      device: the Edge TPU to ask edgemuxd for: ":0", "usb", "usb:0",
        "pci", "pci:0" (pycoral's syntax); None for any. Recorded as
        ``interpreter.device``: the daemon applies device pinning once it
        serves Edge TPU devices; today requests run on its devices.
      delegate: a Delegate from load_delegate, instead of device.
      kwargs: passed to Interpreter (model_name, socket, ...).
    """
    if delegate is None:
        delegate = load_delegate(EDGETPU_SHARED_LIB,
                                 {"device": device} if device else {})
    if isinstance(model_path_or_content, (bytes, bytearray, memoryview)):
        return Interpreter(model_content=bytes(model_path_or_content),
                           experimental_delegates=[delegate], **kwargs)
    return Interpreter(model_path=os.fspath(model_path_or_content),
                       experimental_delegates=[delegate], **kwargs)
