"""The gradebook in the shapes other systems import: facts only, the maximum always there.

plain:  student, a column per assignment, total, notes; the first row after the header
        is "(max points)", so a spreadsheet never guesses what a score is out of.
canvas: Canvas's gradebook import (Student, ID, SIS User ID, SIS Login ID, Section,
        then one column per assignment; the first row is "Points Possible"). The
        identity columns come from the roster's optional columns name, canvas_id,
        sis_id, sis_login and section; Canvas matches students by ID or SIS ID.

A cell holds a number only when it is the student's grade of record (gradebook.of_record:
graded, or nothing submitted, a real 0); a row not due, inside an open window,
unreachable or ungradable, and a student with no row at all, export as an empty cell,
never 0, so an import leaves Canvas's grade alone. Why each cell is empty is written
beside it: the plain export's last column, `notes`; for Canvas (whose import would
create an assignment from any unknown column) `<output>.notes.csv` (student,
assignment, status). The plain total is the sum of the numbers shown (blank for none).

Canvas matches a column to an existing assignment by its title with the assignment's
id in parentheses, "1 Quantization (12345)", as its own export names columns; the ids
come from canvas.toml beside the roster (`load_canvas_ids`). A column without an id
keeps the course's title, and Canvas creates a new assignment unless one has exactly
that name.

`export` returns its warnings: what Canvas cannot match (no roster; a gradebook student
not in it; a roster student with neither canvas_id nor sis_id/sis_login; a column
without an id). Text that a spreadsheet would run as a formula is written quoted (cells.py).
"""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path

from grader.classroom.cells import cells
from grader.classroom.gradebook import Row, assignment_order, of_record
from grader.classroom.roster import Student
from grader.course import ASSIGNMENTS

CANVAS_IDENTITY = [("Student", "name"), ("ID", "canvas_id"), ("SIS User ID", "sis_id"),
                   ("SIS Login ID", "sis_login"), ("Section", "section")]
MATCHING = ("canvas_id", "sis_id", "sis_login")      # the roster columns Canvas matches on


def load_canvas_ids(path: Path, known: set[str]) -> dict[str, int]:
    """canvas.toml's `[assignments]` name = integer id; ValueError naming a bad key."""
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file (the Canvas assignment ids)")
    data = tomllib.loads(Path(path).read_text())
    table = data.get("assignments", {})
    if not isinstance(table, dict) or set(data) - {"assignments"}:
        raise ValueError(f"{path}: expected one table [assignments] of name = Canvas id")
    for name, value in table.items():
        if name not in known:
            raise ValueError(f"{path}: assignments.{name}: no such assignment "
                             f"(known: {', '.join(sorted(known))})")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{path}: assignments.{name} = {value!r}: a Canvas assignment "
                             "id is a positive integer")
    return dict(table)


def cell_value(row: Row | None) -> float | str:
    """The exported cell: the score of record, else empty."""
    return row.score if row is not None and of_record(row) else ""


def why_blank(row: Row | None) -> str:
    return row.status if row is not None else "no row in the gradebook (not graded)"


def export(rows: dict[tuple[str, str], Row], students: list[Student], kind: str,
           path: Path, canvas_ids: dict[str, int] | None = None) -> list[str]:
    """Write the export to `path` (and, for Canvas, the notes beside it); the warnings."""
    if kind not in ("plain", "canvas"):
        raise ValueError(f"kind {kind!r} must be 'plain' or 'canvas'")
    names = sorted({r.assignment for r in rows.values()}, key=assignment_order)
    maxima = {n: max(r.max_score for r in rows.values() if r.assignment == n) for n in names}
    graded = sorted({r.student for r in rows.values()})
    blanks = [(s, n, why_blank(rows.get((s, n)))) for s in graded for n in names
              if cell_value(rows.get((s, n))) == ""]
    warnings = unmatched(graded, students, kind)
    if kind == "plain":
        header = ["student", *names, "total", "notes"]
        lines = [["(max points)", *(maxima[n] for n in names), sum(maxima.values()), ""]]
        for name in graded:
            mine = [cell_value(rows.get((name, n))) for n in names]
            notes = "; ".join(f"{n}: {why}" for s, n, why in blanks if s == name)
            shown = [v for v in mine if v != ""]
            lines.append([name, *mine, round(sum(shown, 0.0), 4) if shown else "", notes])
    else:
        ids = canvas_ids or {}
        header = [column for column, _ in CANVAS_IDENTITY] + [canvas_title(n, ids) for n in names]
        warnings += [f"{n}: no Canvas assignment id (canvas.toml): Canvas creates a new "
                     f"assignment unless one is named exactly {canvas_title(n, {})!r}"
                     for n in names if n not in ids]
        known = {s.name: s for s in students}
        lines = [["Points Possible", "", "", "", "", *(maxima[n] for n in names)]]
        for name in graded:
            extra = known[name].extra if name in known else {}
            identity = [extra.get(key, "") for _, key in CANVAS_IDENTITY]
            identity[0] = identity[0] or name
            lines.append([*identity, *(cell_value(rows.get((name, n))) for n in names)])
        _write(notes_path(path), ["student", "assignment", "status"], blanks)
    _write(Path(path), header, lines)
    return warnings


def canvas_title(name: str, ids: dict[str, int]) -> str:
    """'1 Quantization (12345)' with an id, '1 Quantization' without."""
    title = f"{ASSIGNMENTS[name].number} {ASSIGNMENTS[name].title}" if name in ASSIGNMENTS \
        else name
    return f"{title} ({ids[name]})" if name in ids else title


def unmatched(graded: list[str], students: list[Student], kind: str) -> list[str]:
    """The rows an LMS cannot match to a student, one warning each (one for no roster)."""
    if not students:
        return ["no roster (--roster): the ID and SIS columns are empty, so Canvas matches "
                "no student"] if kind == "canvas" else []
    known = {s.name: s for s in students}
    warnings = [f"{name}: in the gradebook but not in the roster: no ID or SIS column"
                for name in graded if name not in known]
    if kind == "canvas":
        warnings += [f"{s.name}: the roster has neither canvas_id nor sis_id/sis_login"
                     for s in students if s.name in graded
                     and not any(s.extra.get(key) for key in MATCHING)]
    return warnings


def notes_path(path: Path) -> Path:
    """canvas.csv -> canvas.notes.csv"""
    path = Path(path)
    return path.with_name(f"{path.stem}.notes.csv")


def _write(path: Path, header: list, lines: list) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(cells(header))
        writer.writerows(cells(list(line)) for line in lines)
