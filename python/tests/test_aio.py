"""The classic failure report's third pattern: asyncio.gather of many
requests, here over one edgemux.aio connection."""

import asyncio
import os
import unittest

import support

import numpy as np

import edgemux
import edgemux.aio

SEEDS = range(300, 340)


def setUpModule():
    support.daemon()


class AioTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.face = support.expected(support.FACE, SEEDS)
        cls.hand = support.expected(support.HAND, range(400, 408))

    def assertOutputs(self, got, want, what=""):
        self.assertEqual(len(got), len(want))
        for g, w in zip(got, want):
            self.assertEqual(g.shape, w.shape)
            self.assertTrue(np.array_equal(g, w),
                            "%s: outputs differ from the C engine" % what)

    def test_gather_one_connection_in_order(self):
        async def main():
            client = await edgemux.aio.connect()
            ticks = 0
            done = False

            async def ticker():  # the loop must keep running meanwhile
                nonlocal ticks
                while not done:
                    ticks += 1
                    await asyncio.sleep(0)

            t = asyncio.create_task(ticker())
            results = await asyncio.gather(*(
                client.infer("face_detection_short_range", self.face[s][0])
                for s in SEEDS))
            done = True
            await t
            await client.close()
            return results, ticks

        results, ticks = asyncio.run(main())
        self.assertGreater(ticks, len(SEEDS))
        for s, got in zip(SEEDS, results):
            self.assertOutputs(got, self.face[s][1], "seed %d" % s)

    def test_mixed_models_dict_inputs_and_paths(self):
        async def main():
            async with await edgemux.aio.connect(arena_bytes=4 << 20,
                                                 max_inflight=8) as client:
                hand = await client.model(support.HAND)  # LOAD by path
                self.assertTrue(hand.name.startswith("hand_landmark_lite-"))
                name = client.model("face_detection_short_range")
                face = await name
                self.assertEqual(face.inputs[0]["shape"], (1, 128, 128, 3))
                jobs = []
                for i, s in enumerate(SEEDS[:16]):
                    x = self.face[s][0][0]
                    jobs.append(client.infer(face, {"input": x}) if i % 2 else
                                client.infer(support.FACE, [x]))
                for s in range(400, 408):
                    jobs.append(client.infer(hand, self.hand[s][0]))
                return await asyncio.gather(*jobs)

        results = asyncio.run(main())
        for s, got in zip(SEEDS[:16], results[:16]):
            self.assertOutputs(got, self.face[s][1], "face seed %d" % s)
        for s, got in zip(range(400, 408), results[16:]):
            self.assertOutputs(got, self.hand[s][1], "hand seed %d" % s)

    def test_small_arena_requests_wait_for_space(self):
        """An arena that holds 3 requests' tensors, 24 requests at once:
        the rest wait for completions to free space."""
        async def main():
            client = await edgemux.aio.connect(arena_bytes=800 << 10,
                                               max_inflight=64)
            try:
                return await asyncio.gather(*(
                    client.infer("face_detection_short_range", self.face[s][0])
                    for s in SEEDS[:24]))
            finally:
                await client.close()

        for s, got in zip(SEEDS[:24], asyncio.run(main())):
            self.assertOutputs(got, self.face[s][1], "seed %d" % s)

    def test_client_used_after_fork(self):
        """A client made before fork() reconnects in the child."""
        async def parent():
            return await edgemux.aio.connect()

        loop = asyncio.new_event_loop()
        client = loop.run_until_complete(parent())
        x = self.face[SEEDS[2]][0]
        loop.run_until_complete(client.infer("face_detection_short_range", x))
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its own loop, the inherited client
            ok = 0
            try:
                got = asyncio.run(client.infer("face_detection_short_range",
                                               x))
                ok = all(np.array_equal(g, e)
                         for g, e in zip(got, self.face[SEEDS[2]][1]))
            finally:
                os.write(w, b"1" if ok else b"0")
                os._exit(0)
        os.close(w)
        self.assertEqual(os.read(r, 1), b"1")
        os.close(r)
        os.waitpid(pid, 0)
        got = loop.run_until_complete(
            client.infer("face_detection_short_range", x))
        self.assertOutputs(got, self.face[SEEDS[2]][1])
        loop.run_until_complete(client.close())
        loop.close()

    def test_errors(self):
        async def main():
            client = await edgemux.aio.connect()
            try:
                with self.assertRaises(edgemux.EdgemuxError) as cm:
                    await client.infer("no_such_model", [])
                self.assertEqual(cm.exception.code, edgemux.EMX_ENOENT)
                self.assertIn("no_such_model", str(cm.exception))
                x = self.face[SEEDS[0]][0][0]
                with self.assertRaises(ValueError):
                    await client.infer("face_detection_short_range",
                                       [x[:, :64]])
                with self.assertRaises(ValueError):
                    await client.infer("face_detection_short_range",
                                       [x.astype(np.float64)])
                with self.assertRaises(ValueError):
                    await client.infer("face_detection_short_range",
                                       {"image": x})
                with self.assertRaises(ValueError):
                    await client.infer("face_detection_short_range", [x, x])
                # The connection still works after refused requests.
                got = await client.infer("face_detection_short_range", [x])
                self.assertOutputs(got, self.face[SEEDS[0]][1])
            finally:
                await client.close()
            with self.assertRaises(edgemux.EdgemuxError):
                await client.infer("face_detection_short_range", [x])

        asyncio.run(main())

    def test_cancel_reaches_the_daemon(self):
        """A wait_for timeout (a cancelled task) cancels the daemon's
        queued requests: they never run. Before, all of them ran for
        nobody."""
        n = 300

        def ran(client):
            text = client._conn.status()
            # (requests run, requests cancelled): a cancelled request is
            # counted in a device's requests and errors both.
            ok = err = 0
            for line in text.splitlines():
                if line.startswith("device "):
                    kv = dict(w.split("=", 1) for w in line.split()[2:]
                              if "=" in w)
                    ok += int(kv["requests"]) - int(kv["errors"])
                    err += int(kv["errors"])
            return ok, err

        async def main():
            client = await edgemux.aio.connect()
            try:
                x = self.face[SEEDS[0]][0][0]
                await client.infer("face_detection_short_range", [x])
                before = ran(client)
                jobs = asyncio.gather(*[
                    client.infer("face_detection_short_range", [x])
                    for _ in range(n)])
                with self.assertRaises(asyncio.TimeoutError):
                    await asyncio.wait_for(jobs, 0.05)
                # Every request completes one way or the other; then count.
                while client._inflight:
                    await asyncio.sleep(0.01)
                after = ran(client)
                done, dropped = (after[0] - before[0], after[1] - before[1])
                print("%d of %d requests ran, %d cancelled in the daemon "
                      "after the timeout" % (done, n, dropped))
                # The ones sent and not started when the timeout fired were
                # cancelled in the daemon (before: all of them ran).
                self.assertGreater(dropped, 0)
                self.assertLess(done, n)
                # The connection is fine afterwards.
                got = await client.infer("face_detection_short_range", [x])
                self.assertOutputs(got, self.face[SEEDS[0]][1])
            finally:
                await client.close()

        asyncio.run(main())

    def test_daemon_down(self):
        async def main():
            sock = os.path.join(support.daemon().dir, "nobody-here.sock")
            with self.assertRaises(edgemux.EdgemuxError) as cm:
                await edgemux.aio.connect(sock)
            self.assertEqual(cm.exception.name, "EMX_EDISCONNECTED")
            self.assertIn(sock, str(cm.exception))

        asyncio.run(main())


if __name__ == "__main__":
    unittest.main()
