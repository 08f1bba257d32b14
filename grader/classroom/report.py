"""`grader class report DIR`: DIR/report/index.html, and a page per student under
DIR/report/students/, for the instructor (numbers from report_stats.py).

The pages are self-contained and inert: inline CSS, plots drawn by matplotlib (Agg) and
inlined as base64 PNG, no script, and a Content-Security-Policy that forbids loading
anything (CSP below). Every student-derived text (names, statuses, review notes,
override reasons, failing inputs) is html.escape'd; a student page is written only for
a name that roster.SAFE_NAME accepts. The same inputs give the same bytes, but for the
one "generated at" line.
"""

from __future__ import annotations

import base64
import io
import sys
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from grader.classroom.gradebook import Row, assignment_order, of_record, read_gradebook
from grader.classroom.report_stats import (
    Item,
    Summary,
    common_inputs,
    item_analysis,
    most_failed_hidden,
    read_tests,
    summarize,
)
from grader.classroom.roster import SAFE_NAME

CSP = ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
       "img-src data:; style-src 'unsafe-inline'\">")
STYLE = ("<style>body{font-family:sans-serif;margin:2em;max-width:70em}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
         "padding:.2em .5em;text-align:left}pre{margin:0;white-space:pre-wrap}</style>")


def write_report(folder: Path, schedule=None, now: datetime | None = None,
                 progress=None) -> Path:
    """Write the report; returns index.html's path. `progress`: the progress bar's
    stream (default sys.stderr; False: none)."""
    folder = Path(folder)
    rows = read_gradebook(folder)
    out = folder / "report"
    (out / "students").mkdir(parents=True, exist_ok=True)
    students = sorted({r.student for r in rows.values()})
    assignments = sorted({r.assignment for r in rows.values()}, key=assignment_order)
    by_assignment = {a: [r for r in rows.values() if r.assignment == a] for a in assignments}
    tests: dict[str, dict[str, list[dict]]] = {a: {} for a in assignments}
    bar = Progress(len(students), sys.stderr if progress is None else progress or None)
    for done, student in enumerate(students, 1):
        for row in (r for r in rows.values() if r.student == student):
            if of_record(row):
                found = read_tests(folder, student, row.assignment)
                if found:
                    tests[row.assignment][student] = found
        mine = sorted((r for r in rows.values() if r.student == student),
                      key=lambda r: assignment_order(r.assignment))
        if SAFE_NAME.fullmatch(student):
            (out / "students" / f"{student}.html").write_text(student_page(student, mine))
        bar.show(done)
    sections = [assignment_section(a, summarize(a, by_assignment[a]), tests[a])
                for a in assignments]
    when = (now or datetime.now(UTC)).replace(microsecond=0).isoformat()
    body = [f"<h1>Class report</h1><p>generated at {escape(when)} from "
            f"{len(students)} students, {len(assignments)} assignments</p>",
            _similarity_link(folder), *sections,
            late_section(list(rows.values()), schedule), students_section(students)]
    index = out / "index.html"
    index.write_text(page("Class report", "".join(body)))
    return index


class Progress:
    """"[#####.....] 12/60 students" on one stderr line, redrawn in place."""

    def __init__(self, total: int, stream, width: int = 30):
        self.total, self.stream, self.width = total, stream, width

    def show(self, done: int) -> None:
        if self.stream is None:
            return
        filled = self.width * done // max(self.total, 1)
        end = "\n" if done >= self.total else ""
        print(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} students",
              end=end, file=self.stream, flush=True)


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">{CSP}"
            f"<title>{escape(title)}</title>{STYLE}</head><body>{body}</body></html>\n")


def table(header: list[str], lines: list[list[str]], caption: str = "") -> str:
    """Cells are HTML already (escape student text before)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in line) + "</tr>" for line in lines)
    cap = f"<caption>{caption}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def histogram(summary: Summary) -> str:
    """The scores of record as an inline PNG (deterministic: no metadata)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 2.5), dpi=80)
    axes = figure.add_subplot()
    top = summary.max_score or max(summary.scores, default=1.0) or 1.0
    axes.hist(summary.scores, bins=20, range=(0, top), color="#4477aa")
    axes.set_xlabel("score of record")
    axes.set_ylabel("students")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode()
    return (f"<img alt=\"score histogram of {escape(summary.assignment)}\" "
            f"src=\"data:image/png;base64,{data}\">")


