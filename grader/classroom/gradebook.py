"""The gradebook: one row per student x assignment, kept across runs.

`DIR/gradebook.csv` is the record; every other file is derived from it:

    DIR/grades.csv             one row per student: a column per assignment (after any
                               late penalty), the total, the maximum, a status (SPEC §5)
    DIR/<student>/results.json that student's results, all assignments graded so far
    DIR/<student>/results/<assignment>.json   one assignment's results, as graded

A run replaces only the rows it graded (`--student ada` regrades one row; grading
another assignment adds its rows), and `merge` unions shards the same way, so a
sharded run and an unsharded one give the same gradebook. Rows are kept in name
and assignment order, whatever order they were graded in. Text a spreadsheet would
run as a formula is written quoted and read back unquoted (cells.py).
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from grader.classroom.cells import cells, uncell
from grader.course import ASSIGNMENTS

# A row's status says what its score is. Only two kinds are the student's own and go to
# an LMS as a number (`of_record`); every other row exports blank, saying why:
GRADED = "graded"                         # the code at the chosen commit earned `score`
NOTHING_SUBMITTED = "nothing submitted"   # window closed, nothing to grade: a real zero
NOT_DUE = "not due"                       # "not due (deadline 2026-10-02T23:59:00+00:00)"
WINDOW_OPEN = "window open"               # deadline passed, extension or late window open:
                                          # a provisional score, regraded once it ends
UNREACHABLE = "unreachable"               # the freeze or the fetch could not read it
UNGRADABLE = "ungradable"                 # the grader failed (not the student): grade again
NOT_RECORDED = "no commit recorded"       # window closed and the freeze saw nothing
OF_RECORD = (GRADED, NOTHING_SUBMITTED)


def of_record(row: Row) -> bool:
    """Whether row.score is the student's grade of record (possibly a real zero), not a
    placeholder for a row that is not due, still open, unreachable or ungradable."""
    return any(row.status == kind or row.status.startswith(kind + " ") for kind in OF_RECORD)


@dataclass
class Row:
    student: str
    assignment: str
    score: float = 0.0          # final: raw x (1 - penalty) + adjustment, in [0, max_score]
    max_score: float = 0.0      # always the assignment's full points, graded or not
    raw_score: float = 0.0      # before the penalty
    days_late: int = 0
    penalty: float = 0.0        # fraction of raw_score taken
    status: str = GRADED        # graded, nothing submitted, no commit recorded, ...
    repository: str = ""
    commit: str = ""
    seen_at: str = ""           # when the freeze saw the commit
    graded_at: str = ""
    grader_commit: str = ""
    review: str = ""            # constructs flagged for a person to look at
    adjustment: float = 0.0     # points an instructor override added (may be negative)
    override: str = ""          # the override's reason, when one applies (overrides.toml)

    def __post_init__(self):
        for name, kind in NUMBERS.items():      # one spelling in every file: 5.0, not 5
            setattr(self, name, kind(getattr(self, name)))

    @property
    def key(self) -> tuple[str, str]:
        return self.student, self.assignment


COLUMNS = [f.name for f in fields(Row)]
NUMBERS = {"score": float, "max_score": float, "raw_score": float, "days_late": int,
           "penalty": float, "adjustment": float}


def read_gradebook(folder: Path) -> dict[tuple[str, str], Row]:
    path = Path(folder) / "gradebook.csv"
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = [Row(**{c: _parse(c, row.get(c) or "") for c in COLUMNS})
                for row in csv.DictReader(f)]
    return {row.key: row for row in rows}


def _parse(column: str, text: str):
    kind = NUMBERS.get(column)
    return kind(float(text or 0)) if kind else uncell(text)


def write_gradebook(folder: Path, rows: dict[tuple[str, str], Row]) -> None:
    """gradebook.csv and grades.csv, each written whole then renamed into place."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(rows.values(), key=lambda r: (r.student, assignment_order(r.assignment)))
    _write_csv(folder / "gradebook.csv", COLUMNS, [asdict(r) for r in ordered])
    names = sorted({r.assignment for r in ordered}, key=assignment_order)
    per_student: dict[str, dict[str, Row]] = {}
    for row in ordered:
        per_student.setdefault(row.student, {})[row.assignment] = row
    table = [_student_line(student, mine, names) for student, mine in per_student.items()]
    _write_csv(folder / "grades.csv", ["student", "score", "max_score", *names, "status",
                                       "review"], table)


def _student_line(student: str, mine: dict[str, Row], names: list[str]) -> dict:
    problems = [f"{name}: {row.status}" for name, row in mine.items() if row.status != GRADED]
    late = [f"{name}: {row.days_late} d late, -{row.penalty:.0%}" for name, row in mine.items()
            if row.days_late]
    return {"student": student,
            "score": _round(sum(r.score for r in mine.values())),
            "max_score": _round(sum(r.max_score for r in mine.values())),
            **{name: _round(mine[name].score) if name in mine else "" for name in names},
            "status": "; ".join(problems + late) or GRADED,
            "review": "; ".join(f"{n}: {r.review}" for n, r in mine.items() if r.review)}


def merge(sources: list[Path], out: Path) -> dict[tuple[str, str], Row]:
    """Union of the gradebooks in `sources` (and `out`'s own), copying each row's
    results; a row graded in several takes the latest grading."""
    rows = read_gradebook(out)
    for source in sources:
        for key, row in read_gradebook(source).items():
            if key in rows and rows[key].graded_at > row.graded_at:
                continue
            rows[key] = row
            if Path(source).resolve() != Path(out).resolve():
                _copy_results(Path(source), Path(out), row)
    write_gradebook(out, rows)
    for student in {r.student for r in rows.values()}:
        combine_results(out, student)
    return rows


def _copy_results(source: Path, out: Path, row: Row) -> None:
    relative = Path(row.student) / "results" / f"{row.assignment}.json"
    target = out / relative
    target.unlink(missing_ok=True)
    if (source / relative).is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, target)


def combine_results(out: Path, student: str) -> None:
    """DIR/<student>/results.json: every assignment's results, in assignment order."""
    folder = Path(out) / student
    parts = sorted((folder / "results").glob("*.json"), key=lambda p: assignment_order(p.stem))
    if not parts:
        return
    results = [json.loads(p.read_text()) for p in parts]
    by_assignment = {p.stem: r.get("extra_data", {}) for p, r in zip(parts, results, strict=True)}
    combined = {"score": _round(sum(r["score"] for r in results)),
                "max_score": _round(sum(r["max_score"] for r in results)),
                "execution_time": _round(sum(r.get("execution_time", 0) for r in results)),
                "output": "\n\n".join(r.get("output", "") for r in results),
                "tests": [t for r in results for t in r.get("tests", [])],
                # the last assignment's record at the top (SPEC §4), each one's below
                "extra_data": {**results[-1].get("extra_data", {}),
                               "by_assignment": by_assignment}}
    tmp = folder / ".results.json.tmp"
    tmp.write_text(json.dumps(combined, indent=1))
    tmp.replace(folder / "results.json")


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        writer.writerows(cells(row) for row in rows)
    tmp.replace(path)


def assignment_order(name: str) -> float:
    """Sort key: the assignment's number (unknown names last)."""
    assignment = ASSIGNMENTS.get(name)
    return assignment.number if assignment else float("inf")


def _round(value: float) -> float:
    return round(value, 4)
