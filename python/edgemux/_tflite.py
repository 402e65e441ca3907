"""What TensorFlow Lite's Python API reports about a model, read from the
.tflite file itself (the schema.fbs v3 flatbuffer), without TensorFlow Lite.

The daemon serves a model's inputs and outputs; tflite_runtime's
Interpreter also reports every tensor of the graph, each tensor's
shape_signature, per-channel quantization, sparsity and the model's
SignatureDefs. Those are properties of the file, so they are read here from
the bytes the Interpreter sends, and the details dicts are built the way
TFLite 2.9's interpreter_wrapper builds them.

Only the tables and fields the details need are read; the field numbers
are schema.fbs's (v3, file identifier "TFL3"). A file that is not a TFLite
flatbuffer raises ValueError, as tflite_runtime does.
"""

import struct

import numpy as np

# TensorType -> numpy type, as tflite_runtime maps them.
_NP_TYPES = {
    0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64,
    5: np.bytes_, 6: np.bool_, 7: np.int16, 8: np.complex64, 9: np.int8,
    10: np.float64, 11: np.complex128, 12: np.uint64, 15: np.uint32,
    16: np.uint16,
}

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"


class _Table:
    """One flatbuffer table: fields by their schema number."""

    __slots__ = ("buf", "pos", "vt", "vt_len")

    def __init__(self, buf, pos):
        self.buf = buf
        self.pos = pos
        vt = pos - struct.unpack_from("<i", buf, pos)[0]
        if not 0 <= vt <= len(buf) - 4:
            raise ValueError("vtable out of range")
        self.vt = vt
        self.vt_len = struct.unpack_from("<H", buf, vt)[0]

    def _off(self, field):
        o = 4 + 2 * field
        if o + 2 > self.vt_len:
            return 0
        return struct.unpack_from("<H", self.buf, self.vt + o)[0]

    def scalar(self, field, fmt, default=0):
        o = self._off(field)
        if not o:
            return default
        return struct.unpack_from("<" + fmt, self.buf, self.pos + o)[0]

    def _ref(self, field):
        o = self._off(field)
        if not o:
            return None
        p = self.pos + o
        return p + struct.unpack_from("<I", self.buf, p)[0]

    def table(self, field):
        p = self._ref(field)
        return None if p is None else _Table(self.buf, p)

    def string(self, field):
        p = self._ref(field)
        if p is None:
            return None
        n = struct.unpack_from("<I", self.buf, p)[0]
        return bytes(self.buf[p + 4:p + 4 + n]).decode("utf-8", "replace")

    def vector(self, field, fmt):
        """A vector of scalars as a numpy array (None when absent)."""
        p = self._ref(field)
        if p is None:
            return None
        n = struct.unpack_from("<I", self.buf, p)[0]
        dt = np.dtype("<" + fmt)
        if p + 4 + n * dt.itemsize > len(self.buf):
            raise ValueError("vector out of range")
        return np.frombuffer(self.buf, dtype=dt, count=n, offset=p + 4)

    def tables(self, field):
        p = self._ref(field)
        if p is None:
            return []
        n = struct.unpack_from("<I", self.buf, p)[0]
        out = []
        for i in range(n):
            q = p + 4 + 4 * i
            out.append(_Table(self.buf, q + struct.unpack_from("<I", self.buf,
                                                               q)[0]))
        return out


class Tensor:
    """One tensor of subgraph 0, as the file describes it."""

    __slots__ = ("index", "name", "type", "shape", "shape_signature",
                 "scales", "zero_points", "quantized_dimension", "sparsity",
                 "is_variable", "data")

    def value(self):
        """A constant tensor's value (weights), or None."""
        if self.data is None or self.type not in _NP_TYPES or \
                _NP_TYPES[self.type] is np.bytes_:
            return None
        dt = np.dtype(_NP_TYPES[self.type]).newbyteorder("<")
        n = int(np.prod(self.shape, dtype=np.int64))
        if n * dt.itemsize != len(self.data):
            return None
        return np.frombuffer(self.data.tobytes(), dtype=dt).reshape(
            self.shape).astype(dt.newbyteorder("="))

    def details(self, shape=None):
        """TFLite 2.9's details dict (interpreter.py _get_tensor_details)."""
        shape = self.shape if shape is None else shape
        scales = self.scales
        zps = self.zero_points
        if len(scales) == 1 and len(zps) >= 1:
            quant = (float(scales[0]), int(zps[0]))
        else:
            quant = (0.0, 0)
        return {
            "name": self.name,
            "index": self.index,
            "shape": np.array(shape, dtype=np.int32),
            "shape_signature": np.array(self.shape_signature, dtype=np.int32),
            "dtype": _NP_TYPES.get(self.type, np.float32),
            "quantization": quant,
            "quantization_parameters": {
                "scales": np.array(scales, dtype=np.float32),
                "zero_points": np.array(zps, dtype=np.int32),
                "quantized_dimension": int(self.quantized_dimension),
            },
            "sparsity_parameters": _copy_sparsity(self.sparsity),
        }


def _copy_sparsity(sp):
    out = {}
    for k, v in sp.items():
        if k == "dim_metadata":
            out[k] = [dict((a, (b.copy() if isinstance(b, np.ndarray)
                                else b)) for a, b in d.items()) for d in v]
        else:
            out[k] = v.copy() if isinstance(v, np.ndarray) else v
    return out


