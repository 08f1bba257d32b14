"""Stage 1 of grading: collect the student-owned files of a submission.

Only `assignments/<name>/<student_file>` is taken from the submission, and only
if it is a regular file (not a symlink, which could point at hidden tests) of
reasonable size. Everything else the tests need comes from the grader's own
trusted copy. The staged tree is shaped like a student repository.
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
    problems: dict[str, str] = field(default_factory=dict)  # assignment -> why missing

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
    relative = f"assignments/{assignment.name}/{assignment.student_file}"
    try:
        info = source.lstat()
    except FileNotFoundError:
        staged.problems[assignment.name] = f"{relative} is missing from the submission"
        return
    if not stat.S_ISREG(info.st_mode):
        staged.problems[assignment.name] = f"{relative} is not a regular file (a symlink?)"
        return
    if info.st_size > MAX_FILE_BYTES:
        staged.problems[assignment.name] = f"{relative} is larger than {MAX_FILE_BYTES} bytes"
        return
    target = assignment.student_path(staged.root)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def git_commit(folder: Path) -> str | None:
    if not (folder / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
