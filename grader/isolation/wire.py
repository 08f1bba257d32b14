"""The wire between the trusted side and the worker: frames, and what they carry.

Standard library and torch only: the worker runs a copy of this file (as
`_wire.py`, beside `_worker_main.py` in its scratch directory), and the trusted
side imports it as `grader.isolation.wire`.

Frames
------
Both directions carry frames: an 8-byte little-endian length, then a payload
written by `torch.save` and read back with `torch.load(weights_only=True)`,
so only plain data can cross: tensors, dtypes, devices, sizes, numbers,
strings, None, and lists/tuples/dicts of those. Any other object stays in the
worker and crosses as a *handle* `{"__handle__": id, "type": "ClassName"}`
that later requests can name.

Requests (trusted -> worker), one dict each
-------------------------------------------
    {"op": "load",    "module": name}                         import the student module
    {"op": "call",    "target": T, "args": [...], "kwargs": {...}, "seed": int,
                      "return_args": bool}   # True: reply {"result": ..., "args": [...]}
    {"op": "getattr", "target": T}
    {"op": "stats"}                        -> {"triton_launches": int}

where T is ("module", module_name, attribute), ("handle", id, attribute or None) or
("probe", module_name, (source, function_name)): a trusted driver function
(grader/kit/probes.py) defined from its source in a namespace of torch, nn, F,
math and dist, called with the student's module as its first argument.

Replies (worker -> trusted)
---------------------------
    {"ok": True,  "value": plain data}
    {"ok": False, "error": {"type": "ValueError", "builtin": True, "message": "...",
                            "traceback": "..."}}

The worker writes {"ok": True, "value": "ready"} once, before any request.
"""

from __future__ import annotations

import io
import os
import struct

HEADER = struct.Struct("<Q")
MAX_FRAME_BYTES = 1 << 31
READY = {"ok": True, "value": "ready"}


def write_frame(fd: int, message: object) -> None:
    import torch

    buffer = io.BytesIO()
    torch.save(message, buffer)
    payload = buffer.getvalue()
    view = memoryview(HEADER.pack(len(payload)) + payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def decode_frame(payload: bytes) -> object:
    """A frame's payload as plain data; anything else fails to load."""
    import torch

    return torch.load(io.BytesIO(payload), weights_only=True, map_location=None)


def read_frame(fd: int) -> object:
    """The next frame from a trusted peer (the worker's side; the trusted side reads with
    a deadline and a memory watch instead, grader/isolation/worker.py)."""
    (length,) = HEADER.unpack(_read_exactly(fd, HEADER.size))
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {length} bytes is too large")
    return decode_frame(_read_exactly(fd, length))


def _read_exactly(fd: int, n: int) -> bytes:
    chunks, remaining = [], n
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError("the other end closed the channel")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
