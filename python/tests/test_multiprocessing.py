"""The classic failure report's first pattern: a multiprocessing.Pool of 5
workers, each invoking — with fork and with spawn, with an Interpreter made
in each worker, one pickled from the parent, and one inherited by fork."""

import multiprocessing
import os
import unittest

import support

import numpy as np

import edgemux.interpreter as tflite
import workers

SEEDS = range(200, 215)
TIMEOUT = 120  # seconds a pool's work may take before the test fails


def setUpModule():
    support.daemon()


class PoolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.want = support.expected(support.FACE, SEEDS)

    def check(self, results):
        self.assertEqual(len(results), len(SEEDS))
        pids = set()
        for seed, (pid, got) in zip(SEEDS, results):
            pids.add(pid)
            want = self.want[seed][1]
            self.assertEqual(len(got), len(want))
            for g, w in zip(got, want):
                self.assertTrue(np.array_equal(g, w),
                                "seed %d: outputs differ from the C engine"
                                % seed)
        self.assertNotIn(os.getpid(), pids)

    def pool(self, method):
        """One Pool of 5 workers (a start method's cost is paid once): each
        worker makes its own Interpreter in the initializer and runs it;
        then Interpreters pickled from the parent run in the workers."""
        interp = tflite.Interpreter(model_path=support.FACE)
        interp.allocate_tensors()
        ctx = multiprocessing.get_context(method)
        with ctx.Pool(5, initializer=workers.init_worker,
                      initargs=(support.FACE,)) as pool:
            own = pool.map_async(workers.invoke_own,
                                 [self.want[s][0] for s in SEEDS],
                                 chunksize=1).get(TIMEOUT)
            given = pool.map_async(workers.invoke_given,
                                   [(interp, self.want[s][0]) for s in SEEDS],
                                   chunksize=1).get(TIMEOUT)
        self.check(own)
        self.check(given)
        # The parent's own connection is untouched.
        self.assertTrue(np.array_equal(
            workers._run(interp, self.want[SEEDS[0]][0])[0],
            self.want[SEEDS[0]][1][0]))

    def test_pool_fork(self):
        self.pool("fork")

    def test_pool_spawn(self):
        self.pool("spawn")

    def test_pool_fork_inherited_interpreter(self):
        """A connected Interpreter made before the fork, used by every
        worker: each reconnects on first use; the parent keeps working."""
        interp = tflite.Interpreter(model_path=support.FACE)
        ins, outs = self.want[SEEDS[0]]
        self.assertTrue(np.array_equal(workers._run(interp, ins)[0], outs[0]))
        workers.INHERITED = interp
        try:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(5) as pool:
                res = pool.map_async(workers.invoke_inherited,
                                     [self.want[s][0] for s in SEEDS],
                                     chunksize=1).get(TIMEOUT)
        finally:
            workers.INHERITED = None
        self.check(res)
        self.assertTrue(np.array_equal(workers._run(interp, ins)[1], outs[1]))

    def test_fork_child_keeps_input_values(self):
        """set_tensor in the parent, invoke in a forked child: the child's
        new arena gets the values, like a forked TFLite interpreter."""
        interp = tflite.Interpreter(model_path=support.FACE)
        interp.allocate_tensors()
        ins, outs = self.want[SEEDS[1]]
        interp.set_tensor(0, ins[0])
        ctx = multiprocessing.get_context("fork")
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_child_invoke, args=(interp, w))
        p.start()
        w.close()
        if not r.poll(TIMEOUT):
            p.kill()
            self.fail("the forked child did not answer")
        got = r.recv()
        p.join(TIMEOUT)
        self.assertEqual(p.exitcode, 0)
        self.assertTrue(np.array_equal(got[0], outs[0]))
        self.assertTrue(np.array_equal(got[1], outs[1]))


def _child_invoke(interp, conn):
    interp.invoke()
    conn.send([interp.get_tensor(d["index"])
               for d in interp.get_output_details()])
    conn.close()


if __name__ == "__main__":
    unittest.main()
