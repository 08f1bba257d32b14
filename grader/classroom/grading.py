"""Grading a class: each student's recorded commits, graded in the sandbox, added to
the gradebook (gradebook.py). Students are graded `jobs` at a time; one slow or
hostile submission is bounded by its time budget and never stops the others.

A row's status states a fact (gradebook.py's vocabulary; freeze.choose decides it
at the time of grading): "not due (deadline T)", "window open (until T): provisional",
"unreachable: could not fetch: ...", "unreachable: commit 3f2c... no longer exists
(force-pushed?)", "nothing submitted (...)", "no commit recorded (...)", "ungradable:
grade again (...)". Every row carries the assignment's full max_score, so a total is
never out of a smaller maximum. Instructor overrides (overrides.py) apply last; a
regrade's changes are written to DIR/changes.csv and changes.md (changes.py).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from grader.classroom.changes import changed, read_results, write_changes
from grader.classroom.deadlines import Schedule
from grader.classroom.freeze import Choice, Record, choose, recorded_commits
from grader.classroom.git import CommitGone, GitError, fetch_commit
from grader.classroom.gradebook import (
    GRADED,
    Row,
    combine_results,
    of_record,
    read_gradebook,
    write_gradebook,
)
from grader.classroom.overrides import Override, final_score
from grader.classroom.owned import take_owned_files
from grader.classroom.roster import Student
from grader.course import Assignment


@dataclass
class ClassRun:
    assignments: list[Assignment]
    out: Path
    suite: str = "all"
    schedule: Schedule = field(default_factory=Schedule)
    records: list[Record] = field(default_factory=list)    # the freeze's
    jobs: int = 1
    total_budget_s: float | None = None     # per student, all assignments together
    at_head: bool = False                   # grade HEAD where nothing was recorded
    now: datetime | None = None             # the time of grading (None: the clock)
    overrides: dict = field(default_factory=dict)   # (student, assignment) -> Override


def grade_class(students: list[Student], run: ClassRun, log=print) -> dict:
    """Grade `students`, adding their rows to run.out's gradebook; return the gradebook.

    With jobs > 1, students are graded in separate processes (not threads: the
    grader forks sandboxes, which threads make unsafe); this process alone writes
    the gradebook, after each student, so a run stopped part-way keeps what it did."""
    from grader.pipeline.grade import grader_commit

    maxima = max_points(run.assignments, run.suite)
    recorded = recorded_commits(run.records)
    book = read_gradebook(run.out)
    names = {a.name for a in run.assignments}
    before = {key: (row, read_results(run.out, *key)) for key, row in book.items()
              if key[1] in names and key[0] in {s.name for s in students}}
    progress = Progress(len(students), log)
    work = (run, recorded, maxima, grader_commit())

    def finish(student: Student, rows: list[Row], seconds: float) -> None:
        book.update({row.key: row for row in rows})
        write_gradebook(run.out, book)
        combine_results(run.out, student.name)
        progress.done(student.name, rows, seconds)

    jobs = max(1, min(run.jobs, os.cpu_count() or 1, len(students) or 1))
    if jobs == 1:
        for student in students:
            finish(student, *grade_timed(student, *work))
    else:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=spawn) as pool:
            futures = {pool.submit(grade_timed, student, *work): student for student in students}
            for future in as_completed(futures):
                student = futures[future]
                try:
                    finish(student, *future.result())
                except Exception as error:        # the grading process itself died
                    finish(student, ungradable(student, run, maxima, error), 0.0)
    write_gradebook(run.out, book)
    if before:
        write_changes(run.out, [line for key, (row, old) in sorted(before.items())
                                for line in changed(*key, old, read_results(run.out, *key),
                                                    row, book[key])])
    return book


def grade_timed(student: Student, run: ClassRun, recorded: dict, maxima: dict,
                grader_commit: str) -> tuple[list[Row], float]:
    """grade_student, never raising: the grader's own failure makes ungradable rows."""
    started = time.monotonic()
    try:
        rows = grade_student(student, run, recorded, maxima, grader_commit)
    except Exception as error:
        rows = ungradable(student, run, maxima, error)
    return rows, time.monotonic() - started


