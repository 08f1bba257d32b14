"""The numbers of the class report (`grader class report`), from the gradebook and the
per-student results.json files; report_html.py draws them.

Only rows of record (`gradebook.of_record`: graded, or nothing submitted) enter the
statistics; the other statuses are counted, never scored as zeros.

    quartiles    numpy.percentile's default ("linear": the (n-1)p-th order statistic,
                 interpolated), so the median of 1, 2, 3, 4 is 2.5 and Q1 is 1.75
    item         one test ("quantization/test_x[case 3]") or one property (a parametrized
                 test's cases together: the name without "[...]"; it passes when every
                 case passes)
    discrimination  Pearson's r between passing the item (1/0) and the rest of the
                 student's points on that assignment (the sum of their tests' points minus
                 the item's), over the students of record who have results; None (shown
                 "—") when every student passes or every student fails, or the rest is
                 the same for everyone
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grader.classroom.gradebook import NOT_DUE, UNGRADABLE, UNREACHABLE, WINDOW_OPEN, Row, of_record

CASE = re.compile(r"\[.*\]\Z", re.S)
INPUT_CHARS = 200           # a failing input is student-derived text: shown at most this long
TOP_PROPERTIES, TOP_INPUTS = 5, 5


@dataclass
class Summary:
    assignment: str
    scores: list[float]                 # rows of record only
    max_score: float
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.scores)

    def quantiles(self) -> tuple[float, float, float] | None:
        """(Q1, median, Q3), numpy's default linear definition; None without scores."""
        if not self.scores:
            return None
        q1, q2, q3 = np.percentile(self.scores, [25, 50, 75])
        return float(q1), float(q2), float(q3)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None


def _kind(status: str, kind: str) -> bool:
    return status == kind or status.startswith(kind + " ") or status.startswith(kind + ":")


def summarize(assignment: str, rows: list[Row]) -> Summary:
    """One assignment's scores of record and the counts of each kind of row."""
    record = [r for r in rows if of_record(r)]
    counts = {"zeros": sum(r.score == 0 for r in record),
              "late": sum(r.days_late > 0 for r in record),
              "ungradable": sum(_kind(r.status, UNGRADABLE) for r in rows),
              "not due": sum(_kind(r.status, NOT_DUE) for r in rows),
              "window open": sum(_kind(r.status, WINDOW_OPEN) for r in rows),
              "unreachable": sum(_kind(r.status, UNREACHABLE) for r in rows),
              "flagged for review": sum(bool(r.review) for r in rows)}
    return Summary(assignment, [r.score for r in record],
                   max((r.max_score for r in rows), default=0.0), counts)


@dataclass
class Item:
    name: str
    hidden: bool
    failing: float                      # share of students failing it
    points_lost: float                  # over the class
    discrimination: float | None
    students: int


def property_of(test_name: str) -> str:
    return CASE.sub("", test_name)


def read_tests(folder: Path, student: str, assignment: str) -> list[dict]:
    """That student's test entries for `assignment` from DIR/<student>/results.json."""
    path = Path(folder) / student / "results.json"
    try:
        tests = json.loads(path.read_text()).get("tests", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [t for t in tests if isinstance(t, dict)
            and str(t.get("name", "")).startswith(assignment + "/")]


def item_analysis(tests_by_student: dict[str, list[dict]], *, by_property: bool) -> list[Item]:
    """Every test (or property) of one assignment, worst first: most points lost, then
    the largest share failing, then the name."""
    totals = {s: sum(_number(t.get("score")) for t in tests) for s, tests in
              tests_by_student.items()}
    per_item: dict[str, dict[str, list[dict]]] = {}
    for student, tests in tests_by_student.items():
        for t in tests:
            name = str(t.get("name", ""))
            key = property_of(name) if by_property else name
            per_item.setdefault(key, {}).setdefault(student, []).append(t)
    items = []
    for name, mine in per_item.items():
        passed = [all(t.get("status") == "passed" for t in ts) for ts in mine.values()]
        earned = [sum(_number(t.get("score")) for t in ts) for ts in mine.values()]
        lost = sum(_number(t.get("max_score")) - _number(t.get("score"))
                   for ts in mine.values() for t in ts)
        rest = [totals[s] - e for s, e in zip(mine, earned, strict=True)]
        hidden = any(t.get("visibility") != "visible" for ts in mine.values() for t in ts)
        items.append(Item(name, hidden, passed.count(False) / len(passed), lost,
                          _pearson([float(p) for p in passed], rest), len(passed)))
    return sorted(items, key=lambda i: (-i.points_lost, -i.failing, i.name))


def _pearson(x: list[float], y: list[float]) -> float | None:
    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return statistics.correlation(x, y)


def _number(value) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def common_inputs(tests_by_student: dict[str, list[dict]], properties: list[str]
                  ) -> dict[str, list[tuple[str, int]]]:
    """For each property, its smallest failing inputs (the failure records' `example`)
    across the class, most common first, each cut to INPUT_CHARS characters."""
    out = {}
    for prop in properties:
        counted: Counter[str] = Counter()
        for tests in tests_by_student.values():
            for t in tests:
                if property_of(str(t.get("name", ""))) != prop or t.get("status") == "passed":
                    continue
                failure = (t.get("extra_data") or {}).get("failure") or {}
                example = failure.get("example") if isinstance(failure, dict) else None
                if isinstance(example, list) and example:
                    counted["\n".join(map(str, example))[:INPUT_CHARS]] += 1
        out[prop] = sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_INPUTS]
    return out


def most_failed_hidden(items: list[Item]) -> list[str]:
    hidden = [i for i in items if i.hidden and i.failing > 0]
    return [i.name for i in sorted(hidden, key=lambda i: (-i.failing, i.name))[:TOP_PROPERTIES]]
