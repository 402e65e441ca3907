"""The daemon's devices, from its status report, and pycoral's device
strings (":0", "usb", "usb:0", "pci", "pci:0") matched against them."""

import re

from . import _client
from .errors import EdgemuxError

#: Device kinds that are an Edge TPU to a program: the real one and the
#: simulated one (src/backend/sim.c).
TPU_KINDS = ("edgetpu", "sim")

_DEVICE_STR = re.compile(r"^(?:(usb|pci)(?::(\d+))?|:(\d+))$")


def parse_status(text):
    """The "device NAME key=value..." lines of a status report as dicts
    (name, kind, healthy, spec, type, index)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0] != "device":
            continue
        d = {"name": parts[1]}
        for p in parts[2:]:
            k, _, v = p.partition("=")
            d[k] = v
        d["healthy"] = d.get("healthy") == "1"
        d["type"], d["index"] = _selector(d.get("kind", ""), d.get("spec", ""))
        out.append(d)
    return out


def _selector(kind, spec):
    """("usb"|"pci"|None, N|None) from a spec "edgetpu:usb:0,lib=..."."""
    if kind != "edgetpu":
        return None, None
    sel = spec.split(",", 1)[0].split(":", 1)
    if len(sel) < 2:
        return None, None
    m = re.match(r"^(usb|pci)(?::(\d+))?$", sel[1])
    if not m:
        return None, None
    return m.group(1), (int(m.group(2)) if m.group(2) is not None else None)


def devices(socket=None):
    """The daemon's devices (see parse_status)."""
    return parse_status(_client.shared(socket).status())


def check_device_string(device):
    if device and not _DEVICE_STR.match(device):
        raise ValueError(
            "device %r is not one of pycoral's forms: \":N\", \"usb\", "
            "\"usb:N\", \"pci\", \"pci:N\"" % (device,))


def tpus(devs, device=None, kinds=TPU_KINDS):
    """The healthy Edge TPUs of devs that pycoral's device string selects
    (None: any)."""
    check_device_string(device)
    healthy = [d for d in devs if d.get("kind") in kinds and d["healthy"]]
    if not device:
        return healthy
    m = _DEVICE_STR.match(device)
    if m.group(3) is not None:  # ":N": the Nth Edge TPU of any type
        n = int(m.group(3))
        return healthy[n:n + 1]
    typ, n = m.group(1), m.group(2)
    out = [d for d in healthy if d["type"] == typ]
    if n is not None:
        out = [d for d in out if d["index"] == int(n)]
    return out


def describe(devs):
    if not devs:
        return "none"
    return ", ".join("%s (%s%s)" % (d["name"], d.get("kind", "?"),
                                    "" if d["healthy"] else ", down")
                     for d in devs)


def find_tpu(socket, device):
    """(the matching healthy Edge TPUs, every device) or EdgemuxError when
    the daemon cannot be asked."""
    try:
        devs = devices(socket)
    except EdgemuxError:
        raise
    return tpus(devs, device), devs