def ungradable(student: Student, run: ClassRun, maxima: dict, error: BaseException) -> list[Row]:
    return [Row(student.name, a.name, max_score=maxima[a.name], repository=student.repository,
                status=f"ungradable: grade again ({type(error).__name__}: {error})",
                graded_at=_now()) for a in run.assignments]


def grade_student(student: Student, run: ClassRun, recorded: dict, maxima: dict,
                  grader_commit: str) -> list[Row]:
    """One row per assignment; each at its own recorded commit, fetched by hash into one
    bare store per student, its student-owned files read from git's objects (owned.py)."""
    started = time.monotonic()
    rows, fetched = [], {}
    with tempfile.TemporaryDirectory(prefix="llmlab-class-") as tmp:
        store = Path(tmp) / "store"
        for assignment in run.assignments:
            key = (student.name, assignment.name)
            choice = choose(student, assignment.name, recorded.get(key, []), run.schedule,
                            at_head=run.at_head, now=run.now)
            override = run.overrides.get(key)
            if override and override.commit and not choice.status.startswith("not due"):
                choice = Choice(override.commit, days_late=override.days_late,
                                penalty=run.schedule.late.penalty(override.days_late))
            row = _row(student, assignment, choice, maxima, grader_commit)
            rows.append(row)
            if not choice.status:
                output = run.out / student.name / "results" / f"{assignment.name}.json"
                left = None if run.total_budget_s is None else \
                    max(1.0, run.total_budget_s - (time.monotonic() - started))
                _fetch_and_grade(row, store, fetched, Path(tmp), assignment, run, left, output)
                if choice.on_time and row.status == choice.graded:
                    rows[-1] = _better(row, choice.on_time, student, assignment, maxima,
                                       grader_commit, store, fetched, Path(tmp), run, output)
            if override:
                apply_override(rows[-1], override)
    return rows


def _row(student: Student, assignment: Assignment, choice: Choice, maxima: dict,
         grader_commit: str) -> Row:
    return Row(student.name, assignment.name, max_score=maxima[assignment.name],
               days_late=choice.days_late, penalty=choice.penalty,
               repository=student.repository, commit=choice.commit, seen_at=choice.seen_at,
               graded_at=_now(), grader_commit=grader_commit,
               status=choice.status or choice.graded)


def _fetch_and_grade(row: Row, store: Path, fetched: dict, tmp: Path, assignment: Assignment,
                     run: ClassRun, budget_s: float | None, output: Path) -> None:
    try:
        if row.commit not in fetched:
            fetched[row.commit] = fetch_commit(row.repository, row.commit, store)
        row.commit = fetched[row.commit]
        tree = tmp / f"{assignment.name}-{row.commit[:12] or 'head'}"
        problems = take_owned_files(store, row.commit, assignment, tree)
    except CommitGone as error:
        row.status = f"unreachable: {error}"
        return
    except GitError as error:
        row.status = f"unreachable: could not fetch: {error}"
        return
    _grade_into(row, tree, problems, assignment, run, budget_s, output)


def _better(late: Row, on_time: Choice, student: Student, assignment: Assignment, maxima: dict,
            grader_commit: str, store: Path, fetched: dict, tmp: Path, run: ClassRun,
            output: Path) -> Row:
    """The penalty policy's rule: a late commit never earns less than the deadline's.
    Grades the deadline's commit too and keeps the row with the better final score."""
    other = _row(student, assignment, on_time, maxima, grader_commit)
    aside = output.with_name(f".{assignment.name}.on-time.json")
    _fetch_and_grade(other, store, fetched, tmp, assignment, run, None, aside)
    chosen = best(late, other) if other.status == on_time.graded else late
    if chosen is other:
        aside.replace(output)
    aside.unlink(missing_ok=True)
    return chosen


