#!/usr/bin/python3
"""asyncio.gather of many inferences: the classic report's third pattern.

First as a tflite_runtime program writes it — one Interpreter per task,
invoke() in a worker thread — then with edgemux.aio, where every request
goes over one daemon connection without threads. Both results must agree.

Run (edgemuxd as in docs/python.md; clients may load models unless it runs with --no-client-models):
  PYTHONPATH=python /usr/bin/python3 examples/python/asyncio_gather.py \
      [--model FILE.tflite] [-n REQUESTS]
"""

import argparse
import asyncio
import os
import sys
import time

import numpy as np

import edgemux.aio
import edgemux.interpreter as tflite  # was: import tflite_runtime.interpreter as tflite

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                             "..", ".deps", "models",
                             "face_detection_short_range.tflite")


def frame(details, seed):
    return np.random.default_rng(seed).uniform(-1, 1, details["shape"]).astype(
        details["dtype"])


def run(interpreter, image):
    input_details = interpreter.get_input_details()
    output_details = interpreter.get_output_details()
    interpreter.set_tensor(input_details[0]["index"], image)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in output_details]


async def with_interpreters(model, n):
    interpreters = [tflite.Interpreter(model_path=model) for _ in range(8)]
    for interpreter in interpreters:
        interpreter.allocate_tensors()
    details = interpreters[0].get_input_details()[0]
    locks = [asyncio.Lock() for _ in interpreters]

    async def detect(i):
        k = i % len(interpreters)
        async with locks[k]:  # an Interpreter is not for two threads at once
            return await asyncio.to_thread(run, interpreters[k],
                                           frame(details, i))

    return await asyncio.gather(*(detect(i) for i in range(n)))


async def with_aio(model, n):
    async with await edgemux.aio.connect() as client:
        m = await client.model(model)
        details = m.inputs[0]  # name, shape, dtype, bytes, quantization
        return await asyncio.gather(*(client.infer(m, [frame(details, i)])
                                      for i in range(n)))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("-n", "--requests", type=int, default=64)
    args = ap.parse_args()

    t0 = time.monotonic()
    a = await with_interpreters(args.model, args.requests)
    t1 = time.monotonic()
    b = await with_aio(args.model, args.requests)
    t2 = time.monotonic()
    print("%d requests: Interpreters + threads %.2f s, edgemux.aio %.2f s"
          % (args.requests, t1 - t0, t2 - t1))
    same = all(np.array_equal(x, y) for ra, rb in zip(a, b)
               for x, y in zip(ra, rb))
    for i in range(0, args.requests, max(1, args.requests // 8)):
        print("request %3d  max score %8.3f" % (i, float(b[i][-1].max())))
    print("results agree" if same else "RESULTS DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
