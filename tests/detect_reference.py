#!/usr/bin/python3
"""detect_reference.py — an independent NumPy reference for src/detect/.

Written from the definitions (TensorFlow object detection API's
multiple_grid_anchor_generator and FasterRcnnBoxCoder, greedy non-maximum
suppression, docs/detection.md for the config keys), vectorised where the C
loops, in float64 where the C uses float32; tests/unit_detect.c compares the
two.

    detect_reference.py anchors CONFIG OUT
        OUT: one anchor per line, "y_center x_center h w".
    detect_reference.py input CONFIG FRAME_U8 OUT_F32
        the float32 model input for a uint8 frame (mean/scale).
    detect_reference.py detect CONFIG BOXES_F32 SCORES_F32 OUT
        OUT: "candidates N" (boxes x classes over the score threshold), then
        one kept detection per line, best first:
        "box class score ymin xmin ymax xmax" (class with label_offset).

CONFIG is a JSON file: a model's config.json (its "detection" object is
used) or the "detection" object itself.
"""
import json
import math
import sys

import numpy as np


def f32(x):
    """A config number as the C reads it (a float)."""
    return float(np.float32(x))


def load_config(path):
    with open(path) as f:
        doc = json.load(f)
    det = doc.get("detection", doc)
    a = det.get("anchors", {})
    inp = det.get("input", {})
    mean = inp.get("mean", 0.0)
    scale = inp.get("scale", 1.0)
    mean = [f32(v) for v in (mean if isinstance(mean, list) else [mean])]
    scale = [f32(v) for v in (scale if isinstance(scale, list) else [scale])]
    return {
        "strides": a.get("strides", []),
        "fm_h": a.get("feature_map_height"),
        "fm_w": a.get("feature_map_width"),
        "min_scale": f32(a.get("min_scale", 0.0)),
        "max_scale": f32(a.get("max_scale", 0.0)),
        "height": a.get("input_height", 0),
        "width": a.get("input_width", 0),
        "off_x": f32(a.get("anchor_offset_x", 0.5)),
        "off_y": f32(a.get("anchor_offset_y", 0.5)),
        "ratios": [f32(r) for r in a.get("aspect_ratios", [])],
        "interp": f32(a.get("interpolated_scale_aspect_ratio", 1.0)),
        "reduce": a.get("reduce_boxes_in_lowest_layer", False),
        "fixed": a.get("fixed_anchor_size", False),
        "mean": mean,
        "scale": scale,
        "yx_hw_scale": [f32(det.get(k, d)) for k, d in
                        (("y_scale", 10), ("x_scale", 10),
                         ("h_scale", 5), ("w_scale", 5))],
        "exp": det.get("apply_exponential_on_box_size", True),
        "xywh": det.get("box_order", "yxhw") == "xywh",
        "sigmoid": det.get("score", "sigmoid") == "sigmoid",
        "agnostic": det.get("nms", "per_class") == "class_agnostic",
        "ignore": set(det.get("ignore_classes", [])),
        "iou": f32(det.get("iou_threshold", 0.5)),
        "per_class": det.get("max_per_class", 100),
        "threshold": f32(det.get("score_threshold", 0.5)),
        "max_det": det.get("max_detections", 20),
        "label_offset": det.get("label_offset", 0),
        "clip": det.get("clip_boxes", True),
    }


def anchors(c):
    """All anchors as an (N, 4) array of y_center, x_center, h, w."""
    strides = c["strides"]
    n = len(strides)
    if len(set(strides)) != n:
        sys.exit("reference: layers sharing a stride are not modelled here")

    def layer_scale(i):
        if n == 1:
            return (c["min_scale"] + c["max_scale"]) / 2
        if i == n:
            return 1.0
        return c["min_scale"] + (c["max_scale"] - c["min_scale"]) * i / (n - 1)

    parts = []
    for i, stride in enumerate(strides):
        if c["fm_h"]:
            fh, fw = c["fm_h"][i], c["fm_w"][i]
        else:
            fh = math.ceil(c["height"] / stride)
            fw = math.ceil(c["width"] / stride)
        s = layer_scale(i)
        if i == 0 and c["reduce"]:
            specs = [(0.1, 1.0), (s, 2.0), (s, 0.5)]
        else:
            specs = [(s, r) for r in c["ratios"]]
            if c["interp"] > 0:
                specs.append((math.sqrt(s * layer_scale(i + 1)), c["interp"]))
        sc = np.array([p[0] for p in specs])
        ar = np.array([p[1] for p in specs])
        h = sc / np.sqrt(ar)
        w = sc * np.sqrt(ar)
        if c["fixed"]:
            h, w = np.ones_like(h), np.ones_like(w)
        yy, xx, kk = np.meshgrid((np.arange(fh) + c["off_y"]) / fh,
                                 (np.arange(fw) + c["off_x"]) / fw,
                                 np.arange(len(specs)), indexing="ij")
        parts.append(np.stack([yy, xx, h[kk], w[kk]], axis=-1).reshape(-1, 4))
    return np.concatenate(parts)


