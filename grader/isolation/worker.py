"""Trusted side of the worker: start it, talk to it, survive it.

`StudentProxy` is what tests see as the `student` fixture when grading:
`student.absmax_quantize(x)` sends the call to a `WorkerProcess`, which runs
the student's module in a separate, restartable process (see worker_main.py
for the wire protocol). Nothing the worker sends back is trusted beyond
being plain data: replies are read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import builtins
import functools
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from grader.isolation import worker_main as wire
from grader.isolation.sandbox import RESIDENT_LIMIT_BYTES, GiB, sandbox, worker_environment

WORKER_SCRIPT = Path(wire.__file__)
OUTPUT_TAIL_BYTES = 4000
OUTPUT_SHOWN_BYTES = 1000  # of the student's own prints, shown beside a failure
WATCH_S = 0.25   # how often a waiting call checks the worker's memory
STRIKES = 2      # tests a function may crash or hang in before it is no longer run


class StudentError(Exception):
    """The student's code raised an exception that is not a Python builtin."""


class StudentCrash(Exception):
    """The worker died, hung or misbehaved while running student code."""


class GraderFault(Exception):
    """The grader or the machine failed; the test is ungradable, not failed."""


@dataclass
class WorkerConfig:
    scratch_files: dict[str, Path]      # name in the scratch dir -> source file
    module: str                         # the student module to import
    call_timeout_s: float = 60.0
    import_timeout_s: float = 120.0
    environment: dict[str, str] | None = None       # None: sandbox.worker_environment
    extra_environment: dict[str, str] | None = None  # added to it (e.g. GLOO_SOCKET_IFNAME)


