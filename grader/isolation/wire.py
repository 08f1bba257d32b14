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
    {"op": "cell", "source": str, "name": "<cell 3>", "seed": int (optional)}
                                           run a notebook cell in the notebook's namespace
    {"op": "capture", "names": [str]}      -> {name: value} of those names it defines

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

What the trusted side accepts
-----------------------------
Student code can patch the worker's own reply machinery, so a reply is hostile
data until `check_reply` has passed it: a zip of stored (never compressed)
entries within MAX_REPLY_BYTES, then one of the two shapes above, made only of
plain values, walked with a budget of MAX_NODES visits and MAX_DEPTH levels
(shared references count at every visit, so a small reply that would expand
exponentially is refused, not expanded).
"""

from __future__ import annotations

import io
import os
import struct

HEADER = struct.Struct("<Q")
MAX_FRAME_BYTES = 1 << 31
READY = {"ok": True, "value": "ready"}

MAX_REPLY_BYTES = 1 << 30    # unpacked size of a reply: the largest GPU test returns ~100 MiB
MAX_NODES = 200_000          # values visited in one reply (a state dict has a few hundred)
MAX_DEPTH = 32               # nesting of lists and dicts
MAX_TEXT = 1 << 20           # characters of one string (a message, a traceback)
ERROR_FIELDS = {"type": str, "builtin": bool, "message": str, "traceback": str}


class BadReply(ValueError):
    """A reply that is not what the protocol allows: the worker (student code) is at fault."""


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


# ------------------------------------------------------------ checking replies --
def check_frame(payload: bytes) -> None:
    """Before decoding: a torch.save zip whose entries are stored, not compressed, and add
    up to at most MAX_REPLY_BYTES (no decompression bomb reaches torch.load)."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise BadReply(f"not a torch.save archive ({error})") from None
    if any(e.compress_type != zipfile.ZIP_STORED for e in entries):
        raise BadReply("a compressed entry (torch.save never compresses)")
    if sum(e.file_size for e in entries) > MAX_REPLY_BYTES:
        raise BadReply(f"more than {MAX_REPLY_BYTES >> 20} MiB once unpacked")


def check_reply(reply: object) -> None:
    """A decoded reply has one of the protocol's two shapes and only plain values."""
    if type(reply) is not dict or type(reply.get("ok")) is not bool:
        raise BadReply("a reply must be a dict with a boolean 'ok'")
    if reply["ok"]:
        if set(reply) != {"ok", "value"}:
            raise BadReply(f"unexpected keys {sorted(map(repr, reply))}")
        check_plain(reply["value"])
        return
    error = reply.get("error")
    if set(reply) != {"ok", "error"} or type(error) is not dict or set(error) != set(
            ERROR_FIELDS):
        raise BadReply("an error reply must carry type, builtin, message and traceback")
    for key, kind in ERROR_FIELDS.items():
        if type(error[key]) is not kind:
            raise BadReply(f"error field {key!r} is not a {kind.__name__}")
        if kind is str and len(error[key]) > MAX_TEXT:
            raise BadReply(f"error field {key!r} is longer than {MAX_TEXT} characters")


def check_plain(value: object) -> None:
    """Plain data only (see the module docstring), within the visit and depth budgets."""
    import torch

    visits = 0
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        visits += 1
        if visits > MAX_NODES:
            raise BadReply(f"more than {MAX_NODES} values (shared references count each time)")
        if depth > MAX_DEPTH:
            raise BadReply(f"nested deeper than {MAX_DEPTH} levels")
        kind = type(item)
        if kind in (list, tuple):
            pending.extend((v, depth + 1) for v in item)
        elif kind is dict:
            if not all(type(k) in (str, int) for k in item):
                raise BadReply("a dict key that is not a string or an integer")
            pending.extend((v, depth + 1) for v in item.values())
        elif kind is str and len(item) > MAX_TEXT:
            raise BadReply(f"a string longer than {MAX_TEXT} characters")
        elif kind not in (int, float, bool, str, bytes, type(None), torch.Tensor, torch.Size,
                           torch.dtype, torch.device):
            raise BadReply(f"a value of type {kind.__name__}")
