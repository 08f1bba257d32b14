"""Git, for repositories students control: no hooks, no prompts, bounded in time,
errors turned into one line an instructor can act on (and no token in it).

A repository is only ever an argument, never an option: every call puts `--` before
it (and `--end-of-options` before a revision), `unsafe_repository` refuses whatever
git could read as anything but a repository, and GIT_ALLOW_PROTOCOL lets git speak
only https, ssh and file (local paths), never `ext::` or `fd::`, which run commands.

A commit is fetched without its blobs (`--filter=blob:none`, depth 1) into a bare
repository, and only the files asked for are read, by their tree entry, never
checked out: a repository of a few hundred KiB whose tree expands to gigabytes
costs its trees and the asked-for files, no more. A server that ignores the filter
(a local path) sends the commit's objects compressed, still never expanded.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_S = 300
NAME, EMAIL = "llmlab-grader", "grader@llmlab.invalid"   # who writes deliveries
BOILERPLATE = ("Please make sure you have the correct access rights", "and the repository exists.")
CREDENTIALS = re.compile(r"://[^/@\s]+@")
PROTOCOLS = "https:ssh:file"                     # GIT_ALLOW_PROTOCOL: file is a local path
SCHEMES = ("https", "ssh", "file")
USER = r"[A-Za-z0-9][^@/\s]*@"                     # user, or user:token, then @
HOST = r"[A-Za-z0-9][A-Za-z0-9.-]*"                # never "-oProxyCommand=..."
URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>[^/]*)(?P<path>/.*)?")
SCP = re.compile(rf"(?:{USER})?{HOST}:[^-\s]\S*")  # git@github.com:course/ada.git
COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class GitError(RuntimeError):
    """A git command failed; str() is its most telling line."""


class CommitGone(GitError):
    """The repository is there but the recorded commit is not (force-pushed away)."""


def unsafe_repository(value: str) -> str:
    """Why `value` is not a repository git may be given; "" when it is one.

    Allowed: https://host/path, ssh://[user@]host/path, file:///path, user@host:path
    (scp form) and an absolute local path. Refused: a leading "-" (an option:
    `--upload-pack=CMD` runs CMD), control characters (a newline ends a config
    line), "::" (`ext::CMD`, `fd::`: transports that run commands), whitespace in a
    URL, a host that starts with "-" (`ssh://-oProxyCommand=CMD`), other schemes."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "has a control character (a newline, a tab, ...)"
    if value.startswith("-"):
        return "starts with '-': git would read it as an option"
    if "::" in value:
        return "names a git transport ('ext::', 'fd::'): those run commands"
    if value.startswith("/"):
        return ""
    url = URL.fullmatch(value)
    if url:
        if url["scheme"] not in SCHEMES:
            return f"scheme {url['scheme']}:// is not one of {', '.join(SCHEMES)}"
        if re.search(r"\s", value):
            return "a URL has no whitespace"
        if url["scheme"] == "file":
            return "" if not url["host"] and url["path"] else "file:// needs an absolute path"
        if not re.fullmatch(rf"(?:{USER})?{HOST}(?::[0-9]+)?", url["host"]) or not url["path"]:
            return "the host must start with a letter or digit and a path must follow it"
        return ""
    if SCP.fullmatch(value):
        return ""
    return "is not a URL (https://, ssh://, file://, user@host:path) or an absolute path"


def git_bytes(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
    """git with no hooks, no prompt, no signing, no command-running transport, and the
    grader as the only identity; its standard output."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", GIT_ALLOW_PROTOCOL=PROTOCOLS)
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
    return result.stdout


def git(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> str:
    """git_bytes, as text without its surrounding whitespace."""
    return git_bytes(*args, cwd=cwd, stdin=stdin).decode(errors="replace").strip()


def _telling_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines()
             if line.strip() and not line.strip().startswith(BOILERPLATE)]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return CREDENTIALS.sub("://***@", (fatal or lines or [""])[0])


def _checked(repository: str) -> str:
    why = unsafe_repository(repository)
    if why:
        raise GitError(f"repository {repository!r} refused: {why}")
    return repository


def remote_head(repository: str) -> str:
    """The commit HEAD names in `repository` now; "" for a repository with no commits."""
    out = git("ls-remote", "--", _checked(repository), "HEAD").split()
    return out[0] if out else ""


def fetch_commit(repository: str, commit: str, store: Path) -> str:
    """`commit` (HEAD when empty) of `repository`, its trees but no blobs, into the bare
    repository `store` (made on first use; one store can hold several commits); its hash.

    Fetched by hash, so a commit recorded at the deadline is graded even if a
    branch moved since. The blobs `read_file` needs come later, one by one, from
    the same remote. CommitGone when the repository answers but has no such
    commit any more; GitError when the repository cannot be read at all."""
    if commit and not COMMIT.fullmatch(commit):
        raise GitError(f"commit {commit!r} is not a full hexadecimal commit hash")
    if not (store / "HEAD").exists():
        _init_store(_checked(repository), store)
    try:
        git("fetch", "--quiet", "--no-tags", "--depth", "1", "--filter=blob:none", "--",
            "origin", commit or "HEAD", cwd=store)
    except GitError as error:
        if commit:
            remote_head(repository)          # raises if the repository itself is the problem
            raise CommitGone(f"commit {commit[:12]} no longer exists (force-pushed?)") from error
        raise
    return git("rev-parse", "--verify", "--end-of-options", "FETCH_HEAD^{commit}", cwd=store)


def _init_store(repository: str, store: Path) -> None:
    """A bare repository whose `origin` is a promisor: missing blobs are fetched from it."""
    store.mkdir(parents=True, exist_ok=True)
    git("init", "--quiet", "--bare", "--", str(store))
    git("remote", "add", "--", "origin", repository, cwd=store)
    for key, value in [("core.repositoryFormatVersion", "1"), ("remote.origin.promisor", "true"),
                       ("remote.origin.partialCloneFilter", "blob:none"),
                       ("extensions.partialClone", "origin")]:
        git("config", "--", key, value, cwd=store)


@dataclass
class Entry:
    """One tree entry: mode "100644" (file), "100755", "120000" (link), "040000" (folder),
    "160000" (submodule); size in bytes for a blob, -1 otherwise."""
    mode: str
    kind: str
    object: str
    size: int


def tree_entries(store: Path, commit: str, path: str) -> dict[str, Entry]:
    """The entries of `path` and of each folder above it in `commit`, by path; a
    component that is missing (or lies under a link or a file) is absent.

    A blob's size comes from its header: only the blobs on the path are fetched, and
    a file's size is known before a byte of it is written anywhere but the store."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    out = git_bytes("--literal-pathspecs", "ls-tree", "-z", "-l", "-t", "--end-of-options",
                    commit, "--", *prefixes, cwd=store)
    entries = {}
    for line in out.decode(errors="surrogateescape").split("\0"):
        if line:
            info, name = line.split("\t", 1)
            mode, kind, obj, size = info.split()
            entries[name] = Entry(mode, kind, obj, -1 if size == "-" else int(size))
    return entries


def read_blob(store: Path, entry: Entry) -> bytes:
    return git_bytes("cat-file", "blob", entry.object, cwd=store)