class WorkerProcess:
    """One worker process, started lazily and restarted after a crash or hang."""

    def __init__(self, config: WorkerConfig):
        self.config = config
        self.process: subprocess.Popen | None = None
        self.scratch: Path | None = None
        self.import_failure: str | None = None  # deterministic: remembered, not retried
        self.start_failure: str | None = None
        self.poisoned: str | None = None         # a crash earlier in the current test
        self.strikes: dict[str, tuple[int, str]] = {}  # function -> (crashes, last reason)
        self.test_mark: tuple[int | None, int] = (None, 0)  # (pid, output offset) at test start
        self.printed_before_stop = ""
        self.starts = 0

    # ---------------------------------------------------------- lifecycle --
    def start(self) -> None:
        """Start the worker and import the student's module; failures are recorded in
        start_failure (the grader's fault) or import_failure (the submission's)."""
        self.stop()
        missing = [name for name, p in self.config.scratch_files.items() if not Path(p).is_file()]
        if missing:  # the name only: a temporary path would change from run to run
            self.import_failure = f"{missing[0]} is missing from the submission"
            return
        self.scratch = Path(tempfile.mkdtemp(prefix="llmlab-worker-"))
        for name, source in self.config.scratch_files.items():
            shutil.copyfile(source, self.scratch / name)
        shutil.copyfile(WORKER_SCRIPT, self.scratch / "_worker_main.py")
        self.output = open(self.scratch / "_output.txt", "w+b")
        box = sandbox()
        uid = box.new_uid()
        box.prepare_scratch(self.scratch, uid)
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        command = [sys.executable, "-I", str(self.scratch / "_worker_main.py"),
                   str(to_worker_r), str(from_worker_w), os.pathsep.join(self._sys_path())]
        try:
            self.process = subprocess.Popen(
                command, cwd=self.scratch, stdin=subprocess.DEVNULL, stdout=self.output,
                stderr=subprocess.STDOUT, pass_fds=(to_worker_r, from_worker_w),
                env={**(self.config.environment or worker_environment(self.scratch)),
                     **(self.config.extra_environment or {})},
                start_new_session=True, preexec_fn=functools.partial(box.enter, uid, self.scratch),
            )
        except (OSError, subprocess.SubprocessError) as error:
            for fd in (to_worker_r, to_worker_w, from_worker_r, from_worker_w):
                os.close(fd)
            self.output.close()
            self.start_failure = f"the worker process could not start: {error}"
            return
        finally:
            if self.process is not None:
                os.close(to_worker_r)
                os.close(from_worker_w)
        self.to_worker, self.from_worker = to_worker_w, from_worker_r
        self.starts += 1
        try:
            hello = self._receive(self.config.import_timeout_s)
        except StudentCrash as crash:
            hello = f"nothing ({crash})"
        if hello != {"ok": True, "value": "ready"}:
            output = self.output_tail()[-1500:]
            self.stop()
            self.start_failure = f"the worker process could not start: got {hello}\n{output}"
            return
        try:
            reply = self._exchange({"op": "load", "module": self.config.module},
                                   self.config.import_timeout_s, during="importing your module")
        except StudentCrash as crash:  # exited, hung or garbled while importing
            self.import_failure = f"your module crashed at import: {crash}"
            return
        if not reply["ok"]:
            error = reply["error"]
            self.import_failure = (f"your module crashed at import: {error['type']}: "
                                   f"{error['message']}")
            self.stop()

    def _raise_if_broken(self) -> None:
        """Start and import failures are deterministic: every later call fails the same way
        (and from this one place, so hypothesis sees one consistent failure)."""
        if self.start_failure:
            raise GraderFault(self.start_failure)
        if self.import_failure:
            raise StudentCrash(self.import_failure)

    def _sys_path(self) -> list[str]:
        """The scratch dir, then the interpreter's libraries, never the grader's repo."""
        repo = Path(__file__).resolve().parents[2]
        interpreter = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()]

        def allowed(entry: str) -> bool:
            path = Path(entry).resolve()
            if any(path.is_relative_to(root) for root in interpreter):
                return True  # the interpreter's own libraries, even in a .venv inside the repo
            return not path.is_relative_to(repo)

        libraries = [p for p in sys.path if p and Path(p).is_absolute() and allowed(p)]
        return [str(self.scratch), *dict.fromkeys(libraries)]

    def stop(self) -> None:
        if self.process is not None:
            self.printed_before_stop = self.printed_this_test()
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.process.wait()
            for fd in (self.to_worker, self.from_worker):
                os.close(fd)
            self.output.close()
            self.process = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def printed_this_test(self) -> str:
        """What the student's code printed since the current test began (the last
        OUTPUT_SHOWN_BYTES), including a worker that has since been stopped."""
        if self.process is None:
            return self.printed_before_stop
        self.output.flush()
        size = self.output.seek(0, os.SEEK_END)
        mark = self.test_mark[1] if self.test_mark[0] == self.process.pid else 0
        self.output.seek(max(mark, size - OUTPUT_SHOWN_BYTES))
        return self.printed_before_stop + self.output.read().decode("utf-8", "replace")

    def output_tail(self) -> str:
        """The last few KB the student's code printed (never parsed, only shown)."""
        if self.process is None:
            return ""
        self.output.flush()
        size = self.output.seek(0, os.SEEK_END)
        self.output.seek(max(0, size - OUTPUT_TAIL_BYTES))
        return self.output.read().decode("utf-8", "replace")

    # ------------------------------------------------------------ requests --
    def request(self, message: dict) -> object:
        """Send one request; return its value or raise what the student raised.

        After a crash or timeout the rest of the current test fails at once, the
        same way (a hang must not cost a timeout per hypothesis example); the
        next test (new_test) gets a fresh worker. A function that crashed or hung
        in STRIKES tests is not run again in this grading run: its later tests
        fail at once, so an infinite loop costs two timeouts, not one per test.
        """
        key = _target_name(message)
        if self.poisoned is None and self.strikes.get(key, (0, ""))[0] >= STRIKES:
            count, reason = self.strikes[key]
            raise StudentCrash(f"not run again: {key} crashed or timed out in {count} earlier "
                               f"tests (last time: {reason})")
        if self.poisoned is None:
            if self.process is None and not (self.start_failure or self.import_failure):
                self.start()
            self._raise_if_broken()
            try:
                reply = self._exchange(message, self.config.call_timeout_s,
                                       during="running your code")
            except StudentCrash as crash:
                self.poisoned = str(crash)
                count = self.strikes.get(key, (0, ""))[0] + 1
                self.strikes[key] = (count, self.poisoned)
            else:
                if reply["ok"]:
                    return reply["value"]
                raise self._with_output(rebuild_exception(reply["error"]))
        raise self._with_output(StudentCrash(self.poisoned))

    def _with_output(self, error: Exception) -> Exception:
        error.student_output = self.printed_this_test()[-OUTPUT_SHOWN_BYTES:]
        return error

    def new_test(self) -> None:
        """A new test starts: forget the previous test's crash."""
        self.poisoned = None
        self.printed_before_stop = ""
        if self.process is not None:
            self.output.flush()
            self.test_mark = (self.process.pid, self.output.seek(0, os.SEEK_END))

    def _exchange(self, message: dict, timeout_s: float, during: str) -> dict:
        try:
            wire.write_frame(self.to_worker, message)
            reply = self._receive(timeout_s)
        except StudentCrash as crash:
            self.stop()
            raise StudentCrash(f"{crash} while {during}") from None
        except (BrokenPipeError, OSError):
            code = self.process.poll() if self.process else None
            self.stop()
            raise StudentCrash(f"the worker exited (code {code}) while {during}") from None
        if not isinstance(reply, dict) or "ok" not in reply:
            self.stop()
            raise StudentCrash(f"the worker sent a malformed reply while {during}")
        return reply

    def _receive(self, timeout_s: float) -> object:
        deadline = time.monotonic() + timeout_s
        header = self._read(wire.HEADER.size, deadline, timeout_s)
        (length,) = wire.HEADER.unpack(header)
        if length > wire.MAX_FRAME_BYTES:
            raise StudentCrash(f"the worker sent a frame of {length} bytes")
        try:
            return wire.decode_frame(self._read(length, deadline, timeout_s))
        except Exception as error:  # a forged or corrupt frame
            raise StudentCrash(f"the worker sent data that is not plain ({error})") from None

    def _read(self, n: int, deadline: float, timeout_s: float) -> bytes:
        chunks, remaining = [], n
        while remaining:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.from_worker], [], [], min(WATCH_S, max(0.0, left)))
            if not ready:
                if time.monotonic() >= deadline:
                    raise StudentCrash(f"timed out after {timeout_s:g} s")
                if resident_bytes(self.process.pid) > RESIDENT_LIMIT_BYTES:
                    raise StudentCrash(f"used more than {RESIDENT_LIMIT_BYTES / GiB:g} GiB "
                                       "of memory")
                continue
            chunk = os.read(self.from_worker, min(remaining, 1 << 20))
            if not chunk:
                code = self.process.wait(timeout=5) if self.process else None
                raise StudentCrash(describe_exit(code))
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)