def assignment_section(name: str, summary: Summary, tests: dict[str, list[dict]]) -> str:
    quartiles = summary.quantiles() or (None, None, None)
    stats = [["of record", str(summary.n)], ["mean", _num(summary.mean)],
             ["Q1 (25%)", _num(quartiles[0])], ["median", _num(quartiles[1])],
             ["Q3 (75%)", _num(quartiles[2])], ["max score", _num(summary.max_score)],
             *[[escape(k), str(v)] for k, v in summary.counts.items()]]
    properties = item_analysis(tests, by_property=True)
    parts = [f"<h2 id=\"{escape(name)}\">{escape(name)}</h2>", histogram(summary),
             table(["statistic", "value"], stats, "summary; quartiles: numpy's default "
                   "linear interpolation; counts of zeros and late: rows of record"),
             _items(properties, "item analysis per property (cases together)"),
             _items(item_analysis(tests, by_property=False), "item analysis per test"),
             _inputs(common_inputs(tests, most_failed_hidden(properties)))]
    return "".join(parts)


def _items(items: list[Item], caption: str) -> str:
    lines = [[escape(i.name), "hidden" if i.hidden else "public", f"{i.failing:.0%}",
              _num(i.points_lost), _num(i.discrimination), str(i.students)] for i in items]
    return table(["item", "suite", "failing", "points lost", "discrimination", "students"],
                 lines, escape(caption) + "; worst first; discrimination: Pearson r of "
                 "passing with the rest of the score, — where undefined")


def _inputs(found: dict[str, list[tuple[str, int]]]) -> str:
    lines = [[escape(prop), f"<pre>{escape(text)}</pre>", str(n)]
             for prop, inputs in found.items() for text, n in inputs]
    if not lines:
        return ""
    return table(["hidden property", "smallest failing input", "students"], lines,
                 "the most-failed hidden properties: their most common smallest failing "
                 "inputs")


def late_section(rows: list[Row], schedule) -> str:
    extended = getattr(schedule, "extensions", {}) or {}
    chosen = sorted((r for r in rows if r.days_late or (r.student, r.assignment) in extended),
                    key=lambda r: (r.student, assignment_order(r.assignment)))
    lines = [[_student_link(r.student, "students/"), escape(r.assignment), str(r.days_late),
              f"{r.penalty:.0%}", escape(_extension(extended, r))] for r in chosen]
    return "<h2>Late days and extensions</h2>" + table(
        ["student", "assignment", "days late", "penalty", "extended to"], lines)


def _extension(extended: dict, row: Row) -> str:
    when = extended.get((row.student, row.assignment))
    return when.isoformat() if when else ""


def students_section(students: list[str]) -> str:
    links = ", ".join(_student_link(s, "students/") for s in students)
    return f"<h2>Students</h2><p>{links}</p>"


def _student_link(student: str, prefix: str) -> str:
    if SAFE_NAME.fullmatch(student):
        return f"<a href=\"{prefix}{escape(student)}.html\">{escape(student)}</a>"
    return escape(student)


def _similarity_link(folder: Path) -> str:
    if (folder / "similarity" / "index.html").is_file():
        return "<p><a href=\"../similarity/index.html\">similarity report</a></p>"
    return ""


def student_page(student: str, rows: list[Row]) -> str:
    lines = [[f"<a href=\"../index.html#{escape(r.assignment)}\">{escape(r.assignment)}</a>",
              _num(r.score), _num(r.max_score), _num(r.raw_score), str(r.days_late),
              f"{r.penalty:.0%}", _num(r.adjustment), escape(r.status), escape(r.override),
              escape(r.review)] for r in rows]
    body = (f"<p><a href=\"../index.html\">class report</a></p><h1>{escape(student)}</h1>"
            + table(["assignment", "score", "max", "raw", "days late", "penalty",
                     "adjustment", "status", "override", "review"], lines))
    return page(student, body)
