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
data until it has been checked, and its sizes are bounded before anything is
allocated for them (`read_reply`), against the budget of the request it answers
(`reply_limit`: 1 GiB for a call or getattr, which may return tensors; 64 KiB
for everything else: a notebook answer is an int, a float or a short str, a
cell, an import or the stats answer None, a small dict or an error):

1. the frame's length, before a byte of its body is read;
2. the archive's first entry, data.pkl (the structure; tensor data follows it),
   from its local header: stored, at most MAX_PICKLE_BYTES, read alone first;
3. its pickle, walked opcode by opcode before unpickling (`scan_pickle`): only
   the opcodes and globals torch.save writes for plain data, at most MAX_OPCODES
   of them, each string's declared length at most MAX_TEXT_BYTES, each integer's
   at most MAX_INT_BYTES; a pickle that names no tensor storage leaves room for
   only MAX_ARCHIVE_TAIL bytes after it, so the rest is refused unread;
4. the whole archive (`check_frame`): stored entries within the budget, data.pkl
   the one read in step 2;
5. the decoded reply (`check_reply`): one of the two shapes above, made only of
   plain values, walked with a budget of MAX_NODES visits and MAX_DEPTH levels
   (shared references count at every visit, so a small reply that would expand
   exponentially is refused, not expanded) and of the request's budget in bytes,
   a tensor counted by its shape, not its storage (a view that claims 2^40
   elements of one float is refused before a test can copy it).

The worker applies step 5 to what it is about to send (and measures a small
reply), so honest code that returns too much gets a plain ValueError instead.
"""

from __future__ import annotations

import io
import mmap
import os
import struct

HEADER = struct.Struct("<Q")
MAX_FRAME_BYTES = 1 << 31
READY = {"ok": True, "value": "ready"}

MAX_REPLY_BYTES = 1 << 30    # a call's or getattr's reply: the largest GPU test returns ~100 MiB
MAX_ANSWER_BYTES = 64 << 10  # any other reply: answers (int, float, short str), None, errors
MAX_PICKLE_BYTES = 16 << 20  # a reply's structure (data.pkl): the rest is tensor data
MAX_ARCHIVE_TAIL = 64 << 10  # torch.save's small records and directory after data.pkl
MAX_OPCODES = 1_000_000      # pickle opcodes of one reply (a value takes one to a few)
MAX_NODES = 200_000          # values visited in one reply (a state dict has a few hundred)
MAX_DEPTH = 32               # nesting of lists and dicts
MAX_TEXT = 1 << 20           # characters of one string in a value
MAX_TEXT_BYTES = 4 * MAX_TEXT  # ... as UTF-8, declared in the pickle
MAX_INT_BYTES = 512          # of one integer (about 1,200 digits)
MAX_ERROR_TEXT = 16_384      # characters of an error's message or traceback (the worker
                             # sends at most 4,000 and 6,000)
ERROR_FIELDS = {"type": str, "builtin": bool, "message": str, "traceback": str}
SMALL_OPS = ("load", "cell", "capture", "stats")  # ops whose reply holds no tensors

class BadReply(ValueError):
    """A reply that is not what the protocol allows: the worker (student code) is at fault."""


def encode(message: object) -> bytes:
    """A frame's payload: `message` as torch.save writes it."""
    import torch

    buffer = io.BytesIO()
    torch.save(message, buffer)
    return buffer.getvalue()


