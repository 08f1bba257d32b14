"""Submission windows: until when a student may still submit, and so when feedback and
solutions, which would help them, may reach them.

A student's window for an assignment ends at

    their deadline (an extension replaces the class's)
    + late.window_days, when the late policy accepts late work (deadlines.py),

or earlier, at a delivery (`grader class deliver`). Before it pushes anything, a
delivery brings the freeze's records up to date (what an hourly freeze would take now)
and appends a cut for each student it concerns (freeze.py):

    early      the window was still open, and the instructor said why (--early REASON):
               the HEAD seen now is graded as the window's last commit
    delivered  the window had ended: nothing first seen later is recorded or graded
               (a repository hidden until the solutions are out stays ungraded)

Solutions are one file for everyone, and students share: they wait until every
student's window has ended, and `--early` ends all the open ones. Feedback is a
student's own page: it waits for that student's windows, and `--early` ends only
theirs. An assignment without a deadline has a window that never ends: only `--early`
delivers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from grader.classroom.deadlines import Schedule, parse_time
from grader.classroom.freeze import CUTS, Record, append_records, freeze, read_records
from grader.classroom.git import GitError, remote_head


def window_end(schedule: Schedule, records: list[Record], student: str,
               assignment: str) -> datetime | None:
    """When `student` can no longer submit `assignment`: the schedule's end or the first
    cut, whichever is earlier; None when neither exists (no deadline: never)."""
    ends = [schedule.window_end(student, assignment)]
    ends += [parse_time(r.seen_at, "freeze.csv") for r in records
             if (r.student, r.assignment) == (student, assignment) and r.kind in CUTS]
    return min((end for end in ends if end is not None), default=None)


def open_windows(students, assignment: str, schedule: Schedule, records: list[Record],
                 now: datetime) -> dict[str, datetime | None]:
    """name -> when their window ends, for each of `students` who may still submit
    `assignment` at `now` (the freeze still records at the end itself)."""
    ends = {s.name: window_end(schedule, records, s.name, assignment) for s in students}
    return {name: end for name, end in ends.items() if end is None or now <= end}


@dataclass
class Gate:
    """What decides who may be shown what: the schedule, the freeze's records (where
    deliveries are recorded too), the time, and an instructor's reason to deliver
    before windows have ended ("" for none)."""
    schedule: Schedule
    freeze_path: Path
    now: datetime
    early: str = ""

    def admit(self, students, names: list[str], what: str, log=print) -> dict[str, str]:
        """Record a delivery of `what` for `names` to `students` (solutions: the whole
        class) in freeze.csv, before anything is pushed; return student -> why they get nothing
        now. ValueError, with nothing recorded, for solutions while a window is open
        and no early reason was given."""
        records = read_records(self.freeze_path)
        due, _ = freeze(students, names, self.schedule, records, self.now, log=log)
        records = records + due
        waiting: dict[str, str] = {}
        for name in names:
            still = open_windows(students, name, self.schedule, records, self.now)
            if still and not self.early:
                if what == "solutions":
                    raise ValueError(_solutions_wait(name, still))
                for student, end in still.items():
                    waiting.setdefault(student, f"waiting: {_until(name, end)}")
        reached = [s for s in students if s.name not in waiting]
        cut = {(r.student, r.assignment) for r in records if r.kind in CUTS}
        append_records(self.freeze_path, due + [
            self.cut(s, name, records, log) for name in names for s in reached
            if (s.name, name) not in cut])
        return waiting

    def cut(self, student, name: str, records: list[Record], log=print) -> Record:
        """The record that ends `student`'s window for `name` now: `early` with their
        HEAD if it was open, `delivered` if it had ended or the HEAD cannot be read."""
        due = self.schedule.deadline(student.name, name)
        record = Record(student.name, name, student.repository, "",
                        self.now.isoformat(timespec="seconds"),
                        due.isoformat() if due else "", "delivered")
        end = window_end(self.schedule, records, student.name, name)
        if end is None or self.now <= end:
            try:
                record.commit, record.kind = remote_head(student.repository), "early"
            except GitError as error:
                log(f"{student.name} ({name}): HEAD not read ({error}): the freeze's last "
                    "record stands")
        return record


def _until(name: str, end: datetime | None) -> str:
    return (f"the window for {name} is open until {end.isoformat()}" if end else
            f"{name} has no deadline, so its window never ends")


def _solutions_wait(name: str, still: dict[str, datetime | None]) -> str:
    who = ", ".join(f"{student} ({_until(name, end)})" for student, end in sorted(
        still.items()))
    return (f"solutions of {name} not delivered to anyone: students share them, and "
            f"{len(still)} may still submit: {who}. Deliver after that, or with "
            "--early REASON, which ends those windows now (their HEAD now is graded).")
