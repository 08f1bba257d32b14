"""Delivery to the students' repositories, the way GitHub Classroom gives feedback: a branch.

Each student gets one commit on a branch of their own repository (`llmlab-feedback` or
`llmlab-solutions`), whose parent is the commit that was graded and which only adds files:

    feedback/<assignment>.md              the page written by feedback.py
    solutions/<assignment>/<file>         what `grader solutions` writes: the reference
                                          without its markers, the answered notebook

The commit is built with git's plumbing in a clone without a checkout, so no student
file is ever written here and none of their hooks or filters runs. A path that already
exists in the student's tree is refused, never overwritten, and so is one that a
case-insensitive or normalising file system (macOS, Windows) would take for one of
theirs (`fold`); an existing branch is replaced only if the grader wrote it. Nothing
reaches a student who may still submit (windows.py decides, and records each delivery
in freeze.csv first). Each delivery appends one row per student to delivered.csv as soon
as that student is done (`append_rows`), so the file is the history of every delivery;
a workflow step then opens the pull requests from its rows with `gh pr create`.
"""

from __future__ import annotations

import csv
import subprocess
import tempfile
import unicodedata
from pathlib import Path, PurePosixPath

from grader.classroom.cells import cells
from grader.classroom.git import EMAIL, NAME, GitError, git
from grader.classroom.gradebook import read_gradebook
from grader.classroom.windows import Gate
from grader.course import ASSIGNMENTS, Assignment

BRANCHES = {"feedback": "llmlab-feedback", "solutions": "llmlab-solutions"}
COLUMNS = ["student", "repository", "branch", "commit", "status", "delivered_at", "early",
           "assignments"]


def deliver(repository: str, base_commit: str, branch: str, files: dict[str, bytes],
            message: str, *, workdir: Path) -> str:
    """Push `branch` = one commit on `base_commit` (default: HEAD) adding `files` to
    `repository`; return the commit. ValueError if a path exists in the base tree or the
    branch exists and is not the grader's."""
    git("clone", "--quiet", "--no-checkout", "--", repository, str(workdir))
    try:
        base = git("rev-parse", "--verify", "--quiet", "--end-of-options",
                   f"{base_commit or 'HEAD'}^{{commit}}", cwd=workdir)
    except GitError:
        raise RuntimeError(f"no commit {base_commit or 'HEAD'} in the repository") from None
    clash = clashes(set(git("ls-tree", "-r", "-z", "--name-only", base, cwd=workdir)
                        .split("\0")) - {""}, files)
    if clash:
        raise ValueError(f"{clash} already exists in the student's tree: not overwritten")
    git("read-tree", base, cwd=workdir)
    for path, data in sorted(files.items()):
        blob = git("hash-object", "-w", "--stdin", cwd=workdir, stdin=data)
        git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", cwd=workdir)
    tree = git("write-tree", cwd=workdir)
    commit = git("commit-tree", tree, "-p", base, "-m", message, cwd=workdir)
    git("push", "--quiet", *ours_to_replace(branch, workdir), "origin",
        f"{commit}:refs/heads/{branch}", cwd=workdir)
    return commit


def clashes(existing: set[str], files: dict[str, bytes]) -> str:
    """The first path of `files` that is unsafe or would replace something in `existing`
    (the file itself, a file where it needs a folder, or a folder of that name), as a
    case-insensitive, normalising file system compares names (`fold`); ''. Only a
    folder of theirs spelt exactly as ours is shared: feedback/ beside Feedback/ would
    be one folder on their disk and two in git."""
    theirs = {fold(path) for path in existing}
    folders: dict[str, set[str]] = {}
    for path in existing:
        for folder in _folders(path):
            folders.setdefault(fold(folder), set()).add(folder)
    for path in sorted(files):
        parts = PurePosixPath(path).parts
        if path.startswith("/") or not parts or {"..", ".", ".git"} & set(parts):
            return path
        if fold(path) in theirs | set(folders) or any(
                fold(mine) in theirs or folders.get(fold(mine), {mine}) != {mine}
                for mine in _folders(path)):
            return path
    return ""


