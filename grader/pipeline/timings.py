"""Per-test time budgets, scaled to what the reference solution needs on the same test.

A call timeout alone (the manifest's `call_timeout_s`) lets a correct submission take
just under it on every call: no call ever times out, yet one assignment uses its
whole time budget. So each test also bounds the time its calls into student code
take together, from the time the reference solution's calls take on that test
(grading is derandomized, so both see the same inputs):

    budget = max(FLOOR_S, FACTOR * reference time)

Only time inside calls counts, on both sides: not starting a worker (the grader's
cost, however slow the machine), not the trusted checks and input generation.

Time is the worker's own time, not the machine's: a call is charged its wall time
less the time the worker's main thread sat ready to run while the cores were busy
(its run-queue wait, from /proc/<pid>/schedstat), or the CPU seconds the worker's
processes used (its control group's count, every process it started included; where
there is none, its process and the children it waited for), whichever is more. A
busy machine (another student's worker, a CI neighbour; the worker's cgroup has a
small CPU weight, so under load it waits longest) stretches only the run-queue wait,
which is not charged: a correct submission's budget holds however loaded the runner.
Sleeping or blocking is charged like computing (wall time), so answers that each
arrive just under the call timeout still run past the budget, and every thread or
process a student starts spends the budget faster (CPU time), so nothing buys time.
Where the run-queue wait cannot be read, wall time is charged, as before. The
reference's time is measured the same way (its worker runs one thread,
OMP_NUM_THREADS=1, so on an idle machine that is its wall time).

`grader timings` measures the reference once, graded the way `grader grade
--reference` grades it (isolated workers, grading profile), and writes each
assignment's `tests/<name>/timings.json` (committed beside the hidden tests, never
released). When grading, the plugin (grader/kit/plugin.py) gives each test its
budget as it starts; a call still running when the test has spent it is stopped
(grader/isolation/worker.py) and the test fails saying so. `grader validate`
reports a missing file or a test without a timing.

Machines: the floor and the factor absorb a slower runner (slower cores, not a
busier one: waiting for a core is not charged). Device kinds do not
scale into each other (Triton interpreted on a CPU; compiled, with JIT compilation
and autotuning, on a GPU), so a file keeps one table per kind ("cpu", "cuda"),
and a machine of a kind never measured (a GPU runner, until `grader timings` runs
there) grades without per-test budgets: the call timeouts and the total budget
(grader/pipeline/grade.py) still bound it. A test with no timing (new, or skipped
where the table was measured, such as a GPU-only test on a CPU) has no per-test
budget either.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from grader.course import REPO, Assignment

FILE_NAME = "timings.json"
# Student time one test may always use, however quick the reference: a property
# test makes up to 40 calls, each paying milliseconds of pipe and tensor transfer,
# the first call after a worker (re)start pays one-time costs (torch's lazy set-up,
# Triton's interpreter), and a loaded CI runner can be several times slower than
# the machine that measured. Half the usual call timeout (20 s), so an answer that
# comes just under the call timeout runs past it at its first call.
FLOOR_S = 10.0
# How many times the reference's time a test may take: an honest solution may be a
# few times slower than the reference (no vectorisation, an extra pass), and the
# grading machine a few times slower than the measuring one; 10x covers both
# together, yet one slow test costs at most 10x what it should.
FACTOR = 10.0


def device_kind() -> str:
    """The kind of machine timings are measured on and apply to: "cuda" or "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def timings_path(assignment: Assignment, root: Path = REPO) -> Path:
    return assignment.hidden_tests(root) / FILE_NAME


def load(assignment: Assignment, kind: str | None = None,
         root: Path = REPO) -> dict[str, float | None] | None:
    """nodeid -> the reference's seconds (None: skipped when measured), for this machine's
    kind; None when there is no file or no table for the kind."""
    try:
        data = json.loads(timings_path(assignment, root).read_text())
    except (OSError, ValueError):
        return None
    table = data.get(kind or device_kind())
    return table.get("tests") if isinstance(table, dict) else None


def budget_s(reference_s: float | None) -> float | None:
    """The student time a test may use, given the reference's (None: no per-test budget)."""
    if reference_s is None:
        return None
    return max(FLOOR_S, FACTOR * reference_s)


