"""Student repositories on the local disk, for the class-grading tests and drill."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from grader.course import ASSIGNMENTS

QUANTIZATION = ASSIGNMENTS["quantization"]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=s", "-c", "user.email=s@x", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


def student_repository(root: Path, name: str, solution: Path | None,
                       assignment=QUANTIZATION) -> Path:
    """A repository with one commit holding `solution` as the student file (None: a stub)."""
    repo = root / name
    target = assignment.student_path(repo)
    target.parent.mkdir(parents=True)
    commit(repo, target, solution, "work", init=True)
    return repo


def commit(repo: Path, target: Path, solution: Path | None, message: str,
           init: bool = False) -> str:
    if init:
        git("init", "-q", cwd=repo)
    if solution is None:
        target.write_text("# not started\n")
    else:
        shutil.copyfile(solution, target)
    git("add", ".", cwd=repo)
    git("commit", "-qm", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def force_push_away(repo: Path) -> None:
    """Rewrite the repository's only history and drop the old objects, as a force-push
    followed by GitHub's garbage collection would."""
    git("checkout", "-q", "--orphan", "rewritten", cwd=repo)
    git("commit", "-qm", "rewritten", cwd=repo)
    branch = git("branch", "--list", "main", "master", cwd=repo).replace("*", "").split()[0]
    git("branch", "-D", branch, cwd=repo)
    git("branch", "-m", branch, cwd=repo)
    git("reflog", "expire", "--expire=now", "--all", cwd=repo)
    git("gc", "-q", "--prune=now", cwd=repo)
