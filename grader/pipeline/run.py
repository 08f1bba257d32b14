"""Stage 2 of grading: run one assignment's suites in their own pytest process.

The pytest process is trusted (it holds the hidden tests and the reference);
student code runs in the worker processes it starts. The plugin writes one
JSON line per collected and per finished test to a log; this module follows
the log while pytest runs, so results can be written incrementally, and
bounds the whole run by a time budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grader.course import REPO, Assignment
from grader.isolation.sandbox import die_with_parent

POLL_S = 0.5


@dataclass
class SuiteRun:
    exit_code: int | None       # None: killed at the time budget
    output: str                 # pytest's own console output (trusted)


# pytest treats a run with these set (GitHub Actions sets CI=true) as verbose: an
# assertion `got.tolist() == expected` then renders a full difflib diff, which is
# quadratic in the length of the lists. A wrong answer of a few thousand elements
# kept the grader busy past any deadline. Grading never needs that diff.
PYTEST_CI_MARKERS = ("CI", "BUILD_NUMBER")


def suite_paths(assignment: Assignment, suite: str) -> list[Path]:
    paths = []
    if suite in ("public", "all"):
        paths.append(assignment.public_tests())
    if suite in ("hidden", "all") and assignment.hidden_tests().is_dir():
        paths.append(assignment.hidden_tests())
    return [p for p in paths if p.is_dir()]


def run_suite(assignment: Assignment, paths: list[Path], *, submission: Path | None,
              isolate: bool, profile: str, on_record: Callable[[dict], None],
              budget_s: float, extra_args: list[str] | None = None,
              problems: dict[str, str] | None = None) -> SuiteRun:
    """Run pytest on `paths` for `submission`, calling `on_record` for each log line.

    problems: why the submission's files were not collected (collect.py), under the
    assignment's name (its module: every test fails with it) or "<name>.notebook"
    (its concept notebook: the questions fail with it).
    """
    with tempfile.TemporaryDirectory(prefix="llmlab-run-") as tmp:
        log = Path(tmp) / "log.jsonl"
        log.touch()
        console = Path(tmp) / "console.txt"
        command = [sys.executable, "-m", "pytest", *map(str, paths), "-q", "-p",
                   "no:cacheprovider", "--results-log", str(log), "-o",
                   "console_output_style=classic", *(extra_args or [])]
        command += ["--submission", str(submission)] if submission else ["--reference"]
        for name, problem in (problems or {}).items():
            command += ["--submission-problem", f"{name}={problem}"]
        if isolate:
            command.append("--isolate")
        env = dict(os.environ, HYPOTHESIS_PROFILE=profile,
                   PYTHONDONTWRITEBYTECODE="1")
        for marker in PYTEST_CI_MARKERS:
            env.pop(marker, None)
        start = time.monotonic()
        with open(console, "wb") as out:
            process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=env,
                                       start_new_session=True, preexec_fn=die_with_parent)
            exit_code = _follow(process, log, on_record, start + budget_s)
        return SuiteRun(exit_code, console.read_text(errors="replace"))


def _follow(process, log: Path, on_record, deadline: float) -> int | None:
    offset = 0
    while True:
        finished = process.poll() is not None
        offset = _read_new_records(log, offset, on_record)
        if finished:
            return process.returncode
        if time.monotonic() > deadline:
            _kill(process)
            _read_new_records(log, offset, on_record)
            return None
        time.sleep(POLL_S)


def _read_new_records(log: Path, offset: int, on_record) -> int:
    with open(log, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1          # only whole lines; the rest next time
    for line in data[:end].splitlines():
        if line.strip():
            on_record(json.loads(line))
    return offset + end


def _kill(process) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
