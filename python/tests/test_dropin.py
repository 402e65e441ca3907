"""The drop-in promise (issue 14): a tflite_runtime or pycoral program runs
unchanged but for its import, on quantized, Edge TPU-compiled and float
models, against TensorFlow Lite's own answers (its C API, in this process).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import support

import numpy as np

import edgemux
import edgemux.interpreter as tflite
from edgemux import utils

import pycoral_min as pycoral

FIX = support.FIXTURES
QU8 = os.path.join(FIX, "quant_uint8.tflite")
QI8 = os.path.join(FIX, "quant_int8_pc.tflite")
QTPU = os.path.join(FIX, "quant_uint8_edgetpu.tflite")
DET = os.path.join(FIX, "detect.tflite")
DET_SIG = os.path.join(FIX, "detect_signature.tflite")
SPARSE = os.path.join(support.MODELS_DIR,
                      "face_detection_full_range_sparse.tflite")

KEYS = {"name", "index", "shape", "shape_signature", "dtype", "quantization",
        "quantization_parameters", "sparsity_parameters"}


def setUpModule():
    support.daemon()


def random_input(det, rng):
    dt = np.dtype(det["dtype"])
    if dt.kind == "f":
        return rng.random(det["shape"], dtype=np.float32).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=det["shape"],
                        endpoint=True).astype(dt)


def direct(path, inputs):
    """TFLite's own outputs for inputs (a list of arrays)."""
    d = support.TfLiteDirect(path)
    try:
        for i, x in enumerate(inputs):
            d.set_input(i, x)
        d.invoke()
        outs = []
        lib = d.lib
        n = lib.TfLiteInterpreterGetOutputTensorCount(d.interp)
        for i in range(n):
            t = lib.TfLiteInterpreterGetOutputTensor(d.interp, i)
            buf = np.empty(lib.TfLiteTensorByteSize(t), np.uint8)
            outs.append(d.get_output(i, buf))
        return outs
    finally:
        d.close()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def run(interp, inputs):
    interp.allocate_tensors()
    for det, x in zip(interp.get_input_details(), inputs):
        interp.set_tensor(det["index"], x)
    interp.invoke()
    return [interp.get_tensor(det["index"])
            for det in interp.get_output_details()]


def stub_expected(inputs, n_out, sizes):
    """What the stub libedgetpu's edgetpu-custom-op computes
    (tests/stub/edgetpu_stub.c)."""
    x = np.concatenate([np.asarray(a).view(np.uint8).reshape(-1)
                        for a in inputs]).astype(np.int64)
    s = int(x.sum()) % 256
    outs = []
    for k in range(n_out):
        i = np.arange(sizes[k])
        outs.append(((x[i % len(x)] + s + k + i) % 256).astype(np.uint8))
    return outs


