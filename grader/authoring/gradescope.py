"""`grader gradescope`: the course's grader as a Gradescope autograder zip (SPEC §5).

Gradescope unpacks the zip into /autograder/source, runs its `setup.sh` once
when it builds the image, and for every submission runs `run_autograder` as
root, with the student's upload in /autograder/submission; what that leaves in
/autograder/results/results.json is the grade. Our results file already has
Gradescope's schema (grader/pipeline/report.py), so the autograder is this
grader, installed by setup.sh and called by run_autograder:

    setup.sh          Python 3.11+, /autograder/venv, CPU torch, the grader
    run_autograder    grader grade --submission /autograder/submission --suite all
    source/           what grading needs, for the chosen assignments only:
                      the grader, their reference, handout folders and hidden tests;
                      never the mutants, the hostile catalogue, the grader's own
                      tests or other assignments' hidden tests
    source/gradescope.json   the assignments and the grader's commit, for the record

The two scripts are templates (grader/templates/gradescope/). The files come
from the working copy (`git ls-files`: tracked and untracked but not ignored),
so an instructor can build before committing; the record then lists which
files differ from the commit. The zip is deterministic (sorted entries, fixed
timestamps and modes): two builds of one tree are byte-identical.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import zipfile
from pathlib import Path, PurePosixPath

from grader.course import REPO, Assignment
from grader.pipeline.collect import git_commit, git_output
from grader.pipeline.grade import BUILD_RECORD as RECORD

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "gradescope"
SCRIPTS = ("setup.sh", "run_autograder")
SOURCE = "source"                      # Gradescope unpacks it to /autograder/source/source
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)      # the earliest time a zip entry can hold

# Files every grading needs, whatever the assignments. README.md: pyproject.toml's
# `readme`, without which setup.sh's `pip install` of the grader fails.
ALWAYS = ("pyproject.toml", "README.md", "conftest.py", "tests/__init__.py", "tests/conftest.py")
PER_ASSIGNMENT = ("reference", "assignments", "tests")   # <folder>/<name>/**
NEVER = ("__pycache__",)                                 # anywhere in a path


def build_autograder(output: Path, assignments: list[Assignment]) -> Path:
    """Write the Gradescope autograder for `assignments` to `output` (a .zip); return it."""
    if not assignments:
        raise ValueError("a Gradescope autograder needs at least one assignment")
    names = [a.name for a in assignments]
    files = {f"{SOURCE}/{path}": ((REPO / path).read_bytes(), 0o644)
             for path in selected(repository_files(REPO), names)}
    files[f"{SOURCE}/{RECORD}"] = (record(names, sorted(files)), 0o644)
    for script in SCRIPTS:
        files[script] = (script_text(script, names).encode(), 0o755)
    return write_zip(Path(output), files)


def selected(paths: list[str], names: list[str]) -> list[str]:
    """The repository paths grading `names` needs, sorted."""
    return sorted(p for p in paths if _needed(PurePosixPath(p), set(names)))


def _needed(path: PurePosixPath, names: set[str]) -> bool:
    """Kept: ALWAYS, grader/**, and <folder>/<name>/** of PER_ASSIGNMENT for a chosen
    name. A whitelist: tests/mutants, tests/hostile, tests/grader, other assignments,
    benchmarks, notebooks, .github and dotfiles are left out without being named."""
    parts = path.parts
    if any(part in NEVER or part.startswith(".") for part in parts):
        return False
    if str(path) in ALWAYS or parts[0] == "grader":
        return True
    return len(parts) > 2 and parts[0] in PER_ASSIGNMENT and parts[1] in names


def repository_files(root: Path) -> list[str]:
    """The working copy's files, relative: git's tracked and untracked-but-not-ignored
    ones, or, outside a git checkout, every file under `root`."""
    listed = git_output(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    paths = _walk(root) if listed is None else [p for p in listed.split("\0") if p]
    return sorted(p for p in set(paths) if _regular(root / p))


def _walk(root: Path) -> list[str]:
    """Every file under `root`, relative, not descending into folders never shipped
    (.venv, .git, __pycache__: thousands of files)."""
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in NEVER and not d.startswith(".")]
        found += [str((Path(folder) / name).relative_to(root)) for name in names]
    return found


def _regular(path: Path) -> bool:
    """A regular file: a tracked file deleted from the working copy, a link, a folder
    are not shipped."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def record(names: list[str], entries: list[str]) -> bytes:
    """source/gradescope.json: what the autograder was built from. `modified`: the
    shipped files that differ from the commit (or are not in it), so the commit alone
    does not claim more than it can."""
    shipped = {entry.removeprefix(f"{SOURCE}/") for entry in entries}
    data = {"assignments": names, "grader_commit": git_commit(REPO),
            "modified": sorted(shipped & changed_files(REPO))}
    return (json.dumps(data, indent=2) + "\n").encode()


def changed_files(root: Path) -> set[str]:
    """Files of the working copy that differ from its commit, or that git does not track."""
    status = git_output(root, "status", "-z", "--porcelain", "--untracked-files=all")
    if status is None:
        return set()
    changed, fields = set(), iter(status.split("\0"))
    for entry in fields:
        if entry:
            changed.add(entry[3:])
            if entry[0] in "RC":   # a rename or copy: its old path follows; skip it
                next(fields, None)
    return changed


def script_text(script: str, names: list[str]) -> str:
    """A template of grader/templates/gradescope/ with the assignments filled in."""
    arguments = " ".join(f"--assignment {shlex.quote(name)}" for name in names)
    return (TEMPLATES / script).read_text().replace("{{assignment_args}}", arguments)


def write_zip(output: Path, files: dict[str, tuple[bytes, int]]) -> Path:
    """A zip of `files` (entry -> (content, mode)) that depends on nothing else: entries
    sorted, one timestamp, Unix modes (which Gradescope's unzip keeps). Written
    atomically, so a failed build never leaves half a zip behind."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name in sorted(files):
            content, mode = files[name]
            entry = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            entry.create_system = 3                      # Unix: the mode below applies
            entry.external_attr = (stat.S_IFREG | mode) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, content, compresslevel=9)
    os.replace(partial, output)
    return output
