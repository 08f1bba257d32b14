"""The roster: who is in the class and where their repository is.

    student,repository[,commit][,any other columns]
    ada,https://github.com/course/llmlab-ada.git,
    alan,https://github.com/course/llmlab-alan.git,3f2c...

The header names the columns: `student` and `repository` are required, by those
names (GitHub Classroom's export says `github_username`, Canvas's `Student,ID,...`:
rename `github_username` -> `student` and the repository URL column -> `repository`;
Canvas's Student, ID, SIS User ID, SIS Login ID, Section -> name, canvas_id, sis_id,
sis_login, section, the columns exports.py matches Canvas by). A header without
them is refused, naming the header found and the one expected, before any row is read.

A commit in the roster is used for every assignment that has no commit recorded by
a freeze (freeze.py). Other columns (section, canvas_id, sis_id, name) are kept for
exports.

Every field that reaches git or the disk is checked when the roster is read, and a
bad one is refused with its line and column, before anything runs: a student name
becomes a folder name, so it is 1 to 100 characters, each a letter (A-Z, a-z), a
digit, ".", "_" or "-", the first a letter or digit (SAFE_NAME: no "/", "..",
spaces or leading "-"); a repository is a URL or an absolute path that git
cannot read as an option or a command (git.unsafe_repository); a commit is a full
hexadecimal hash. A course that copies student-supplied URLs into its roster is then
safe to `freeze` and `grade` (under sudo, in grade-class.yml).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.classroom.git import COMMIT, unsafe_repository

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
NAME_RULE = ("1 to 100 characters, each a letter, digit, '.', '_' or '-', "
             "the first a letter or digit")
REQUIRED = ("student", "repository")
EXPECTED = "student,repository[,commit][,section,canvas_id,sis_id,name,...]"


@dataclass
class Student:
    name: str
    repository: str
    commit: str = ""
    extra: dict[str, str] = field(default_factory=dict)   # other roster columns


def read_roster(path: Path) -> list[Student]:
    """The students of `path`, in its order; ValueError names a bad line and field."""
    with open(path, newline="") as f:
        reader, rows, line = csv.DictReader(f), [], 2
        check_header(path, reader.fieldnames)
        for row in reader:                      # a quoted field may span lines
            rows.append((line, row))
            line = reader.line_num + 1
    students = []
    for number, row in rows:
        name, repository, commit = ((row.get(key) or "").strip()
                                    for key in ("student", "repository", "commit"))
        commit, where = commit.lower(), f"{path}:{number}"
        if not SAFE_NAME.fullmatch(name):
            raise ValueError(f"{where}: student {name!r} must be letters, digits, . _ - "
                             f"(starting with a letter or digit): {NAME_RULE}")
        if not repository:
            raise ValueError(f"{where}: repository is empty")
        why = unsafe_repository(repository)
        if why:
            raise ValueError(f"{where}: repository {repository!r} refused: {why}")
        if commit and not COMMIT.fullmatch(commit):
            raise ValueError(f"{where}: commit {commit!r} must be a full hexadecimal hash "
                             "(40 characters)")
        extra = {k: (v or "").strip() for k, v in row.items()
                 if k and k not in ("student", "repository", "commit")}
        students.append(Student(name, repository, commit, extra))
    names = [s.name for s in students]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: students listed twice: {', '.join(duplicates)}")
    return students


def check_header(path: Path, header: list[str] | None) -> None:
    """A roster's header has `student` and `repository`; ValueError otherwise, naming the
    header found, the one expected and how to convert another platform's export."""
    found = [(name or "").strip() for name in header or []]
    missing = [name for name in REQUIRED if name not in found]
    if missing:
        raise ValueError(
            f"{path}:1: the header is {','.join(found) or '(empty)'!r}, which lacks "
            f"{' and '.join(missing)}; expected {EXPECTED!r}. Rename the columns of "
            "another platform's export: GitHub Classroom's `github_username` -> student "
            "(and its repository URL column -> repository); Canvas's Student, ID, "
            "SIS User ID, SIS Login ID, Section -> name, canvas_id, sis_id, sis_login, "
            "section, with student and repository columns added (README: the roster)")


def shard(students: list[Student], spec: str | None) -> list[Student]:
    """Students of shard "I/N" (1 <= I <= N): every N-th in name order, from the I-th.

    Name order, not roster order, so that a reordered roster shards the same way;
    round robin, so that each shard gets a similar mix."""
    if not spec:
        return students
    match = re.fullmatch(r"(\d+)/(\d+)", spec)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ValueError(f"--shard {spec!r}: expected I/N with 1 <= I <= N, e.g. 2/20")
    index, count = int(match[1]), int(match[2])
    return sorted(students, key=lambda s: s.name)[index - 1::count]
