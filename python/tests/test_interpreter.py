"""edgemux.interpreter.Interpreter against the C engine's direct invoke."""

import os
import pickle
import shutil
import tempfile
import unittest
import warnings

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
        for k, (d, t) in enumerate(zip(ins + outs,
                                       oracle.inputs + oracle.outputs)):
            self.assertEqual(set(d), DETAIL_KEYS)
            self.assertEqual(d["index"], k)
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
        self.assertEqual([d["index"] for d in ins + outs], [0, 1, 2])
        self.assertEqual(ins[0]["shape"].tolist(), [1, 128, 128, 3])
        self.assertEqual(outs[0]["shape"].tolist(), [1, 896, 16])
        self.assertEqual(outs[1]["shape"].tolist(), [1, 896, 1])
        for d in ins + outs:
            self.assertIs(d["dtype"], np.float32)
            self.assertEqual(d["quantization"], (0.0, 0))
        self.check_against_engine(interp, support.FACE)
        self.assertEqual(len(interp.get_tensor_details()), 3)

    def test_other_models_details(self):
        for path in (support.HAND, support.FACE_FULL):
            with self.subTest(model=os.path.basename(path)):
                self.check_against_engine(tflite.Interpreter(model_path=path),
                                          path)

    def test_repository_model_by_name(self):
        interp = tflite.Interpreter(model_name="face_detection_short_range")
        self.assertEqual(interp.model_name, "face_detection_short_range")
        self.check_against_engine(interp, support.FACE)


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
        inp = interp.tensor(0)
        inp()[...] = ins[0]  # write through the view, as TFLite programs do
        interp.invoke()
        copy = interp.get_tensor(1)
        view = interp.tensor(1)()
        self.assertTrue(np.array_equal(view, outs[0]))
        interp.set_tensor(0, ins2[0])
        interp.invoke()
        self.assertTrue(np.array_equal(copy, outs[0]))   # unchanged copy
        self.assertTrue(np.array_equal(view, outs2[0]))  # live view
        self.assertTrue(np.array_equal(interp.get_tensor(0), ins2[0]))

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

    def test_name_from_stem_shared_or_made_unique(self):
        ins, outs = self.want[103]
        # The repository holds face_detection_short_range as a symlink to
        # the same file: the name is shared.
        same = tflite.Interpreter(model_path=support.FACE)
        self.assertEqual(same.model_name, "face_detection_short_range")
        # Models are their bytes: a copy elsewhere is the same model, under
        # the same name.
        d = tempfile.mkdtemp()
        try:
            copy = os.path.join(d, "copy", "face_detection_short_range.tflite")
            os.mkdir(os.path.dirname(copy))
            shutil.copy(support.FACE, copy)
            self.assertEqual(tflite.Interpreter(model_path=copy).model_name,
                             "face_detection_short_range")
            # Other bytes (zeros after the flatbuffer) with that stem get a
            # unique name.
            other = os.path.join(d, "face_detection_short_range.tflite")
            with open(support.FACE, "rb") as f, open(other, "wb") as g:
                g.write(f.read() + bytes(16))
            interp = tflite.Interpreter(model_path=other)
            self.assertNotEqual(interp.model_name,
                                "face_detection_short_range")
            self.assertTrue(interp.model_name.startswith(
                "face_detection_short_range-"))
            self.assertOutputs(run(interp, ins), outs)
            # A stem the daemon would refuse as a name (a space, a
            # newline) is made a valid one; the model still runs.
            odd = os.path.join(d, "my face\nmodel.tflite")
            with open(support.FACE, "rb") as f, open(odd, "wb") as g:
                g.write(f.read() + bytes(32))
            interp = tflite.Interpreter(model_path=odd)
            self.assertEqual(interp.model_name, "my_face_model")
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

    def test_edgetpu_delegate_records_device(self):
        ins, outs = self.want[104]
        interp = tflite.Interpreter(
            model_path=support.FACE,
            experimental_delegates=[tflite.load_delegate(
                "libedgetpu.so.1", {"device": "usb:0"})])
        self.assertEqual(interp.device, "usb:0")
        self.assertOutputs(run(interp, ins), outs)
        self.assertEqual(make_interpreter(support.FACE, device="pci:0").device,
                         "pci:0")
        self.assertEqual(edgemux.make_interpreter(support.FACE).device,
                         "edgetpu")
        self.assertIsNone(tflite.Interpreter(model_path=support.FACE).device)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            gpu = tflite.Interpreter(
                model_path=support.FACE,
                experimental_delegates=[tflite.load_delegate("libgpu.so")])
        self.assertIsNone(gpu.device)
        self.assertTrue(any("libgpu.so" in str(x.message) for x in w))

    def test_resize_signatures_and_misc(self):
        interp = tflite.Interpreter(model_path=support.FACE, num_threads=4)
        interp.resize_tensor_input(0, [1, 128, 128, 3])  # the same: fine
        interp.resize_tensor_input(0, np.array([1, 128, 128, 3], np.int32),
                                   strict=True)
        with self.assertRaises(ValueError) as cm:
            interp.resize_tensor_input(0, [2, 128, 128, 3])
        self.assertIn("fixed shapes", str(cm.exception))
        self.assertEqual(interp.get_signature_list(), {})
        with self.assertRaises(ValueError):
            interp.get_signature_runner()
        interp.allocate_tensors()
        interp.allocate_tensors()  # idempotent
        self.assertIn("face_detection_short_range", repr(interp))

    def test_pickle_roundtrip_reconnects(self):
        ins, outs = self.want[105]
        interp = tflite.Interpreter(model_path=support.FACE,
                                    experimental_delegates=[
                                        tflite.load_delegate(
                                            "libedgetpu.so.1",
                                            {"device": "usb:1"})])
        interp.allocate_tensors()
        clone = pickle.loads(pickle.dumps(interp))
        self.assertEqual(clone.device, "usb:1")
        self.assertEqual(clone.model_name, interp.model_name)
        self.assertOutputs(run(clone, ins), outs)
        self.assertOutputs(run(interp, ins), outs)

    def test_close_and_reuse(self):
        ins, outs = self.want[106]
        with tflite.Interpreter(model_path=support.FACE) as interp:
            self.assertOutputs(run(interp, ins), outs)
        self.assertOutputs(run(interp, ins), outs)  # reconnects


if __name__ == "__main__":
    unittest.main()
