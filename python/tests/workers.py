"""Functions run in multiprocessing workers (importable under spawn)."""

import os

import support  # noqa: F401  (puts python/ on sys.path)

import edgemux.interpreter as tflite

_interp = None


_init_error = None


def init_worker(model_path):
    """Pool initializer: one Interpreter per worker process, as the classic
    failure report's program made one per worker. An error is kept for the
    tasks to raise: an initializer that raises makes the Pool replace the
    worker forever, and the test would hang."""
    global _interp, _init_error
    try:
        _interp = tflite.Interpreter(model_path=model_path)
        _interp.allocate_tensors()
    except BaseException as e:
        _init_error = e


def invoke_own(inputs):
    """Run the worker's own Interpreter (made by init_worker)."""
    if _init_error is not None:
        raise _init_error
    return os.getpid(), _run(_interp, inputs)


def invoke_given(args):
    """Run an Interpreter pickled from the parent (it reconnects here)."""
    interp, inputs = args
    return os.getpid(), _run(interp, inputs)


def _run(interp, inputs):
    interp.allocate_tensors()
    ins = interp.get_input_details()
    outs = interp.get_output_details()
    for d, x in zip(ins, inputs):
        interp.set_tensor(d["index"], x)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in outs]


def invoke_inherited(inputs):
    """Run the parent's global Interpreter inherited through fork()."""
    return os.getpid(), _run(INHERITED, inputs)


INHERITED = None