def best(late: Row, on_time: Row) -> Row:
    """The row with the better final score (the late one on a tie), its status saying
    which commit was chosen and what the other earned."""
    chosen, other = (on_time, late) if on_time.score > late.score else (late, on_time)
    which = "the deadline's commit" if chosen is on_time else "the late commit"
    chosen.status = (f"{chosen.status} (best: {which} {chosen.commit[:12]}, "
                     f"{chosen.score:g} vs {other.score:g} at {other.commit[:12]})")
    return chosen


def apply_override(row: Row, override: Override) -> None:
    """The override's reason on the row; adjust or score into row.adjustment, so that
    score = clamp(raw x (1 - penalty) + adjustment, 0, max_score). A score override
    makes a due row that was not graded of record: `graded (override)`."""
    if row.status.startswith("not due"):
        return                                          # waits for the deadline
    row.override = override.reason
    if override.score is not None:
        if not row.status.startswith(GRADED):
            row.status, row.raw_score, row.penalty = "graded (override)", 0.0, 0.0
        row.adjustment = round(override.score - row.raw_score * (1 - row.penalty), 4)
    else:
        row.adjustment = override.adjust
    if of_record(row):          # an adjustment waits for a grade to adjust; never a score alone
        row.score = final_score(row.raw_score, row.penalty, row.adjustment, row.max_score)


def _grade_into(row: Row, tree: Path, problems: dict, assignment: Assignment, run: ClassRun,
                budget_s: float | None, output: Path) -> None:
    from grader.pipeline.grade import GradeOptions, grade, stage

    output.parent.mkdir(parents=True, exist_ok=True)
    staged = stage(tree, [assignment])
    staged.problems.update(problems)        # why a file was not taken, not "missing"
    staged.source, staged.commit = row.repository, row.commit   # not the temporary store
    try:
        report = grade(staged, GradeOptions([assignment], suite=run.suite, output=output,
                                            total_budget_s=budget_s), log=lambda m: None)
    finally:
        staged.cleanup()
    row.raw_score = round(report.score, 4)
    row.score = final_score(row.raw_score, row.penalty, row.adjustment, row.max_score)
    row.review = "; ".join(report.extra_data.get("review", {}).get(assignment.name, []))
    if report.ungradable:
        row.status = "ungradable: grade again (the grader failed on a test)"


def max_points(assignments: list[Assignment], suite: str) -> dict[str, float]:
    """Each assignment's full points for `suite`, from the tests' markers: those this
    machine grades (GPU-only tests, speed among them, only where there is a GPU)."""
    import torch

    from grader.authoring.docs import collected_tests

    gpu = torch.cuda.is_available()
    maxima = {a.name: 0.0 for a in assignments}
    for test in collected_tests(assignments):
        if (test.get("event") == "collected" and suite in ("all", test["suite"])
                and (gpu or not test["gpu"])):
            maxima[test["assignment"]] += test["points"]
    return {name: round(points, 4) for name, points in maxima.items()}


class Progress:
    """One line per student: how many are done, rows not graded so far, the ETA."""

    def __init__(self, total: int, log):
        self.total, self.log, self.done_count, self.problems = total, log, 0, 0
        self.started = time.monotonic()

    def done(self, student: str, rows: list[Row], seconds: float) -> None:
        self.done_count += 1
        self.problems += sum(1 for r in rows if not r.status.startswith(GRADED))
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done_count * (self.total - self.done_count)
        scores = ", ".join(f"{r.assignment} {r.score:g}/{r.max_score:g}"
                           + ("" if r.status == GRADED else f" ({r.status})") for r in rows)
        self.log(f"[{self.done_count}/{self.total}] {student}: {scores} in {seconds:.0f} s · "
                 f"{self.problems} not graded so far · {_clock(elapsed)} elapsed, "
                 f"ETA {_clock(eta)}")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
