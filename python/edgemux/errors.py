"""Exceptions carrying edgemux's EMX_E* codes and the daemon's messages."""

from . import _lib


class EdgemuxError(RuntimeError):
    """A failed edgemux call.

    ``code`` is the EMX_E* value (a negative int, e.g. -3), ``name`` its
    name (e.g. ``"EMX_ENOENT"``); ``str(err)`` is the message of the C
    library or the daemon, which says what was wrong and what to do.
    """

    def __init__(self, code, message=None):
        self.code = int(code)
        self.name = _lib.err_name(self.code)
        if not message:
            try:
                message = _lib.strerror(self.code)
            except ImportError:
                message = self.name
        self.message = message
        super().__init__(message)

    def __str__(self):
        return "%s (%s)" % (self.message, self.name)

    def __reduce__(self):  # picklable across multiprocessing
        return (self.__class__, (self.code, self.message))


class EdgemuxValueError(EdgemuxError, ValueError):
    """A problem with the caller's values (a tensor's shape, type or count,
    a bad argument, a missing model file): where tflite_runtime raises
    ValueError, edgemux raises this, which is both a ValueError and an
    EdgemuxError."""


#: Codes that are the caller's mistake: raised as EdgemuxValueError.
VALUE_CODES = frozenset({_lib.EMX_ECOUNT, _lib.EMX_ESIZE, _lib.EMX_EDTYPE})


def error(code, message=None):
    """The exception for an EMX_E* code."""
    cls = EdgemuxValueError if code in VALUE_CODES else EdgemuxError
    return cls(code, message)
