"""Freezing: recording what each repository holds once its deadline has passed.

`grader class freeze` runs on a schedule (say hourly). Each run appends to
freeze.csv, never rewrites it:

    student,assignment,repository,commit,seen_at,deadline,kind
    ada,quantization,https://...,3f2c...,2026-10-03T00:05:12+00:00,2026-10-02T23:59:00+00:00,deadline

- `deadline`: the first record of a student x assignment once its deadline (with
  any extension) has passed: the commit to grade under the "deadline" policy.
- `late`: a later, different HEAD seen within the late window ("penalty" and
  "none" policies); how late it is comes from `seen_at`.
- `early` and `delivered`: written by `grader class deliver` before it pushes
  anything (windows.py). Each is a cut: nothing seen after it is recorded or
  graded. `early` (an instructor delivered before the window ended) holds the
  HEAD seen then, graded as the window's last commit; `delivered` holds none.

A run records only what is due and not yet recorded, so it can run as often as
wanted, and several deadlines (and extensions) share one file. A repository
that cannot be read is listed and the command fails; nothing is recorded for it,
so the next run tries again (and its record then shows when it was seen).
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path

from grader.classroom.cells import cells, uncell
from grader.classroom.deadlines import Schedule, days_late, parse_time
from grader.classroom.git import GitError, remote_head
from grader.classroom.roster import Student


@dataclass
class Record:
    student: str
    assignment: str
    repository: str
    commit: str            # "" when the repository had no commit
    seen_at: str           # ISO 8601, UTC
    deadline: str
    kind: str              # "deadline", "late", or a cut: "early", "delivered"


COLUMNS = [f.name for f in fields(Record)]
CUTS = ("early", "delivered")           # a delivery: nothing seen after it counts


def read_records(path: Path) -> list[Record]:
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        return [Record(**{c: uncell(row.get(c) or "") for c in COLUMNS})
                for row in csv.DictReader(f)]


def append_records(path: Path, records: list[Record]) -> None:
    new_file = not Path(path).exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        if new_file:
            writer.writeheader()
        writer.writerows(cells(asdict(r)) for r in records)


def freeze(students: list[Student], assignments: list[str], schedule: Schedule,
           recorded: list[Record], now: datetime, *, manual: bool = False,
           log=print) -> tuple[list[Record], list[str]]:
    """New records for what is due now, and one line per repository that failed.

    manual: assignments without a deadline in the schedule are due now."""
    heads: dict[str, str | GitError] = {}         # one ls-remote per student and run
    new, failures = [], []
    for assignment in assignments:
        for student in students:
            due = schedule.deadline(student.name, assignment) or (now if manual else None)
            if due is None or now < due:
                continue
            mine = [r for r in recorded if (r.student, r.assignment) == (student.name, assignment)]
            if any(r.kind in CUTS for r in mine):
                continue                          # a delivery ended the window
            if mine and not (schedule.late.accepts_late_work()
                             and now <= schedule.window_end(student.name, assignment)):
                continue
            if student.name not in heads:
                heads[student.name] = _head(student)
            head = heads[student.name]
            if isinstance(head, GitError):
                failures.append(f"{student.name} ({assignment}): {head}")
                continue
            if mine and mine[-1].commit == head:
                continue
            new.append(Record(student.name, assignment, student.repository, head,
                              now.isoformat(timespec="seconds"), due.isoformat(),
                              "late" if mine else "deadline"))
            if not head:
                log(f"{student.name} ({assignment}): the repository has no commits")
    return new, failures


def _head(student: Student) -> str | GitError:
    try:
        return remote_head(student.repository)
    except GitError as error:
        return error


def recorded_commits(records: list[Record]) -> dict[tuple[str, str], list[Record]]:
    """(student, assignment) -> its records, in the order they were seen."""
    by_key: dict[tuple[str, str], list[Record]] = {}
    for r in sorted(records, key=lambda r: parse_time(r.seen_at, "freeze.csv")):
        by_key.setdefault((r.student, r.assignment), []).append(r)
    return by_key


def before_cut(records: list[Record]) -> list[Record]:
    """The records a grading may take (oldest first): those before the first cut, and
    the cut itself when it is `early` and saw a new commit (the window's last)."""
    for i, r in enumerate(records):
        if r.kind in CUTS:
            new = r.kind == "early" and not (i and records[i - 1].commit == r.commit)
            return records[:i] + [r] * new
    return records


@dataclass
class Choice:
    """What to grade for one student x assignment, and how late it is."""
    commit: str = ""          # "" with no status: the repository's HEAD (--at-head)
    seen_at: str = ""
    days_late: int = 0
    penalty: float = 0.0
    status: str = ""          # why nothing is graded ("" when something is)


def choose(student: Student, assignment: str, records: list[Record], schedule: Schedule,
           *, at_head: bool = False) -> Choice:
    """The commit the late policy grades, from the freeze's records (oldest first).

    deadline policy: the commit seen at the deadline. Other policies: the last commit
    seen in the late window, late by the days between the deadline and when it was
    first seen (0 if it is the deadline's commit). No record: the roster's commit,
    else (only with at_head) the repository's HEAD, else nothing. Records after a
    delivery's cut are never taken (before_cut)."""
    taken = before_cut(records)
    if not taken:
        if student.commit or (at_head and not records):    # never HEAD after a delivery
            return Choice(commit=student.commit)
        return Choice(status="no commit recorded at the deadline"
                      + (" nor before the delivery that ended the window" if records else ""))
    first = taken[0]
    chosen = first if schedule.late.policy == "deadline" else taken[-1]
    late = 0
    if chosen.commit != first.commit:
        due = (schedule.deadline(student.name, assignment)
               or parse_time(first.deadline, "freeze.csv"))
        late = days_late(due, parse_time(chosen.seen_at, "freeze.csv"))
    choice = Choice(chosen.commit, chosen.seen_at, late, schedule.late.penalty(late))
    if not chosen.commit:
        choice.status = "nothing submitted (the repository had no commits)"
    return choice