def _target_name(message: dict) -> str:
    """The student function a request runs, for counting strikes."""
    kind, _, attribute = message.get("target", ("", "", None))
    if kind == "probe":
        return f"the probe {attribute[1]}"
    return str(attribute or "the object")


def resident_bytes(pid: int) -> int:
    """The worker's resident memory (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def describe_exit(code: int | None) -> str:
    if code is None:
        return "the worker closed its channel"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else code
        if name == "SIGKILL":
            return "the worker was killed (SIGKILL: likely over its memory or CPU limit)"
        return f"the worker died from signal {name}"
    return f"the worker exited with code {code}"


def rebuild_exception(error: dict) -> Exception:
    """The student's exception as a trusted object of a builtin type where possible,
    so `pytest.raises(ValueError)` works the same in-process and across the wire."""
    message = f"{error['message']}"
    cls = getattr(builtins, error["type"], None) if error.get("builtin") else None
    if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins":
        try:
            rebuilt = cls(message)
        except Exception:
            rebuilt = StudentError(f"{error['type']}: {message}")
    else:
        rebuilt = StudentError(f"{error['type']}: {message}")
    rebuilt.student_traceback = error.get("traceback", "")
    return rebuilt


class RemoteObject:
    """A student object that lives in the worker (a class instance, a bound method)."""

    def __init__(self, worker: WorkerProcess, handle: int, type_name: str):
        self._worker, self._handle, self._type_name = worker, handle, type_name

    def __getattr__(self, name: str):
        if name.startswith("_"):  # printers probe _repr_pretty_ and friends: not ours
            raise AttributeError(name)
        return from_wire(self._worker, self._worker.request(
            {"op": "getattr", "target": ("handle", self._handle, name)}))

    def __call__(self, *args, **kwargs):
        return call_remote(self._worker, ("handle", self._handle, None), args, kwargs)

    def __repr__(self) -> str:
        return f"<student {self._type_name}>"


class StudentProxy:
    """The student's module, seen from the trusted process."""

    def __init__(self, worker: WorkerProcess, module: str, seed: int = 0):
        self._worker, self._module, self._seed = worker, module, seed
        self._calls = 0

    def __getattr__(self, name: str):
        if name.startswith("_"):  # the API is public names; printers probe _repr_pretty_
            raise AttributeError(name)
        return RemoteFunction(self, name)

    def __repr__(self) -> str:
        return f"<student {self._module}>"


