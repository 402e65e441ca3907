#!/usr/bin/python3
"""Python client throughput through edgemuxd, relative to the C client.

Starts its own edgemuxd with one device (cpu:workers=1,threads=1) on a
temporary socket, then alternates rounds of three runs, each with 4 client
processes that all start together after one warm-up request:

  C        `edgemux bench MODEL -c 4 -n N`: forked C client processes, inputs
           filled once, then N synchronous emx_client_infer each; its
           "throughput" line is parsed.
  Python   the same work through edgemux.interpreter.Interpreter: inputs
           set once (set_tensor), then N invoke() each. This is the
           like-for-like comparison: the ratio of the medians is the last
           line, `python_throughput_ratio: X.XXX (target >= 0.9)`.
  tflite   what a TFLite program does per frame: set_tensor, invoke,
           get_tensor of every output (copies the C bench does not make);
           reported as `tflite_pattern_ratio`, for information.

Throughput is requests / (last finish - first start), as the C bench
computes it. Each round also reports the client CPU time per request.

Usage: bench/python_bench.py [-n REQUESTS] [--rounds R] [--clients C]
                             [--model NAME] [--check]
Run with Debian's /usr/bin/python3 (numpy); finds build/ like the tests.
"""

import argparse
import multiprocessing
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import numpy as np  # noqa: E402

import edgemux.interpreter as tflite  # noqa: E402

BIN = os.environ.get("EDGEMUX_BIN_DIR", os.path.join(ROOT, "build", "bin"))
REPO = os.environ.get("EDGEMUX_REPO_DIR", os.path.join(ROOT, ".deps", "repo"))


