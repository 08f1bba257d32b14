"""The gradebook in the shapes other systems import; the maximum is always there.

plain:  student, a column per assignment, total; the first row after the header is
        "(max points)", so a spreadsheet never guesses what a score is out of.
canvas: Canvas's gradebook import (Student, ID, SIS User ID, SIS Login ID, Section,
        then one column per assignment; the first row is "Points Possible"). The
        identity columns come from the roster's optional columns name, canvas_id,
        sis_id, sis_login and section; Canvas matches students by ID or SIS ID.

Text that a spreadsheet would run as a formula is written quoted (cells.py).
"""

from __future__ import annotations

import csv
from pathlib import Path

from grader.classroom.cells import cells
from grader.classroom.gradebook import Row, assignment_order
from grader.classroom.roster import Student
from grader.course import ASSIGNMENTS

CANVAS_IDENTITY = [("Student", "name"), ("ID", "canvas_id"), ("SIS User ID", "sis_id"),
                   ("SIS Login ID", "sis_login"), ("Section", "section")]


def export(rows: dict[tuple[str, str], Row], students: list[Student], kind: str,
           path: Path) -> None:
    names = sorted({r.assignment for r in rows.values()}, key=assignment_order)
    maxima = {n: max(r.max_score for r in rows.values() if r.assignment == n) for n in names}
    scores = {key: row.score for key, row in rows.items()}
    graded = sorted({r.student for r in rows.values()})
    known = {s.name: s for s in students}
    if kind == "plain":
        header = ["student", *names, "total"]
        lines = [["(max points)", *(maxima[n] for n in names), sum(maxima.values())]]
        for name in graded:
            mine = [scores.get((name, n), 0.0) for n in names]
            lines.append([name, *mine, round(sum(mine), 4)])
    elif kind == "canvas":
        titles = [f"{ASSIGNMENTS[n].number} {ASSIGNMENTS[n].title}" if n in ASSIGNMENTS else n
                  for n in names]
        header = [column for column, _ in CANVAS_IDENTITY] + titles
        lines = [["Points Possible", "", "", "", "", *(maxima[n] for n in names)]]
        for name in graded:
            extra = known[name].extra if name in known else {}
            identity = [extra.get(key, "") for _, key in CANVAS_IDENTITY]
            identity[0] = identity[0] or name
            lines.append([*identity, *(scores.get((name, n), 0.0) for n in names)])
    else:
        raise ValueError(f"kind {kind!r} must be 'plain' or 'canvas'")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(cells(header))
        writer.writerows(cells(line) for line in lines)
