"""Freezing: recording what each repository holds once its deadline has passed.

`grader class freeze` runs on a schedule (say hourly). Each run appends to
freeze.csv, never rewrites it:

    student,assignment,repository,commit,seen_at,deadline,kind,note
    ada,quantization,https://...,3f2c...,2026-10-03T00:05:12+00:00,2026-10-02T23:59:00+00:00,deadline,

- `deadline`: the first record of a student x assignment once its deadline (with
  any extension) has passed: the commit to grade under the "deadline" policy.
- `late`: a later, different HEAD seen within the late window ("penalty" and
  "none" policies); how late it is comes from `seen_at`.
- `early` and `delivered`: written by `grader class deliver` before it pushes
  anything (windows.py). Each is a cut: nothing seen after it is recorded or
  graded. `early` (an instructor delivered before the window ended) holds the
  HEAD seen then, graded as the window's last commit; `delivered` holds none.

- `unreachable`: the repository could not be read when it was due; `note` says why.
  Written once per student x assignment x deadline (its `seen_at` is "since when");
  it records no commit, so the next run tries again, and a later success adds a
  normal record while the unreachable one stays as history.

A run records only what is due and not yet recorded, so it can run as often as
wanted, and several deadlines (and extensions) share one file. A file written
before the `note` column existed is still read; the first append to it rewrites
its header once, atomically, keeping every row.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
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
    kind: str              # "deadline", "late", "unreachable", or a cut: "early", "delivered"
    note: str = ""         # why, for "unreachable"


COLUMNS = [f.name for f in fields(Record)]
CUTS = ("early", "delivered")           # a delivery: nothing seen after it counts
UNREACHABLE = "unreachable"             # could not be read when due: no commit, a note


def read_records(path: Path) -> list[Record]:
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        return [Record(**{c: uncell(row.get(c) or "") for c in COLUMNS})
                for row in csv.DictReader(f)]


def append_records(path: Path, records: list[Record]) -> None:
    """Append `records`; a file with an older header is first rewritten whole (to a
    temporary file, renamed into place) with every row kept under today's header."""
    new_file = not Path(path).exists()
    if not new_file:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if header != COLUMNS:
            _rewrite(Path(path), read_records(path))
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        if new_file:
            writer.writeheader()
        writer.writerows(cells(asdict(r)) for r in records)


