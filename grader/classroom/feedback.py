"""Per-student feedback after the deadline: one markdown page per assignment.

Read from the class grading's results.json (Gradescope's schema), it shows

    the score, and a late note from gradebook.csv when there is one;
    the points per task, in the manifest's order;
    each failed public test in full (the student has its source anyway);
    each failed hidden test reduced by `hidden_summary` to its property, the first
    lines of its message and the smallest failing input: the hidden tests' source
    and the reference never reach a student, even through a traceback;
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
from grader.pipeline.text import fenced, shown

ASSERTION_LINES = 3       # of a hidden failure's message, after its property
LINE_LIMIT = 300          # characters of one such line

# Where a hidden failure's minimal input starts (hypothesis's note, or describe.py's form).
EXAMPLE = re.compile(r"^(Falsifying (explicit )?example|Failing test case|Smallest failing input)")
# Sections after the message: the student's traceback and prints, hypothesis's extras.
SECTION_END = re.compile(r"^(Your code printed|Where \(your code\)|Traceback \(|Explanation:"
                         r"|You can reproduce|-+ Captured)")
# Lines that look like source or a traceback: pytest's `>` and `E` lines, file:line
# locations, Python code, pytest's separators and its fixture values (`student = <...>`).
SOURCE = re.compile(r"^(>|E(\s|$)|\s{4}|\t|_{3,}|[_ ]+$|\S+\.py:\d+|\s*File \"|.*\.py\", line \d"
                    r"|(async )?def |class |@|import |from \S+ import |return |assert |raise "
                    r"|\w+ = )")
# pytest's `E   ValueError: message` line: the message is worth keeping, not its source.
ERROR_LINE = re.compile(r"^E\s+((\w+\.)*\w+(Error|Exception|Exit|Interrupt)|Failed): (.*)$")


def hidden_summary(output: str, name: str = "") -> str:
    """A hidden test's failure as a student may see it: the `Property:` line (else the test's
    `name` in words), the first lines of the message, and the smallest failing input.
    Every line that looks like a traceback or source code is dropped."""
    lines = output.split("\n")
    prop = next((line for line in lines if line.startswith("Property:")), "")
    message, example = [], []
    depth = -1       # the example's indent while inside it; -2 after its ")": only Draws
    from_e = False   # the example came in pytest's `E` lines: only `E` lines continue it
    skipping = False           # inside the student's traceback or prints, hypothesis's extras
    for line in lines:
        is_e = line == "E" or line.startswith("E ")
        body = line[1:] if is_e else line   # pytest's error lines
        text, indent = body.strip(), len(body) - len(body.lstrip())
        if EXAMPLE.match(text):
            example.append(text)
            depth, from_e, skipping = indent, is_e, False
        elif depth >= 0 and is_e == from_e and (indent > depth or text in (")", "")):
            if text == ")":
                example.append(text)
                depth = -2
            elif text and not text.startswith(("student=", "reference=")) \
                    and not SOURCE.match(text):
                example.append(f"  {text}")
        elif depth != -1 and is_e == from_e and text.startswith("Draw "):
            example.append(text)
        else:
            depth = -1
            skipping = skipping or bool(SECTION_END.match(text))
            if not (skipping or example or line == prop) and len(message) < ASSERTION_LINES:
                kept = message_line(line)
                message += [kept[:LINE_LIMIT]] if kept else []
    head = [prop or f"Property: {in_words(name)}"]
    return "\n".join(head + (message or ["(no message that can be shown)"]) + example)


def message_line(line: str) -> str:
    """`line` if it belongs to the failure's message; '' if blank or source-like; the message
    alone of pytest's `E   ValueError: message` (not of `E   AssertionError: assert x == y`)."""
    error = ERROR_LINE.match(line)
    if error and not error.group(4).startswith("assert "):
        return f"{error.group(1)}: {error.group(4)}"
    return "" if not line.strip() or SOURCE.match(line) else line


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
        output = shown(t.get("output", ""))
        text = hidden_summary(output, t["name"]) if hidden else output.strip()
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