class DetailsTest(unittest.TestCase):
    """Key by key and type by type, as TFLite 2.9's Python API has them."""

    def check_types(self, d):
        self.assertEqual(set(d), KEYS)
        self.assertIsInstance(d["name"], str)
        self.assertIsInstance(d["index"], int)
        for k in ("shape", "shape_signature"):
            self.assertIsInstance(d[k], np.ndarray)
            self.assertEqual(d[k].dtype, np.int32)
        self.assertTrue(isinstance(d["dtype"], type)
                        and issubclass(d["dtype"], np.generic))
        self.assertIsInstance(d["quantization"], tuple)
        self.assertIsInstance(d["quantization"][0], float)
        self.assertIsInstance(d["quantization"][1], int)
        qp = d["quantization_parameters"]
        self.assertEqual(set(qp), {"scales", "zero_points",
                                   "quantized_dimension"})
        self.assertEqual(qp["scales"].dtype, np.float32)
        self.assertEqual(qp["zero_points"].dtype, np.int32)
        self.assertIsInstance(qp["quantized_dimension"], int)
        self.assertIsInstance(d["sparsity_parameters"], dict)

    def test_quantized_io_details(self):
        for path, dt, (scale, zp) in ((QU8, np.uint8, (0.007812, 128)),
                                      (QI8, np.int8, (0.003922, -128))):
            with self.subTest(os.path.basename(path)):
                it = tflite.Interpreter(model_path=path)
                ins, outs = it.get_input_details(), it.get_output_details()
                idx = support.tflite_io_indices(path)
                self.assertEqual([d["index"] for d in ins + outs], idx)
                for d in ins + outs:
                    self.check_types(d)
                    self.assertIs(d["dtype"], dt)
                self.assertEqual(ins[0]["shape"].tolist(), [1, 16, 16, 3])
                self.assertEqual(outs[0]["shape"].tolist(), [1, 10])
                self.assertAlmostEqual(ins[0]["quantization"][0], scale, 6)
                self.assertEqual(ins[0]["quantization"][1], zp)
                qp = ins[0]["quantization_parameters"]
                self.assertEqual(qp["scales"].tolist(),
                                 [np.float32(ins[0]["quantization"][0])])
                self.assertEqual(qp["zero_points"].tolist(), [zp])
                # The engine's own description agrees (emx_tensor_info).
                o = support.Oracle.get(path)
                self.assertAlmostEqual(o.inputs[0]["scale"],
                                       ins[0]["quantization"][0], 7)
                self.assertEqual(o.inputs[0]["zero_point"], zp)

    def test_every_tensor_and_per_channel_weights(self):
        it = tflite.Interpreter(model_path=QI8)
        it.allocate_tensors()
        all_ = it.get_tensor_details()
        self.assertEqual(len(all_), 8)
        self.assertEqual([d["index"] for d in all_], list(range(8)))
        for d in all_:
            self.check_types(d)
        pc = [d for d in all_
              if d["quantization_parameters"]["scales"].size > 1]
        self.assertTrue(pc, "the conv's per-channel weights are listed")
        for d in pc:
            n = d["shape"][0]
            self.assertEqual(d["quantization_parameters"]["scales"].size, n)
            self.assertEqual(d["quantization_parameters"]["zero_points"].size,
                             n)
            self.assertEqual(d["quantization_parameters"]
                             ["quantized_dimension"], 0)
            # TFLite reports per-channel tensors as (0.0, 0).
            self.assertEqual(d["quantization"], (0.0, 0))
        # A constant has its value; an intermediate says why it has none.
        w = pc[0]
        self.assertEqual(it.get_tensor(w["index"]).shape, tuple(w["shape"]))
        io = {d["index"] for d in it.get_input_details() +
              it.get_output_details()}
        inter = [d for d in all_ if d["index"] not in io
                 and it._file.tensors[d["index"]].data is None]
        self.assertTrue(inter)
        with self.assertRaises(ValueError) as cm:
            it.get_tensor(inter[0]["index"])
        self.assertIn("intermediate tensor", str(cm.exception))
        with self.assertRaises(ValueError):
            it.set_tensor(inter[0]["index"], np.zeros(1, np.int8))

    def test_sparsity_and_shape_signature(self):
        it = tflite.Interpreter(model_path=SPARSE)
        sparse = [d for d in it.get_tensor_details()
                  if d["sparsity_parameters"]]
        self.assertTrue(sparse)
        sp = sparse[0]["sparsity_parameters"]
        self.assertEqual(set(sp), {"traversal_order", "block_map",
                                   "dim_metadata"})
        self.assertEqual(sp["traversal_order"].dtype, np.int32)
        for dm in sp["dim_metadata"]:
            self.assertIn(dm["format"], (0, 1))
            if dm["format"] == 0:
                self.assertIsInstance(dm["dense_size"], int)
            else:
                self.assertEqual(dm["array_indices"].dtype, np.int32)
                self.assertEqual(dm["array_segments"].dtype, np.int32)
        d = it.get_input_details()[0]
        self.assertEqual(d["shape_signature"].tolist(), d["shape"].tolist())


