"""edgemux: TensorFlow Lite inference through edgemuxd, the per-machine
broker that owns the accelerators.

- :class:`edgemux.Interpreter` (also ``edgemux.interpreter.Interpreter``)
  behaves like ``tflite_runtime.interpreter.Interpreter``; programs switch
  with ``import edgemux.interpreter as tflite``.
- :mod:`edgemux.aio`: ``client = await edgemux.aio.connect()``, then
  ``await client.infer(model, inputs)`` from many tasks at once.
- :func:`edgemux.make_interpreter`: pycoral's helper.

The C client library (libedgemux-client.so) is found through
``$EDGEMUX_LIB``, the build tree next to this package, or the dynamic
loader's path. ``__version__`` is the loaded library's: the version is
defined once, in CMakeLists.txt.
"""

from . import _lib
from ._client import default_socket
from .errors import EdgemuxError, EdgemuxValueError
from .interpreter import Delegate, Interpreter, load_delegate
from .utils import make_interpreter

__version__ = _lib.decode(_lib.lib().emx_version())

PRIORITY_LOW = _lib.EMX_PRIORITY_LOW
PRIORITY_NORMAL = _lib.EMX_PRIORITY_NORMAL
PRIORITY_HIGH = _lib.EMX_PRIORITY_HIGH

# The EMX_E* codes, e.g. edgemux.EMX_ENOENT == -3.
globals().update(_lib.ERRNO)


def __getattr__(name):
    # `edgemux.aio` without an explicit import (it pulls in asyncio).
    if name == "aio":
        import importlib

        return importlib.import_module(".aio", __name__)
    raise AttributeError("module 'edgemux' has no attribute %r" % name)


def library_version():
    """The version of the loaded libedgemux-client."""
    return _lib.decode(_lib.lib().emx_version())


__all__ = [
    "Interpreter", "load_delegate", "Delegate", "make_interpreter",
    "EdgemuxError", "EdgemuxValueError", "default_socket", "library_version",
    "PRIORITY_LOW", "PRIORITY_NORMAL", "PRIORITY_HIGH",
] + sorted(_lib.ERRNO)
