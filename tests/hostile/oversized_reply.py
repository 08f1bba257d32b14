"""Writes its own replies on the worker's channel, each claiming far more than it holds
or than the trusted side may take in: an error whose message is declared 500 MiB long
(streamed), a list of 2 million ints (torch.save, 9 MiB on the wire, 200+ MiB once
unpickled), and a 1-float tensor viewed as 2^31 floats (8 GiB once copied). The trusted
side must refuse each from its declared sizes, before taking it in (grader/isolation/
wire.py, read_reply).
Expect: malformed reply
"""

import io
import os
import struct
import sys
import time

import torch

NAME = b"archive/data.pkl"
ZIP_ENTRY = b"PK\x03\x04" + bytes(22) + struct.pack("<HH", len(NAME), 0) + NAME
_calls = [0]


def _write(data):
    fd, view = int(sys.argv[2]), memoryview(data)  # the worker's reply channel
    while view:
        view = view[os.write(fd, view):]


def _send(declared, head):
    _write(struct.pack("<Q", declared) + head)
    chunk, sent = b"x" * (1 << 20), len(head)
    while sent < declared:
        _write(chunk[:declared - sent])
        sent += min(len(chunk), declared - sent)
    time.sleep(60)


def _saved(value):
    buffer = io.BytesIO()
    torch.save({"ok": True, "value": value}, buffer)
    return buffer.getvalue()


def absmax_quantize(x, dim=None):
    _calls[0] += 1
    if _calls[0] % 3 == 1:
        _send((500 << 20) + 200, ZIP_ENTRY + b"\x80\x02X" + struct.pack("<I", 500 << 20))
    payload = _saved(list(range(1000, 2_001_000)) if _calls[0] % 3 == 2
                     else torch.zeros(1).expand(1 << 31))
    _send(len(payload), payload)


def absmax_dequantize(q, scale):
    return absmax_quantize(q)


def quantize_rowwise(x):
    return absmax_quantize(x)
