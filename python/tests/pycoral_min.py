"""A minimal copy of pycoral's pure-Python adapters (pycoral.adapters.
common, classify, detect; pycoral 2.0), which are not installable here.

Written for the tests: every read of the interpreter is the call pycoral's
source makes (get_input_details()[0][key], tensor(index)(),
get_output_details()[i]['index'], output_details['quantization'],
_get_full_signature_list()), in the same order and with the same views
held, so an edgemux Interpreter that passes here passes under pycoral.
The arithmetic is pycoral's as well; docstrings are left out.
"""

import collections
import operator

import numpy as np


# ---- pycoral.adapters.common ------------------------------------------------
def output_tensor(interpreter, i):
    return interpreter.tensor(interpreter.get_output_details()[i]['index'])()


def input_details(interpreter, key):
    return interpreter.get_input_details()[0][key]


def input_size(interpreter):
    _, height, width, _ = input_details(interpreter, 'shape')
    return width, height


def input_tensor(interpreter):
    tensor_index = input_details(interpreter, 'index')
    return interpreter.tensor(tensor_index)()[0]


def set_input(interpreter, data):
    input_tensor(interpreter)[:, :] = data


def set_resized_input(interpreter, size, resize):
    width, height = input_size(interpreter)
    w, h = size
    scale = min(width / w, height / h)
    w, h = int(w * scale), int(h * scale)
    tensor = input_tensor(interpreter)
    tensor.fill(0)  # padding
    _, _, channel = tensor.shape
    result = resize((w, h))
    tensor[:h, :w] = np.reshape(result, (h, w, channel))
    return result, (scale, scale)


# ---- pycoral.adapters.classify ----------------------------------------------
Class = collections.namedtuple('Class', ['id', 'score'])


def num_classes(interpreter):
    return np.prod(interpreter.get_output_details()[0]['shape'])


def get_scores(interpreter):
    output_details = interpreter.get_output_details()[0]
    output_data = interpreter.tensor(output_details['index'])().flatten()
    if np.issubdtype(output_details['dtype'], np.integer):
        scale, zero_point = output_details['quantization']
        return scale * (output_data.astype(np.int64) - zero_point)
    return output_data.copy()


def get_classes_from_scores(scores, top_k=float('inf'),
                            score_threshold=-float('inf')):
    top_k = min(top_k, len(scores))
    classes = [
        Class(i, scores[i])
        for i in np.argpartition(scores, -top_k)[-top_k:]
        if scores[i] >= score_threshold
    ]
    return sorted(classes, key=operator.itemgetter(1), reverse=True)


def get_classes(interpreter, top_k=float('inf'),
                score_threshold=-float('inf')):
    return get_classes_from_scores(get_scores(interpreter), top_k,
                                   score_threshold)


# ---- pycoral.adapters.detect ------------------------------------------------
Object = collections.namedtuple('Object', ['id', 'score', 'bbox'])


class BBox(collections.namedtuple('BBox', ['xmin', 'ymin', 'xmax', 'ymax'])):
    __slots__ = ()

    def scale(self, sx, sy):
        return BBox(xmin=sx * self.xmin, ymin=sy * self.ymin,
                    xmax=sx * self.xmax, ymax=sy * self.ymax)

    def map(self, f):
        return BBox(xmin=f(self.xmin), ymin=f(self.ymin),
                    xmax=f(self.xmax), ymax=f(self.ymax))


def get_objects(interpreter, score_threshold=-float('inf'),
                image_scale=(1.0, 1.0)):
    signature_list = interpreter._get_full_signature_list()
    if signature_list:
        if len(signature_list) > 1:
            raise ValueError('Only support model with one signature.')
        signature = signature_list[next(iter(signature_list))]
        count = int(interpreter.tensor(signature['outputs']['output_0'])()[0])
        scores = interpreter.tensor(signature['outputs']['output_1'])()[0]
        class_ids = interpreter.tensor(signature['outputs']['output_2'])()[0]
        boxes = interpreter.tensor(signature['outputs']['output_3'])()[0]
    elif output_tensor(interpreter, 3).size == 1:
        boxes = output_tensor(interpreter, 0)[0]
        class_ids = output_tensor(interpreter, 1)[0]
        scores = output_tensor(interpreter, 2)[0]
        count = int(output_tensor(interpreter, 3)[0])
    else:
        scores = output_tensor(interpreter, 0)[0]
        boxes = output_tensor(interpreter, 1)[0]
        count = (int)(output_tensor(interpreter, 2)[0])
        class_ids = output_tensor(interpreter, 3)[0]

    width, height = input_size(interpreter)
    image_scale_x, image_scale_y = image_scale
    sx, sy = width / image_scale_x, height / image_scale_y

    def make(i):
        ymin, xmin, ymax, xmax = boxes[i]
        return Object(
            id=int(class_ids[i]),
            score=float(scores[i]),
            bbox=BBox(xmin=xmin, ymin=ymin, xmax=xmax,
                      ymax=ymax).scale(sx, sy).map(int))

    return [make(i) for i in range(len(scores))
            if scores[i] >= score_threshold]
