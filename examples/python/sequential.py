#!/usr/bin/python3
"""One Interpreter, a loop over frames: the classic report's second pattern,
written exactly as for tflite_runtime.

Run (edgemuxd started with --allow-load; see docs/python.md):
  PYTHONPATH=python /usr/bin/python3 examples/python/sequential.py \
      [--model FILE.tflite] [-n FRAMES]
"""

import argparse
import os
import time

import numpy as np

import edgemux.interpreter as tflite  # was: import tflite_runtime.interpreter as tflite

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                             "..", ".deps", "models",
                             "face_detection_short_range.tflite")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("-n", "--frames", type=int, default=100)
    args = ap.parse_args()

    interpreter = tflite.Interpreter(model_path=args.model)
    interpreter.allocate_tensors()
    input_details = interpreter.get_input_details()
    output_details = interpreter.get_output_details()
    for d in input_details + output_details:
        print("%-7s %d %-16s %s %s" % ("input" if d in input_details
                                       else "output", d["index"], d["name"],
                                       d["shape"], d["dtype"].__name__))

    rng = np.random.default_rng(0)
    latencies = []
    for frame in range(args.frames):
        image = rng.uniform(-1, 1, input_details[0]["shape"]).astype(
            input_details[0]["dtype"])
        t0 = time.perf_counter()
        interpreter.set_tensor(input_details[0]["index"], image)
        interpreter.invoke()
        outputs = [interpreter.get_tensor(d["index"]) for d in output_details]
        latencies.append(time.perf_counter() - t0)
        if frame % 10 == 0:
            print("frame %3d  max score %8.3f" % (frame,
                                                  float(outputs[-1].max())))
    latencies.sort()
    print("%d frames; latency p50 %.2f ms, p99 %.2f ms"
          % (len(latencies), 1e3 * latencies[len(latencies) // 2],
             1e3 * latencies[int(len(latencies) * 0.99)]))


if __name__ == "__main__":
    main()
