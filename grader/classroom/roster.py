"""The roster: who is in the class and where their repository is.

    student,repository[,commit][,any other columns]
    ada,https://github.com/course/llmlab-ada.git,
    alan,https://github.com/course/llmlab-alan.git,3f2c...

A commit in the roster is used for every assignment that has no commit recorded by
a freeze (freeze.py). Other columns (section, canvas_id, sis_id, name) are kept for
exports. Student names become folder names, so they are letters, digits, . _ -.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class Student:
    name: str
    repository: str
    commit: str = ""
    extra: dict[str, str] = field(default_factory=dict)   # other roster columns


def read_roster(path: Path) -> list[Student]:
    """The students of `path`, in its order; ValueError names a bad line."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    students = []
    for number, row in enumerate(rows, start=2):
        name, repository = (row.get("student") or "").strip(), (row.get("repository") or "").strip()
        if not SAFE_NAME.match(name):
            raise ValueError(f"{path}:{number}: student {name!r} must be letters, digits, . _ -")
        if not repository:
            raise ValueError(f"{path}:{number}: repository is empty")
        extra = {k: (v or "").strip() for k, v in row.items()
                 if k and k not in ("student", "repository", "commit")}
        students.append(Student(name, repository, (row.get("commit") or "").strip(), extra))
    names = [s.name for s in students]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: students listed twice: {', '.join(duplicates)}")
    return students


def write_roster(path: Path, students: list[Student]) -> None:
    extra = list(dict.fromkeys(k for s in students for k in s.extra))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "repository", "commit", *extra])
        for s in students:
            writer.writerow([s.name, s.repository, s.commit, *(s.extra.get(k, "") for k in extra)])


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
