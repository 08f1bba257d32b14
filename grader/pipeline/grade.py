"""`grader grade` and `grader test` as a pipeline:

    collect the submission (collect.py)
    -> run each assignment's suites in a trusted pytest process (run.py),
       student code isolated in worker processes (grader/isolation/)
    -> results.json written after every test, summaries at the end (report.py)
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import grader
from grader.course import ASSIGNMENTS, REPO, Assignment
from grader.isolation.sandbox import sandbox
from grader.kit import profiles as hypothesis_setup
from grader.pipeline.collect import Staged, stage_reference, stage_submission
from grader.pipeline.report import Report
from grader.pipeline.run import run_suite, suite_paths

PYTEST_EXIT_OK = (0, 1, 5)   # all passed, some failed, nothing collected


@dataclass
class GradeOptions:
    assignments: list[Assignment]
    suite: str = "all"                   # public, hidden, all
    output: Path | None = Path("results.json")
    budget_s: float | None = None        # per assignment; None: the manifest's time_budget_s
    profile: str = "grading"
    isolate: bool = True
    verbose: bool = False
    tasks: tuple[str, ...] = ()          # only these tasks' tests (e.g. "5.1"); () for all


def titles() -> dict[tuple[str, str], str]:
    table = {}
    for a in ASSIGNMENTS.values():
        for number, title in a.titles.items():
            table[(a.name, number)] = f"{number} {title}"
    return table


def grade(staged: Staged, options: GradeOptions, log=print) -> Report:
    """Grade a staged submission; results written incrementally to options.output."""
    report = Report(extra_data(staged, options), titles())
    started = time.monotonic()

    def save():
        report.execution_time = time.monotonic() - started
        if options.output is not None:
            report.write(options.output)

    def on_record(record):
        report.record(record)
        if record["event"] == "finished":
            save()

    for assignment in options.assignments:
        paths = suite_paths(assignment, options.suite)
        if not paths:
            report.notes.append(f"{assignment.name}: no {options.suite} tests here")
            continue
        log(f"grading {assignment.name} ({options.suite} tests) ...")
        run = run_suite(assignment, paths, submission=staged.root, isolate=options.isolate,
                        profile=options.profile, on_record=on_record,
                        budget_s=options.budget_s or assignment.time_budget_s,
                        problem=staged.problems.get(assignment.name),
                        extra_args=[arg for task in options.tasks for arg in ("--task", task)])
        if options.verbose:
            log(run.output)
        _close(report, assignment, run, options)
        save()
    save()
    return report


def _close(report: Report, assignment: Assignment, run, options: GradeOptions) -> None:
    """Tests that never finished: out of time (the submission's doing) or a grader fault."""
    collected = any(t.assignment == assignment.name for t in report.tests.values())
    if run.exit_code is None:
        budget = options.budget_s or assignment.time_budget_s
        report.close_assignment(assignment.name, "failed",
                                f"not run: the assignment's time budget of {budget:g} s "
                                "ran out (is some of your code very slow or stuck?)")
    elif run.exit_code not in PYTEST_EXIT_OK or not collected:
        reason = f"the test runner failed (exit code {run.exit_code}):\n{run.output[-2000:]}"
        if collected:
            report.close_assignment(assignment.name, "ungradable", reason)
        else:
            report.add_placeholder(assignment.name, reason)
    else:
        report.close_assignment(assignment.name, "ungradable", "the test runner skipped it")


def extra_data(staged: Staged, options: GradeOptions) -> dict:
    import torch

    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    profile = hypothesis_setup.settings.get_profile(options.profile)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "grader_version": grader.__version__,
        "grader_commit": _git_head(REPO),
        "submission": staged.source,
        "submission_commit": staged.commit,
        "assignments": [a.name for a in options.assignments],
        "suite": options.suite,
        "hypothesis": {"profile": options.profile, "max_examples": profile.max_examples,
                       "derandomize": profile.derandomize, "version": _version("hypothesis")},
        "device": gpu or f"cpu ({platform.processor() or platform.machine()})",
        "triton_interpret": os.environ.get("TRITON_INTERPRET") == "1",
        "torch": torch.__version__, "triton": triton_version,
        "python": platform.python_version(),
        "sandbox": sandbox().describe(),
    }


def _git_head(folder: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def stage(submission: Path | None, assignments: list[Assignment]) -> Staged:
    if submission is None:
        return stage_reference(assignments)
    return stage_submission(submission, assignments)
