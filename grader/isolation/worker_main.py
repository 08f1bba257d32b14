"""The worker: the only process that ever runs student code.

This file is self-contained (standard library, torch and the wire format)
because it is copied into the worker's scratch directory and run from there
with `python -I _worker_main.py`; it must not import the grader, the hidden
tests or the reference solutions, and cannot (they are not on its sys.path).
What crosses the pipe, and how, is described in one place: wire.py, of which
the worker gets a copy, `_wire.py`, beside this file.

The trusted side imports this module too, for `define_probe`: a probe run
in-process is defined exactly as the worker defines it.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import os
import sys
import traceback
from collections import OrderedDict

if __name__ == "__main__":
    # python -I leaves the script's directory off sys.path: add it, for _wire.py.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _wire as wire
else:
    from grader.isolation import wire

PLAIN_SCALARS = (int, float, bool, str, bytes, type(None))


class Worker:
    """The student's modules and the objects they made, serving one request at a time."""

    def __init__(self) -> None:
        self.modules: dict[str, object] = {}
        self.handles: dict[int, object] = {}
        self.next_handle = 1
        self.triton_launches = 0
        self.probes: dict[str, object] = {}
        # the namespace a concept notebook's cells share (grader/kit/notebooks.py)
        self.notebook: dict[str, object] = {"__name__": "__main__", "__builtins__": builtins}

    # Values leaving the worker: plain data, or a handle for anything else.
    def export(self, value: object) -> object:
        import torch

        if type(value) in (torch.Tensor, torch.nn.Parameter):
            return value.detach()  # a plain torch.Tensor either way
        if isinstance(value, torch.Tensor):
            raise TypeError(
                f"returned a {type(value).__name__}, a torch.Tensor subclass; return a plain tensor"
            )
        if type(value) in PLAIN_SCALARS or isinstance(value, (torch.dtype, torch.device)):
            return value
        if type(value) is torch.Size:
            return value
        if type(value) in (list, tuple):
            return type(value)(self.export(v) for v in value)
        if type(value) in (dict, OrderedDict) and all(type(k) is str for k in value):
            return {k: self.export(v) for k, v in value.items()}
        handle = self.next_handle
        self.next_handle += 1
        self.handles[handle] = value
        return {"__handle__": handle, "type": type(value).__name__}

    # Values entering the worker: handles become the objects they stand for.
    def unwrap(self, value: object) -> object:
        if type(value) is dict and "__handle__" in value:
            return self.handles[value["__handle__"]]
        if type(value) in (list, tuple):
            return type(value)(self.unwrap(v) for v in value)
        if type(value) is dict:
            return {k: self.unwrap(v) for k, v in value.items()}
        return value

    def resolve(self, target: tuple) -> object:
        kind, where, attribute = target
        if kind == "probe":  # where=None: a grader probe run before any student code
            module = self.modules[where] if where is not None else None
            return functools.partial(self.probe(*attribute), module)
        owner = self.modules[where] if kind == "module" else self.handles[where]
        return owner if attribute is None else getattr(owner, attribute)

    def probe(self, source: str, name: str):
        if source not in self.probes:
            self.probes[source] = define_probe(source, name)
        return self.probes[source]

    def watch_triton_launches(self) -> None:
        """Count kernel launches (compiled or interpreted), if the module uses Triton."""
        if "triton" not in sys.modules:
            return
        from triton.runtime import interpreter, jit

        worker = self
        for cls in (jit.JITFunction, interpreter.InterpretedFunction):
            original = cls.run

            def counted(self, *args, _original=original, **kwargs):
                worker.triton_launches += 1
                return _original(self, *args, **kwargs)

            cls.run = counted

    def handle(self, request: dict) -> object:
        op = request["op"]
        if op == "load":
            name = request["module"]
            self.modules[name] = importlib.import_module(name)
            self.watch_triton_launches()
            return None
        if op == "call":
            import torch

            torch.manual_seed(request.get("seed", 0))
            function = self.resolve(request["target"])
            args = self.unwrap(request.get("args", []))
            kwargs = self.unwrap(request.get("kwargs", {}))
            result = self.export(function(*args, **kwargs))
            if request.get("return_args"):  # to check that inputs were not modified
                return {"result": result, "args": self.export(args)}
            return result
        if op == "getattr":
            return self.export(self.resolve(request["target"]))
        if op == "cell":  # one code cell of the student's notebook
            if "seed" in request:
                import torch

                torch.manual_seed(request["seed"])
            exec(compile(request["source"], request["name"], "exec"), self.notebook)
            return None
        if op == "capture":  # the values a question's check reads; absent names left out
            return {name: self.export(self.notebook[name]) for name in request["names"]
                    if name in self.notebook}
        if op == "stats":
            return {"triton_launches": self.triton_launches}
        raise ValueError(f"unknown op {op!r}")

    def serve(self, fd_in: int, fd_out: int) -> None:
        wire.write_frame(fd_out, wire.READY)
        while True:
            try:
                request = wire.read_frame(fd_in)
            except EOFError:
                return
            try:
                reply = {"ok": True, "value": self.handle(request)}
                check_sendable(request, reply)
                wire.write_frame(fd_out, reply)
            except BaseException as error:  # noqa: BLE001 - everything is reported
                if isinstance(error, KeyboardInterrupt):
                    raise
                wire.write_frame(fd_out, {"ok": False, "error": describe_error(error)})