class QuantizedRunTest(unittest.TestCase):
    def test_outputs_equal_tflite(self):
        """Quantized models byte for byte against TFLite; float ones byte
        for byte against the engine's direct invoke (same kernels) and
        to float rounding against TFLite without XNNPACK."""
        rng = np.random.default_rng(14)
        for path in (QU8, QI8, support.FACE, DET):
            with self.subTest(os.path.basename(path)):
                it = tflite.Interpreter(model_path=path)
                for _ in range(3):
                    ins = [random_input(d, rng)
                           for d in it.get_input_details()]
                    got = run(it, ins)
                    want = direct(path, ins)
                    if got[0].dtype.kind != "f":
                        for g, w in zip(got, want):
                            self.assertEqual(g.tobytes(), w.tobytes())
                        continue
                    oracle = support.Oracle.get(path).infer(ins)
                    for g, o, w in zip(got, oracle, want):
                        self.assertEqual(g.tobytes(), o.tobytes())
                        np.testing.assert_allclose(
                            g.reshape(-1), w.view(g.dtype), rtol=1e-4,
                            atol=1e-3)

    def test_pycoral_classify(self):
        rng = np.random.default_rng(5)
        for path in (QU8, QI8):
            with self.subTest(os.path.basename(path)):
                it = utils_interpreter(path)
                it.allocate_tensors()
                self.assertEqual(pycoral.input_size(it), (16, 16))
                self.assertEqual(pycoral.num_classes(it), 10)
                x = random_input(it.get_input_details()[0], rng)
                pycoral.set_input(it, x[0])
                it.invoke()
                classes = pycoral.get_classes(it, top_k=3)
                raw = direct(path, [x])[0].view(
                    it.get_output_details()[0]["dtype"])
                scale, zp = it.get_output_details()[0]["quantization"]
                scores = scale * (raw.astype(np.int64) - zp)
                want = pycoral.get_classes_from_scores(scores, top_k=3)
                self.assertEqual([c.id for c in classes],
                                 [c.id for c in want])
                self.assertEqual([c.score for c in classes],
                                 [c.score for c in want])
                # pycoral's run_inference: raw bytes into input 0.
                utils.run_inference(it, x.tobytes())
                self.assertEqual(it.get_tensor(
                    it.get_output_details()[0]["index"]).tobytes(),
                    raw.tobytes())
                with self.assertRaises(ValueError):
                    utils.run_inference(it, b"short")

    def test_pycoral_detect_with_and_without_signature(self):
        rng = np.random.default_rng(7)
        for path in (DET, DET_SIG):
            with self.subTest(os.path.basename(path)):
                it = tflite.Interpreter(model_path=path)
                it.allocate_tensors()
                img = rng.random((8, 8, 3), dtype=np.float32)
                _, scale = pycoral.set_resized_input(
                    it, (16, 16), lambda size: img[:size[1], :size[0]])
                self.assertEqual(scale, (0.5, 0.5))
                it.invoke()
                objs = pycoral.get_objects(it, score_threshold=0.0,
                                           image_scale=scale)
                x = np.zeros((1, 8, 8, 3), np.float32)
                x[0, :8, :8] = img
                boxes, classes, scores, _ = support.Oracle.get(path).infer(
                    [x])
                boxes = boxes.reshape(-1, 4)
                classes = classes.reshape(-1)
                scores = scores.reshape(-1)
                self.assertEqual(len(objs), len(scores))
                for o, b, c, s in zip(objs, boxes, classes, scores):
                    self.assertEqual(o.id, int(c))
                    self.assertEqual(o.score, float(s))
                    ymin, xmin, ymax, xmax = b
                    self.assertEqual(o.bbox, pycoral.BBox(
                        xmin, ymin, xmax, ymax).scale(16, 16).map(int))
                # A view from tensor() outlived the adapter? No: invoke is
                # allowed again (TFLite's reference check).
                it.invoke()

    def test_signatures(self):
        it = tflite.Interpreter(model_path=DET_SIG)
        self.assertEqual(it.get_signature_list(), {"serving_default": {
            "inputs": ["images"],
            "outputs": ["output_0", "output_1", "output_2", "output_3"]}})
        full = it._get_full_signature_list()
        outs = {d["name"].split("/")[0]: d["index"]
                for d in it.get_output_details()}
        self.assertEqual(full["serving_default"]["outputs"], {
            "output_0": outs["num_detections"],
            "output_1": outs["detection_scores"],
            "output_2": outs["detection_classes"],
            "output_3": outs["detection_boxes"]})
        self.assertEqual(full["serving_default"]["inputs"], {"images": 0})
        runner = it.get_signature_runner()
        self.assertEqual(set(runner.get_input_details()), {"images"})
        x = np.random.default_rng(3).random((1, 8, 8, 3), dtype=np.float32)
        got = runner(images=x)
        boxes, classes, scores, count = support.Oracle.get(DET_SIG).infer(
            [x])
        self.assertEqual(got["output_0"].tobytes(), count.tobytes())
        self.assertEqual(got["output_1"].tobytes(), scores.tobytes())
        self.assertEqual(got["output_3"].tobytes(), boxes.tobytes())
        with self.assertRaises(ValueError):
            it.get_signature_runner("nope")
        with self.assertRaises(ValueError):
            runner()  # inputs missing
        self.assertEqual(tflite.Interpreter(model_path=DET)
                         .get_signature_list(), {})


def utils_interpreter(path):
    """A plain Interpreter (this daemon has no Edge TPU)."""
    return tflite.Interpreter(model_path=path)


