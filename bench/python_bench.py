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

Then the synchronous latency of one program, `python_sync_latency_ratio`:
the p50 of set_tensor + invoke + get_tensor (every output) through an
edgemux Interpreter (the model's bytes sent from this process, the
daemon's one CPU worker) divided by the p50 of the same three calls on a
TensorFlow Lite interpreter in this same Python process, one thread
(ctypes over libtensorflowlite_c.so stands in for tflite_runtime, which
wraps the same runtime), with XNNPACK on both sides as tflite_runtime's
wheels and edgemux's cpu device apply it.
The two alternate in blocks of 100 calls so that load on the machine hits
both.
Target <= 1.15.
Then the same pinned alike, `python_sync_latency_ratio_pinned` (report):
TFLite on CPU 1 on both sides (edgemuxd's worker; this process during the
direct blocks), this process on CPU 0 during the edgemux blocks, as
bench-daemon places them. This guest's two vCPUs can differ in speed by a
quarter when the host is busy (the line also times the direct calls on
CPU 0), and unpinned each side's TFLite lands on either, so the unpinned
ratio swings with placement; pinned alike it is edgemux's own cost.

Usage: bench/python_bench.py [-n REQUESTS] [--rounds R] [--clients C]
                             [--model NAME] [--latency N] [--breakdown N]
                             [--throughput 0|1] [--check]
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
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import numpy as np  # noqa: E402

import edgemux.interpreter as tflite  # noqa: E402

BIN = os.environ.get("EDGEMUX_BIN_DIR", os.path.join(ROOT, "build", "bin"))
REPO = os.environ.get("EDGEMUX_REPO_DIR", os.path.join(ROOT, ".deps", "repo"))
MODELS = os.environ.get("EDGEMUX_MODELS_DIR",
                        os.path.join(ROOT, ".deps", "models"))
TFLITE_C = os.environ.get(
    "EDGEMUX_TFLITE_C", os.path.join(ROOT, ".deps", "tflite", "lib",
                                     "libtensorflowlite_c.so"))


class DirectTfLite:
    """TFLite in this process through its C API (what tflite_runtime's
    Interpreter wraps): set_tensor, invoke and get_tensor as it does them
    (get_tensor returns a new array)."""

    def __init__(self, path, threads=1):
        import ctypes

        lib = self.lib = ctypes.CDLL(TFLITE_C)
        P, I, SZ = ctypes.c_void_p, ctypes.c_int32, ctypes.c_size_t
        for name, res, args in (
                ("TfLiteModelCreate", P, [ctypes.c_char_p, SZ]),
                ("TfLiteInterpreterOptionsCreate", P, []),
                ("TfLiteInterpreterOptionsSetNumThreads", None, [P, I]),
                ("TfLiteInterpreterCreate", P, [P, P]),
                ("TfLiteInterpreterAllocateTensors", I, [P]),
                ("TfLiteInterpreterInvoke", I, [P]),
                ("TfLiteInterpreterGetInputTensor", P, [P, I]),
                ("TfLiteInterpreterGetOutputTensor", P, [P, I]),
                ("TfLiteInterpreterGetOutputTensorCount", I, [P]),
                ("TfLiteTensorByteSize", SZ, [P]),
                ("TfLiteTensorCopyFromBuffer", I, [P, P, SZ]),
                ("TfLiteTensorCopyToBuffer", I, [P, P, SZ]),
                ("TfLiteInterpreterOptionsAddDelegate", None, [P, P]),
                ("TfLiteXNNPackDelegateCreate", P, [P])):
            getattr(lib, name).restype = res
            getattr(lib, name).argtypes = args
        with open(path, "rb") as f:
            self.data = f.read()
        self.model = lib.TfLiteModelCreate(self.data, len(self.data))
        opts = lib.TfLiteInterpreterOptionsCreate()
        lib.TfLiteInterpreterOptionsSetNumThreads(opts, threads)
        # XNNPACK, as tflite_runtime's x86 and arm64 wheels apply it by
        # default (and edgemux's cpu device does): {num_threads, flags}.
        xo = (ctypes.c_int32 * 2)(threads if threads > 1 else 0, 0)
        self.xnn = lib.TfLiteXNNPackDelegateCreate(ctypes.addressof(xo))
        lib.TfLiteInterpreterOptionsAddDelegate(opts, self.xnn)
        self.it = lib.TfLiteInterpreterCreate(self.model, opts)
        if not self.it or lib.TfLiteInterpreterAllocateTensors(self.it):
            sys.exit("TFLite cannot run " + path)
        self.tin = lib.TfLiteInterpreterGetInputTensor(self.it, 0)
        self.touts = [lib.TfLiteInterpreterGetOutputTensor(self.it, i)
                      for i in range(
                          lib.TfLiteInterpreterGetOutputTensorCount(self.it))]
        self.sizes = [lib.TfLiteTensorByteSize(t) for t in self.touts]

    def run(self, x):
        lib = self.lib
        if lib.TfLiteTensorCopyFromBuffer(self.tin, x.ctypes.data, x.nbytes):
            sys.exit("TfLiteTensorCopyFromBuffer failed")
        if lib.TfLiteInterpreterInvoke(self.it):
            sys.exit("TfLiteInterpreterInvoke failed")
        outs = []
        for t, n in zip(self.touts, self.sizes):
            o = np.empty(n // 4, np.float32)
            lib.TfLiteTensorCopyToBuffer(t, o.ctypes.data, n)
            outs.append(o)
        return outs


# Calls per block; each side runs a block in turn. Long enough that the
# first calls after the switch (caches holding the other side's weights)
# weigh little, short enough that load on the machine hits both.
BLOCK = 100


def _sides(sock, model):
    """Both sides of the latency comparison on one model: a direct TFLite
    interpreter, an edgemux Interpreter (allocated), its input's details,
    its output indices and a fixed random input."""
    path = os.path.join(MODELS, model + ".tflite")
    direct = DirectTfLite(path)
    interp = tflite.Interpreter(model_path=path, socket=sock)
    interp.allocate_tensors()
    d_in = interp.get_input_details()[0]
    outs = [d["index"] for d in interp.get_output_details()]
    x = np.random.default_rng(3).uniform(
        -1, 1, d_in["shape"]).astype(d_in["dtype"])
    return direct, interp, d_in, outs, x


def last_cpu(pid, tid=None):
    """The CPU a thread last ran on (/proc/PID/task/TID/stat, field 39);
    None when it is gone."""
    path = "/proc/%d/task/%d/stat" % (pid, tid or pid)
    try:
        with open(path) as f:
            return int(f.read().rsplit(")", 1)[1].split()[36])
    except (OSError, IndexError, ValueError):
        return None


def worker_tids(pid):
    """edgemuxd's CPU worker threads ("emx:cpu...")."""
    tids = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().startswith("emx:cpu"):
                    tids.append(int(tid))
        except OSError:
            pass
    return tids


def sync_latency(sock, model, n, entries=(("edgemux", None),
                                          ("direct", None)),
                 where=None):
    """p50 in microseconds over n calls of each entry, in entries' order.
    An entry is (side, place): side "edgemux" or "direct"; place, when not
    None, runs before each of that entry's blocks (to move this process to
    a CPU). The entries take turns in blocks of BLOCK calls. With `where`
    (a dict) and edgemuxd's pid in where["pid"], it also counts, per side,
    the CPU each block's TFLite ended on (edgemuxd's worker, or this
    process): unpinned, the two sides may run on vCPUs of different
    speeds, and the reader should see it."""
    direct, interp, d_in, outs, x = _sides(sock, model)
    workers = worker_tids(where["pid"]) if where else []

    def via_edgemux():
        interp.set_tensor(d_in["index"], x)
        interp.invoke()
        return [interp.get_tensor(i) for i in outs]

    run = {"edgemux": via_edgemux, "direct": lambda: direct.run(x)}
    for _ in range(30):  # warm both
        via_edgemux()
        direct.run(x)
    times = [[] for _ in entries]
    clock = time.perf_counter_ns
    while len(times[0]) < n:
        for (side, place), out in zip(entries, times):
            if place:
                place()
            fn = run[side]
            for _ in range(BLOCK):
                t = clock()
                fn()
                out.append((clock() - t) / 1e3)
            if where is not None and len(workers) == 1:
                cpu = (last_cpu(where["pid"], workers[0]) if side == "edgemux"
                       else last_cpu(os.getpid(), threading.get_native_id()))
                counts = where.setdefault(side, {})
                counts[cpu] = counts.get(cpu, 0) + 1
    return [statistics.median(t) for t in times]


def placement(where):
    """'CPU 0 in 12 of 20 blocks, CPU 1 in 8' for each side in where."""
    parts = []
    for side, who in (("edgemux", "edgemuxd's worker"),
                      ("direct", "this process")):
        counts = where.get(side)
        if not counts:
            continue
        total = sum(counts.values())
        cpus = sorted(counts, key=lambda c: -counts[c])
        text = ", ".join("CPU %s in %d" % (c, counts[c]) for c in cpus)
        parts.append("%s: %s of %d blocks" % (who, text, total))
    return "; ".join(parts)


def pin_daemon(pid, worker_cpus, other_cpus):
    """Pins edgemuxd's CPU worker thread ("emx:cpu...") to the set
    worker_cpus and its other threads to other_cpus; False if no worker
    thread is found."""
    workers = set(worker_tids(pid))
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            os.sched_setaffinity(int(tid), worker_cpus
                                 if int(tid) in workers else other_cpus)
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that just ended
    return bool(workers)


def sync_latency_pinned(sock, model, n, pid):
    """Like sync_latency, with TFLite on CPU 1 on both sides: edgemuxd's
    worker there and this process on CPU 0 for the edgemux blocks, this
    process on CPU 1 for the direct blocks (bench-daemon's placement).
    A 2-vCPU guest's vCPUs can differ in speed by a quarter when the host
    is busy, and unpinned each side's TFLite lands on either; pinned alike,
    the ratio is edgemux's own cost. Also times the direct side on CPU 0,
    to show the two vCPUs' speeds. None on a machine of one CPU."""
    if os.cpu_count() < 2:
        return None
    everything = os.sched_getaffinity(0)
    try:
        if not pin_daemon(pid, {1}, {0}):
            return None
        def cpu(c):
            return lambda: os.sched_setaffinity(0, {c})

        em, dr, dr0 = sync_latency(sock, model, n, (("edgemux", cpu(0)),
                                                    ("direct", cpu(1)),
                                                    ("direct", cpu(0))))
        return em, dr, dr0
    finally:
        os.sched_setaffinity(0, everything)
        pin_daemon(pid, everything, everything)


def _p50(xs):
    return statistics.median(xs) if xs else float("nan")


def sync_breakdown(sock, model, n):
    """Where each side's p50 goes, call by call (same blocks, same input,
    same model as sync_latency; each call timed on its own, so the sums
    carry a few clock reads more than sync_latency's figures).

    edgemux: set_tensor, invoke, get_tensor (all outputs); then the same
    request as one bare emx_client_infer through ctypes (what invoke()
    calls, without the Interpreter's Python) with the daemon's timings:
    send (call -> accepted in the daemon's queue), queue (-> worker
    starts), run (worker: copy in, invoke, copy out), device (the invoke
    alone, inside run), hops (the rest: the INFER's send and the daemon
    I/O thread taking it, the worker's COMPLETE send and this thread's
    wake-up; the client stamps "submitted" before its send and the daemon
    reports queue and total from its own accept, so both hops land here),
    and a PING's round trip (the hops without a sleeping client).
    TFLite: copy in, invoke, copy out (np.empty + TfLiteTensorCopyToBuffer
    per output). Returns lines to print."""
    import ctypes

    from edgemux import _lib

    direct, interp, d_in, outs, x = _sides(sock, model)
    s = interp._get_session()
    lib = _lib.lib()
    tim = _lib.Timings()
    clock = time.perf_counter_ns  # CLOCK_MONOTONIC, the daemon's clock
    keys = ("set", "invoke", "get", "bare", "prep", "queue", "run", "device",
            "hops", "ping", "d_in", "d_invoke", "d_out")
    r = {k: [] for k in keys}

    def em_split():
        t0 = clock()
        interp.set_tensor(d_in["index"], x)
        t1 = clock()
        interp.invoke()
        t2 = clock()
        for i in outs:
            interp.get_tensor(i)
        t3 = clock()
        r["set"].append(t1 - t0)
        r["invoke"].append(t2 - t1)
        r["get"].append(t3 - t2)

    def em_bare():
        t0 = clock()
        rc = lib.emx_client_infer(s.conn.handle, s.model.handle, s.in_arr,
                                  s.nin, s.out_arr, s.nout, ctypes.byref(tim))
        t1 = clock()
        if rc < 0:
            sys.exit("emx_client_infer failed (%d)" % rc)
        r["bare"].append(t1 - t0)
        r["prep"].append(tim.submitted_ns - t0)
        r["queue"].append(tim.started_ns - tim.submitted_ns)
        r["run"].append(tim.finished_ns - tim.started_ns)
        r["device"].append(tim.device_ns)
        r["hops"].append(t1 - tim.finished_ns)

    def ping():  # a block of its own: between requests it would change them
        t0 = clock()
        rc = lib.emx_client_ping(s.conn.handle)
        r["ping"].append(clock() - t0)
        if rc < 0:
            sys.exit("emx_client_ping failed (%d)" % rc)

    def dr_split():
        lib_ = direct.lib
        t0 = clock()
        lib_.TfLiteTensorCopyFromBuffer(direct.tin, x.ctypes.data, x.nbytes)
        t1 = clock()
        lib_.TfLiteInterpreterInvoke(direct.it)
        t2 = clock()
        for t, nb in zip(direct.touts, direct.sizes):
            o = np.empty(nb // 4, np.float32)
            lib_.TfLiteTensorCopyToBuffer(t, o.ctypes.data, nb)
        t3 = clock()
        r["d_in"].append(t1 - t0)
        r["d_invoke"].append(t2 - t1)
        r["d_out"].append(t3 - t2)

    for _ in range(30):
        em_split()
        em_bare()
        ping()
        dr_split()
    for k in keys:
        r[k].clear()
    while len(r["set"]) < n:
        for fn in (em_split, em_bare, ping, dr_split):
            for _ in range(BLOCK):
                fn()
    m = {k: _p50(v) / 1e3 for k, v in r.items()}
    py = python_only(interp, d_in["index"], x, outs)
    return [
        "breakdown p50 (us), %d calls each:" % n,
        "  edgemux: set_tensor %.1f, invoke %.1f, get_tensor %.1f "
        "(sum %.1f)" % (m["set"], m["invoke"], m["get"],
                        m["set"] + m["invoke"] + m["get"]),
        "  bare emx_client_infer %.1f: client prep %.1f, daemon queue %.1f, "
        "worker run %.1f (device %.1f), socket hops + wake-ups %.1f; a PING "
        "round trip %.1f" % (m["bare"], m["prep"], m["queue"], m["run"],
                             m["device"], m["hops"], m["ping"]),
        "  TFLite: copy in %.1f, invoke %.1f, copy out %.1f (sum %.1f)"
        % (m["d_in"], m["d_invoke"], m["d_out"],
           m["d_in"] + m["d_invoke"] + m["d_out"]),
        "  edgemux - TFLite: set %+.1f, invoke %+.1f, get %+.1f"
        % (m["set"] - m["d_in"], m["invoke"] - m["d_invoke"],
           m["get"] - m["d_out"]),
        "  Python alone (best of 5 x 2000, daemon call replaced by a no-op C "
        "function): invoke() %.2f (the no-op through ctypes %.2f), "
        "set_tensor %.2f (the copy alone %.2f), get_tensor x%d %.2f (the "
        "copies alone %.2f)" % py,
    ]


def python_only(interp, index, x, outs):
    """The Interpreter's own cost per call in us, without the daemon:
    invoke() with its emx_client_infer swapped for labs() (no argtypes, so
    it takes the same arguments and returns >= 0 at once), and
    set_tensor/get_tensor beside the numpy copies they make."""
    import ctypes
    import timeit

    s = interp._get_session()
    noop = ctypes.CDLL(None)["labs"]
    noop.restype = ctypes.c_int
    args = (s.conn.handle, s.model.handle, s.in_arr,
            ctypes.c_size_t(s.nin), s.out_arr, ctypes.c_size_t(s.nout), None)
    view_in = interp._fast[index][2]
    views = [interp._fast[i][2] for i in outs]

    def best(fn):
        return min(timeit.repeat(fn, number=2000, repeat=5)) / 2000 * 1e6

    saved = s.call  # the call invoke() makes, built at allocation
    s.call = (noop, args)
    try:
        inv = best(interp.invoke)
    finally:
        s.call = saved
    return (inv, best(lambda: noop(*args)),
            best(lambda: interp.set_tensor(index, x)),
            best(lambda: np.copyto(view_in, x)), len(outs),
            best(lambda: [interp.get_tensor(i) for i in outs]),
            best(lambda: [v.copy() for v in views]))


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
    ap.add_argument("--latency", type=int, default=1000,
                    help="synchronous calls measured on each side (1000; 0 "
                    "skips the latency part)")
    ap.add_argument("--breakdown", type=int, default=0,
                    help="N: after the latency part, time each call of "
                    "both sides separately over N calls each (0: skip)")
    ap.add_argument("--throughput", type=int, default=1,
                    help="0 skips the throughput part")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when a ratio misses its target")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="emx-pybench-")
    proc, sock = start_daemon(tmp)
    lat = pinned = None
    breakdown = []
    cs, ps, ts, ccpu, pcpu, tcpu = [0.0], [0.0], [0.0], [0.0], [0.0], [0.0]
    try:
        if a.latency:
            where = {"pid": proc.pid}
            lat = sync_latency(sock, a.model, a.latency, where=where)
            pinned = sync_latency_pinned(sock, a.model, a.latency, proc.pid)
        if a.breakdown:
            breakdown = sync_breakdown(sock, a.model, a.breakdown)
        if a.throughput:
            cs, ps, ts, ccpu, pcpu, tcpu = throughput(sock, a)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    bad = False
    if lat:
        lratio = lat[0] / lat[1]
        print("sync p50 of set_tensor+invoke+get_tensor, %s, one CPU "
              "worker/thread: edgemux %.1f us, TFLite in-process %.1f us "
              "(%d calls each)" % (a.model, lat[0], lat[1], a.latency))
        print("python_sync_latency_ratio: %.3f (target <= 1.15; unpinned, "
              "TFLite ran on %s)" % (lratio, placement(where) or "?"))
        bad |= lratio > 1.15
    if pinned:
        print("python_sync_latency_ratio_pinned: %.3f (report; TFLite on CPU "
              "1 on both sides: edgemuxd's worker, or this process for the "
              "direct blocks; this process on CPU 0 for the edgemux blocks: "
              "edgemux %.1f us, TFLite in-process %.1f us; the same direct "
              "calls on CPU 0: %.1f us, so CPU 1 runs them at %.2fx CPU 0's "
              "time)" % (pinned[0] / pinned[1], pinned[0], pinned[1],
                          pinned[2], pinned[1] / pinned[2]))
    for line in breakdown:
        print(line)
    if not a.throughput:
        return 1 if a.check and bad else 0
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
    bad |= ratio < 0.9
    return 1 if a.check and bad else 0


def throughput(sock, a):
    if True:
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
    return cs, ps, ts, ccpu, pcpu, tcpu


if __name__ == "__main__":
    sys.exit(main())
