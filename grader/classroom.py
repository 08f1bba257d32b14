"""Grading a whole class where students cannot interfere: the official grade.

A student can edit the workflows of their own repository, so a grade computed on
their runner is advisory. The official grade is computed here, in the
instructor's repository (hidden tests never leave it), from a roster:

    student,repository[,commit]
    ada,https://github.com/course/llmlab-ada.git,
    alan,https://github.com/course/llmlab-alan.git,3f2c...

Two steps, because commit dates are written by students and prove nothing:

1. `grader class freeze ROSTER` at the deadline (a scheduled workflow) fills the
   commit column with each repository's current HEAD (`git ls-remote`), the
   commit that existed at that moment, and writes ROSTER.frozen.csv.
2. `grader class grade ROSTER --out DIR` clones each repository, checks out the
   roster's commit (HEAD where the column is empty), grades it like
   `grader grade --submission`, and writes DIR/<student>/results.json and
   DIR/grades.csv (one row per student, one column per assignment).

Nothing from a student's repository runs on the grading machine except their
assignment files inside the sandboxed worker: clones run no hooks, and only
the student-owned files are staged (submission.py).
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from grader.course import Assignment
from grader.pipeline.grade import TOTAL_BUDGET_S, GradeOptions, grade, stage

GIT_TIMEOUT_S = 300
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class Student:
    name: str
    repository: str
    commit: str = ""


def read_roster(path: Path) -> list[Student]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    students = []
    for number, row in enumerate(rows, start=2):
        name, repository = (row.get("student") or "").strip(), (row.get("repository") or "").strip()
        if not SAFE_NAME.match(name):
            raise ValueError(f"{path}:{number}: student {name!r} must be letters, digits, . _ -")
        if not repository:
            raise ValueError(f"{path}:{number}: repository is empty")
        students.append(Student(name, repository, (row.get("commit") or "").strip()))
    names = [s.name for s in students]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: students listed twice: {', '.join(duplicates)}")
    return students


def write_roster(path: Path, students: list[Student]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "repository", "commit"])
        for s in students:
            writer.writerow([s.name, s.repository, s.commit])


def git(*args: str, cwd: Path | None = None) -> str:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    result = subprocess.run(["git", "-c", "core.hooksPath=/dev/null", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip()
                           else f"git {args[0]} failed")
    return result.stdout


def freeze(students: list[Student], log=print) -> list[Student]:
    """Each repository's HEAD right now (students without one keep an empty commit)."""
    frozen = []
    for s in students:
        try:
            head = git("ls-remote", s.repository, "HEAD").split()[0]
        except (RuntimeError, IndexError, subprocess.TimeoutExpired) as error:
            log(f"{s.name}: no HEAD ({error})")
            head = ""
        frozen.append(Student(s.name, s.repository, s.commit or head))
    return frozen


def checkout(student: Student, into: Path) -> str:
    """Clone the student's repository into `into` at the roster's commit; return it."""
    git("clone", "--quiet", "--no-checkout", student.repository, str(into))
    commit = student.commit or git("rev-parse", "HEAD", cwd=into).strip()
    git("checkout", "--quiet", "--detach", commit, cwd=into)
    return git("rev-parse", "HEAD", cwd=into).strip()


def grade_class(students: list[Student], assignments: list[Assignment], out: Path,
                suite: str = "all", total_budget_s: float | None = TOTAL_BUDGET_S,
                log=print) -> list[dict]:
    """Grade every student; one row per student, also written to out/grades.csv.
    total_budget_s bounds each student's grading, all assignments together (grade.py)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for student in students:
        log(f"{student.name}: grading ...")
        rows.append(_grade_one(student, assignments, out, suite, total_budget_s))
        _write_grades(out / "grades.csv", rows, assignments)
    return rows


def _grade_one(student: Student, assignments, out: Path, suite: str,
               total_budget_s: float | None = TOTAL_BUDGET_S) -> dict:
    row = {"student": student.name, "commit": "", "score": 0.0, "max_score": 0.0,
           "status": "graded"}
    with tempfile.TemporaryDirectory(prefix="llmlab-class-") as tmp:
        try:
            row["commit"] = checkout(student, Path(tmp) / "repo")
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            row["status"] = f"could not fetch: {error}"
            return row
        staged = stage(Path(tmp) / "repo", assignments)
        folder = out / student.name
        folder.mkdir(exist_ok=True)
        try:
            report = grade(staged, GradeOptions(assignments, suite=suite,
                                                output=folder / "results.json",
                                                total_budget_s=total_budget_s),
                           log=lambda m: None)
        finally:
            staged.cleanup()
    row.update(score=round(report.score, 4), max_score=round(report.max_score, 4))
    for a in assignments:
        tests = [t for t in report.tests.values() if t.assignment == a.name]
        row[a.name] = round(sum(t.score for t in tests), 4)
    flags = report.extra_data.get("review", {})
    row["review"] = "; ".join(f"{name}: {len(found)} flags" for name, found in flags.items())
    if report.ungradable:
        row["status"] = "ungradable: grade again"
    return row


def _write_grades(path: Path, rows: list[dict], assignments) -> None:
    columns = ["student", "commit", "score", "max_score", *[a.name for a in assignments],
               "status", "review"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