class LifecycleTest(unittest.TestCase):
    """What TFLite raises, raised the same way."""

    def test_before_allocate_tensors(self):
        it = tflite.Interpreter(model_path=QU8)
        with self.assertRaises(RuntimeError) as cm:
            it.invoke()
        self.assertIn("Invoke called on model that is not ready",
                      str(cm.exception))
        with self.assertRaises(ValueError) as cm:
            it.set_tensor(0, np.zeros((1, 16, 16, 3), np.uint8))
        self.assertIn("allocate_tensors", str(cm.exception))
        with self.assertRaises(ValueError):
            it.tensor(0)()
        it.allocate_tensors()
        it.invoke()

    def test_reference_held(self):
        it = tflite.Interpreter(model_path=QU8)
        it.allocate_tensors()
        view = it.tensor(0)()
        part = view[0, :2]  # a slice holds it too
        del view
        for call in (it.invoke, it.allocate_tensors,
                     lambda: it.resize_tensor_input(0, [1, 16, 16, 3])):
            with self.assertRaises(RuntimeError) as cm:
                call()
            self.assertIn("reference to internal data", str(cm.exception))
        del part
        it.invoke()
        fn = it.tensor(0)  # holding the function is fine
        fn()[...] = 1
        it.invoke()
        self.assertTrue((it.get_tensor(0) == 1).all())

    def test_invalid_models_raise_value_error(self):
        for content in (b"", b"not a model at all", read(QU8)[:64]):
            with self.assertRaises(ValueError):
                tflite.Interpreter(model_content=content)
        with self.assertRaises(ValueError):
            tflite.Interpreter(model_path="/nonexistent.tflite")

    def test_resize_batch_served_as_one_batch(self):
        rng = np.random.default_rng(9)
        it = tflite.Interpreter(model_path=QU8)
        it.resize_tensor_input(0, [4, 16, 16, 3])
        with self.assertRaises(RuntimeError):
            it.invoke()  # resized, not allocated again
        it.allocate_tensors()
        self.assertEqual(it.get_input_details()[0]["shape"].tolist(),
                         [4, 16, 16, 3])
        self.assertEqual(it.get_input_details()[0]["shape_signature"]
                         .tolist(), [1, 16, 16, 3])
        self.assertEqual(it.get_output_details()[0]["shape"].tolist(),
                         [4, 10])
        x = rng.integers(0, 256, size=(4, 16, 16, 3)).astype(np.uint8)
        it.set_tensor(0, x)
        it.invoke()
        got = it.get_tensor(it.get_output_details()[0]["index"])
        self.assertEqual(got.shape, (4, 10))
        for b in range(4):
            self.assertEqual(got[b].tobytes(),
                             direct(QU8, [x[b:b + 1]])[0].tobytes())
        with self.assertRaises(ValueError):
            it.resize_tensor_input(0, [4, 8, 8, 3])
        with self.assertRaises(ValueError):
            it.resize_tensor_input(0, [2, 16, 16, 3], strict=True)
        it.resize_tensor_input(0, [1, 16, 16, 3])
        it.allocate_tensors()
        self.assertEqual(it.get_output_details()[0]["shape"].tolist(),
                         [1, 10])

    def test_reset_all_variables(self):
        it = tflite.Interpreter(model_path=QU8)
        it.reset_all_variables()  # no variables: nothing to do


