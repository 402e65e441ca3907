#!/usr/bin/python3
"""A multiprocessing.Pool of 5 workers, each with its own Interpreter.

The first pattern of the classic failure report: with tflite_runtime and an
Edge TPU, every worker opened the accelerator itself and all but one failed
("Failed to load delegate" / "device busy"). Through edgemuxd each worker is
one more client of the daemon, which owns the devices and queues the
requests; fork and spawn both work.

Run (edgemuxd started with --allow-load; see docs/python.md):
  PYTHONPATH=python /usr/bin/python3 examples/python/pool_workers.py \
      [--model FILE.tflite] [--start-method fork|spawn] [-n FRAMES]
"""

import argparse
import multiprocessing
import os
import time

import numpy as np

import edgemux.interpreter as tflite  # was: import tflite_runtime.interpreter as tflite

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                             "..", ".deps", "models",
                             "face_detection_short_range.tflite")

model_path = None
interpreter = None


def init_worker(path):
    global model_path
    model_path = path


def detect(frame):
    # Made on the worker's first frame rather than in the initializer: an
    # error (no daemon, say) then reaches the parent instead of making the
    # Pool replace the failed worker forever.
    global interpreter
    if interpreter is None:
        interpreter = tflite.Interpreter(model_path=model_path)
        interpreter.allocate_tensors()
    input_details = interpreter.get_input_details()
    output_details = interpreter.get_output_details()
    shape, dtype = input_details[0]["shape"], input_details[0]["dtype"]
    image = np.random.default_rng(frame).uniform(-1, 1, shape).astype(dtype)
    interpreter.set_tensor(input_details[0]["index"], image)
    interpreter.invoke()
    scores = interpreter.get_tensor(output_details[-1]["index"])
    return frame, os.getpid(), float(scores.max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--start-method", default="spawn",
                    choices=["fork", "spawn", "forkserver"])
    ap.add_argument("-n", "--frames", type=int, default=50)
    args = ap.parse_args()

    ctx = multiprocessing.get_context(args.start_method)
    t0 = time.monotonic()
    with ctx.Pool(5, initializer=init_worker,
                  initargs=(os.path.abspath(args.model),)) as pool:
        pids = set()
        for frame, pid, score in pool.imap(detect, range(args.frames)):
            pids.add(pid)
            print("frame %3d  worker %d  max score %8.3f" % (frame, pid, score))
    dt = time.monotonic() - t0
    print("%d frames by %d workers (%s) in %.2f s"
          % (args.frames, len(pids), args.start_method, dt))


if __name__ == "__main__":
    main()
