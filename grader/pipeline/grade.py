"""`grader grade` and `grader test` as a pipeline:

    collect the submission (collect.py)
    -> run each assignment's suites in a trusted pytest process (run.py),
       student code isolated in worker processes (grader/isolation/)
    -> results.json written after every test, summaries at the end (report.py)
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import grader
from grader.course import ASSIGNMENTS, REPO, Assignment
from grader.isolation.sandbox import sandbox
from grader.kit import profiles as hypothesis_setup
from grader.pipeline import timings
from grader.pipeline.collect import Staged, git_commit, stage_reference, stage_submission
from grader.pipeline.report import Report
from grader.pipeline.review import review_flags
from grader.pipeline.run import SuiteRun, run_suite, suite_paths

PYTEST_EXIT_OK = (0, 1, 5)   # all passed, some failed, nothing collected
# All assignments of one submission together. Each assignment's own budget
# (time_budget_s, 900 s) stops one runaway assignment, but six that each run up to
# theirs take 90 minutes, and four such students use up a 6-hour grading job. The
# reference grades every suite in 5 to 6 minutes on a loaded 2-core CPU runner (the
# `total_s` of tests/*/timings.json): 30 minutes, five times that, leaves room for a
# slower machine and honest but slower code, while a submission slow on purpose
# costs a grading job 30 minutes, not 90.
TOTAL_BUDGET_S = 1800.0
COLLECT_BUDGET_S = 120.0  # listing an assignment's tests (no student code runs)


@dataclass
class GradeOptions:
    assignments: list[Assignment]
    suite: str = "all"                   # public, hidden, all
    output: Path | None = Path("results.json")
    budget_s: float | None = None        # per assignment; None: the manifest's time_budget_s
    total_budget_s: float | None = TOTAL_BUDGET_S  # all assignments together; None: no limit
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
        if options.suite == "all" and not assignment.hidden_tests(REPO).is_dir():
            report.notes.append(f"{assignment.name}: the hidden tests are not in this "
                                "repository, so only the public tests were graded (official "
                                "grading adds the hidden ones)")
        if not paths:
            report.notes.append(f"{assignment.name}: no {options.suite} tests here")
            continue
        budget_s, out_of_time = _time_for(assignment, options, time.monotonic() - started)
        suite = functools.partial(
            run_suite, assignment, paths, submission=staged.root, isolate=options.isolate,
            profile=options.profile, on_record=on_record,
            problems=staged.problems_of(assignment))
        tasks = [arg for task in options.tasks for arg in ("--task", task)]
        run = None
        if budget_s > 0:
            log(f"grading {assignment.name} ({options.suite} tests) ...")
            run = suite(budget_s=budget_s, extra_args=tasks)
        else:
            log(f"not grading {assignment.name}: {out_of_time}")
        if (run is None or run.exit_code is None) and not _has_tests(report, assignment):
            # Out of time before pytest listed the tests: list them, to fail each by name.
            listed = suite(budget_s=COLLECT_BUDGET_S, extra_args=[*tasks, "--collect-only"])
            run = SuiteRun(None, listed.output) if _has_tests(report, assignment) else listed
        if options.verbose:
            log(run.output)
        _close(report, assignment, run, out_of_time)
        save()
    save()
    return report


def _time_for(assignment: Assignment, options: GradeOptions, spent_s: float) -> tuple[float, str]:
    """How long the assignment may run (its own budget, or what is left of the
    submission's total), and what its unfinished tests say when that runs out."""
    own = options.budget_s or assignment.time_budget_s
    left = math.inf if options.total_budget_s is None else options.total_budget_s - spent_s
    if own <= left:
        return own, (f"not run: the assignment's time budget of {own:g} s ran out "
                     "(is some of your code very slow or stuck?)")
    return max(0.0, left), (f"not run: this submission's total time budget of "
                            f"{options.total_budget_s:g} s ran out (all assignments together; "
                            "is some of your code very slow or stuck?)")


def _has_tests(report: Report, assignment: Assignment) -> bool:
    return any(t.assignment == assignment.name for t in report.tests.values())


def _close(report: Report, assignment: Assignment, run, out_of_time: str) -> None:
    """Tests that never finished: out of time (the submission's doing) or a grader fault."""
    collected = _has_tests(report, assignment)
    if run.exit_code is None and collected:
        report.close_assignment(assignment.name, "failed", out_of_time)
    elif run.exit_code not in PYTEST_EXIT_OK or not collected:
        reason = f"the test runner failed (exit code {run.exit_code}):\n{run.output[-2000:]}"
        if _student_code_ran(report, assignment):  # after that, it may be the submission's doing
            report.close_assignment(assignment.name, "failed",
                                    f"not run: grading stopped while running your code; {reason}")
        elif collected:
            report.close_assignment(assignment.name, "ungradable", reason)
        else:
            report.add_placeholder(assignment.name, reason)
    else:
        report.close_assignment(assignment.name, "ungradable", "the test runner skipped it")


def _student_code_ran(report: Report, assignment: Assignment) -> bool:
    """Has any test of the assignment finished (so the submission's code was running)?"""
    return any(t.assignment == assignment.name and t.status in ("passed", "failed")
               for t in report.tests.values())


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
        "grader_commit": grader_commit(),
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
        "time_budgets": {"total_s": options.total_budget_s,
                         "per_assignment_s": options.budget_s or "the manifest's time_budget_s",
                         "per_test": timings.describe(options.assignments)},
        "review": review(staged, options.assignments),
    }


def review(staged: Staged, assignments: list[Assignment]) -> dict[str, list[str]]:
    """Constructs in each student file for a person to look at (grader/pipeline/review.py)."""
    flags = {}
    for assignment in assignments:
        path = assignment.student_path(staged.root)
        if path.is_file():
            provided = tuple(Path(name).stem for name in assignment.provided)
            found = review_flags(path.read_text(errors="replace"), provided)
            if found:
                flags[assignment.name] = found
    return flags


def grader_commit() -> str | None:
    """The commit of this grader, for the record: git's, or, in a copy without its history
    (a Gradescope autograder), the one recorded when that copy was built."""
    return git_commit(REPO) or recorded_commit(REPO)


BUILD_RECORD = "gradescope.json"     # written into a grader copy without git history


def recorded_commit(root: Path) -> str | None:
    """The grader commit that `root`/BUILD_RECORD records, if `root` has one."""
    try:
        return json.loads((root / BUILD_RECORD).read_text()).get("grader_commit")
    except (OSError, ValueError, AttributeError):
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
