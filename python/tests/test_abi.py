"""The package against the library's ABI: tables read from the library,
struct layouts checked at import, one version."""

import ctypes
import os
import re
import subprocess
import sys
import unittest

import support

import numpy as np

import edgemux
from edgemux import _lib


class AbiTest(unittest.TestCase):
    def test_error_table_is_the_library_s(self):
        lib = _lib.lib()
        # Every code the library knows, with its own name and text, and
        # nothing else.
        codes = []
        while lib.emx_err_at(len(codes)):
            codes.append(lib.emx_err_at(len(codes)))
        self.assertEqual(sorted(_lib.ERRNO.values()), sorted(codes))
        for name, code in _lib.ERRNO.items():
            self.assertEqual(_lib.decode(lib.emx_err_name(code)), name)
            self.assertEqual(getattr(edgemux, name), code)
        self.assertEqual(edgemux.EMX_EVERSION, -20)
        self.assertEqual(edgemux.EdgemuxError(-20).name, "EMX_EVERSION")

    def test_dtype_table_is_the_library_s(self):
        lib = _lib.lib()
        self.assertEqual(len(_lib.DTYPES), 11)
        for code, t in _lib.DTYPES.items():
            size = lib.emx_dtype_size(code)
            if t is np.bytes_:
                self.assertEqual(size, 0)
            else:
                self.assertEqual(np.dtype(t).itemsize, size)
                self.assertEqual(np.dtype(t).name,
                                 _lib.decode(lib.emx_dtype_name(code)))
        self.assertEqual(_lib.DTYPE_CODES[np.dtype(np.uint8)], 3)

    def test_struct_mismatch_is_an_import_error(self):
        class Short(ctypes.Structure):
            _fields_ = [("struct_size", ctypes.c_size_t)]

        with self.assertRaises(ImportError) as cm:
            _lib._check_structs(_lib.lib(), "libX", {"tensor_info": Short})
        self.assertIn("emx_tensor_info", str(cm.exception))
        self.assertIn("same edgemux version", str(cm.exception))
        # The real mirrors match (the import checked them too).
        _lib._check_structs(_lib.lib(), "libX", _lib._CLIENT_STRUCTS)
        _lib._check_structs(_lib.engine_lib(), "libX", _lib._ENGINE_STRUCTS)

    def test_wrong_library_is_an_import_error(self):
        # The engine library is not the client library: it lacks the
        # client's functions, and the import says so.
        engine = os.path.join(support.ROOT, "build", "lib", "libedgemux.so")
        env = dict(os.environ, EDGEMUX_LIB=engine,
                   PYTHONPATH=os.path.join(support.ROOT, "python"))
        p = subprocess.run([sys.executable, "-c", "import edgemux"], env=env,
                           capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("ImportError", p.stderr)
        self.assertIn("lacks emx_client", p.stderr)

    def test_one_version(self):
        with open(os.path.join(support.ROOT, "CMakeLists.txt")) as f:
            cmake = re.search(r"project\(edgemux VERSION ([0-9.]+)",
                              f.read()).group(1)
        self.assertEqual(edgemux.__version__, cmake)
        self.assertEqual(edgemux.library_version(), cmake)
        # pyproject.toml cannot read CMake's; this keeps it from drifting.
        with open(os.path.join(support.ROOT, "python", "pyproject.toml")) as f:
            py = re.search(r'^version = "([0-9.]+)"', f.read(), re.M).group(1)
        self.assertEqual(py, cmake)


if __name__ == "__main__":
    unittest.main()