def check_sendable(request: dict, reply: dict) -> None:
    """What the trusted side would refuse (wire.read_reply), refused here first as a
    ValueError the student can read: their code returned too much for this request. The
    trusted side checks again: this check runs beside student code."""
    limit = wire.reply_limit(request)
    try:
        wire.check_plain(reply["value"], limit)
        if limit < wire.MAX_REPLY_BYTES:  # small: measure it exactly, as it will be read
            wire.check_payload(wire.encode(reply), limit)
    except wire.BadReply as error:
        what = "answer" if request.get("op") == "capture" else "value"
        raise ValueError(f"your {what} cannot be sent to the grader: {error}") from None


def probe_namespace() -> dict:
    """Everything a probe may name besides its arguments (grader/kit/probes.py)."""
    import math

    import torch
    import torch.distributed as dist
    import torch.nn as nn
    import torch.nn.functional as F

    return {"torch": torch, "nn": nn, "F": F, "math": math, "dist": dist,
            "__builtins__": builtins}


def define_probe(source: str, name: str):
    scope = probe_namespace()
    exec(compile(source, f"<probe {name}>", "exec"), scope)  # trusted source
    return scope[name]


def describe_error(error: BaseException) -> dict:
    frames = traceback.format_exception(type(error), error, error.__traceback__)
    return {
        "type": type(error).__name__[:200],
        "builtin": getattr(builtins, type(error).__name__, None) is type(error),
        "message": str(error)[:4000],
        "traceback": "".join(frames)[-6000:],
    }


def main(argv: list[str]) -> None:
    fd_in, fd_out = int(argv[1]), int(argv[2])
    # sys.path is exactly what the trusted side allows: the scratch directory
    # with the student's file first, then the interpreter's own libraries.
    sys.path[:] = argv[3].split(os.pathsep)
    # An editable install of the grader puts a finder for its repository on
    # sys.meta_path; the worker has no business importing from there.
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in type(f).__module__
                        and "__editable__" not in getattr(f, "__module__", "")]
    # -I ignores PYTHONUNBUFFERED: flush the student's prints as they happen, so the
    # trusted side can show them even when the worker then crashes.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, write_through=True)
    os.set_inheritable(fd_in, False)
    os.set_inheritable(fd_out, False)
    Worker().serve(fd_in, fd_out)


if __name__ == "__main__":
    main(sys.argv)