def _rewrite(path: Path, records: list[Record]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(cells(asdict(r)) for r in records)
    tmp.replace(path)


def seen(records: list[Record]) -> list[Record]:
    """The records of what a repository held: all but `unreachable` ones."""
    return [r for r in records if r.kind != UNREACHABLE]


def unreachable_since(records: list[Record], student: str, assignment: str,
                      deadline: str) -> Record | None:
    """The first `unreachable` record for this student, assignment and deadline."""
    return next((r for r in records if r.kind == UNREACHABLE and r.deadline == deadline
                 and (r.student, r.assignment) == (student, assignment)), None)


def freeze(students: list[Student], assignments: list[str], schedule: Schedule,
           recorded: list[Record], now: datetime, *, manual: bool = False,
           log=print) -> tuple[list[Record], list[str]]:
    """New records for what is due now, and one line per repository that failed.

    manual: assignments without a deadline in the schedule are due now. A repository
    that cannot be read gets an `unreachable` record the first time for that deadline."""
    heads: dict[str, str | GitError] = {}         # one ls-remote per student and run
    new, failures = [], []
    for assignment in assignments:
        for student in students:
            due = schedule.deadline(student.name, assignment) or (now if manual else None)
            if due is None or now < due:
                continue
            every = [r for r in recorded
                     if (r.student, r.assignment) == (student.name, assignment)]
            mine = seen(every)
            if any(r.kind in CUTS for r in every):
                continue                          # a delivery ended the window
            if mine and not (schedule.late.accepts_late_work()
                             and now <= schedule.window_end(student.name, assignment)):
                continue
            if student.name not in heads:
                heads[student.name] = _head(student)
            head = heads[student.name]
            if isinstance(head, GitError):
                failures.append(f"{student.name} ({assignment}): {head}")
                if not unreachable_since(recorded + new, student.name, assignment,
                                         due.isoformat()):
                    new.append(Record(student.name, assignment, student.repository, "",
                                      now.isoformat(timespec="seconds"), due.isoformat(),
                                      UNREACHABLE, str(head)))
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
    graded: str = "graded"    # the row's status once graded ("window open (...): provisional")
    on_time: Choice | None = None   # penalty policy, a late commit: the deadline's one,
                                      # also graded; the better final score is kept


def choose(student: Student, assignment: str, records: list[Record], schedule: Schedule,
           *, at_head: bool = False, now: datetime | None = None) -> Choice:
    """The commit the late policy grades at time `now` (default: the clock), from the
    freeze's records (oldest first), and the status that states the facts:

    - deadline in the future: `not due (deadline T)`, nothing graded;
    - this student's window (extension, late window) still open and no delivery cut:
      graded if recorded, `window open (until T): provisional`, else `window open (until T)`;
    - closed: deadline policy, the commit seen at the deadline; other policies, the last
      one seen in the late window, late by the started days (after the grace minutes)
      between the deadline and when it was first seen (0 if it is the deadline's commit);
      a record with no commit: `nothing submitted (...)`; nothing recorded: the roster's
      commit, else `unreachable: <the freeze's reason>` if the freeze could not read it,
      else `no commit recorded (...)`;
    - no deadline at all (practice): the records, else the roster's commit, else (with
      at_head) HEAD, the status saying which. Records after a delivery's cut are never
      taken (before_cut)."""
    now = now or datetime.now(UTC)
    due = schedule.deadline(student.name, assignment)
    if due is not None and now < due:
        return Choice(status=f"not due (deadline {due.isoformat()})")
    cut = any(r.kind in CUTS for r in records)
    end = schedule.window_end(student.name, assignment)
    provisional = end is not None and now < end and not cut
    taken = before_cut(seen(records))
    if not taken:
        if provisional:
            return Choice(status=f"window open (until {end.isoformat()})")
        if student.commit:
            return Choice(commit=student.commit, graded="graded" if due else
                          "graded (no deadline: the roster's commit)")
        if at_head and not seen(records):               # never HEAD after a delivery
            return Choice(graded="graded (no deadline: HEAD, --at-head)" if due is None
                          else "graded (HEAD, --at-head)")
        lost = [r for r in records if r.kind == UNREACHABLE]
        if lost:
            return Choice(status=f"unreachable: {lost[-1].note} (since {lost[-1].seen_at})")
        return Choice(status="no commit recorded (" + (
            f"at the deadline {due.isoformat()}" if due else "no deadline, no record")
            + (" nor before the delivery that ended the window" if cut else "") + ")")
    first = taken[0]
    chosen = first if schedule.late.policy == "deadline" else taken[-1]
    choice = _choice(chosen, first, student, assignment, schedule)
    if chosen.commit != first.commit and choice.penalty > 0 and first.commit:
        choice.on_time = _choice(first, first, student, assignment, schedule)
    if provisional:
        choice.graded = f"window open (until {end.isoformat()}): provisional"
        if choice.on_time:
            choice.on_time.graded = choice.graded
    elif due is None:
        choice.graded = "graded (no deadline: the freeze's record)"
    if not chosen.commit:
        choice.status = "nothing submitted (the repository had no commits)"
    return choice


def _choice(chosen: Record, first: Record, student: Student, assignment: str,
            schedule: Schedule) -> Choice:
    late = 0
    if chosen.commit != first.commit:
        due = (schedule.deadline(student.name, assignment)
               or parse_time(first.deadline, "freeze.csv"))
        late = days_late(due, parse_time(chosen.seen_at, "freeze.csv"),
                         schedule.late.grace_minutes)
    return Choice(chosen.commit, chosen.seen_at, late, schedule.late.penalty(late))
