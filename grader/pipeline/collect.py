"""Stage 1 of grading: collect the student-owned files of a submission.

Only `assignments/<name>/<student_file>` is taken from the submission, and only
if it is a regular file (not a symlink, which could point at hidden tests) of
reasonable size. Everything else the tests need comes from the grader's own
trusted copy. The staged tree is shaped like a student repository.

A submission with no `assignments` at all is a flat upload of loose files (on
Gradescope, students upload `quantize.py` rather than their repository): each
student file is then taken from its top level, `<student_file>`, with the same
checks, and staged in the same student-shaped tree. An `assignments` that is a
link or a file is not "none at all": the tree is read as student-shaped, and
the link refused.

An assignment with a concept notebook (`[concepts]` in its manifest) owns that
file too, `assignments/<name>/concepts.ipynb`, taken with the same checks (and a
larger size limit: a notebook keeps its figures). A flat upload's notebook is
taken from its top level only when one graded assignment has a notebook of that
name (Gradescope grades one assignment per upload).

Why a file was not taken is recorded in `Staged.problems` (a notebook under
"<name>.notebook"), and every test of its assignment (or every question of
its notebook) fails with that reason (grader/pipeline/run.py passes it to
pytest), rather than calling the file missing. The reason names the file by its
place in the submission, never by a temporary path: it reads the same every run.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from grader.course import Assignment

MAX_FILE_BYTES = 1 << 20
MAX_NOTEBOOK_BYTES = 8 << 20     # a notebook keeps its outputs: a figure is ~50 KB


@dataclass
class Staged:
    root: Path                                   # a temporary student-shaped tree
    source: str                                  # what was collected, for the record
    commit: str | None = None                    # the submission's git commit, if any
    problems: dict[str, str] = field(default_factory=dict)  # assignment -> why not taken

    def problems_of(self, assignment: Assignment) -> dict[str, str]:
        """The problems of the assignment's files, keyed as pytest's --submission-problem."""
        return {key: why for key, why in self.problems.items()
                if key == assignment.name or key == notebook_key(assignment)}

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def stage_submission(submission: Path, assignments: list[Assignment]) -> Staged:
    """Copy each assignment's student-owned file from a student-shaped tree, or from the
    top level of a flat upload (loose files)."""
    staged = Staged(Path(tempfile.mkdtemp(prefix="llmlab-submission-")), str(submission),
                    commit=git_commit(submission))
    flat = is_flat_upload(Path(submission))
    notebooks = [a.concepts.notebook for a in assignments if a.concepts]
    for assignment in assignments:
        _copy_checked(Path(submission), assignment, staged, flat)
        if assignment.concepts:
            ambiguous = flat and notebooks.count(assignment.concepts.notebook) > 1
            _copy_notebook(Path(submission), assignment, staged, flat, ambiguous)
    return staged


def is_flat_upload(submission: Path) -> bool:
    """No `assignments` entry at all (lexists: a link named so still counts as one)."""
    return not os.path.lexists(submission / "assignments")


def stage_reference(assignments: list[Assignment]) -> Staged:
    """The reference solutions, staged exactly like a submission."""
    staged = Staged(Path(tempfile.mkdtemp(prefix="llmlab-reference-")), "reference/")
    for assignment in assignments:
        target = assignment.student_path(staged.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(assignment.reference_path(), target)
        if assignment.concepts:
            shutil.copyfile(assignment.reference_notebook(), assignment.notebook_path(staged.root))
    return staged


def _copy_checked(submission: Path, assignment: Assignment, staged: Staged,
                  flat: bool = False) -> None:
    """Copy the student's file into the staged tree, or record why it was not taken."""
    relative = Path("assignments") / assignment.name / assignment.student_file
    try:
        data = read_inside(submission, Path(assignment.student_file) if flat else relative)
    except NotTaken as problem:
        staged.problems[assignment.name] = str(problem)
        return
    target = staged.root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _copy_notebook(submission: Path, assignment: Assignment, staged: Staged, flat: bool,
                   ambiguous: bool) -> None:
    """The concept notebook, like the student's module (its problems under their own key)."""
    name = assignment.concepts.notebook
    relative = Path("assignments") / assignment.name / name
    if ambiguous and os.path.lexists(submission / name):
        staged.problems[notebook_key(assignment)] = (
            f"a flat upload graded for several assignments cannot say whose {name} it is: "
            f"upload the repository (assignments/{assignment.name}/{name})")
        return
    try:
        data = read_inside(submission, Path(name) if flat else relative, MAX_NOTEBOOK_BYTES)
    except NotTaken as problem:
        staged.problems[notebook_key(assignment)] = str(problem)
        return
    target = staged.root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def notebook_key(assignment: Assignment) -> str:
    """Where Staged.problems keeps why the notebook was not taken (the plugin's
    --submission-problem name for it)."""
    return f"{assignment.name}.notebook"


class NotTaken(Exception):
    """Why a submission's file may not be graded, in words that are the same every run."""


def read_inside(root: Path, relative: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of root/relative, a regular file of at most `limit` bytes reached
    without following any symbolic link and resolving inside `root`; else NotTaken.

    Every component is checked, not only the last: `assignments` linked to
    /proc/self/cwd/reference would otherwise hand over the grader's own reference.
    """
    root = Path(root).resolve()
    path = root
    for part in relative.parts:
        path = path / part
        shown = path.relative_to(root)
        try:
            info = path.lstat()
        except FileNotFoundError:
            raise NotTaken(f"{relative} is missing from the submission") from None
        if stat.S_ISLNK(info.st_mode):
            raise NotTaken(f"{shown} is a symbolic link: only regular files and folders "
                           "are graded")
    if not path.resolve().is_relative_to(root):
        raise NotTaken(f"{relative} lies outside the submission")
    try:  # O_NOFOLLOW: a link swapped in after the checks is refused, not followed
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise NotTaken(f"{relative} could not be read ({error.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise NotTaken(f"{relative} is not a regular file: it was not graded")
        if info.st_size > limit:
            raise NotTaken(f"{relative} is {info.st_size:,} bytes: files over "
                           f"{limit >> 20} MiB are not graded")
        return f.read(limit + 1)[:limit]


def git_commit(folder: Path) -> str | None:
    """HEAD of the repository at `folder`, if it is one."""
    head = (git_output(folder, "rev-parse", "HEAD") or "").strip()
    return head or None


def git_output(folder: Path, *args: str) -> str | None:
    """git's output in the checkout at `folder`; None when it is none (or git fails).

    safe.directory: under sudo (the grading workflow), git refuses a checkout that
    another user owns, and the record would lose the commit."""
    if not (folder / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(folder), *args],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None
