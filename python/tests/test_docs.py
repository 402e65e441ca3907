"""docs/python.md's Python snippets run as written: each in a fresh
process, in a directory holding the files they name, against a daemon
with a CPU and two Edge TPUs (the stub libedgetpu). pycoral's adapters
come from pycoral_min (pycoral is not installable here)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import support

DOC = os.path.join(support.ROOT, "docs", "python.md")
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def snippets():
    with open(DOC) as f:
        return BLOCK.findall(f.read())


class DocsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = support.tpu_daemon(tpus=2)
        cls.dir = tempfile.mkdtemp(prefix="emx-docs-")
        shutil.copy(support.FACE, cls.dir)
        shutil.copy(os.path.join(support.FIXTURES,
                                 "quant_uint8_edgetpu.tflite"),
                    os.path.join(cls.dir, "model_edgetpu.tflite"))
        adapters = os.path.join(cls.dir, "pycoral", "adapters")
        os.makedirs(adapters)
        for pkg in ("pycoral", "pycoral/adapters"):
            open(os.path.join(cls.dir, pkg, "__init__.py"), "w").close()
        for mod in ("common", "classify", "detect"):
            with open(os.path.join(adapters, mod + ".py"), "w") as f:
                f.write("from pycoral_min import *  # noqa\n")
        shutil.copy(os.path.join(support.HERE, "pycoral_min.py"), cls.dir)

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        shutil.rmtree(cls.d.lock_dir, ignore_errors=True)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_snippets_run_as_written(self):
        found = snippets()
        self.assertGreaterEqual(len(found), 5)
        env = dict(os.environ, EDGEMUX_SOCKET=self.d.socket,
                   PYTHONPATH=os.pathsep.join(
                       [os.path.join(support.ROOT, "python"), self.dir]))
        for i, code in enumerate(found):
            with self.subTest(snippet=i, first_line=code.splitlines()[0]):
                r = subprocess.run([sys.executable, "-c", code], cwd=self.dir,
                                   env=env, capture_output=True, text=True,
                                   timeout=120)
                self.assertEqual(r.returncode, 0,
                                 "snippet %d failed:\n%s\n%s"
                                 % (i, code, r.stderr[-3000:]))


if __name__ == "__main__":
    unittest.main()
