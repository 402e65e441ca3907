"""Errors: EdgemuxError with the EMX_E* code and the daemon's message;
ValueError where tflite_runtime raises it."""

import os
import pickle
import unittest

import support

import numpy as np

import edgemux
import edgemux.interpreter as tflite


def setUpModule():
    support.daemon()


class ErrorTest(unittest.TestCase):
    def test_error_class(self):
        e = edgemux.EdgemuxError(edgemux.EMX_EBUSY, "queue full")
        self.assertIsInstance(e, RuntimeError)
        self.assertEqual((e.code, e.name), (-4, "EMX_EBUSY"))
        self.assertIn("queue full", str(e))
        v = edgemux.EdgemuxValueError(edgemux.EMX_ESIZE)
        self.assertIsInstance(v, ValueError)
        self.assertIsInstance(v, edgemux.EdgemuxError)
        self.assertEqual(v.message, "wrong tensor byte size")
        back = pickle.loads(pickle.dumps(v))
        self.assertEqual((type(back), back.code, back.message),
                         (type(v), v.code, v.message))

    def test_unknown_model(self):
        with self.assertRaises(edgemux.EdgemuxError) as cm:
            tflite.Interpreter(model_name="no_such_model")
        e = cm.exception
        self.assertEqual(e.code, edgemux.EMX_ENOENT)
        self.assertEqual(e.name, "EMX_ENOENT")
        self.assertIn("no_such_model", str(e))
        self.assertNotIsInstance(e, ValueError)

    def test_missing_file(self):
        with self.assertRaises(ValueError) as cm:
            tflite.Interpreter(model_path="/nonexistent/model.tflite")
        self.assertIn("/nonexistent/model.tflite", str(cm.exception))
        self.assertEqual(cm.exception.name, "EMX_ENOENT")

    def test_not_a_model(self):
        # tflite_runtime raises ValueError for bytes that are no model.
        with self.assertRaises(ValueError) as cm:
            tflite.Interpreter(model_path=os.path.abspath(__file__))
        self.assertIn("should be 'TFL3'", str(cm.exception))
        with open(support.FACE, "rb") as f:
            cut = f.read()[:4096]  # a flatbuffer's start, cut short
        with self.assertRaises(ValueError):
            tflite.Interpreter(model_content=cut)

    def test_wrong_shape_dtype_and_index(self):
        interp = tflite.Interpreter(model_path=support.FACE)
        interp.allocate_tensors()
        good = np.zeros((1, 128, 128, 3), np.float32)
        cases = {
            "dimension 1": np.zeros((1, 64, 128, 3), np.float32),
            "Got 3 but expected 4": np.zeros((128, 128, 3), np.float32),
            "FLOAT64": good.astype(np.float64),
            "UINT8": good.astype(np.uint8),
        }
        for text, value in cases.items():
            with self.subTest(text):
                with self.assertRaises(ValueError) as cm:
                    interp.set_tensor(0, value)
                self.assertIn(text, str(cm.exception))
                self.assertIn("Cannot set tensor", str(cm.exception))
                self.assertIsInstance(cm.exception, edgemux.EdgemuxError)
        with self.assertRaises(ValueError):
            interp.set_tensor(0, good.tolist())  # a list is float64
        with self.assertRaises(ValueError):
            interp.set_tensor(3, good)
        with self.assertRaises(ValueError):
            interp.get_tensor(-1)
        interp.set_tensor(0, good)
        interp.invoke()  # still fine

    def test_daemon_down(self):
        sock = os.path.join(support.daemon().dir, "nobody-here.sock")
        with self.assertRaises(edgemux.EdgemuxError) as cm:
            tflite.Interpreter(model_path=support.FACE, socket=sock)
        e = cm.exception
        self.assertEqual(e.code, edgemux.EMX_EDISCONNECTED)
        self.assertEqual(e.name, "EMX_EDISCONNECTED")
        self.assertIn(sock, str(e))

    def test_daemon_stops_and_comes_back(self):
        d = support.Daemon(repo=None).start()
        try:
            x = np.zeros((1, 128, 128, 3), np.float32)
            interp = tflite.Interpreter(model_path=support.FACE,
                                        socket=d.socket)
            interp.allocate_tensors()
            out = interp.get_output_details()[0]["index"]
            interp.set_tensor(0, x)
            interp.invoke()
            want = interp.get_tensor(out)
            # Restarted while the program was idle: the next invoke
            # reconnects, sends the model again and retries, unseen.
            self.assertEqual(d.stop(), 0)
            d.start()
            interp.invoke()
            self.assertTrue(np.array_equal(interp.get_tensor(out), want))
            self.assertEqual(d.stop(), 0)
            for _ in range(2):  # the broken connection, then no daemon
                with self.assertRaises(edgemux.EdgemuxError) as cm:
                    interp.invoke()
                self.assertEqual(cm.exception.name, "EMX_EDISCONNECTED")
                self.assertIn(d.socket, str(cm.exception))
            d.start()
            interp.invoke()  # reconnects, reloads, keeps the input
            self.assertTrue(np.array_equal(interp.get_tensor(out), want))
        finally:
            d.cleanup()

    def test_daemon_without_allow_load(self):
        d = support.Daemon(allow_load=False).start()
        try:
            with self.assertRaises(edgemux.EdgemuxError) as cm:
                tflite.Interpreter(model_path=support.HAND, socket=d.socket)
            self.assertEqual(cm.exception.name, "EMX_EINVAL")
            self.assertIn("--no-client-models", str(cm.exception))
            self.assertIn('model_name="hand_landmark_lite"',
                          str(cm.exception))
            # Its repository's models are served by name.
            interp = tflite.Interpreter(model_name="hand_landmark_lite",
                                        socket=d.socket)
            interp.allocate_tensors()
            interp.invoke()
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