def over_budget(budget: float, reference_s: float | None = None) -> str:
    """Why a call was stopped (the worker adds "while running your code"): names the
    per-test budget and where it comes from."""
    if reference_s is not None and FACTOR * reference_s >= FLOOR_S:
        source = f"{FACTOR:g} x the reference solution's {reference_s:.3g} s on this test"
    else:
        source = (f"the floor every test gets; the reference solution needs "
                  f"{reference_s:.3g} s" if reference_s is not None else "the floor")
    return (f"stopped by the per-test time budget of {budget:g} s ({source}; only your "
            f"code's own time counts, not waiting for a busy machine's cores)")


def describe(assignments: list[Assignment]) -> dict:
    """For results.json's extra_data: how each test's time was bounded on this machine."""
    kind = device_kind()
    return {"floor_s": FLOOR_S, "factor": FACTOR, "device_kind": kind,
            "timed": [a.name for a in assignments if load(a, kind) is not None]}


def measure(assignments: list[Assignment], log=print) -> dict[str, Path]:
    """Grade the reference on every suite, without per-test budgets, and write each
    assignment's timings for this machine's kind (other kinds' tables are kept).
    Raises RuntimeError when the reference does not pass: its times would mean nothing."""
    from grader.pipeline.collect import stage_reference
    from grader.pipeline.run import run_suite, suite_paths

    kind, written = device_kind(), {}
    staged = stage_reference(assignments)
    try:
        for assignment in assignments:
            log(f"timing the reference of {assignment.name} ...")
            tests: dict[str, float | None] = {}
            failed: list[str] = []

            def on_record(record, tests=tests, failed=failed):
                if record["event"] == "collected":
                    tests[record["nodeid"]] = None
                elif record["status"] == "passed":  # the whole test where no worker ran
                    tests[record["nodeid"]] = record.get("student_s", record["duration"])
                elif record["status"] != "skipped":
                    failed.append(record["nodeid"])

            started = time.monotonic()
            run = run_suite(assignment, suite_paths(assignment, "all"), submission=staged.root,
                            isolate=True, profile="grading", on_record=on_record,
                            budget_s=assignment.time_budget_s,
                            extra_args=["--no-test-budgets"])
            if run.exit_code not in (0, 5) or failed:
                raise RuntimeError(f"{assignment.name}: the reference did not pass (exit code "
                                   f"{run.exit_code}; failing: {', '.join(failed[:5])})")
            path = timings_path(assignment)
            written[assignment.name] = _write(path, kind, tests, time.monotonic() - started)
    finally:
        staged.cleanup()
    return written


def _write(path: Path, kind: str, tests: dict[str, float | None], total_s: float) -> Path:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data["about"] = ("Written by `grader timings`: per device kind, the seconds each test "
                     "spent in calls to the reference solution (the whole test where it "
                     "made none; null: skipped there). Each test's budget when grading is "
                     "max(FLOOR_S, FACTOR x seconds) (grader/pipeline/timings.py).")
    data[kind] = {"measured_on": f"{platform.machine()}, {_cores()} cores",
                  "total_s": round(total_s, 1), "tests": dict(sorted(tests.items()))}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def is_concept_question(record: dict) -> bool:
    """A question of the concept notebook: its time is the notebook's, bounded by the
    notebook's own budget (grader/kit/notebooks.py), not by a per-test budget."""
    return "/concepts/" in record.get("name", "")


def problems(assignments: list[Assignment], records: list[dict],
             root: Path = REPO) -> list[str]:
    """For `grader validate`: a missing timings file, or collected tests without a timing
    in its "cpu" table (the one every CPU runner grades with)."""
    found = []
    for a in assignments:
        table = load(a, "cpu", root)
        where = f"tests/{a.name}/{FILE_NAME}"
        if table is None:
            found.append(f"{a.name}: {where} is missing or has no \"cpu\" table "
                         f"(run `grader timings --assignment {a.name}`)")
            continue
        untimed = [r["nodeid"] for r in records if r["assignment"] == a.name
                   and r["nodeid"] not in table and not is_concept_question(r)]
        if untimed:
            found.append(f"{a.name}: {where} is stale: {len(untimed)} tests have no timing, "
                         f"e.g. {untimed[0]} (run `grader timings --assignment {a.name}`)")
    return found