class RemoteFunction:
    def __init__(self, proxy: StudentProxy, name: str):
        self.proxy, self.name = proxy, name

    def __call__(self, *args, **kwargs):
        proxy = self.proxy
        proxy._calls += 1
        target = ("module", proxy._module, self.name)
        return call_remote(proxy._worker, target, args, kwargs, seed=proxy._seed + proxy._calls)

    def __repr__(self) -> str:
        return f"<student {self.proxy._module}.{self.name}>"


def call_remote(worker, target, args, kwargs, seed: int = 0, return_args: bool = False):
    message = {"op": "call", "target": target, "args": list(to_wire(args)),
               "kwargs": to_wire(kwargs), "seed": seed, "return_args": return_args}
    return from_wire(worker, worker.request(message))


def triton_launches(student) -> int:
    """How many Triton kernel launches the student's code has made so far (worker only)."""
    if not isinstance(student, StudentProxy):
        raise TypeError("launches are counted in the worker: use a hidden (isolated) test")
    stats = student._worker.request({"op": "stats"})
    return int(stats["triton_launches"])


def call_and_inspect_inputs(student, name: str, *args):
    """Call student.<name>(*args); return (result, args as they are after the call).

    In-process the arguments are the caller's own objects; across the process
    boundary the worker sends back its copies, so in-place changes show either way.
    """
    if not isinstance(student, StudentProxy):
        return getattr(student, name)(*args), args
    student._calls += 1
    reply = call_remote(student._worker, ("module", student._module, name), args, {},
                        seed=student._seed + student._calls, return_args=True)
    if type(reply) is not dict or set(reply) != {"result", "args"}:
        raise StudentCrash("the worker sent a malformed reply")
    return reply["result"], tuple(reply["args"])


def to_wire(value):
    if isinstance(value, RemoteObject):
        return {"__handle__": value._handle}
    if type(value) in (list, tuple):
        return type(value)(to_wire(v) for v in value)
    if type(value) is dict:
        return {k: to_wire(v) for k, v in value.items()}
    return value


def from_wire(worker, value):
    if type(value) is dict and "__handle__" in value:
        return RemoteObject(worker, value["__handle__"], value.get("type", "object"))
    if type(value) in (list, tuple):
        return type(value)(from_wire(worker, v) for v in value)
    if type(value) is dict:
        return {k: from_wire(worker, v) for k, v in value.items()}
    return value
