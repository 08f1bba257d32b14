"""Git, for repositories students control: no hooks, no prompts, bounded in time,
errors turned into one line an instructor can act on (and no token in it)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

GIT_TIMEOUT_S = 300
NAME, EMAIL = "llmlab-grader", "grader@llmlab.invalid"   # who writes deliveries
BOILERPLATE = ("Please make sure you have the correct access rights", "and the repository exists.")
CREDENTIALS = re.compile(r"://[^/@\s]+@")


class GitError(RuntimeError):
    """A git command failed; str() is its most telling line."""


class CommitGone(GitError):
    """The repository is there but the recorded commit is not (force-pushed away)."""


def git(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> str:
    """git with no hooks, no prompt, no signing, and the grader as the only identity."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true")
    command = ["git", "-c", "core.hooksPath=/dev/null", "-c", f"user.name={NAME}",
               "-c", f"user.email={EMAIL}", "-c", "commit.gpgSign=false", *args]
    try:
        result = subprocess.run(command, cwd=cwd, env=env, input=stdin, capture_output=True,
                                timeout=GIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took more than {GIT_TIMEOUT_S} s") from None
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace")
        raise GitError(_telling_line(stderr) or f"git {args[0]} failed")
    return result.stdout.decode(errors="replace").strip()


def _telling_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines()
             if line.strip() and not line.strip().startswith(BOILERPLATE)]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return CREDENTIALS.sub("://***@", (fatal or lines or [""])[0])


def remote_head(repository: str) -> str:
    """The commit HEAD names in `repository` now; "" for a repository with no commits."""
    out = git("ls-remote", repository, "HEAD").split()
    return out[0] if out else ""


def fetch_commit(repository: str, commit: str, into: Path) -> str:
    """A work tree of `repository` at `commit` (HEAD when empty) in `into`; its hash.

    Fetched by hash, so a commit recorded at the deadline is graded even if a
    branch moved since. CommitGone when the repository answers but has no such
    commit any more; GitError when the repository cannot be read at all."""
    into.mkdir(parents=True, exist_ok=True)
    git("init", "--quiet", str(into))
    try:
        git("fetch", "--quiet", "--depth", "1", repository, commit or "HEAD", cwd=into)
    except GitError as error:
        if commit:
            remote_head(repository)          # raises if the repository itself is the problem
            raise CommitGone(f"commit {commit[:12]} no longer exists (force-pushed?)") from error
        raise
    git("checkout", "--quiet", "--detach", "FETCH_HEAD", cwd=into)
    return git("rev-parse", "HEAD", cwd=into).strip()
