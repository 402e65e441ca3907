"""load_delegate as tflite_runtime has it, answered from edgemuxd's
devices: nothing is loaded into a client (the daemon owns the devices)."""

import os

from . import _devices
from .errors import EdgemuxError

__all__ = ["Delegate", "load_delegate"]


class Delegate:
    """What :func:`load_delegate` returns: the Edge TPU a program asked
    for. Nothing is loaded into this process: edgemuxd owns the devices."""

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
        return _is_edgetpu_lib(self._library)

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


def _is_edgetpu_lib(library):
    return "edgetpu" in os.path.basename(os.fspath(library)).lower()


def load_delegate(library, options=None):
    """Like ``tflite_runtime.interpreter.load_delegate``.

    ``load_delegate('libedgetpu.so.1', {'device': 'usb:0'})`` succeeds only
    when edgemuxd has that Edge TPU (no ``device``: any Edge TPU) healthy,
    and raises the ValueError tflite_runtime raises otherwise ("Failed to
    load delegate from libedgetpu.so.1"), so a program's ``except
    ValueError:`` CPU fallback takes the same branch. Other delegates
    (GPU, Hexagon, ...) are not loaded into a client: ValueError too.
    """
    options = options or {}
    if not _is_edgetpu_lib(library):
        raise ValueError(
            "Failed to load delegate from %s\n(edgemux: only the Edge TPU "
            "delegate is served; edgemuxd decides which of its devices run "
            "a model)" % (library,))
    device = options.get("device")
    device = str(device) if device else None
    try:
        _devices.check_device_string(device)
        found, devs = _devices.find_tpu(options.get("socket"), device)
    except (ValueError, EdgemuxError) as e:
        raise ValueError("Failed to load delegate from %s\n(edgemux: %s)"
                         % (library, e)) from None
    if not found:
        raise ValueError(
            "Failed to load delegate from %s\n(edgemux: edgemuxd has no "
            "healthy Edge TPU%s; its devices: %s)"
            % (library, " matching device %r" % device if device else "",
               _devices.describe(devs)))
    return Delegate(library, options)
