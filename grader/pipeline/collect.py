"""Stage 1 of grading: collect the student-owned files of a submission.

Only `assignments/<name>/<student_file>` is taken from the submission, and only
if it is a regular file (not a symlink, which could point at hidden tests) of
reasonable size. Everything else the tests need comes from the grader's own
trusted copy. The staged tree is shaped like a student repository.

Why a file was not taken is recorded in `Staged.problems`, and every test of
its assignment fails with that reason (grader/pipeline/run.py passes it to
pytest), rather than calling the file missing. The reason names the file by its
place in the submission, never by a temporary path: it reads the same every run.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from grader.course import Assignment

MAX_FILE_BYTES = 1 << 20


@dataclass
class Staged:
    root: Path                                   # a temporary student-shaped tree
    source: str                                  # what was collected, for the record
    commit: str | None = None                    # the submission's git commit, if any
    problems: dict[str, str] = field(default_factory=dict)  # assignment -> why not taken

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def stage_submission(submission: Path, assignments: list[Assignment]) -> Staged:
    """Copy each assignment's student-owned file from a student-shaped tree."""
    staged = Staged(Path(tempfile.mkdtemp(prefix="llmlab-submission-")), str(submission),
                    commit=git_commit(submission))
    for assignment in assignments:
        _copy_checked(assignment.student_path(submission), assignment, staged)
    return staged


def stage_reference(assignments: list[Assignment]) -> Staged:
    """The reference solutions, staged exactly like a submission."""
    staged = Staged(Path(tempfile.mkdtemp(prefix="llmlab-reference-")), "reference/")
    for assignment in assignments:
        _copy_checked(assignment.reference_path(), assignment, staged)
    return staged


def _copy_checked(source: Path, assignment: Assignment, staged: Staged) -> None:
    """Copy the student's file into the staged tree, or record why it was not taken."""
    problem = _why_not_taken(source, f"assignments/{assignment.name}/{assignment.student_file}")
    if problem:
        staged.problems[assignment.name] = problem
        return
    target = assignment.student_path(staged.root)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _why_not_taken(source: Path, relative: str) -> str | None:
    """Why the file may not be graded, naming it by `relative`; None if it may."""
    try:
        info = source.lstat()
    except FileNotFoundError:
        return f"{relative} is missing from the submission"
    if stat.S_ISLNK(info.st_mode):
        return f"{relative} is a symbolic link: only regular files are graded"
    if not stat.S_ISREG(info.st_mode):
        return f"{relative} is not a regular file: it was not graded"
    if info.st_size > MAX_FILE_BYTES:
        return (f"{relative} is {info.st_size:,} bytes: files over {MAX_FILE_BYTES >> 20} MiB "
                "are not graded")
    return None


def git_commit(folder: Path) -> str | None:
    if not (folder / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