# SparseIndexVector union: Int32Vector=1, Uint16Vector=2, Uint8Vector=3, each
# a table whose field 0 is the values.
_SPARSE_FMT = {1: "i4", 2: "u2", 3: "u1"}


def _sparse_vector(dm, type_field, value_field):
    t = dm.scalar(type_field, "B")
    v = dm.table(value_field)
    if v is None or t not in _SPARSE_FMT:
        return np.array([], dtype=np.int32)
    vals = v.vector(0, _SPARSE_FMT[t])
    return np.array([] if vals is None else vals, dtype=np.int32)


def _sparsity(t):
    """TFLite 2.9's sparsity_parameters: {} for a dense tensor."""
    sp = t.table(6)
    if sp is None:
        return {}
    # As TFLite 2.9's PyDictFromSparsityParam: both arrays always present.
    out = {}
    to = sp.vector(0, "i4")
    out["traversal_order"] = np.array([] if to is None else to,
                                      dtype=np.int32)
    bm = sp.vector(1, "i4")
    out["block_map"] = np.array([] if bm is None else bm, dtype=np.int32)
    dims = []
    for dm in sp.tables(2):
        fmt = dm.scalar(0, "b")
        if fmt == 0:  # DENSE
            dims.append({"format": 0, "dense_size": dm.scalar(1, "i")})
        else:  # SPARSE_CSR
            dims.append({"format": 1,
                         "array_segments": _sparse_vector(dm, 2, 3),
                         "array_indices": _sparse_vector(dm, 4, 5)})
    out["dim_metadata"] = dims
    return out


class ModelFile:
    """The parts of a .tflite file the Python API reports.

    Attributes: tensors (subgraph 0's, by index), inputs and outputs
    (tensor indices), signatures ({key: {"inputs": {name: index},
    "outputs": {name: index}, "subgraph": n}}), custom_ops (the custom op
    names the graph uses), subgraph_count.
    """

    def __init__(self, content):
        buf = memoryview(bytes(content))
        if len(buf) < 8:
            raise ValueError("The model is not a valid Flatbuffer buffer "
                             "(%d bytes)" % len(buf))
        ident = bytes(buf[4:8])
        if ident != b"TFL3":
            raise ValueError(
                "Model provided has model identifier '%s', should be 'TFL3'"
                % ident.decode("latin-1"))
        try:
            self._parse(buf)
        except (struct.error, ValueError, IndexError) as e:
            raise ValueError("The model is not a valid Flatbuffer buffer: %s"
                             % e) from None

    def _parse(self, buf):
        model = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
        subgraphs = model.tables(2)
        if not subgraphs:
            raise ValueError("no subgraph")
        self.subgraph_count = len(subgraphs)
        buffers = model.tables(4)
        sg = subgraphs[0]
        self.tensors = []
        for i, t in enumerate(sg.tables(0)):
            x = Tensor()
            x.index = i
            x.name = t.string(3) or ""
            x.type = t.scalar(1, "b")
            shape = t.vector(0, "i4")
            x.shape = [] if shape is None else [int(d) for d in shape]
            sig = t.vector(7, "i4")
            x.shape_signature = list(x.shape) if sig is None else [
                int(d) for d in sig]
            q = t.table(4)
            scales = q.vector(2, "f4") if q is not None else None
            zps = q.vector(3, "i8") if q is not None else None
            x.scales = [] if scales is None else [float(s) for s in scales]
            x.zero_points = [] if zps is None else [int(z) for z in zps]
            x.quantized_dimension = q.scalar(6, "i") if q is not None else 0
            x.sparsity = _sparsity(t)
            x.is_variable = bool(t.scalar(5, "B"))
            b = t.scalar(2, "I")
            data = None
            if 0 < b < len(buffers):
                data = buffers[b].vector(0, "u1")
                if data is None and buffers[b].scalar(2, "Q"):
                    data = True  # stored past the flatbuffer (offset/size)
            # The constant's bytes when the flatbuffer holds them (weights).
            x.data = data if data is not None and data is not True and len(
                data) > 0 else None
            self.tensors.append(x)
        ins = sg.vector(1, "i4")
        outs = sg.vector(2, "i4")
        self.inputs = [] if ins is None else [int(i) for i in ins]
        self.outputs = [] if outs is None else [int(i) for i in outs]
        self.custom_ops = set()
        for oc in model.tables(1):
            builtin = max(oc.scalar(0, "b"), oc.scalar(3, "i"))
            if builtin == 32:  # CUSTOM
                self.custom_ops.add(oc.string(1) or "")
        self.signatures = {}
        for sd in model.tables(7):
            key = sd.string(2) or ""
            self.signatures[key] = {
                "inputs": {tm.string(0) or "": tm.scalar(1, "I")
                           for tm in sd.tables(0)},
                "outputs": {tm.string(0) or "": tm.scalar(1, "I")
                            for tm in sd.tables(1)},
                "subgraph": sd.scalar(4, "I"),
            }

    @property
    def is_edgetpu(self):
        """True for what edgetpu_compiler writes: the graph holds the
        custom op only an Edge TPU's delegate runs."""
        return EDGETPU_CUSTOM_OP in self.custom_ops
