"""How student code can fail, as the trusted side sees it.

Three kinds, because each is reported differently (grader/kit/describe.py):

- `StudentError` (or a builtin like ValueError): the student's code raised;
  the test fails with their exception and traceback.
- `StudentCrash`: the worker died, hung, used too much memory or sent
  garbage; the test fails with what happened, in plain words.
- `NotGraded` (a StudentCrash): the submission's file was not taken, so
  nothing ran; the test fails saying why.
- `GraderFault`: the grader or the machine failed; the test is ungradable
  (retried), never counted against the student.
"""

from __future__ import annotations

import builtins
import errno
import signal

from grader.isolation.sandbox import FILE_SIZE_LIMIT_BYTES, MiB


class StudentError(Exception):
    """The student's code raised an exception that is not a Python builtin."""


class StudentCrash(Exception):
    """The worker died, hung or misbehaved while running student code."""


class NotGraded(StudentCrash):
    """The submission's file was not taken (missing, a link, too large): nothing ran."""


class GraderFault(Exception):
    """The grader or the machine failed; the test is ungradable, not failed."""


def rebuild_exception(error: dict) -> Exception:
    """The student's exception as a trusted object of a builtin type where possible,
    so `pytest.raises(ValueError)` works the same in-process and across the wire."""
    message = _explained(error)
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


def _explained(error: dict) -> str:
    """The student's message, and what it means when it is the sandbox's limit that hit."""
    message = f"{error['message']}"
    if error["type"] == "OSError" and message.startswith(f"[Errno {errno.EFBIG}]"):
        message += (f" (over the file size limit: a worker writes at most "
                    f"{FILE_SIZE_LIMIT_BYTES // MiB} MiB to one file, what it prints included)")
    return message


def describe_exit(code: int | None) -> str:
    """Why the worker's channel closed, from its exit status (None: still running)."""
    if code is None:
        return "the worker closed its channel"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else code
        if name == "SIGKILL":
            return "the worker was killed (SIGKILL: likely over its memory or CPU limit)"
        return f"the worker died from signal {name}"
    return f"the worker exited with code {code}"