def decode(c, enc, anc):
    if c["xywh"]:
        tx, ty, tw, th = enc.T
    else:
        ty, tx, th, tw = enc.T
    ys, xs, hs, ws = c["yx_hw_scale"]
    yc = ty / ys * anc[:, 2] + anc[:, 0]
    xc = tx / xs * anc[:, 3] + anc[:, 1]
    if c["exp"]:
        h = np.exp(th / hs) * anc[:, 2]
        w = np.exp(tw / ws) * anc[:, 3]
    else:
        h = th / hs * anc[:, 2]
        w = tw / ws * anc[:, 3]
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)


def iou_one_to_many(b, others):
    """IoU of box b with each row of others; 0 where either box is empty."""
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])
    ih = np.minimum(b[2], others[:, 2]) - np.maximum(b[0], others[:, 0])
    iw = np.minimum(b[3], others[:, 3]) - np.maximum(b[1], others[:, 1])
    inter = np.clip(ih, 0, None) * np.clip(iw, 0, None)
    a, o = area(b), area(others)
    union = a + o - inter
    ok = (a > 0) & (o > 0) & (inter > 0)
    return np.where(ok, inter / np.where(ok, union, 1.0), 0.0)


def greedy_nms(boxes, idx, score, thr, limit):
    """Indices kept by greedy NMS of candidates idx (any order)."""
    order = idx[np.lexsort((idx, -score[idx]))]
    keep = []
    while order.size and len(keep) < limit:
        best, order = order[0], order[1:]
        keep.append(best)
        order = order[iou_one_to_many(boxes[best], boxes[order]) <= thr]
    return keep


def detect(c, enc, logits):
    anc = anchors(c)
    n = anc.shape[0]
    enc = enc.reshape(n, 4).astype(np.float64)
    logits = logits.reshape(n, -1).astype(np.float64)
    prob = 1.0 / (1.0 + np.exp(-logits)) if c["sigmoid"] else logits
    boxes = decode(c, enc, anc)
    allowed = np.array([k not in c["ignore"] for k in range(prob.shape[1])])
    found = []  # (score, box, class)
    if c["agnostic"]:
        masked = np.where(allowed[None, :], prob, -np.inf)
        cls = np.argmax(masked, axis=1)
        best = masked[np.arange(n), cls]
        idx = np.nonzero(best >= c["threshold"])[0]
        candidates = idx.size
        for i in greedy_nms(boxes, idx, best, c["iou"], c["max_det"]):
            found.append((best[i], i, cls[i]))
    else:
        candidates = 0
        for k in np.nonzero(allowed)[0]:
            s = prob[:, k]
            idx = np.nonzero(s >= c["threshold"])[0]
            candidates += idx.size
            for i in greedy_nms(boxes, idx, s, c["iou"], c["per_class"]):
                found.append((s[i], i, k))
    found.sort(key=lambda t: (-t[0], t[1], t[2]))
    found = found[:c["max_det"]]
    if c["clip"]:
        boxes = np.clip(boxes, 0.0, 1.0)
    return candidates, [(i, k + c["label_offset"], s, boxes[i])
                        for s, i, k in found]


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    c = load_config(argv[2])
    if argv[1] == "anchors":
        np.savetxt(argv[3], anchors(c), fmt="%.9g")
    elif argv[1] == "input":
        px = np.fromfile(argv[3], dtype=np.uint8).astype(np.float64)
        ch = max(len(c["mean"]), len(c["scale"]))
        mean = np.resize(np.array(c["mean"]), ch)
        scale = np.resize(np.array(c["scale"]), ch)
        k = np.arange(px.size) % ch
        ((px - mean[k]) * scale[k]).astype(np.float32).tofile(argv[4])
    elif argv[1] == "detect":
        enc = np.fromfile(argv[3], dtype=np.float32)
        logits = np.fromfile(argv[4], dtype=np.float32)
        candidates, rows = detect(c, enc, logits)
        with open(argv[5], "w") as f:
            f.write("candidates %d\n" % candidates)
            for i, k, s, b in rows:
                f.write("%d %d %.9g %.9g %.9g %.9g %.9g\n" %
                        (i, k, s, b[0], b[1], b[2], b[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
