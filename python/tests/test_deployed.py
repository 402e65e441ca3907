"""Against edgemuxd as deployed (packaging/systemd): its own user, the
packaged configuration (packaging/config/edgemuxd.json, only the paths
moved into a temporary directory), no special flags; the program's model
file readable only by the program. The seed's three patterns: a
multiprocessing.Pool passing the Interpreter, a sequential loop,
asyncio.gather.
"""

import asyncio
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import support

import numpy as np

import edgemux
import edgemux.interpreter as tflite

import workers

NOBODY = 65534
SEEDS = list(range(300, 308))
TIMEOUT = 120


def _as_daemon_user():
    return ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
            "--clear-groups", "--pdeathsig", "TERM", "--"]


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"),
                     "starting edgemuxd as its own user needs root and "
                     "setpriv")
class DeployedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="emx-deployed-")
        os.chmod(cls.dir, 0o755)
        run_dir = os.path.join(cls.dir, "run")
        models = os.path.join(cls.dir, "models")
        os.mkdir(run_dir)
        os.mkdir(models)
        os.chown(run_dir, NOBODY, NOBODY)  # tmpfiles.d: /run/edgemux
        with open(os.path.join(support.ROOT, "packaging", "config",
                               "edgemuxd.json")) as f:
            cfg = json.load(f)
        cfg["socket"] = os.path.join(run_dir, "edgemux.sock")
        cfg["models"] = models
        cls.cfg = os.path.join(cls.dir, "edgemuxd.json")
        with open(cls.cfg, "w") as f:
            json.dump(cfg, f)
        cls.socket = cfg["socket"]
        # The program's model: in a directory only root may enter.
        private = os.path.join(cls.dir, "private")
        os.mkdir(private, 0o700)
        cls.model = os.path.join(private, "face_detection_short_range.tflite")
        shutil.copy(support.FACE, cls.model)
        os.chmod(cls.model, 0o600)
        cls.log = open(os.path.join(cls.dir, "edgemuxd.log"), "wb")
        cls.proc = subprocess.Popen(
            _as_daemon_user() + [os.path.join(support.BIN_DIR, "edgemuxd"),
                                 "--config", cls.cfg],
            stdout=cls.log, stderr=cls.log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not os.path.exists(cls.socket):
            if cls.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("edgemuxd did not start: " +
                                   cls.log_text())
            time.sleep(0.05)
        cls.old_env = os.environ.get("EDGEMUX_SOCKET")
        os.environ["EDGEMUX_SOCKET"] = cls.socket
        cls.want = support.expected(support.FACE, SEEDS)

    @classmethod
    def log_text(cls):
        with open(os.path.join(cls.dir, "edgemuxd.log"), errors="replace") as f:
            return f.read()

    @classmethod
    def tearDownClass(cls):
        if cls.old_env is None:
            os.environ.pop("EDGEMUX_SOCKET", None)
        else:
            os.environ["EDGEMUX_SOCKET"] = cls.old_env
        cls.proc.terminate()
        cls.proc.wait(10)
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def check(self, got, want):
        for g, w in zip(got, want):
            self.assertEqual(g.tobytes(), w.tobytes())

    def test_0_daemon_cannot_read_the_model(self):
        r = subprocess.run(_as_daemon_user() + ["cat", self.model],
                           capture_output=True)
        self.assertNotEqual(r.returncode, 0)
        st = os.stat("/proc/%d" % self.proc.pid)
        self.assertEqual(st.st_uid, NOBODY)

    def test_sequential_loop(self):
        interp = tflite.Interpreter(model_path=self.model)
        interp.allocate_tensors()
        for s in SEEDS:
            ins, outs = self.want[s]
            self.check(workers._run(interp, ins), outs)
        with open(self.model, "rb") as f:
            content = tflite.Interpreter(model_content=f.read())
        self.check(workers._run(content, self.want[SEEDS[0]][0]),
                   self.want[SEEDS[0]][1])

    def test_pool_passing_the_interpreter(self):
        interp = tflite.Interpreter(model_path=self.model)
        interp.allocate_tensors()
        for method in ("fork", "spawn"):
            with self.subTest(method):
                ctx = multiprocessing.get_context(method)
                with ctx.Pool(3) as pool:
                    res = pool.map_async(
                        workers.invoke_given,
                        [(interp, self.want[s][0]) for s in SEEDS],
                        chunksize=1).get(TIMEOUT)
                for s, (_, got) in zip(SEEDS, res):
                    self.check(got, self.want[s][1])

    def test_asyncio_gather(self):
        async def main():
            loop = asyncio.get_running_loop()
            pool = concurrent.futures.ThreadPoolExecutor(4)
            # One Interpreter per task, as with TFLite (an interpreter is
            # not for two threads at once); all share one connection.
            interps = [tflite.Interpreter(model_path=self.model)
                       for _ in SEEDS]
            jobs = [loop.run_in_executor(pool, workers._run,
                                         interps[i], self.want[s][0])
                    for i, s in enumerate(SEEDS)]
            # edgemux.aio: the file's bytes travel the same way.
            async with await edgemux.aio.connect() as client:
                jobs += [client.infer(self.model, self.want[s][0])
                         for s in SEEDS]
                out = await asyncio.gather(*jobs)
            pool.shutdown()
            return out

        out = asyncio.run(main())
        for s, got in zip(SEEDS + SEEDS, out):
            self.check(got, self.want[s][1])

    def test_z_one_copy_in_the_daemon(self):
        """Every process above sent the same bytes: one model."""
        with open(support.FACE, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        c = edgemux._client.Connection(self.socket, arena_bytes=0)
        try:
            status = c.status()
        finally:
            c.close()
        lines = [ln for ln in status.splitlines()
                 if ln.startswith("model ") and
                 "sha256=" + digest[:16] in ln]
        self.assertEqual(len(lines), 1, status)


if __name__ == "__main__":
    unittest.main()
