"""Stage 3 of grading: results.json (Gradescope's schema) and the summaries.

    {"score", "max_score", "execution_time", "output", "extra_data",
     "tests": [{"name": "<assignment>/...", "score", "max_score",
                "status": "passed" | "failed", "output", "visibility", "number"}]}

The file is rewritten atomically after every finished test, so a grading run
that is killed part-way still leaves a valid file with what it finished.
Tests skipped on this machine (GPU-only, missing optional packages) are listed
in the top-level output, not as tests.

What a student sees before the due date (Gradescope's visibility, `seen_before_due_date`)
depends on nothing but the public tests: hidden tests and the concept questions are
`after_due_date`, and so is the top level (the total, and the default of every test);
public tests override it with `visible`; the top-level `output` (which Gradescope shows
whatever the visibility) is the table of the public tests alone; stdout (the grader's
log, with every test) is `hidden`, for instructors. A test's `output` is rendered from
its failure record (grader/kit/describe.py), kept in the test's `extra_data.failure`.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from grader.kit.describe import render_failure
from grader.pipeline.text import fenced, shown

VISIBILITY = {"public": "visible", "hidden": "after_due_date"}   # a test's, by its suite
RESULTS_VISIBILITY = "after_due_date"   # the top level: the total, every test's default
STDOUT_VISIBILITY = "hidden"            # the grader's log: every test, for instructors
BEFORE_DUE_DATE = ("Before the due date this shows the public tests only: the hidden tests, "
                   "the concept questions and the total appear after it.")


@dataclass
class TestResult:
    nodeid: str
    name: str
    assignment: str
    task: str | None
    suite: str
    points: float
    status: str = "pending"      # pending, passed, failed, ungradable, skipped
    message: str = ""
    fraction: float = 1.0        # of the points, for a passed test (speed: grader/kit/speed.py)
    doc: str = ""                # the property (the test's docstring)
    failure: dict | None = None  # the failure's fields (grader/kit/describe.py)

    @property
    def score(self) -> float:
        return self.points * self.fraction if self.status == "passed" else 0.0

    @property
    def full_marks(self) -> bool:
        return self.status == "passed" and self.fraction >= 1.0

    @property
    def visible(self) -> bool:
        """Shown to students before the due date."""
        return VISIBILITY[self.suite] == "visible"

    def gradescope(self) -> dict:
        output = shown(render_failure(self.failure)) if self.failure else self.message
        if self.status == "ungradable":
            output = f"UNGRADABLE (the grader's or the machine's fault, not yours): {output}"
        elif self.status == "pending":
            output = output or "not run"
        line = {"name": self.name, "score": round(self.score, 4),
                "max_score": round(self.points, 4),
                "status": "passed" if self.full_marks else "failed",
                "output": output, "visibility": VISIBILITY[self.suite],
                "number": self.task or ""}
        if self.failure:
            line["extra_data"] = {"failure": self.failure}
        return line

    def close(self, status: str, message: str) -> None:
        """Never finished: `message`'s first line is the reason a student reads; what
        follows (e.g. the test runner's console, which shows hidden tests) is only in
        `message`, the instructor's log."""
        self.status, self.message = status, shown(message)
        self.failure = {"property": self.doc, "kind": "ungradable" if status == "ungradable"
                        else "not_run", "reason": self.message.split("\n", 1)[0]}


class Report:
    """All tests of a grading run, in collection order, updated as results arrive."""

    def __init__(self, extra_data: dict, titles: dict[tuple[str, str], str] | None = None):
        self.titles = titles or {}          # (assignment, task number) -> "1.1 absmax_quantize"
        self.tests: dict[str, TestResult] = {}
        self.extra_data = extra_data
        self.notes: list[str] = []
        self.execution_time = 0.0

    # ------------------------------------------------------------ updates --
    def record(self, record: dict) -> None:
        if record["event"] == "collected":
            fields = {k: record[k] for k in ("nodeid", "name", "task", "suite", "points")}
            self.tests[record["nodeid"]] = TestResult(assignment=record["assignment"],
                                                      doc=shown(record.get("doc", "")), **fields)
        elif record["event"] == "finished" and record["nodeid"] in self.tests:
            test = self.tests[record["nodeid"]]
            test.status, test.message = record["status"], shown(record["message"])
            test.fraction = min(1.0, max(0.0, float(record.get("fraction", 1.0))))
            test.failure = _clean(record["failure"]) if record.get("failure") else None
            if test.failure:
                test.message = shown(render_failure(test.failure))

    def close_assignment(self, assignment: str, status: str, message: str) -> None:
        """Every test of `assignment` that never finished gets `status` and `message`."""
        for test in self.tests.values():
            if test.assignment == assignment and test.status == "pending":
                test.close(status, message)

    def add_placeholder(self, assignment: str, message: str) -> None:
        """A suite that could not even be collected still shows up as a failed line."""
        nodeid = f"{assignment}::<suite>"
        self.tests[nodeid] = TestResult(nodeid, f"{assignment}/(suite could not run)",
                                        assignment, None, "hidden", 0.0)
        self.tests[nodeid].close("ungradable", message)

    # ------------------------------------------------------------ queries --
    def graded(self) -> list[TestResult]:
        return [t for t in self.tests.values() if t.status != "skipped"]

    @property
    def score(self) -> float:
        return sum(t.score for t in self.graded())

    @property
    def max_score(self) -> float:
        return sum(t.points for t in self.graded())

    @property
    def ungradable(self) -> list[TestResult]:
        return [t for t in self.tests.values() if t.status == "ungradable"]

    def visible_tests(self) -> list[TestResult]:
        """The graded tests a student sees before the due date: the public ones."""
        return [t for t in self.graded() if t.visible]

    def by_task(self, tests: list[TestResult] | None = None
                ) -> list[tuple[str, str, int, int, float, float]]:
        """(assignment, task, passed, total, score, max) per task of `tests` (default: all
        graded), in course order (that of `titles`, the manifests' tasks by number)."""
        rows: dict[tuple[str, str], list] = {}
        for t in self.graded() if tests is None else tests:
            key = (t.assignment, t.task or ("public" if t.suite == "public" else "-"))
            row = rows.setdefault(key, [0, 0, 0.0, 0.0])
            row[0] += t.full_marks
            row[1] += 1
            row[2] += t.score
            row[3] += t.points
        order = {key: i for i, key in enumerate(self.titles)}
        ordered = sorted(rows, key=lambda key: order.get(key, len(order)))  # stable
        return [(a, task, *rows[a, task]) for a, task in ordered]

    # ------------------------------------------------------------- output --
    def gradescope(self) -> dict:
        return {"score": round(self.score, 2), "max_score": round(self.max_score, 2),
                "execution_time": round(self.execution_time, 1),
                "visibility": RESULTS_VISIBILITY, "stdout_visibility": STDOUT_VISIBILITY,
                "output": self.public_summary(), "extra_data": self.extra_data,
                "tests": [t.gradescope() for t in self.graded()]}

    def public_summary(self) -> str:
        """The top-level output: the table of the public tests alone, and what it omits."""
        return f"{BEFORE_DUE_DATE}\n{self.text_summary(True, 'public total')}"

    def classroom(self) -> dict:
        """One runner's results for GitHub Classroom's autograding-grading-reporter: it
        adds the scores to the Classroom dashboard and fails the check unless all pass.
        Students see it at once: the public tests only."""
        tests = self.visible_tests()
        return {"version": 1, "max_score": round(sum(t.points for t in tests), 2),
                "status": "pass" if tests and all(t.status == "passed" for t in tests)
                else "fail",
                "tests": [{"name": t.name, "status": "pass" if t.status == "passed" else "fail",
                           "score": round(t.score, 4), "message": shown(t.message, 2000),
                           "line_no": 0, "execution_time": ""} for t in tests]}

    def classroom_base64(self) -> str:
        return base64.b64encode(json.dumps(self.classroom()).encode()).decode()

    def write(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.gradescope(), indent=2) + "\n")
        os.replace(tmp, path)

    def text_summary(self, visible_only: bool = False, label: str = "total") -> str:
        """The per-task table of the graded tests (`visible_only`: the public ones):
        columns as wide as their longest entry, no title cut; counts of skipped and
        ungradable tests among them."""
        tests = self.visible_tests() if visible_only else self.graded()
        rows = [(assignment, self.titles.get((assignment, task), task), f"{passed}/{total}",
                 f"{score:.2f}/{maximum:.2f}")
                for assignment, task, passed, total, score, maximum in self.by_task(tests)]
        total = (f"{sum(t.score for t in tests):.2f}/"
                 f"{sum(t.points for t in tests):.2f}")
        a_width = max([len("assignment"), *(len(r[0]) for r in rows)]) + 2
        t_width = max([len("task"), *(len(r[1]) for r in rows)]) + 2
        p_width = max([len("points"), len(total), *(len(r[3]) for r in rows)]) + 4
        lines = [f"{'assignment':<{a_width}}{'task':<{t_width}}{'tests':>9}{'points':>{p_width}}"]
        lines += [f"{a:<{a_width}}{title:<{t_width}}{tests:>9}{points:>{p_width}}"
                  for a, title, tests, points in rows]
        lines.append(f"{label:<{a_width + t_width + 9}}{total:>{p_width}}")
        skipped = [t for t in self.tests.values() if t.status == "skipped"
                   and (t.visible or not visible_only)]
        if skipped:
            reasons = sorted({t.message for t in skipped})
            lines.append(f"{len(skipped)} tests skipped on this machine: " + "; ".join(reasons))
        ungradable = [t for t in tests if t.status == "ungradable"]
        if ungradable:
            lines.append(f"{len(ungradable)} tests UNGRADABLE (grader or machine fault): "
                         "they will be retried")
        lines += self.notes
        return "\n".join(lines)

    def failures_text(self, limit: int = 20) -> str:
        failed = [t for t in self.graded() if t.status not in ("passed",)]
        blocks = []
        for t in failed[:limit]:
            blocks.append(f"--- {t.name} [{t.status}, {t.points:.2f} pts]\n{t.message.strip()}")
        if len(failed) > limit:
            blocks.append(f"... and {len(failed) - limit} more failing tests")
        return "\n".join(blocks)

    def markdown(self) -> str:
        lines = [f"## Grade: {self.score:.2f} / {self.max_score:.2f}", "",
                 "| assignment | task | tests passed | points |", "|---|---|---:|---:|"]
        for assignment, task, passed, total, score, maximum in self.by_task():
            title = self.titles.get((assignment, task), task)
            lines.append(f"| {assignment} | {title} | {passed}/{total} "
                         f"| {score:.2f}/{maximum:.2f} |")
        failed = [t for t in self.graded() if t.status != "passed"]
        if failed:
            lines += ["", "<details><summary>Failing tests</summary>", ""]
            for t in failed[:50]:
                lines += [f"**{t.name}** ({t.status})", "", *fenced(shown(t.message.strip(), 1500)),
                          ""]
            lines.append("</details>")
        if self.ungradable:
            lines += ["", f"**{len(self.ungradable)} tests were ungradable** (grader or machine "
                          "fault); re-run the job."]
        return "\n".join(lines) + "\n"


def _clean(value):
    """A failure record from the pytest child with every string made printable (`shown`)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return shown(value) if isinstance(value, str) else value


def seen_before_due_date(results: dict) -> dict:
    """What a student sees of `results` before the due date, by Gradescope's documented
    visibility (gradescope-autograders.readthedocs.io, "Autograder Specifications"),
    read cautiously: a test is shown when its `visibility` (else the top level's, else
    "visible") is "visible" or "after_published" (an instructor may publish early); the
    score, maximum and execution time unless the top-level visibility hides them ("If
    test cases are hidden, students will not be able to see their total score"); stdout
    when `stdout_visibility` shows it; the top-level `output` always."""
    shows = ("visible", "after_published")
    default = results.get("visibility", "visible")
    seen = {"output": results.get("output", "")}
    if default in shows:
        seen.update({k: results[k] for k in ("score", "max_score", "execution_time")
                     if k in results})
    if results.get("stdout_visibility", "hidden") in shows:
        seen["stdout"] = "(the grader's log)"
    seen["tests"] = [t for t in results.get("tests", [])
                     if t.get("visibility", default) in shows]
    return seen
