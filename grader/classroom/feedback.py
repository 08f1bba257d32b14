"""Per-student feedback after the deadline: one markdown page per assignment.

Read from the class grading's results.json (Gradescope's schema), it shows

    the score, and a late note from gradebook.csv when there is one;
    the points per task, in the manifest's order;
    each failed public test in full (the student has its source anyway);
    each failed hidden test from its failure record alone (the test's
    `extra_data.failure`, grader/kit/describe.py): the property, the check's own message,
    the student's exception as quoted data, their frames in their own file, the smallest
    failing input. No text is filtered or parsed: what the record does not carry (the
    hidden tests' source, pytest's introspection of their assertions, a probe's
    frames) cannot reach the page, and a results file without records shows the
    property alone;
    passed tests as a count.

Every piece of student-derived text goes through `shown` and inside a `fenced`
block, so a student who prints a markdown fence cannot forge the page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from grader.classroom.gradebook import Row, read_gradebook
from grader.classroom.roster import SAFE_NAME
from grader.course import ASSIGNMENTS, Assignment
from grader.kit.describe import render_failure
from grader.pipeline.text import fenced, shown


def hidden_failure(test: dict) -> str:
    """A hidden test's failure as a student may see it: rendered from its record, or,
    without one, its property in the words of its name."""
    record = (test.get("extra_data") or {}).get("failure")
    if not isinstance(record, dict):
        return f"Property: {in_words(str(test.get('name', '')))}\n(no details recorded)"
    record = {**record, "property": record.get("property") or in_words(str(test["name"]))}
    return shown(render_failure(record)).strip() or "(no details recorded)"


def in_words(name: str) -> str:
    """'quantization/test_codes_lie_in_range[cpu]' -> 'codes lie in range'."""
    words = re.sub(r"\[.*$", "", name.rsplit("/", 1)[-1]).removeprefix("test_")
    return words.replace("_", " ").strip() or "(unnamed test)"


def feedback_markdown(student: str, assignment_name: str, results: dict, *,
                      late_note: str = "") -> str:
    """The markdown page for one student and one assignment."""
    a = ASSIGNMENTS[assignment_name]
    tests = tests_of(results, assignment_name)
    score, maximum = sum(t["score"] for t in tests), sum(t["max_score"] for t in tests)
    lines = [f"# Assignment {a.number}: {a.title}: {score:.2f} / {maximum:.2f} points", "",
             f"Feedback for **{shown(student, 100)}**.", ""]
    if late_note:
        lines += [f"> {shown(late_note, 200)}", ""]
    lines += task_table(a, tests)
    for title, hidden in (("Public tests", False), ("Hidden tests", True)):
        lines += failures_section(title, [t for t in tests if is_hidden(t) == hidden], hidden)
    return "\n".join(lines)


def tests_of(results: dict, assignment_name: str) -> list[dict]:
    """The results' tests of one assignment, with numeric scores."""
    return [dict(t, score=float(t.get("score") or 0), max_score=float(t.get("max_score") or 0))
            for t in results.get("tests", [])
            if str(t.get("name", "")).startswith(f"{assignment_name}/")]


def is_hidden(test: dict) -> bool:
    return test.get("visibility") != "visible"


def task_table(a: Assignment, tests: list[dict]) -> list[str]:
    """Points per task in the manifest's order; tests without a known task go in "other"."""
    lines = ["## Points per task", "", "| task | title | points |", "|---|---|---:|"]
    titles = {**a.titles, "other": "tests without a task"}
    for task, title in titles.items():
        mine = [t for t in tests if (t.get("number") if t.get("number") in a.titles
                                     else "other") == task]
        if mine:
            earned, possible = sum(t["score"] for t in mine), sum(t["max_score"] for t in mine)
            lines.append(f"| {task} | {title} | {earned:.2f} / {possible:.2f} |")
        elif task != "other":
            lines.append(f"| {task} | {title} | not graded |")
    return lines + [""]


def failures_section(title: str, tests: list[dict], hidden: bool) -> list[str]:
    """A heading, the count of passed tests, and each failure in its own code block."""
    if not tests:
        return []
    failed = [t for t in tests if t.get("status") != "passed"]
    lines = [f"## {title}", "", f"{len(tests) - len(failed)} of {len(tests)} passed.", ""]
    for t in failed:
        text = hidden_failure(t) if hidden else shown(t.get("output", "")).strip()
        name = in_words(t["name"]) if hidden else t["name"].split("/", 1)[-1]
        lines += [f"### {shown(name, 200)} ({t['score']:.2f} / {t['max_score']:.2f})", "",
                  *fenced(text), ""]
    return lines


def write_feedback(grades_dir: Path, out_dir: Path, assignments: list[str] | None = None,
                   students: list[str] | None = None) -> list[Path]:
    """out_dir/<student>/<assignment>.md for each grades_dir/<student>/results.json, for the
    given assignments (default: those in the results); returns the pages written."""
    late = read_gradebook(Path(grades_dir))
    written = []
    for path in sorted(Path(grades_dir).glob("*/results.json")):
        student = path.parent.name
        if not SAFE_NAME.match(student) or (students is not None and student not in students):
            continue
        results = json.loads(path.read_text())
        present = {str(t.get("name", "")).split("/", 1)[0] for t in results.get("tests", [])}
        for name in [n for n in ASSIGNMENTS if n in present]:
            if assignments is not None and name not in assignments:
                continue
            page = Path(out_dir) / student / f"{name}.md"
            page.parent.mkdir(parents=True, exist_ok=True)
            note = late_note(late.get((student, name)))
            page.write_text(feedback_markdown(student, name, results, late_note=note))
            written.append(page)
    return written


def late_note(row: Row | None) -> str:
    """'Late by 2 days: −20%' from the student's gradebook row; '' when on time."""
    if row is None or row.days_late <= 0:
        return ""
    count = f"{row.days_late} day" + ("" if row.days_late == 1 else "s")
    return f"Late by {count}: −{row.penalty:.0%}" if row.penalty else \
        f"Late by {count} (no penalty)"