def _folders(path: str) -> list[str]:
    """The folders above `path`: a/b/c -> [a, a/b]."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


IGNORED = {"Cf"}        # format characters (zero-width joiner, BOM, ...): HFS+ drops some


def fold(path: str) -> str:
    """`path` as macOS and Windows compare names: Unicode's compatibility caseless
    match, NFKD(casefold(NFKD(casefold(NFD(name))))), so "FEEDBACK", "Feedback",
    "ｆeedback" (fullwidth), "feedbac\u212a" (Kelvin sign) and "café" in either
    normal form fold alike, without format characters, and without the trailing dots
    and spaces Windows drops from each component."""
    def nf(form: str, text: str) -> str:
        return unicodedata.normalize(form, text)

    folded = nf("NFKD", nf("NFKD", nf("NFD", path).casefold()).casefold())
    folded = "".join(c for c in folded if unicodedata.category(c) not in IGNORED)
    return "/".join(part.rstrip(". ") for part in folded.split("/"))


def ours_to_replace(branch: str, workdir: Path) -> list[str]:
    """The push option for `branch`: none when the remote lacks it, a lease on its tip when
    the grader wrote that tip; ValueError when someone else did."""
    try:
        tip = git("rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}",
                  cwd=workdir)
    except GitError:
        return []
    author = git("log", "-1", "--format=%an <%ae>", tip, cwd=workdir)
    if author != f"{NAME} <{EMAIL}>":
        raise ValueError(f"branch {branch} exists and its last commit is by {author!r}, "
                         "not the grader: left alone")
    return [f"--force-with-lease=refs/heads/{branch}:{tip}"]


def solution_files(assignment: Assignment | str) -> dict[str, bytes]:
    """What `grader solutions` publishes for one assignment (release.solution_files): the
    reference without its markers and the answered notebook."""
    from grader.authoring import release

    return release.solution_files([ASSIGNMENTS[assignment] if isinstance(assignment, str)
                                   else assignment])


def deliver_class(roster_students, grades_dir: Path, what: str, assignments: list[Assignment],
                  feedback_dir: Path | None = None, log=print, *, gate: Gate) -> list[dict]:
    """One delivery per student of `what` ("feedback" from feedback_dir/<student>/<name>.md,
    or "solutions") for `assignments`, to `roster_students` (the whole class): only once
    `gate` has recorded it and only to those whose windows have ended (windows.py); a
    failure is recorded and the others go on. Returns the rows also written to
    grades_dir/delivered.csv."""
    if what not in BRANCHES or (what == "feedback" and feedback_dir is None):
        raise ValueError(f"deliver feedback (with its folder) or solutions, not {what!r}")
    branch, grades_dir = BRANCHES[what], Path(grades_dir)
    solutions = ({p: data for a in assignments for p, data in solution_files(a).items()}
                 if what == "solutions" else {})
    files = {s.name: solutions or feedback_files(Path(feedback_dir), s.name, assignments)
             for s in roster_students}
    # Solutions concern the whole class (students share), feedback only its readers.
    waiting = gate.admit([s for s in roster_students if what == "solutions" or files[s.name]],
                         [a.name for a in assignments], what, log=log)
    graded = {key: row.commit for key, row in read_gradebook(grades_dir).items()}
    latest_first = sorted(assignments, key=lambda a: -a.number)
    rows = []
    for student in roster_students:
        row = {"student": student.name, "repository": student.repository, "branch": branch,
               "commit": "", "status": waiting.get(student.name, "delivered"),
               "delivered_at": gate.now.isoformat(timespec="seconds"), "early": gate.early,
               "assignments": " ".join(a.name for a in assignments)}
        # One commit for all the assignments: on the graded commit of the latest one.
        base = next((graded[student.name, a.name] for a in latest_first
                     if graded.get((student.name, a.name))), getattr(student, "commit", ""))
        try:
            if student.name not in waiting:
                if not files[student.name]:
                    raise ValueError("nothing to deliver")
                with tempfile.TemporaryDirectory(prefix="llmlab-deliver-") as tmp:
                    row["commit"] = deliver(student.repository, base, branch, files[student.name],
                                            message(what, assignments, gate),
                                            workdir=Path(tmp) / "repo")
        except (ValueError, RuntimeError, OSError, subprocess.TimeoutExpired) as error:
            row["status"] = f"not delivered: {error}"
        log(f"{student.name}: {row['status']}")
        rows.append(row)
        append_rows(grades_dir / "delivered.csv", [row])
    return rows


def message(what: str, assignments, gate: Gate) -> str:
    """The delivery's commit message; an early one tells the student their window ended."""
    names = ", ".join(a.name for a in assignments)
    if not gate.early:
        return f"llmlab: {what} for {names}"
    return (f"llmlab: {what} for {names}, delivered early\n\nThe course staff delivered "
            f"this before every submission window had ended ({gate.early}). Your window for "
            f"{names} ended at {gate.now.isoformat(timespec='seconds')}: what your "
            "repository held then is graded, and commits pushed after it are not.")


def feedback_files(feedback_dir: Path, student: str, assignments) -> dict[str, bytes]:
    """feedback/<name>.md for each of the student's pages that exists."""
    pages = {a.name: feedback_dir / student / f"{a.name}.md" for a in assignments}
    return {f"feedback/{name}.md": page.read_bytes() for name, page in pages.items()
            if page.is_file()}


def append_rows(path: Path, rows: list[dict]) -> None:
    """Add `rows` to delivered.csv, never rewriting what is there; a file written with
    fewer columns first gets today's header, once, its rows kept (written whole, then
    renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != COLUMNS:
                old = list(reader)
                tmp = path.with_name(f".{path.name}.tmp")
                with open(tmp, "w", newline="") as out:
                    writer = csv.DictWriter(out, COLUMNS, restval="", extrasaction="ignore")
                    writer.writeheader()
                    writer.writerows(old)       # already written through cells()
                tmp.replace(path)
    fresh = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, restval="")
        if fresh:
            writer.writeheader()
        writer.writerows(cells(row) for row in rows)
