"""`grader validate`: the instructor's check that the course is consistent.

1. the released stubs are exactly what nbgrader makes from reference/;
2. every stub imports, and scores 0 (not a crash, not an ungradable test);
3. the reference solutions score full marks on every suite.
`--quick` does 1 and the import check of 2 (seconds, for a pre-stop hook).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from grader.authoring.release import out_of_sync
from grader.course import REPO, Assignment
from grader.pipeline.collect import stage_reference, stage_submission
from grader.pipeline.grade import GradeOptions, grade


def validate(assignments: list[Assignment], quick: bool = False, log=print) -> list[str]:
    """Return the problems found (empty: valid)."""
    problems = [f"{name}: assignments/ stub is out of sync with reference/ "
                "(run `grader stubs`)" for name in out_of_sync(assignments)]
    for a in assignments:
        problem = _import_problem(a)
        if problem:
            problems.append(problem)
    if quick or problems:
        return problems

    with tempfile.TemporaryDirectory() as tmp:
        staged = stage_reference(assignments)
        report = grade(staged, GradeOptions(assignments, output=Path(tmp) / "ref.json"), log)
        staged.cleanup()
        if report.score != report.max_score or report.ungradable:
            failing = [t.name for t in report.graded() if t.status != "passed"]
            problems.append(f"reference scores {report.score:g}/{report.max_score:g}; "
                            f"failing: {', '.join(failing[:10])}")
        staged = stage_submission(REPO, assignments)
        report = grade(staged, GradeOptions(assignments, output=Path(tmp) / "stub.json"), log)
        staged.cleanup()
        if report.score != 0 or report.ungradable:
            passing = [t.name for t in report.graded() if t.status == "passed"]
            problems.append(f"released stubs score {report.score:g} (should be 0); passing: "
                            f"{', '.join(passing[:10])}; ungradable: {len(report.ungradable)}")
    return problems


def _import_problem(assignment: Assignment) -> str | None:
    """The stub must import cleanly in a fresh interpreter."""
    folder = assignment.student_path(REPO).parent
    code = f"import sys; sys.path.insert(0, {str(folder)!r}); import {assignment.module}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        return f"{assignment.name}: the stub does not import:\n{result.stderr[-800:]}"
    return None
