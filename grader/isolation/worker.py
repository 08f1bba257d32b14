"""One worker process: start it, talk to it, survive it.

A `WorkerProcess` runs the student's module in a separate, restartable
process (grader/isolation/worker_main.py, started inside the sandbox of
grader/isolation/sandbox.py) and sends it requests (grader/isolation/wire.py).
Nothing the worker sends back is trusted beyond being plain data, and every
wait for a reply is bounded: by the call's timeout, and by a watch on the
worker's resident memory. Tests reach it through `StudentProxy`
(grader/isolation/proxies.py).
"""

from __future__ import annotations

import functools
import math
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

from grader.isolation import wire
from grader.isolation.cgroups import Cgroup
from grader.isolation.errors import (
    GraderFault,
    NotGraded,
    StudentCrash,
    describe_exit,
    rebuild_exception,
)
from grader.isolation.sandbox import RESIDENT_LIMIT_BYTES, GiB, sandbox, worker_environment
from grader.isolation.strikes import Strikes

WORKER_SCRIPT = Path(__file__).with_name("worker_main.py")  # both copied into the scratch
WIRE_MODULE = Path(wire.__file__)                           # dir, as _worker_main.py, _wire.py
OUTPUT_TAIL_BYTES = 1500  # of what a worker printed before failing to start
OUTPUT_SHOWN_BYTES = 1000  # of the student's own prints, shown beside a failure
IMPORT_TIMEOUT_S = 120.0   # starting Python and importing torch and the student's module
WATCH_S = 0.25   # how often a waiting call checks the worker's memory


@dataclass
class WorkerConfig:
    scratch_files: dict[str, Path]      # name in the scratch dir -> source file
    module: str | None                  # the student module to import (None: none, e.g.
                                        # a notebook imports it from a cell)
    call_timeout_s: float = 60.0
    extra_environment: dict[str, str] | None = None  # added to sandbox.worker_environment
    problem: str | None = None  # why the student's file was not collected: every call says it


