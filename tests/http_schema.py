#!/usr/bin/python3
"""http_schema.py — edgemuxd's HTTP bodies against JSON schemas written from
the Open Inference Protocol's REST specification (server and model
metadata, repository index, infer request and response, errors), with
Python's http.client and python3-jsonschema.

usage: http_schema.py EDGEMUXD REPO
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import jsonschema

TENSOR_META = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"enum": ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64",
                              "INT8", "INT16", "INT32", "INT64", "FP16",
                              "FP32", "FP64", "BYTES"]},
        "shape": {"type": "array", "items": {"type": "integer"}},
    },
}
SERVER_METADATA = {
    "type": "object",
    "required": ["name", "version", "extensions"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "extensions": {"type": "array", "items": {"type": "string"}},
    },
}
MODEL_METADATA = {
    "type": "object",
    "required": ["name", "platform", "inputs", "outputs"],
    "properties": {
        "name": {"type": "string"},
        "versions": {"type": "array", "items": {"type": "string"}},
        "platform": {"type": "string"},
        "inputs": {"type": "array", "items": TENSOR_META},
        "outputs": {"type": "array", "items": TENSOR_META},
    },
}
REPOSITORY_INDEX = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "state": {"type": "string"},
            "reason": {"type": "string"},
        },
    },
}
OUTPUT = dict(TENSOR_META)
OUTPUT["properties"] = dict(TENSOR_META["properties"],
                            data={"type": "array"},
                            parameters={"type": "object"})
INFER_RESPONSE = {
    "type": "object",
    "required": ["model_name", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "outputs": {"type": "array", "items": OUTPUT},
    },
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {"error": {"type": "string"}},
}
MODEL = "face_detection_short_range"


def start(edgemuxd, repo, tmp):
    log = open(os.path.join(tmp, "log"), "w+")
    # A cross build's edgemuxd runs under $EMX_EXEC_WRAPPER (the emulator),
    # its start stretched by $EMX_TEST_TIME_SCALE (make check-arm64).
    wrap = os.environ.get("EMX_EXEC_WRAPPER", "").split()
    scale = int(os.environ.get("EMX_TEST_TIME_SCALE", "1"))
    p = subprocess.Popen(wrap + [edgemuxd, "--socket", os.path.join(tmp, "s"),
                                 "--models", repo, "--device", "cpu:workers=1",
                                 "--http", "127.0.0.1:0"], stderr=log)
    deadline = time.monotonic() + 20 * scale
    while time.monotonic() < deadline:
        log.seek(0)
        m = re.search(r"HTTP \(KServe v2\) on \S+ \(port (\d+)\)", log.read())
        if m:
            return p, int(m.group(1))
        if p.poll() is not None:
            break
        time.sleep(0.05)  # polling the log for the ready line
    p.kill()
    log.seek(0)
    sys.exit("edgemuxd did not start:\n" + log.read())


def call(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, body=json.dumps(body) if body is not None else None)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


def main():
    edgemuxd, repo = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        p, port = start(edgemuxd, repo, tmp)
        try:
            checks = 0
            st, doc = call(port, "GET", "/v2")
            assert st == 200
            jsonschema.validate(doc, SERVER_METADATA)
            st, doc = call(port, "GET", "/v2/models/" + MODEL)
            assert st == 200
            jsonschema.validate(doc, MODEL_METADATA)
            st, index = call(port, "POST", "/v2/repository/index", {})
            assert st == 200
            jsonschema.validate(index, REPOSITORY_INDEX)
            assert MODEL in [m["name"] for m in index]
            req = {"id": "x1", "inputs": [{"name": "input",
                                           "shape": [1, 128, 128, 3],
                                           "datatype": "FP32",
                                           "data": [0.25] * (128 * 128 * 3)}],
                   "outputs": [{"name": "classificators"}]}
            st, doc = call(port, "POST", "/v2/models/%s/infer" % MODEL, req)
            assert st == 200, doc
            jsonschema.validate(doc, INFER_RESPONSE)
            assert doc["id"] == "x1"
            assert [o["name"] for o in doc["outputs"]] == ["classificators"]
            assert len(doc["outputs"][0]["data"]) == 896
            for method, path, body, status in [
                    ("GET", "/v2/models/nope", None, 404),
                    ("POST", "/v2/models/%s/infer" % MODEL, {"inputs": 3}, 400),
                    ("POST", "/v2/repository/models/junk/load", {}, 400),
                    ("GET", "/v2/nothing", None, 404)]:
                st, doc = call(port, method, path, body)
                assert st == status, (path, st, doc)
                jsonschema.validate(doc, ERROR)
                checks += 1
            print("http_schema: every body matches its schema (%d error "
                  "cases)" % checks)
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)


if __name__ == "__main__":
    main()
