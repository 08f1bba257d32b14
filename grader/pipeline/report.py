"""Stage 3 of grading: results.json (Gradescope's schema) and the summaries.

    {"score", "max_score", "execution_time", "output", "extra_data",
     "tests": [{"name": "<assignment>/...", "score", "max_score",
                "status": "passed" | "failed", "output", "visibility", "number"}]}

The file is rewritten atomically after every finished test, so a grading run
that is killed part-way still leaves a valid file with what it finished.
Tests skipped on this machine (GPU-only, missing optional packages) are listed
in the top-level output, not as tests.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from grader.pipeline.text import fenced, shown

VISIBILITY = {"public": "visible", "hidden": "after_due_date"}


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

    @property
    def score(self) -> float:
        return self.points * self.fraction if self.status == "passed" else 0.0

    @property
    def full_marks(self) -> bool:
        return self.status == "passed" and self.fraction >= 1.0

    def gradescope(self) -> dict:
        output = self.message
        if self.status == "ungradable":
            output = f"UNGRADABLE (the grader's or the machine's fault, not yours): {output}"
        elif self.status == "pending":
            output = output or "not run"
        return {"name": self.name, "score": round(self.score, 4),
                "max_score": round(self.points, 4),
                "status": "passed" if self.full_marks else "failed",
                "output": output, "visibility": VISIBILITY[self.suite],
                "number": self.task or ""}


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
            self.tests[record["nodeid"]] = TestResult(assignment=record["assignment"], **fields)
        elif record["event"] == "finished" and record["nodeid"] in self.tests:
            test = self.tests[record["nodeid"]]
            test.status, test.message = record["status"], shown(record["message"])
            test.fraction = min(1.0, max(0.0, float(record.get("fraction", 1.0))))

    def close_assignment(self, assignment: str, status: str, message: str) -> None:
        """Every test of `assignment` that never finished gets `status` and `message`."""
        for test in self.tests.values():
            if test.assignment == assignment and test.status == "pending":
                test.status, test.message = status, shown(message)

    def add_placeholder(self, assignment: str, message: str) -> None:
        """A suite that could not even be collected still shows up as a failed line."""
        nodeid = f"{assignment}::<suite>"
        self.tests[nodeid] = TestResult(nodeid, f"{assignment}/(suite could not run)",
                                        assignment, None, "hidden", 0.0, "ungradable",
                                        shown(message))

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

    def by_task(self) -> list[tuple[str, str, int, int, float, float]]:
        """(assignment, task, passed, total, score, max) per task, in course order (that of
        `titles`, which lists the manifests' tasks by assignment number)."""
        rows: dict[tuple[str, str], list] = {}
        for t in self.graded():
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
                "output": self.text_summary(), "extra_data": self.extra_data,
                "tests": [t.gradescope() for t in self.graded()]}

    def classroom(self) -> dict:
        """One runner's results for GitHub Classroom's autograding-grading-reporter: it
        adds the scores to the Classroom dashboard and fails the check unless all pass."""
        tests = self.graded()
        return {"version": 1, "max_score": round(self.max_score, 2),
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

    def text_summary(self) -> str:
        """The per-task table: columns as wide as their longest entry, no title cut."""
        rows = [(assignment, self.titles.get((assignment, task), task), f"{passed}/{total}",
                 f"{score:.2f}/{maximum:.2f}")
                for assignment, task, passed, total, score, maximum in self.by_task()]
        total = f"{self.score:.2f}/{self.max_score:.2f}"
        a_width = max([len("assignment"), *(len(r[0]) for r in rows)]) + 2
        t_width = max([len("task"), *(len(r[1]) for r in rows)]) + 2
        p_width = max([len("points"), len(total), *(len(r[3]) for r in rows)]) + 4
        lines = [f"{'assignment':<{a_width}}{'task':<{t_width}}{'tests':>9}{'points':>{p_width}}"]
        lines += [f"{a:<{a_width}}{title:<{t_width}}{tests:>9}{points:>{p_width}}"
                  for a, title, tests, points in rows]
        lines.append(f"{'total':<{a_width + t_width + 9}}{total:>{p_width}}")
        skipped = [t for t in self.tests.values() if t.status == "skipped"]
        if skipped:
            reasons = sorted({t.message for t in skipped})
            lines.append(f"{len(skipped)} tests skipped on this machine: " + "; ".join(reasons))
        if self.ungradable:
            lines.append(f"{len(self.ungradable)} tests UNGRADABLE (grader or machine fault): "
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
