"""Patches the worker's own reply machinery: every reply becomes a 1-KB pickle of
lists that share references 30 levels deep (2^30 values once expanded), or an error
reply whose fields have the wrong types. The trusted side must refuse both as data,
never expand them, never crash.
Expect: malformed reply
"""

import sys

import torch

_wire = sys.modules.get("_wire")
_original = _wire.write_frame if _wire is not None else None
_calls = [0]


def _bomb():
    value = [0]
    for _ in range(30):
        value = [value, value]  # shared: 2^30 leaves, 31 distinct lists
    return value


def _forged(fd, message):
    if isinstance(message, dict) and message.get("value") == "ready" or _original is None:
        return _original(fd, message)  # let the worker start
    _calls[0] += 1
    if _calls[0] % 2:
        return _original(fd, {"ok": True, "value": _bomb()})
    return _original(fd, {"ok": False, "error": {"type": 1, "builtin": "yes", "message": [],
                                                 "traceback": None}})


if _wire is not None:
    _wire.write_frame = _forged


def absmax_quantize(x, dim=None):
    return torch.zeros_like(x, dtype=torch.int8), torch.ones(())


def absmax_dequantize(q, scale):
    return q.float() * scale


def quantize_rowwise(x):
    return torch.zeros_like(x, dtype=torch.int8), torch.ones(x.shape[0])