class WorkerProcess:
    """One worker process, started lazily and restarted after a crash or hang."""

    def __init__(self, config: WorkerConfig, strikes: Strikes | None = None):
        self.config = config
        self.process: subprocess.Popen | None = None
        self.cgroup: Cgroup | None = None        # the kernel's limits on all its processes
        self.scratch: Path | None = None
        self.import_failure: str | None = None  # deterministic: remembered, not retried
        self.not_graded: str | None = None      # no student file was taken: why
        self.student_code_loaded = False        # has this process imported student code?
        self.start_failure: str | None = None
        self.poisoned: str | None = None         # a crash earlier in the current test
        self.strikes = strikes or Strikes()  # a rank group's ranks: Strikes(limit=None)
        self.test_mark: tuple[int | None, int] = (None, 0)  # (pid, output offset) at test start
        self.printed_before_stop = ""
        self.starts = 0
        self.test_budget_s = math.inf  # student time the current test may use in all
        self.test_used_s = 0.0         # ... and has used so far
        self.over_budget = ""          # why a call stops when the test has used it up
        self.call_started = None       # while a call runs: (monotonic, worker CPU s)

    # ---------------------------------------------------------- lifecycle --
    def start(self, import_module: bool = True) -> None:
        """Start the worker and import the student's module; failures are recorded in
        start_failure (the grader's fault) or import_failure (the submission's).

        import_module=False leaves the import to `import_student_module()`, so grader-side
        set-up (joining a process group) runs before any student code can interfere."""
        self.stop()
        self.student_code_loaded = False
        self.not_graded = self._submission_problem()
        if self.not_graded:
            return
        self._spawn()
        if self.process is not None and import_module and self.config.module:
            self.import_student_module()

    def _submission_problem(self) -> str | None:
        """Why there is no student file to run, in words that are the same every run."""
        if self.config.problem:  # collect.py left the file out, and said why
            return self.config.problem
        missing = [name for name, p in self.config.scratch_files.items() if not Path(p).is_file()]
        if missing:  # the name only: a temporary path would change from run to run
            return f"{missing[0]} is missing from the submission"
        return None

    def _spawn(self) -> None:
        """A fresh scratch dir with the files, and the worker process started in the
        sandbox; if it does not start or greet, start_failure says why."""
        self.scratch = Path(tempfile.mkdtemp(prefix="llmlab-worker-"))
        for name, source in self.config.scratch_files.items():
            shutil.copyfile(source, self.scratch / name)
        shutil.copyfile(WORKER_SCRIPT, self.scratch / "_worker_main.py")
        shutil.copyfile(WIRE_MODULE, self.scratch / "_wire.py")
        self.output = open(self.scratch / "_output.txt", "w+b")
        box = sandbox()
        uid = box.new_uid()
        box.prepare_scratch(self.scratch, uid)
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        command = [sys.executable, "-I", str(self.scratch / "_worker_main.py"),
                   str(to_worker_r), str(from_worker_w), os.pathsep.join(self._sys_path())]
        try:
            self.cgroup = box.new_cgroup()
            self.process = subprocess.Popen(
                command, cwd=self.scratch, stdin=subprocess.DEVNULL, stdout=self.output,
                stderr=subprocess.STDOUT, pass_fds=(to_worker_r, from_worker_w),
                env={**worker_environment(self.scratch), **(self.config.extra_environment or {})},
                start_new_session=True,
                preexec_fn=functools.partial(box.enter, uid, self.scratch, self.cgroup),
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
        self._await_greeting()

    def _await_greeting(self) -> None:
        """The worker says it is ready before anything else; otherwise it never started."""
        try:
            hello = self._receive(IMPORT_TIMEOUT_S, wire.reply_limit(None))
        except StudentCrash as crash:
            hello = f"nothing ({crash})"
        if hello != wire.READY:
            output = self.output_tail()
            self.stop()
            self.start_failure = f"the worker process could not start: got {hello}\n{output}"

    def import_student_module(self) -> None:
        """Import the student's module in the worker; if that fails, import_failure says how.
        From here on, whatever goes wrong in this worker may be the student's doing."""
        self.student_code_loaded = True
        try:
            reply = self._exchange({"op": "load", "module": self.config.module},
                                   IMPORT_TIMEOUT_S, during="importing your module")
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
        if self.not_graded:
            raise NotGraded(self.not_graded)
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
            self.kill()
            self.process.wait()
            for fd in (self.to_worker, self.from_worker):
                os.close(fd)
            self.output.close()
            self.process = None
        if self.cgroup is not None:  # whatever the worker started, wherever it hid
            self.cgroup.remove()
            self.cgroup = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def kill(self) -> None:
        """SIGKILL the worker and all it started. In a PID namespace, that is its PID 1:
        the parent we started, outside, reaps it and then ends the same way (killing that
        parent too would leave the worker a zombie of the machine's init)."""
        if self.process is None:
            return
        inside = _children(self.process.pid) if sandbox().pid_namespace else []
        for pid in inside:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not inside:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

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
        """The last OUTPUT_TAIL_BYTES the worker printed (never parsed, only shown)."""
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
        in too many tests is not run again (grader/isolation/strikes.py).
        """
        key = _target_name(message)
        if self.poisoned is None:
            self.strikes.check(key)
            if self.process is None and not (self.start_failure or self.import_failure
                                             or self.not_graded):
                self.start()
            self._raise_if_broken()
            # after starting the worker: that time is the grader's
            self.call_started = (time.monotonic(), self._cpu_in_use(), self._queue_wait())
            try:
                reply = self._exchange(message, self.config.call_timeout_s,
                                       during="running your code")
            except StudentCrash as crash:
                self.poisoned = str(crash)
                self.strikes.record(key, self.poisoned)
            else:
                if reply["ok"]:
                    return reply["value"]
                raise self._with_output(rebuild_exception(reply["error"]))
            finally:
                self.test_used_s += self._spent_this_call()
                self.call_started = None
        raise self._with_output(StudentCrash(self.poisoned))

    def _with_output(self, error: Exception) -> Exception:
        error.student_output = self.printed_this_test()[-OUTPUT_SHOWN_BYTES:]
        return error

    def new_test(self, budget_s: float | None = None, over_budget: str = "") -> None:
        """A new test starts: forget the previous test's crash. budget_s: the time its calls
        into student code may take together (None: only each call's own timeout); a call
        still running when that is spent is stopped, failing with `over_budget`."""
        self.test_budget_s = math.inf if budget_s is None else budget_s
        self.test_used_s = 0.0
        self.over_budget = over_budget or f"ran past this test's time budget of {budget_s} s"
        self.poisoned = None
        self.printed_before_stop = ""
        if self.process is not None:
            self.output.flush()
            self.test_mark = (self.process.pid, self.output.seek(0, os.SEEK_END))

    def _exchange(self, message: dict, timeout_s: float, during: str) -> dict:
        try:
            wire.write_frame(self.to_worker, message)
            reply = self._receive(timeout_s, wire.reply_limit(message))
        except StudentCrash as crash:
            self.stop()
            raise StudentCrash(f"{crash} while {during}") from None
        except (BrokenPipeError, OSError):
            code = self.process.poll() if self.process else None
            why = self._killed_for_memory() or f"the worker exited (code {code})"
            self.stop()
            raise StudentCrash(f"{why} while {during}") from None
        if not isinstance(reply, dict) or "ok" not in reply:
            self.stop()
            raise StudentCrash(f"the worker sent a malformed reply while {during}")
        return reply

    def _receive(self, timeout_s: float, limit: int) -> object:
        """The worker's next frame, as plain data; a hang, a memory bomb or a forged frame
        is a StudentCrash. Its sizes are checked before they are read (wire.read_reply):
        this process never holds more than `limit` bytes of a reply it has not checked."""
        deadline = time.monotonic() + timeout_s
        header = bytearray(wire.HEADER.size)
        self._read_into(memoryview(header), deadline, timeout_s)
        (length,) = wire.HEADER.unpack(header)
        try:
            return wire.read_reply(
                functools.partial(self._read_into, deadline=deadline, timeout_s=timeout_s),
                length, limit)
        except wire.BadReply as error:
            raise StudentCrash(f"the worker sent a malformed reply: {error}") from None
        except StudentCrash:
            raise
        except Exception as error:  # a forged or corrupt frame torch.load refused
            raise StudentCrash(f"the worker sent data that is not plain ({error})") from None

    def _read_into(self, view: memoryview, deadline: float, timeout_s: float) -> None:
        """Fill `view` from the worker, checking its memory every WATCH_S while it computes
        and as its reply arrives (a thread may hoard memory while replies stay fast)."""
        while view:
            self._check_memory()
            call_deadline = deadline + self._waited_for_a_cpu(timeout_s)
            left = min(call_deadline - time.monotonic(), self._budget_left())
            ready, _, _ = select.select([self.from_worker], [], [], min(WATCH_S, max(0.0, left)))
            if not ready:
                if time.monotonic() >= deadline + self._waited_for_a_cpu(timeout_s):
                    raise StudentCrash(f"timed out after {timeout_s:g} s")
                if self._budget_left() <= 0:
                    raise StudentCrash(self.over_budget)
                continue
            got = os.readv(self.from_worker, [view[:1 << 20]])
            if not got:
                code = self.process.wait(timeout=5) if self.process else None
                raise StudentCrash(self._killed_for_memory() or describe_exit(code))
            view = view[got:]

    # ---------------------------------------------------------------- time --
    def _budget_left(self) -> float:
        """Seconds of the current test's budget not yet spent (inf: no budget)."""
        if math.isinf(self.test_budget_s):
            return math.inf
        return self.test_budget_s - self.test_used_s - self._spent_this_call()

    def _spent_this_call(self) -> float:
        """The current call's time against the test budget: its wall seconds less the time
        the worker's main thread waited for a free core, or the CPU seconds the worker's
        processes used, whichever is more (grader/pipeline/timings.py says why)."""
        if self.call_started is None:
            return 0.0
        wall_started, cpu_started, wait_started = self.call_started
        wait_now = None if wait_started is None else self._queue_wait()
        waited = 0.0 if wait_now is None else max(0.0, wait_now - wait_started)
        cpu_now = None if cpu_started is None else self._cpu_in_use()
        cpu = 0.0 if cpu_now is None else max(0.0, cpu_now - cpu_started)
        return max(cpu, time.monotonic() - wall_started - waited)

    def _waited_for_a_cpu(self, timeout_s: float) -> float:
        """How long the worker's main thread has waited in a run queue (ready to run, the
        cores busy) during the current call, at most timeout_s more: a call's wall-clock
        timeout does not count that wait, so a busy machine cannot time out a correct call,
        and a hang (sleeping, blocked) is still stopped at timeout_s."""
        if self.call_started is None or self.call_started[2] is None:
            return 0.0
        now = self._queue_wait()
        return 0.0 if now is None else min(timeout_s, max(0.0, now - self.call_started[2]))

    def _queue_wait(self) -> float | None:
        """Seconds the worker's main thread has spent runnable but not running, or None."""
        if self.process is None:
            return None
        try:
            with open(f"/proc/{self._worker_pid()}/schedstat") as f:
                return int(f.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return None

    def _worker_pid(self) -> int:
        pid = self.process.pid
        if sandbox().pid_namespace:  # we started its parent, which waits outside (sandbox.py)
            pid = next(iter(_children(pid)), pid)
        return pid

    def _cpu_in_use(self) -> float | None:
        """CPU seconds the worker's processes used so far (control group: every process;
        else its main process and its children, counting waited-for descendants), or None."""
        if self.process is None:
            return None
        if self.cgroup is not None and (used := self.cgroup.cpu_seconds()) is not None:
            return used
        return cpu_seconds(self._worker_pid())

    # -------------------------------------------------------------- memory --
    def _check_memory(self) -> None:
        if self._memory_in_use() > RESIDENT_LIMIT_BYTES:
            raise StudentCrash(f"used more than {RESIDENT_LIMIT_BYTES / GiB:g} GiB of memory")

    def _memory_in_use(self) -> int:
        """All the worker's processes (control group), or else its main process alone."""
        if self.cgroup is not None:
            return self.cgroup.memory_in_use()
        pid = self.process.pid
        if sandbox().pid_namespace:  # we started its parent, which waits outside (sandbox.py)
            pid = next(iter(_children(pid)), pid)
        return resident_bytes(pid)

    def _killed_for_memory(self) -> str:
        """'used more than N GiB of memory' if the kernel killed the worker for that."""
        if self.cgroup is None or not self.cgroup.killed_for_memory():
            return ""
        return f"used more than {self.cgroup.limits.memory_bytes / GiB:g} GiB of memory"


def _target_name(message: dict) -> str:
    """The student function a request runs, for counting strikes."""
    if message.get("op") == "cell":
        return str(message.get("name"))
    kind, _, attribute = message.get("target", ("", "", None))
    if kind == "probe":
        return f"the probe {attribute[1]}"
    return str(attribute or "the object")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except (OSError, ValueError):
        return []


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of the process (all its threads) and of its waited-for children,
    in seconds (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def resident_bytes(pid: int) -> int:
    """The worker's resident memory (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
