"""A recorded commit's student-owned files, read from git's objects, never checked out.

Class grading stages the files grader/pipeline/collect.py takes, under its rules and
in its words, but from the commit's tree entries instead of a work tree:

    assignments/<name>/<student_file>    a regular file of at most MAX_FILE_BYTES
    assignments/<name>/<notebook>        the same, at most MAX_NOTEBOOK_BYTES

A file is written only if its entry is a regular file (mode 100644 or 100755) under
folders (no link, no submodule on the way) and its size, read from the blob's header,
is within the limit: the check comes before a byte is written. Nothing else of the
commit is read, so a tree that would check out to gigabytes costs its tree objects.
"""

from __future__ import annotations

from pathlib import Path

from grader.classroom.git import read_blob, tree_entries
from grader.course import Assignment
from grader.pipeline.collect import MAX_FILE_BYTES, MAX_NOTEBOOK_BYTES, NotTaken, notebook_key

REGULAR = ("100644", "100755")
LINK = "120000"


def take_owned_files(store: Path, commit: str, assignment: Assignment, tree: Path) -> dict:
    """Write `assignment`'s student-owned files of `commit` (in the bare repository
    `store`) into the student-shaped `tree`; why the others were not taken, keyed as
    Staged.problems (collect, staging `tree`, would only see them missing)."""
    wanted = [(assignment.name, assignment.student_file, MAX_FILE_BYTES)]
    if assignment.concepts:
        wanted.append((notebook_key(assignment), assignment.concepts.notebook,
                       MAX_NOTEBOOK_BYTES))
    (tree / "assignments").mkdir(parents=True, exist_ok=True)   # student-shaped, never flat
    problems = {}
    for key, name, limit in wanted:
        relative = f"assignments/{assignment.name}/{name}"
        try:
            data = read_owned(store, commit, relative, limit)
        except NotTaken as problem:
            problems[key] = str(problem)
            continue
        target = tree / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return problems


def read_owned(store: Path, commit: str, relative: str, limit: int) -> bytes:
    """The bytes of `relative` in `commit`, a regular file of at most `limit` bytes
    reached through folders only; else NotTaken, before anything is read."""
    entries = tree_entries(store, commit, relative)
    parts = relative.split("/")
    for depth in range(1, len(parts) + 1):
        shown = "/".join(parts[:depth])
        entry = entries.get(shown)
        if entry is None or (depth < len(parts) and entry.kind != "tree"
                             and entry.mode != LINK):
            raise NotTaken(f"{relative} is missing from the submission")
        if entry.mode == LINK:
            raise NotTaken(f"{shown} is a symbolic link: only regular files and folders "
                           "are graded")
    entry = entries[relative]
    if entry.mode not in REGULAR:
        raise NotTaken(f"{relative} is not a regular file: it was not graded")
    if entry.size > limit:
        raise NotTaken(f"{relative} is {entry.size:,} bytes: files over {limit >> 20} MiB "
                       "are not graded")
    return read_blob(store, entry)