def write_frame(fd: int, message: object) -> None:
    payload = encode(message)
    view = memoryview(HEADER.pack(len(payload)) + payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def decode_frame(payload) -> object:
    """A frame's payload (bytes or a bytearray, not copied) as plain data; anything else
    fails to load."""
    import torch

    return torch.load(_View(payload), weights_only=True, map_location=None)


class _View(io.RawIOBase):
    """A seekable file over a buffer that reads it in place (io.BytesIO copies a
    bytearray: a reply would be held twice)."""

    def __init__(self, buffer) -> None:
        self.view, self.position = memoryview(buffer), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        n = max(0, min(len(target), len(self.view) - self.position))
        target[:n] = self.view[self.position:self.position + n]
        self.position += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = (0, self.position, len(self.view))[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position


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


# ------------------------------------------------------------ reading replies --
LOCAL_HEADER = struct.Struct("<4s4xH8xLLHH")  # a zip entry's local header (30 bytes):
#                       signature, compression, sizes (stored, unpacked), name and extra lengths


def reply_limit(request: dict | None) -> int:
    """The bytes a reply to `request` may take (None: the worker's greeting)."""
    if request is None or request.get("op") in SMALL_OPS:
        return MAX_ANSWER_BYTES
    return MAX_REPLY_BYTES


def read_reply(fill, length: int, limit: int) -> object:
    """The reply of `length` bytes that `fill(view)` reads into `view` from the worker,
    checked at every step of the module docstring before more is read or decoded;
    BadReply says which step refused it. Memory is taken as bytes arrive (an anonymous
    mapping, not a zeroed buffer), so a refused reply costs only what was read of it."""
    if length > limit:
        raise BadReply(f"a reply of {length} bytes, more than the {limit} it may take")
    if length < LOCAL_HEADER.size:
        raise BadReply("not a torch.save archive (too short)")
    buffer = mmap.mmap(-1, length)
    frame = _Arriving(memoryview(buffer), fill)
    frame.ensure(LOCAL_HEADER.size)
    signature, method, _, _, name_length, extra_length = LOCAL_HEADER.unpack_from(frame.view)
    if signature != b"PK\x03\x04" or method != 0:
        raise BadReply("not a torch.save archive of stored entries (no stored zip entry first)")
    start = LOCAL_HEADER.size + name_length + extra_length
    storages, size = scan_pickle(frame.view[start:], min(limit, MAX_PICKLE_BYTES),
                                 lambda n: frame.ensure(start + n))
    if not storages and length - start - size > MAX_ARCHIVE_TAIL:
        raise BadReply(f"{length - start - size} bytes after a structure that names no tensor")
    frame.ensure(length)
    check_frame(buffer, limit, pickle_size=size)
    reply = decode_frame(buffer)
    check_reply(reply, limit)
    return reply


class _Arriving:
    """A frame's buffer, filled from the worker only as far as it has been asked to be."""

    CHUNK = 1 << 16

    def __init__(self, view: memoryview, fill) -> None:
        self.view, self.fill, self.filled = view, fill, 0

    def ensure(self, n: int) -> None:
        """Bytes [0, n) are read, or all there are (in chunks, never past the frame)."""
        n = min(n, len(self.view))
        if n > self.filled:
            upto = min(len(self.view), max(n, self.filled + self.CHUNK))
            self.fill(self.view[self.filled:upto])
            self.filled = upto


def check_payload(payload: bytes, limit: int) -> object:
    """read_reply on a payload already in memory (the worker's check of its own reply)."""
    position = 0

    def fill(view: memoryview) -> None:
        nonlocal position
        view[:] = payload[position:position + len(view)]
        position += len(view)

    return read_reply(fill, len(payload), limit)


# Opcodes torch.save (pickle protocol 2) writes for plain data, and their argument
# bytes: a fixed count, or "n1"/"n4" (a 1- or 4-byte length, then that many bytes),
# or "lines" (two newline-ended lines: GLOBAL's module and name).
PLAIN_OPCODES = {
    b"\x80": 1, b".": 0, b"(": 0, b"}": 0, b"]": 0, b")": 0, b"t": 0, b"\x85": 0,
    b"\x86": 0, b"\x87": 0, b"a": 0, b"e": 0, b"s": 0, b"u": 0, b"q": 1, b"r": 4,
    b"h": 1, b"j": 4, b"N": 0, b"\x88": 0, b"\x89": 0, b"J": 4, b"K": 1, b"M": 2,
    b"G": 8, b"\x8a": "n1", b"\x8b": "n4", b"X": "n4", b"c": "lines", b"R": 0, b"Q": 0,
}
LONG1, LONG4, BINUNICODE, GLOBAL, BINPERSID, STOP = b"\x8a", b"\x8b", b"X", b"c", b"Q", b"."


def scan_pickle(pickle: memoryview, budget: int = MAX_PICKLE_BYTES,
                ensure=lambda n: None) -> tuple[int, int]:
    """Walk a reply's pickle without unpickling it: only PLAIN_OPCODES, at most MAX_OPCODES
    and `budget` bytes, declared lengths within MAX_TEXT_BYTES (strings) and MAX_INT_BYTES
    (integers), only plain globals. `ensure(n)` makes its first n bytes readable (they
    arrive as it goes). Returns (tensor storages it names, its length in bytes)."""
    position, opcodes, storages = 0, 0, 0
    while True:
        opcodes += 1
        if opcodes > MAX_OPCODES:
            raise BadReply(f"more than {MAX_OPCODES} pickle opcodes")
        if position >= budget:
            raise BadReply(f"a structure (data.pkl) of more than {budget} bytes")
        ensure(position + 1)
        code = bytes(pickle[position:position + 1])
        argument = PLAIN_OPCODES.get(code)
        if not code:
            raise BadReply("a pickle cut short")
        if argument is None:
            raise BadReply(f"pickle opcode {code!r}, which torch.save does not write for "
                           "plain data")
        position += 1
        if argument == "lines":
            ensure(position + 130)
            position = _check_global(pickle, position)
        elif argument in ("n1", "n4"):
            width = 1 if argument == "n1" else 4
            ensure(position + width)
            size = int.from_bytes(pickle[position:position + width], "little",
                                  signed=code == LONG4)
            bound = MAX_TEXT_BYTES if code == BINUNICODE else MAX_INT_BYTES
            if not 0 <= size <= bound:
                kind = "a string" if code == BINUNICODE else "an integer"
                raise BadReply(f"{kind} of {size} bytes (at most {bound})")
            position += width + size
        else:
            position += argument
        storages += code == BINPERSID
        if code == STOP:
            return storages, position


def _check_global(pickle: memoryview, position: int) -> int:
    """GLOBAL's module and name (newline-ended, at most 64 bytes each): a plain type."""
    names = []
    for _ in range(2):
        line = bytes(pickle[position:position + 65])
        newline = line.find(b"\n")
        if newline < 0:
            raise BadReply("a pickle global name longer than 64 bytes")
        names.append(line[:newline].decode("ascii", "replace"))
        position += newline + 1
    if not _plain_global(*names):
        raise BadReply(f"the global {'.'.join(names)}, which is not plain data")
    return position


def _plain_global(module: str, name: str) -> bool:
    """What torch.save names for plain data: tensors, their storages, dtypes, devices,
    sizes, the empty hooks dict of a tensor, and bytes (protocol 2 encodes them)."""
    import torch

    if module == "torch":
        return (name in ("Size", "device") or name.endswith("Storage")
                or isinstance(getattr(torch, name, None), torch.dtype))
    return (module, name) in {("torch._utils", "_rebuild_tensor_v2"),
                              ("torch._utils", "_rebuild_tensor_v3"),
                              ("torch.storage", "UntypedStorage"),
                              ("collections", "OrderedDict"), ("_codecs", "encode")}


# ------------------------------------------------------------ checking replies --
def check_frame(payload, limit: int = MAX_REPLY_BYTES, pickle_size: int | None = None) -> None:
    """Before decoding: a torch.save zip whose entries are stored, not compressed, and add
    up to at most `limit` (no decompression bomb reaches torch.load), with one data.pkl,
    the archive's first entry, of `pickle_size` bytes (the one `read_reply` scanned)."""
    import zipfile

    try:
        with zipfile.ZipFile(_View(payload)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise BadReply(f"not a torch.save archive ({error})") from None
    if any(e.compress_type != zipfile.ZIP_STORED for e in entries):
        raise BadReply("a compressed entry (torch.save never compresses)")
    if sum(e.file_size for e in entries) > limit:
        raise BadReply(f"more than {limit} bytes once unpacked")
    pickles = [e for e in entries if e.filename.endswith("data.pkl")]
    if len(pickles) != 1 or pickles[0].header_offset != 0 or pickle_size not in (
            None, pickles[0].file_size):
        raise BadReply("its data.pkl is not the archive's one first entry, scanned")


def check_reply(reply: object, limit: int = MAX_REPLY_BYTES) -> None:
    """A decoded reply has one of the protocol's two shapes and only plain values, within
    `limit` bytes (check_plain)."""
    if type(reply) is not dict or type(reply.get("ok")) is not bool:
        raise BadReply("a reply must be a dict with a boolean 'ok'")
    if reply["ok"]:
        if set(reply) != {"ok", "value"}:
            raise BadReply(f"unexpected keys {sorted(map(repr, reply))}")
        check_plain(reply["value"], limit)
        return
    error = reply.get("error")
    if set(reply) != {"ok", "error"} or type(error) is not dict or set(error) != set(
            ERROR_FIELDS):
        raise BadReply("an error reply must carry type, builtin, message and traceback")
    for key, kind in ERROR_FIELDS.items():
        if type(error[key]) is not kind:
            raise BadReply(f"error field {key!r} is not a {kind.__name__}")
        if kind is str and len(error[key]) > MAX_ERROR_TEXT:
            raise BadReply(f"error field {key!r} is longer than {MAX_ERROR_TEXT} characters")


def check_plain(value: object, limit: int = MAX_REPLY_BYTES) -> None:
    """Plain data only (see the module docstring), within the visit and depth budgets and
    `limit` bytes: a tensor counts numel x element size, a string or bytes its length,
    anything else 8 bytes."""
    import torch

    visits, size = 0, 0
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        visits += 1
        if visits > MAX_NODES:
            raise BadReply(f"more than {MAX_NODES} values (shared references count each time)")
        if depth > MAX_DEPTH:
            raise BadReply(f"nested deeper than {MAX_DEPTH} levels")
        kind = type(item)
        size += item.numel() * item.element_size() if kind is torch.Tensor else (
            len(item) if kind in (str, bytes) else 8)
        if size > limit:
            raise BadReply(f"more than the {limit} bytes this reply may take")
        if kind in (list, tuple):
            pending.extend((v, depth + 1) for v in item)
        elif kind is dict:
            if not all(type(k) in (str, int) for k in item):
                raise BadReply("a dict key that is not a string or an integer")
            pending.extend((v, depth + 1) for v in item.values())
        elif kind is str and len(item) > MAX_TEXT:
            raise BadReply(f"a string longer than {MAX_TEXT} characters")
        elif kind is int and item.bit_length() >= 8 * MAX_INT_BYTES:
            raise BadReply(f"an integer of more than {MAX_INT_BYTES} bytes")
        elif kind not in (int, float, bool, str, bytes, type(None), torch.Tensor, torch.Size,
                           torch.dtype, torch.device):
            raise BadReply(f"a value of type {kind.__name__}")