class ProcessTest(unittest.TestCase):
    def test_many_interpreters_one_connection(self):
        """Today's 65th Interpreter in a process used to fail
        (--max-conns-per-uid 64): they share one connection now."""
        d = support.Daemon(repo=None,
                           extra=["--max-conns-per-uid", "4"]).start()
        try:
            its = [tflite.Interpreter(model_path=QU8, socket=d.socket)
                   for _ in range(70)]
            x = np.full((1, 16, 16, 3), 7, np.uint8)
            want = direct(QU8, [x])[0].tobytes()
            for it in its:
                self.assertEqual(run(it, [x])[0].tobytes(), want)
            clients = [ln for ln in d.status().splitlines()
                       if ln.startswith("clients ")]
            self.assertLessEqual(int(clients[0].split()[1]), 2)
            # The limit still refuses a separate connection, and says which
            # limit and how to get past it.
            conns = []
            with self.assertRaises(edgemux.EdgemuxError) as cm:
                for _ in range(5):
                    conns.append(edgemux._client.Connection(d.socket))
            self.assertIn("--max-conns-per-uid", str(cm.exception))
            self.assertIn("raise", str(cm.exception))
            del conns
        finally:
            d.cleanup()

    def test_edited_file_is_new_bytes(self):
        tmp = tempfile.mkdtemp()
        try:
            path = os.path.join(tmp, "model.tflite")
            shutil.copy(QU8, path)
            a = tflite.Interpreter(model_path=path)
            shutil.copy(QI8, path)  # edited after it was loaded
            b = tflite.Interpreter(model_path=path)
            self.assertNotEqual(a.model_name, b.model_name)
            self.assertTrue(b.model_name.startswith("model-"))
            self.assertIs(b.get_input_details()[0]["dtype"], np.int8)
            x = np.zeros((1, 16, 16, 3), np.int8)
            self.assertEqual(run(b, [x])[0].tobytes(),
                             direct(QI8, [x])[0].tobytes())
        finally:
            shutil.rmtree(tmp)

    def test_cli_infer_npy_and_tflite_path(self):
        """`edgemux infer` takes .npy inputs, writes .npy outputs and a
        .tflite path as the model."""
        tmp = tempfile.mkdtemp()
        try:
            cli = [os.path.join(support.BIN_DIR, "edgemux"), "--socket",
                   support.daemon().socket, "infer"]
            x = np.random.default_rng(2).integers(
                0, 256, size=(1, 16, 16, 3)).astype(np.uint8)
            np.save(os.path.join(tmp, "in.npy"), x)
            out = os.path.join(tmp, "out.npy")
            r = subprocess.run(cli + [QU8, "-i", os.path.join(tmp, "in.npy"),
                                      "-o", out],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            got = np.load(out)
            self.assertEqual(got.dtype, np.uint8)
            self.assertEqual(got.shape, (1, 10))
            self.assertEqual(got.tobytes(), direct(QU8, [x])[0].tobytes())
            for bad, text in ((x.astype(np.int8), "'|i1'"),
                              (x[:, :8], "(1, 8, 16, 3)"),
                              (np.asfortranarray(x[0]), "Fortran order")):
                np.save(os.path.join(tmp, "bad.npy"), bad)
                r = subprocess.run(cli + [QU8, "-i",
                                          os.path.join(tmp, "bad.npy")],
                                   capture_output=True, text=True,
                                   timeout=60)
                self.assertEqual(r.returncode, 1)
                self.assertIn(text, r.stderr)
        finally:
            shutil.rmtree(tmp)

    def test_system_socket_fallback(self):
        """No EDGEMUX_SOCKET and no daemon at $XDG_RUNTIME_DIR: the
        machine-wide socket (here a stand-in path)."""
        tmp = tempfile.mkdtemp()
        try:
            code = (
                "import sys; sys.path.insert(0, %r)\n"
                "import edgemux._client as c\n"
                "c.SYSTEM_SOCKET = %r\n"
                "import edgemux.interpreter as tflite\n"
                "it = tflite.Interpreter(model_path=%r)\n"
                "print(it.socket)\n"
                % (os.path.join(support.ROOT, "python"),
                   support.daemon().socket, QU8))
            env = dict(os.environ, XDG_RUNTIME_DIR=tmp)
            env.pop("EDGEMUX_SOCKET", None)
            out = subprocess.run([sys.executable, "-c", code], env=env,
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stdout.strip(), support.daemon().socket)
        finally:
            shutil.rmtree(tmp)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to drop to nobody")
    def test_permission_refusal_says_how(self):
        d = support.Daemon(repo=None).start()
        try:
            os.chmod(d.socket, 0o600)
            os.chmod(d.dir, 0o755)
            out = subprocess.run(
                ["setpriv", "--reuid=65534", "--regid=65534",
                 "--clear-groups", sys.executable, "-c",
                 "import sys; sys.path.insert(0, %r)\n"
                 "import edgemux._client as c\n"
                 "c.Connection(%r)\n"
                 % (os.path.join(support.ROOT, "python"), d.socket)],
                capture_output=True, text=True, timeout=60)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("edgemux group", out.stderr)
            self.assertIn("usermod -aG edgemux", out.stderr)
        finally:
            d.cleanup()


class EdgeTpuTest(unittest.TestCase):
    """A daemon with two Edge TPUs (the stub libedgetpu) and a CPU."""

    @classmethod
    def setUpClass(cls):
        cls.d = support.tpu_daemon(tpus=2)

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        shutil.rmtree(cls.d.lock_dir, ignore_errors=True)

    def delegate(self, opts):
        return tflite.load_delegate("libedgetpu.so.1",
                                    dict(opts, socket=self.d.socket))

    def requests(self):
        return {n: int(v["requests"]) for n, v in self.d.devices().items()}

    def test_load_delegate_follows_the_daemons_devices(self):
        for dev in ("usb:0", "usb:1", "usb", ":0", ":1", None):
            with self.subTest(dev):
                self.delegate({"device": dev} if dev else {})
        for dev in ("usb:2", "pci", "pci:0", ":2"):
            with self.subTest(dev):
                with self.assertRaises(ValueError) as cm:
                    self.delegate({"device": dev})
                self.assertTrue(str(cm.exception).startswith(
                    "Failed to load delegate from libedgetpu.so.1"))
        tpus = utils.list_edge_tpus(self.d.socket)
        self.assertEqual(tpus, [{"type": "usb", "path": "edgetpu0"},
                                {"type": "usb", "path": "edgetpu1"}])

    def test_pinned_to_the_named_device(self):
        x = np.full((1, 16, 16, 3), 3, np.uint8)
        for dev, name, other in (("usb:1", "edgetpu1", "edgetpu0"),
                                 (":0", "edgetpu0", "edgetpu1")):
            with self.subTest(dev):
                it = utils.make_interpreter(QU8, device=dev,
                                            socket=self.d.socket)
                self.assertTrue(it.model_name.endswith("@" + name))
                before = self.requests()
                for _ in range(5):
                    self.assertEqual(run(it, [x])[0].tobytes(),
                                     direct(QU8, [x])[0].tobytes())
                after = self.requests()
                self.assertEqual(after[name] - before[name], 5)
                self.assertEqual(after[other], before[other])
                self.assertEqual(after["cpu0"], before["cpu0"])

    def test_any_edge_tpu_and_without_delegate(self):
        x = np.full((1, 16, 16, 3), 9, np.uint8)
        it = tflite.Interpreter(model_path=QU8, socket=self.d.socket,
                                experimental_delegates=[self.delegate({})])
        before = self.requests()
        for _ in range(4):
            run(it, [x])
        after = self.requests()
        self.assertEqual(after["cpu0"], before["cpu0"])
        self.assertEqual(sum(after.values()) - sum(before.values()), 4)

    def test_edgetpu_compiled_model(self):
        rng = np.random.default_rng(11)
        for maker in (lambda: utils.make_interpreter(QTPU,
                                                     socket=self.d.socket),
                      lambda: utils.make_interpreter(
                          read(QTPU), device="usb:0",
                          socket=self.d.socket),
                      # No delegate: the model itself says Edge TPU.
                      lambda: tflite.Interpreter(model_path=QTPU,
                                                 socket=self.d.socket)):
            it = maker()
            x = rng.integers(0, 256, size=(1, 16, 16, 3)).astype(np.uint8)
            got = run(it, [x])
            want = stub_expected([x], 1, [10])
            self.assertEqual(got[0].reshape(-1).tolist(), want[0].tolist())
            self.assertEqual(pycoral.get_classes(it, top_k=1)[0].id,
                             int(np.argmax(want[0])))

    def test_the_cpu_fallback_idiom(self):
        """The usual program: Edge TPU if there is one, else the CPU."""
        def make(socket, dev):
            try:
                delegates = [tflite.load_delegate(
                    "libedgetpu.so.1", {"device": dev, "socket": socket})]
            except ValueError:
                delegates = []
            return tflite.Interpreter(model_path=QU8, socket=socket,
                                      experimental_delegates=delegates)
        self.assertEqual(make(self.d.socket, "usb:0").device, "usb:0")
        self.assertIsNone(make(self.d.socket, "pci:0").device)
        self.assertIsNone(make(support.daemon().socket, "usb:0").device)


class NoEdgeTpuTest(unittest.TestCase):
    def test_edgetpu_model_without_an_edge_tpu(self):
        with self.assertRaises(edgemux.EdgemuxError) as cm:
            tflite.Interpreter(model_path=QTPU)
        msg = str(cm.exception)
        self.assertIn("compiled for the Edge TPU", msg)
        self.assertIn("edgetpu-custom-op", msg)
        self.assertIn("no healthy Edge TPU", msg)
        with self.assertRaises(ValueError):
            utils.make_interpreter(QTPU)  # load_delegate's ValueError


if __name__ == "__main__":
    unittest.main()
