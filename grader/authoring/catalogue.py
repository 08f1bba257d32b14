"""Grade every wrong solution of one assignment in one trusted pytest session.

The mutant catalogue (tests/mutants/<name>/*.py, checked by
tests/test_catalogue.py) proves that the hidden suite catches every catalogued
bug. One `pytest` run per mutant pays pytest's start-up, the collection and the
torch import again for each of them; this plugin collects the hidden tests
once and swaps only the student file:

    python -m pytest tests/moe -p grader.authoring.catalogue --isolate \\
        --mutants tests/mutants/moe --catalogue-out catalogue.json

The public tests (assignments/<name>/tests) may run without --isolate: each
mutant is then imported in this process, as a student's local run would.

For each mutant, in name order:
  1. copy it into its own student-shaped tree and point the session there,
     stopping the previous mutant's workers and rank groups first: a mutant
     runs in fresh worker processes (or is imported afresh, in-process),
     exactly as in a real grading (or local) run;
  2. run the tests one by one until the first failure (like `-x`);
  3. record {mutant, status, caught_by, message, tests_run, seconds}, where
     status is "failed" (caught), "ungradable" (the grader failed: a bug in
     the suite, never in the mutant) or "survived" (every test passed).

Which test fails first does not change whether a mutant is caught, only how
fast, so each mutant runs the tests decisive and cheap first, as learnt from
the mutants graded before it (`cheap_decisive_first`). Test durations vary
from run to run, so which test catches a mutant may too; whether one does
should not (the tests are independent). Grading real submissions never loads
this plugin.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from _pytest.runner import runtestprotocol

from grader.course import Assignment, assignment_of_path

RESULTS = pytest.StashKey[list]()  # config.stash[RESULTS]: one dict per mutant graded so far


def pytest_addoption(parser):
    group = parser.getgroup("llmlab-catalogue", "LLM Systems Lab: the mutant catalogue")
    group.addoption("--mutants", action="append", default=[], metavar="FILE_OR_DIR",
                    help="grade these wrong solutions (files, or folders of *.py), one by one")
    group.addoption("--catalogue-out", default=None, metavar="JSON",
                    help="where to write one result per mutant")


def pytest_configure(config):
    if config.getoption("--mutants") and not config.getoption("--catalogue-out"):
        raise pytest.UsageError("--mutants needs --catalogue-out")


def _check_isolation(session) -> None:
    """Hidden tests always run the student's code in workers; public tests do so only
    with --isolate. Without it each mutant is imported here (trusted code only: the
    catalogue's own files), which is much faster for the public tests' small probes."""
    if not session.config.getoption("--isolate") and not all(
            _is_public(item) for item in session.items):
        raise pytest.UsageError("--mutants without --isolate grades public tests only")


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    """Replaces pytest's loop when --mutants is given: every mutant against the tests."""
    config = session.config
    if not config.getoption("--mutants"):
        return None
    if session.testsfailed and not config.option.continue_on_collection_errors:
        raise session.Interrupted(f"{session.testsfailed} errors during collection")
    _check_isolation(session)
    if not config.option.collectonly:
        grade_catalogue(session, _expand(config.getoption("--mutants")),
                        Path(config.getoption("--catalogue-out")))
    return True


def grade_catalogue(session, mutants: list[Path], out: Path) -> None:
    """Each mutant in turn, in its own tree and workers; `out` rewritten after each
    (a run killed at its time budget keeps what it graded)."""
    config = session.config
    # A mutant is a wrong module: the notebook's questions (answered by no notebook
    # here) would "catch" every one of them and prove nothing.
    items = [item for item in session.items if item.get_closest_marker("concepts") is None]
    assignment = _the_assignment(items)
    records = {item: Record() for item in items}
    results = config.stash.setdefault(RESULTS, [])
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    with tempfile.TemporaryDirectory(prefix="llmlab-catalogue-") as tmp:
        for number, mutant in enumerate(mutants):
            _switch_submission(config, assignment, _student_tree(Path(tmp) / str(number),
                                                                 assignment, mutant))
            order = cheap_decisive_first(items, records)
            result = grade_mutant(mutant, order, records, number)
            results.append(result)
            out.write_text(json.dumps(results, indent=1))
            if reporter is not None:
                reporter.write_line(_summary(result))
        _stop_rank_groups(config, assignment)  # its workers stop with the session


def pytest_terminal_summary(terminalreporter, config):
    results = config.stash.get(RESULTS, None)
    if results is not None:
        counts = {status: sum(r["status"] == status for r in results)
                  for status in ("failed", "survived", "ungradable")}
        terminalreporter.write_line(
            f"catalogue: {len(results)} mutants, {counts['failed']} caught, {counts['survived']} "
            f"survived, {counts['ungradable']} ungradable -> {config.getoption('--catalogue-out')}")


def grade_mutant(mutant: Path, order: list, records: dict, number: int = 0) -> dict:
    """Run `order` until a test fails, noting each run in `records` (as the `number`th
    mutant's); the mutant's result."""
    start = time.monotonic()
    for index, item in enumerate(order):
        nextitem = order[index + 1] if index + 1 < len(order) else None
        reports = runtestprotocol(item, log=False, nextitem=nextitem)
        failed = next((report for report in reports if report.failed), None)
        records[item].note(sum(report.duration for report in reports), failed is not None,
                           number)
        if failed is not None:
            item.session._setupstate.teardown_exact(None)  # nothing carries over to the next
            ungradable = getattr(failed, "llmlab_ungradable", False)
            message = _message_of(failed)
            return _result(mutant, "ungradable" if ungradable else "failed", item.nodeid,
                           message, index + 1, start)
    return _result(mutant, "survived", None, "", len(order), start)


def _message_of(report) -> str:
    """What a student would read for this failure (grader/kit/describe.py)."""
    failure = getattr(report, "llmlab_failure", None)
    if failure:
        from grader.kit.describe import render_failure

        return render_failure(failure)
    return getattr(report, "llmlab_message", None) or report.longreprtext


def _result(mutant, status, caught_by, message, tests_run, start) -> dict:
    return {"mutant": str(mutant), "status": status, "caught_by": caught_by,
            "message": _first_line(message), "tests_run": tests_run,
            "seconds": round(time.monotonic() - start, 2)}


def _first_line(message: str) -> str:
    """What went wrong, in one line. Feedback starts by naming the property
    (grader/kit/describe.py); caught_by already names the test, so skip it, and the
    lines it is wrapped onto (indented)."""
    lines = [line.rstrip() for line in message.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Property: "):
        lines = lines[1:]
        while len(lines) > 1 and lines[0].startswith("  "):
            lines = lines[1:]
    return lines[0].strip()[:500] if lines else ""


def _summary(result: dict) -> str:
    found = f" by {result['caught_by']}" if result["caught_by"] else ""
    return (f"{Path(result['mutant']).name}: {result['status']}{found} "
            f"({result['tests_run']} tests, {result['seconds']:.1f} s)")


# ------------------------------------------------------ cheap, decisive tests first --
@dataclass
class Record:
    """What the catalogue has seen of one test so far."""

    runs: int = 0
    last_catch: int = -1             # the number of the last mutant it caught; -1: none yet
    fastest_s: float = float("inf")  # of its passing runs (a failing run also shrinks)

    def note(self, seconds: float, caught: bool, mutant_number: int) -> None:
        self.runs += 1
        if caught:
            self.last_catch = mutant_number
        else:
            self.fastest_s = min(self.fastest_s, seconds)


def cheap_decisive_first(items: list, records: dict) -> list:
    """The order in which the next mutant runs the tests.

    First every test that has caught a mutant, the latest catch first: these
    are few, and neighbouring mutants often share their bug's kind (naive_*,
    bucket_*, kernel_*...). Then the others by their chance of catching it
    per second they cost, highest first:

        chance = 1 / (runs + 2)     Laplace's rule with no catch: 1/2 before any run
        cost   = its fastest passing run; not run yet: the costliest seen so far

    so a cheap test comes early, and one that has passed many mutants late. A
    test not run yet is taken to be costly: it may start new workers (ddp's
    4-rank group, say) that its suite runs last on purpose (tests/ddp/conftest.py).
    Ties keep the collection order.
    """
    known = [r.fastest_s for r in records.values() if r.fastest_s != float("inf")]
    unknown_s = max(known, default=1.0)

    def key(item) -> tuple:
        record = records[item]
        if record.last_catch >= 0:
            return (0, -record.last_catch)
        cost_s = record.fastest_s if record.fastest_s != float("inf") else unknown_s
        return (1, -1 / (record.runs + 2) / max(cost_s, 1e-3))

    return sorted(items, key=key)


# ---------------------------------------------------------- one mutant at a time --
def _the_assignment(items) -> Assignment:
    """The one assignment whose tests were collected (a mutant is one student file)."""
    found = {item.path: assignment_of_path(item.path) for item in items}
    names = {a.name if a else "tests outside any assignment" for a in found.values()}
    if len(names) != 1 or None in found.values():
        raise pytest.UsageError(f"--mutants needs the tests of exactly one assignment; "
                                f"collected: {', '.join(sorted(names)) or 'nothing'}")
    return next(iter(found.values()))


def _is_public(item) -> bool:
    from grader.kit.plugin import is_public_path

    return is_public_path(item.path)


def _expand(paths: list[str]) -> list[Path]:
    """Files as given, folders as their *.py in name order."""
    mutants = []
    for path in map(Path, paths):
        mutants += sorted(path.glob("*.py")) if path.is_dir() else [path]
    return [m.resolve() for m in mutants]


def _student_tree(root: Path, assignment: Assignment, mutant: Path) -> Path:
    """A submission-shaped tree whose only file is the mutant, as the student's file."""
    target = assignment.student_path(root)
    target.parent.mkdir(parents=True)
    shutil.copyfile(mutant, target)
    return root


def _switch_submission(config, assignment: Assignment, root: Path) -> None:
    """Grade `root` from now on, with none of the previous mutant's processes alive."""
    _stop_rank_groups(config, assignment)
    config.llmlab.use_submission(root)


def _stop_rank_groups(config, assignment: Assignment) -> None:
    """Distributed assignments run ranks in groups keyed by the student file: stop them."""
    from grader.kit.ranks import stop_groups_for

    stop_groups_for(config.llmlab.student_file(assignment))