def start_daemon(tmp):
    sock = os.path.join(tmp, "edgemux.sock")
    log = open(os.path.join(tmp, "edgemuxd.log"), "wb")
    args = [os.path.join(BIN, "edgemuxd"), "--socket", sock, "--models",
            REPO, "--device", "cpu:workers=1,threads=1", "--log-level", "warn"]
    if shutil.which("setpriv"):  # dies with this script, even if killed
        args = ["setpriv", "--pdeathsig", "TERM", "--"] + args
    proc = subprocess.Popen(args, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("edgemuxd exited (%d); see %s" % (proc.returncode,
                                                       log.name))
        r = subprocess.run([os.path.join(BIN, "edgemux"), "--socket", sock,
                            "ping"], capture_output=True)
        if r.returncode == 0:
            return proc, sock
        time.sleep(0.05)
    proc.kill()
    sys.exit("edgemuxd did not start; see %s" % log.name)


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def c_round(sock, model, clients, n):
    r = subprocess.run([os.path.join(BIN, "edgemux"), "--socket", sock,
                        "bench", model, "-c", str(clients), "-n", str(n)],
                       capture_output=True, text=True)
    m = re.search(r"^throughput\s+([0-9.]+) req/s", r.stdout, re.M)
    if r.returncode != 0 or not m:
        sys.exit("edgemux bench failed (%d):\n%s%s" % (r.returncode, r.stdout,
                                                       r.stderr))
    return float(m.group(1))


def py_client(index, sock, model, n, pattern, barrier, results):
    interp = tflite.Interpreter(model_name=model, socket=sock)
    interp.allocate_tensors()
    ins = interp.get_input_details()
    outs = [d["index"] for d in interp.get_output_details()]
    rng = np.random.default_rng(1 + index)
    frames = [rng.uniform(-1, 1, d["shape"]).astype(d["dtype"]) for d in ins]
    for d, x in zip(ins, frames):  # warm-up, not counted
        interp.set_tensor(d["index"], x)
    interp.invoke()
    barrier.wait()
    c0 = time.process_time()
    t0 = time.monotonic()
    if pattern == "tflite":
        for _ in range(n):
            for d, x in zip(ins, frames):
                interp.set_tensor(d["index"], x)
            interp.invoke()
            for i in outs:
                interp.get_tensor(i)
    else:
        for _ in range(n):
            interp.invoke()
    t1 = time.monotonic()
    results.put((t0, t1, n, time.process_time() - c0))


def py_round(sock, model, clients, n, pattern):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(clients)
    results = ctx.Queue()
    procs = [ctx.Process(target=py_client,
                         args=(i, sock, model, n, pattern, barrier, results))
             for i in range(clients)]
    for p in procs:
        p.start()
    got = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit("a Python client failed (exit %s)" % p.exitcode)
    start = min(g[0] for g in got)
    end = max(g[1] for g in got)
    total = sum(g[2] for g in got)
    return total / (end - start), sum(g[3] for g in got) / total * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--requests", type=int, default=300,
                    help="requests per client per round (300)")
    ap.add_argument("--rounds", type=int, default=9,
                    help="rounds of each, alternating (9)")
    ap.add_argument("--clients", type=int, default=4, help="processes (4)")
    ap.add_argument("--model", default="face_detection_short_range")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when the ratio is below the target")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="emx-pybench-")
    proc, sock = start_daemon(tmp)
    try:
        # One unmeasured round each: loads caches, settles the device.
        warm = max(20, a.requests // 10)
        c_round(sock, a.model, a.clients, warm)
        py_round(sock, a.model, a.clients, warm, "invoke")
        py_round(sock, a.model, a.clients, warm, "tflite")
        cs, ps, ts, ccpu, pcpu, tcpu = [], [], [], [], [], []
        total = a.clients * a.requests
        for r in range(a.rounds):
            # Alternate the order within a round too, so that neither side
            # always runs first after the other.
            order = ("c", "invoke", "tflite") if r % 2 == 0 else \
                ("tflite", "invoke", "c")
            for kind in order:
                if kind == "c":
                    t = children_cpu()
                    cs.append(c_round(sock, a.model, a.clients, a.requests))
                    ccpu.append((children_cpu() - t) / total * 1e6)
                else:
                    tput, cpu = py_round(sock, a.model, a.clients,
                                         a.requests, kind)
                    (ps if kind == "invoke" else ts).append(tput)
                    (pcpu if kind == "invoke" else tcpu).append(cpu)
            print("round %d: C %.1f, Python %.1f (%.3f), tflite pattern "
                  "%.1f (%.3f) req/s; client CPU per request: C %.0f, "
                  "Python %.0f, tflite %.0f us"
                  % (r + 1, cs[-1], ps[-1], ps[-1] / cs[-1], ts[-1],
                     ts[-1] / cs[-1], ccpu[-1], pcpu[-1], tcpu[-1]),
                  flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    med = statistics.median
    c_med, p_med, t_med = med(cs), med(ps), med(ts)
    ratio = p_med / c_med
    print("model %s, %d clients x %d requests, device cpu:workers=1,threads=1,"
          " %d rounds" % (a.model, a.clients, a.requests, a.rounds))
    print("median C client (edgemux bench):        %.1f req/s, client CPU "
          "%.0f us/request (whole run)" % (c_med, med(ccpu)))
    print("median Python client (invoke):          %.1f req/s, client CPU "
          "%.0f us/request" % (p_med, med(pcpu)))
    print("median Python, tflite pattern (set_tensor+invoke+get_tensor): "
          "%.1f req/s, client CPU %.0f us/request" % (t_med, med(tcpu)))
    print("best rounds: C %.1f, Python %.1f (%.3f), tflite pattern %.1f "
          "(%.3f) req/s" % (max(cs), max(ps), max(ps) / max(cs), max(ts),
                            max(ts) / max(cs)))
    print("tflite_pattern_ratio: %.3f" % (t_med / c_med))
    print("python_throughput_ratio: %.3f (target >= 0.9)" % ratio)
    return 1 if a.check and ratio < 0.9 else 0


if __name__ == "__main__":
    sys.exit(main())
