"""edgemux.interpreter.Interpreter against the C engine's direct invoke."""

import hashlib
import os
import pickle
import shutil
import tempfile
import unittest

import support

import numpy as np

import edgemux
import edgemux.interpreter as tflite
from edgemux.utils import make_interpreter

DETAIL_KEYS = {"name", "index", "shape", "shape_signature", "dtype",
               "quantization", "quantization_parameters",
               "sparsity_parameters"}


def setUpModule():
    support.daemon()


def run(interp, inputs):
    interp.allocate_tensors()  # idempotent, as in TFLite
    for d, x in zip(interp.get_input_details(), inputs):
        interp.set_tensor(d["index"], x)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


class DetailsTest(unittest.TestCase):
    def check_against_engine(self, interp, path):
        """Every field of every details dict, against emx_model_*_info of
        the C engine on the same file."""
        oracle = support.Oracle.get(path)
        ins, outs = interp.get_input_details(), interp.get_output_details()
        self.assertEqual(len(ins), len(oracle.inputs))
        self.assertEqual(len(outs), len(oracle.outputs))
        want_idx = support.tflite_io_indices(path)
        for k, (d, t) in enumerate(zip(ins + outs,
                                       oracle.inputs + oracle.outputs)):
            self.assertEqual(set(d), DETAIL_KEYS)
            self.assertEqual(d["index"], want_idx[k])  # TFLite's own
            self.assertEqual(d["name"], t["name"])
            self.assertIs(d["dtype"], edgemux._lib.DTYPES[t["dtype"]])
            self.assertEqual(d["shape"].dtype, np.int32)
            self.assertEqual(tuple(d["shape"]), t["shape"])
            self.assertEqual(d["shape_signature"].dtype, np.int32)
            self.assertEqual(tuple(d["shape_signature"]), t["shape"])
            self.assertEqual(d["quantization"], (t["scale"], t["zero_point"]))
            self.assertIsInstance(d["quantization"][0], float)
            self.assertIsInstance(d["quantization"][1], int)
            qp = d["quantization_parameters"]
            self.assertEqual(set(qp), {"scales", "zero_points",
                                       "quantized_dimension"})
            self.assertEqual(qp["scales"].dtype, np.float32)
            self.assertEqual(qp["zero_points"].dtype, np.int32)
            self.assertEqual(qp["quantized_dimension"], 0)
            if t["scale"] == 0.0:
                self.assertEqual(qp["scales"].size, 0)
                self.assertEqual(qp["zero_points"].size, 0)
            else:
                self.assertEqual(list(qp["scales"]), [np.float32(t["scale"])])
                self.assertEqual(list(qp["zero_points"]), [t["zero_point"]])
            self.assertEqual(d["sparsity_parameters"], {})

    def test_face_detection_details(self):
        interp = tflite.Interpreter(model_path=support.FACE)
        interp.allocate_tensors()
        ins, outs = interp.get_input_details(), interp.get_output_details()
        self.assertEqual([d["name"] for d in ins], ["input"])
        self.assertEqual([d["name"] for d in outs],
                         ["regressors", "classificators"])
        self.assertEqual([d["index"] for d in ins + outs], [0, 175, 174])
        self.assertEqual(ins[0]["shape"].tolist(), [1, 128, 128, 3])
        self.assertEqual(outs[0]["shape"].tolist(), [1, 896, 16])
        self.assertEqual(outs[1]["shape"].tolist(), [1, 896, 1])
        for d in ins + outs:
            self.assertIs(d["dtype"], np.float32)
            self.assertEqual(d["quantization"], (0.0, 0))
        self.check_against_engine(interp, support.FACE)
        # Every tensor of the graph, as TFLite lists them.
        self.assertEqual(len(interp.get_tensor_details()), 250)

    def test_other_models_details(self):
        for path in (support.HAND, support.FACE_FULL):
            with self.subTest(model=os.path.basename(path)):
                self.check_against_engine(tflite.Interpreter(model_path=path),
                                          path)

    def test_repository_model_by_name(self):
        interp = tflite.Interpreter(model_name="face_detection_short_range")
        self.assertEqual(interp.model_name, "face_detection_short_range")
        # No file here: inputs then outputs, numbered in that order.
        ins, outs = interp.get_input_details(), interp.get_output_details()
        self.assertEqual([d["index"] for d in ins + outs], [0, 1, 2])


class InferenceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.want = support.expected(support.FACE, range(100, 112))

    def assertOutputs(self, got, want):
        self.assertEqual(len(got), len(want))
        for g, w in zip(got, want):
            self.assertEqual(g.dtype, w.dtype)
            self.assertEqual(g.shape, w.shape)
            self.assertTrue(np.array_equal(g, w), "outputs differ from the "
                            "C engine's direct invoke")

    def test_sequential_loop(self):
        """The classic report's second pattern: one interpreter, a loop."""
        interp = tflite.Interpreter(model_path=support.FACE)
        interp.allocate_tensors()
        for seed, (ins, outs) in self.want.items():
            self.assertOutputs(run(interp, ins), outs)

    def test_get_tensor_is_a_copy_and_tensor_a_view(self):
        interp = tflite.Interpreter(model_path=support.FACE)
        interp.allocate_tensors()
        (ins, outs), (ins2, outs2) = self.want[100], self.want[101]
        i0 = interp.get_input_details()[0]["index"]
        o0 = interp.get_output_details()[0]["index"]
        inp = interp.tensor(i0)
        inp()[...] = ins[0]  # write through the view, as TFLite programs do
        interp.invoke()
        copy = interp.get_tensor(o0)
        view = interp.tensor(o0)
        self.assertTrue(np.array_equal(view(), outs[0]))
        interp.set_tensor(i0, ins2[0])
        interp.invoke()
        self.assertTrue(np.array_equal(copy, outs[0]))    # unchanged copy
        self.assertTrue(np.array_equal(view(), outs2[0]))  # live view
        self.assertTrue(np.array_equal(interp.get_tensor(i0), ins2[0]))

    def test_model_by_name_and_content(self):
        ins, outs = self.want[102]
        by_name = tflite.Interpreter(model_name="face_detection_short_range")
        self.assertOutputs(run(by_name, ins), outs)
        with open(support.FACE, "rb") as f:
            content = f.read()
        by_content = tflite.Interpreter(model_content=content)
        self.assertTrue(by_content.model_name.startswith("model-"))
        self.assertOutputs(run(by_content, ins), outs)
        again = tflite.Interpreter(model_content=content)  # same name reused
        self.assertEqual(again.model_name, by_content.model_name)
        self.assertOutputs(run(again, ins), outs)

    def test_name_from_stem_and_content(self):
        ins, outs = self.want[103]
        with open(support.FACE, "rb") as f:
            face = f.read()
        digest = hashlib.sha256(face).hexdigest()[:12]
        same = tflite.Interpreter(model_path=support.FACE)
        self.assertEqual(same.model_name,
                         "face_detection_short_range-" + digest)
        # Models are their bytes: a copy elsewhere is the same model, under
        # the same name.
        d = tempfile.mkdtemp()
        try:
            copy = os.path.join(d, "copy", "face_detection_short_range.tflite")
            os.mkdir(os.path.dirname(copy))
            shutil.copy(support.FACE, copy)
            self.assertEqual(tflite.Interpreter(model_path=copy).model_name,
                             same.model_name)
            # Other bytes (zeros after the flatbuffer) with that stem get
            # another name.
            other = os.path.join(d, "face_detection_short_range.tflite")
            with open(other, "wb") as g:
                g.write(face + bytes(16))
            interp = tflite.Interpreter(model_path=other)
            self.assertNotEqual(interp.model_name, same.model_name)
            self.assertTrue(interp.model_name.startswith(
                "face_detection_short_range-"))
            self.assertOutputs(run(interp, ins), outs)
            # A stem the daemon would refuse as a name (a space, a
            # newline) is made a valid one; the model still runs.
            odd = os.path.join(d, "my face\nmodel.tflite")
            with open(support.FACE, "rb") as f, open(odd, "wb") as g:
                g.write(f.read() + bytes(32))
            interp = tflite.Interpreter(model_path=odd)
            self.assertTrue(interp.model_name.startswith("my_face_model-"),
                            interp.model_name)
            self.assertOutputs(run(interp, ins), outs)
            named = tflite.Interpreter(model_path=other, model_name="facecopy")
            self.assertEqual(named.model_name, "facecopy")
            self.assertOutputs(run(named, ins), outs)
        finally:
            shutil.rmtree(d)
        with self.assertRaises(edgemux.EdgemuxError) as cm:
            tflite.Interpreter(model_path=support.HAND,
                               model_name="face_detection_short_range")
        self.assertEqual(cm.exception.name, "EMX_EEXIST")

    def test_delegates_without_an_edge_tpu(self):
        """This daemon has CPUs only: load_delegate raises tflite_runtime's
        ValueError, so the CPU fallback idiom takes its usual branch."""
        for opts in ({"device": "usb:0"}, {}, {"device": ":0"}):
            with self.assertRaises(ValueError) as cm:
                tflite.load_delegate("libedgetpu.so.1", opts)
            self.assertTrue(str(cm.exception).startswith(
                "Failed to load delegate from libedgetpu.so.1"))
        with self.assertRaises(ValueError) as cm:
            tflite.load_delegate("libgpu.so")
        self.assertIn("Failed to load delegate from libgpu.so",
                      str(cm.exception))
        with self.assertRaises(ValueError):
            make_interpreter(support.FACE, device="pci:0")
        self.assertIsNone(tflite.Interpreter(model_path=support.FACE).device)

    def test_resize_signatures_and_misc(self):
        interp = tflite.Interpreter(model_path=support.FACE, num_threads=4)
        interp.resize_tensor_input(0, [1, 128, 128, 3])  # the same: fine
        interp.resize_tensor_input(0, np.array([1, 128, 128, 3], np.int32),
                                   strict=True)
        with self.assertRaises(ValueError) as cm:
            interp.resize_tensor_input(0, [1, 64, 64, 3])
        self.assertIn("only its batch dimension", str(cm.exception))
        self.assertEqual(interp.get_signature_list(), {})
        self.assertEqual(interp._get_full_signature_list(), {})
        with self.assertRaises(ValueError):
            interp.get_signature_runner()
        interp.allocate_tensors()
        interp.allocate_tensors()  # idempotent
        self.assertIn("face_detection_short_range", repr(interp))

    def test_pickle_roundtrip_reconnects(self):
        ins, outs = self.want[105]
        interp = tflite.Interpreter(model_path=support.FACE)
        interp.allocate_tensors()
        clone = pickle.loads(pickle.dumps(interp))
        self.assertEqual(clone.model_name, interp.model_name)
        self.assertOutputs(run(clone, ins), outs)
        self.assertOutputs(run(interp, ins), outs)

    def test_close_and_reuse(self):
        ins, outs = self.want[106]
        with tflite.Interpreter(model_path=support.FACE) as interp:
            self.assertOutputs(run(interp, ins), outs)
        self.assertOutputs(run(interp, ins), outs)  # reconnects

    def test_invoke_fast_path_follows_the_session(self):
        """invoke() calls emx_client_infer on arguments built at
        allocation: a batch resize and back, and a connection found broken,
        must each give it the current tensors and connection (a stale call
        would run on freed tensors or a dropped connection's handle)."""
        (ins, outs), (ins2, outs2) = self.want[107], self.want[108]
        interp = tflite.Interpreter(model_path=support.FACE)
        self.assertOutputs(run(interp, ins), outs)
        interp.resize_tensor_input(0, [2, 128, 128, 3])
        interp.allocate_tensors()
        self.assertIsNone(interp._session.call)  # batches submit in C
        interp.set_tensor(0, np.concatenate([ins[0], ins2[0]]))
        interp.invoke()
        interp.resize_tensor_input(0, [1, 128, 128, 3])
        self.assertOutputs(run(interp, ins2), outs2)
        # What invoke() does on EMX_EDISCONNECTED: the next call must
        # reconnect first, and its call must use the new connection.
        old = interp._session
        old.conn.broken = True
        interp.set_tensor(0, ins[0])  # into the old arena, still mapped
        interp.invoke()  # no allocate_tensors: invoke() alone reconnects
        self.assertOutputs([interp.get_tensor(d["index"])
                            for d in interp.get_output_details()], outs)
        self.assertIsNot(interp._session.conn, old.conn)
        self.assertIs(interp._session.call[1][0],
                      interp._session.conn.handle)
        self.assertOutputs(run(interp, ins2), outs2)


if __name__ == "__main__":
    unittest.main()
