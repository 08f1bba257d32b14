"""Per-student feedback after the deadline: one markdown page per assignment.

Read from the class grading's results.json (Gradescope's schema), it shows

    the grade of record from gradebook.csv (`grade_table`): raw score, late penalty
    (days and %), an instructor's adjustment with its reason, and the final score,
    which is what the exports carry, with the late note; a provisional note while
    the student's window is open;
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

A row with no results (nothing submitted, unreachable, ungradable, no commit
recorded) gets a page too (`status_page`): what the gradebook says and whom to
contact. A row that is not due gets none.

Every piece of student-derived text goes through `shown` and inside a `fenced`
block, so a student who prints a markdown fence cannot forge the page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from grader.classroom import gradebook
from grader.classroom.gradebook import Row, of_record, read_gradebook
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


CONTACT = ("If this is not what you expected, write to the course staff and quote this "
           "page's first line.")


def feedback_markdown(student: str, assignment_name: str, results: dict, *,
                      late_note: str = "", row: Row | None = None) -> str:
    """The markdown page for one student and one assignment; with its gradebook `row`,
    the heading shows the final score, with the table that leads to it."""
    a = ASSIGNMENTS[assignment_name]
    tests = tests_of(results, assignment_name)
    score, maximum = sum(t["score"] for t in tests), sum(t["max_score"] for t in tests)
    if row is not None:
        score, maximum = row.score, row.max_score
    lines = [f"# Assignment {a.number}: {a.title}: {score:.2f} / {maximum:.2f} points", "",
             f"Feedback for **{shown(student, 100)}**.", ""]
    if late_note:
        lines += [f"> {shown(late_note, 200)}", ""]
    if row is not None:
        lines += grade_table(row)
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


def grade_table(row: Row) -> list[str]:
    """From the tests' points to the grade of record: raw score, late penalty, the
    course staff's adjustment and its reason, the final score (what the exports carry)."""
    lines = ["## Grade of record", "", "| | points |", "|---|---:|",
             f"| tests passed (raw score) | {row.raw_score:.2f} / {row.max_score:.2f} |"]
    if row.days_late or row.penalty:
        lines.append(f"| {late_note(row)} | −{row.raw_score * row.penalty:.2f} |")
    if row.adjustment or row.override:
        reason = shown(row.override, 200).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| adjusted by the course staff: {reason or '(no reason given)'} | "
                     f"{row.adjustment:+.2f} |")
    lines.append(f"| **final score** (the course's gradebook) | **{row.score:.2f} / "
                 f"{row.max_score:.2f}** |")
    if row.status.startswith(gradebook.WINDOW_OPEN):
        lines += ["", "Provisional: your submission window is still open, and the score is "
                  "graded again once it ends."]
    return lines + [""]


EXPLAINED = {
    "nothing submitted": "Nothing was submitted by the end of your window: the score of "
                         "record is 0.",
    "unreachable": "Your repository could not be read when your work was to be recorded "
                   "or graded: no score is recorded yet.",
    "ungradable": "The grader failed on your work (a failure of the grader, not of your "
                  "code): it will be graded again. No score is recorded yet.",
    "no commit recorded": "No commit of yours was recorded when your window closed: no "
                          "score is recorded.",
    "window open": "Your submission window is still open: nothing is final yet.",
    "graded": "The detailed results of this grading are not available.",
}


def status_page(student: str, assignment_name: str, row: Row) -> str:
    """The page for a row without results to show: what the gradebook says."""
    a = ASSIGNMENTS[assignment_name]
    score = f"{row.score:.2f} / {row.max_score:.2f} points" if of_record(row) else \
        "no score recorded"
    kind = next((k for k in EXPLAINED if row.status == k or row.status.startswith(k)), "")
    return "\n".join([f"# Assignment {a.number}: {a.title}: {score}", "",
                      f"Feedback for **{shown(student, 100)}**.", "",
                      *(grade_table(row) if of_record(row) else []),
                      "The gradebook says:", "", *fenced(shown(told(row.status), 500)), "",
                      EXPLAINED.get(kind, "No score is recorded yet."), "", CONTACT, ""])


def told(status: str) -> str:
    """The status as the student may read it: an ungradable row's details are the
    grader's own failure (its exception, perhaps a hidden test's path), so only its kind."""
    return "ungradable: the grader failed; it will grade again" \
        if status.startswith(gradebook.UNGRADABLE) else status


def write_feedback(grades_dir: Path, out_dir: Path, assignments: list[str] | None = None,
                   students: list[str] | None = None) -> list[Path]:
    """out_dir/<student>/<assignment>.md for each row of grades_dir's gradebook and each
    assignment in grades_dir/<student>/results.json (default: all), never for a row that
    is not due; returns the pages written."""
    book = read_gradebook(Path(grades_dir))
    results = {path.parent.name: json.loads(path.read_text())
               for path in sorted(Path(grades_dir).glob("*/results.json"))}
    present = {(student, str(t.get("name", "")).split("/", 1)[0])
               for student, r in results.items() for t in r.get("tests", [])}
    written = []
    for student, name in sorted(present | set(book), key=lambda k: (k[0], _order(k[1]))):
        row = book.get((student, name))
        if (not SAFE_NAME.match(student) or name not in ASSIGNMENTS
                or (students is not None and student not in students)
                or (assignments is not None and name not in assignments)
                or (row is not None and row.status.startswith(gradebook.NOT_DUE))):
            continue
        shows_tests = (student, name) in present and (
            row is None or row.status.startswith(gradebook.WINDOW_OPEN)
            or (of_record(row) and not row.status.startswith("nothing submitted")))
        page = Path(out_dir) / student / f"{name}.md"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(feedback_markdown(student, name, results[student],
                                          late_note=late_note(row), row=row)
                        if shows_tests else status_page(student, name, row))
        written.append(page)
    return written


def _order(name: str) -> int:
    return ASSIGNMENTS[name].number if name in ASSIGNMENTS else 10 ** 6


def late_note(row: Row | None) -> str:
    """'Late by 2 days: −20%' from the student's gradebook row; '' when on time."""
    if row is None or row.days_late <= 0:
        return ""
    count = f"{row.days_late} day" + ("" if row.days_late == 1 else "s")
    return f"Late by {count}: −{row.penalty:.0%}" if row.penalty else \
        f"Late by {count} (no penalty)"
