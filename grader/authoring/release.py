"""From the instructor's repository to the students': stubs, release, solutions.

Stubs are made by nbgrader's own ClearSolutions preprocessor: each
`### BEGIN SOLUTION` ... `### END SOLUTION` region of a reference module
becomes a one-cell notebook, nbgrader replaces the region with a stub that
says which task it is, and the cells are joined back into a module.

The concept notebooks (grader/authoring/notebooks.py) are made by nbgrader's
generate_assignment preprocessors, committed beside the stubs and released as
they are.

Nothing here ever overwrites a student's work: the student-owned files of an
assignment (its module, its notebook) are written only where they do not exist yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.course import ASSIGNMENTS, REPO, Assignment

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUDENT_README = REPO / "grader" / "templates" / "STUDENT_README.md"

# The student repository: these trusted files and folders, plus each assignment's folder.
# Its pyproject.toml and README.md are the student versions (templates/); the grader's
# instructor-only parts (authoring/, classroom/) stay here.
RELEASED_FILES = ["conftest.py", ".gitignore", ".github/workflows/autograde.yml"]
RELEASED_FOLDERS = ["grader"]
NEVER_RELEASED = ("__pycache__", ".pyc", ".hypothesis", ".pytest_cache", "grader/authoring/",
                  "grader/classroom/", "templates/gradescope/", "student_pyproject.toml")
STUDENT_PYPROJECT = REPO / "grader" / "templates" / "student_pyproject.toml"


# -------------------------------------------------------------------- stubs --
def make_stub(source: str, assignment: Assignment) -> str:
    """The student's version of a reference module: solution regions cleared."""
    from nbformat.v4 import new_code_cell, new_notebook
    from nbgrader.preprocessors import ClearSolutions

    lines = source.split("\n")
    out: list[str] = []
    for chunk, stub in _chunks(lines, assignment):
        if stub is None:
            out += chunk
            continue
        cell = new_code_cell("\n".join(chunk))
        cell.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False,
                                     "grade_id": f"region-{len(out)}", "schema_version": 3}
        notebook = new_notebook(cells=[cell])
        notebook.metadata["kernelspec"] = {"language": "python", "name": "python3"}
        clear = ClearSolutions(code_stub={"python": stub})
        notebook, _ = clear.preprocess(notebook, {})
        out += notebook.cells[0].source.split("\n")
    return "\n".join(out)


def _chunks(lines: list[str], assignment: Assignment):
    """Yield (lines, stub): solution regions with their stub, other text with None."""
    i = 0
    while i < len(lines):
        if BEGIN not in lines[i]:
            j = i
            while j < len(lines) and BEGIN not in lines[j]:
                j += 1
            yield lines[i:j], None
            i = j
            continue
        j = i
        while END not in lines[j]:
            j += 1
            if j == len(lines):
                raise ValueError(f"{BEGIN} at line {i + 1} has no {END}")
        yield lines[i:j + 1], _stub_for(lines, i, j, assignment)
        i = j + 1


def _stub_for(lines: list[str], begin: int, end: int, assignment: Assignment) -> str:
    indent = len(lines[begin]) - len(lines[begin].lstrip())
    handout = "README.md"  # the handout beside the student's file
    if indent == 0:
        function = _next_top_level_def(lines, end)
        task = assignment.task_of(function) if function else None
        if task is None:
            return f"# Helper code goes here (see {handout})."
        return f"# Task {task}: helper code for {function} goes here (see {handout})."
    function = _enclosing_def(lines, begin, indent)
    task = assignment.task_of(function) or "?"
    return f'raise NotImplementedError("Task {task}: implement {function} (see {handout})")'


def _enclosing_def(lines, begin, indent) -> str:
    """The function around line `begin`, qualified by its class: "LoRALinear.merge"."""
    for i in range(begin - 1, -1, -1):
        match = re.match(r"(\s*)def (\w+)", lines[i])
        if match and len(match.group(1)) < indent:
            return _class_prefix(lines, i, len(match.group(1))) + match.group(2)
    return "this function"


def _class_prefix(lines, line: int, indent: int) -> str:
    if indent == 0:
        return ""
    for text in reversed(lines[:line]):
        match = re.match(r"(\s*)class (\w+)", text)
        if match and len(match.group(1)) < indent:
            return match.group(2) + "."
    return ""


def _next_top_level_def(lines, end) -> str | None:
    for line in lines[end:]:
        match = re.match(r"(?:def|class) (\w+)", line)
        if match and not match.group(1).startswith("_"):
            return match.group(1)
    return None


def strip_markers(source: str) -> str:
    """The published solution: the reference without the marker lines."""
    return "\n".join(line for line in source.split("\n")
                     if BEGIN not in line and END not in line)


def expected_stub(assignment: Assignment) -> str:
    return make_stub(assignment.reference_path().read_text(), assignment)


def out_of_sync(assignments=None) -> list[str]:
    """Assignments whose released stub differs from the stub made from reference/."""
    stale = []
    for a in assignments or ASSIGNMENTS.values():
        stub = a.student_path(REPO)
        if not stub.is_file() or stub.read_text() != expected_stub(a):
            stale.append(a.name)
    return stale


def write_stubs(assignments=None) -> list[Path]:
    """Regenerate assignments/<name>/<file> and the concept notebooks in this
    (instructor) repository."""
    from grader.authoring.notebooks import write_notebooks

    chosen = list(assignments or ASSIGNMENTS.values())
    written = write_notebooks(chosen)
    for a in chosen:
        path = a.student_path(REPO)
        text = expected_stub(a)
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    return written


# ----------------------------------------------------------------- writing --
@dataclass
class WriteLog:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)      # the student's own work

    def summary(self) -> str:
        lines = [f"{len(self.written)} written, {len(self.unchanged)} unchanged, "
                 f"{len(self.kept)} of your files kept as they are"]
        lines += [f"  kept (yours, not overwritten): {p}" for p in self.kept]
        return "\n".join(lines)


def write_tree(out: Path, files: dict[str, bytes], student_owned: set[str]) -> WriteLog:
    """Write `files` under `out`; a student-owned file is only ever created, never replaced."""
    log = WriteLog()
    for relative, content in sorted(files.items()):
        target = out / relative
        if target.is_symlink() or (target.exists() and not target.is_file()):
            log.kept.append(relative)
            continue
        if target.is_file():
            if target.read_bytes() == content:
                log.unchanged.append(relative)
                continue
            if relative in student_owned:
                log.kept.append(relative)
                continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        log.written.append(relative)
    return log


def release_files(assignments=None) -> tuple[dict[str, bytes], set[str]]:
    """Every file of the student repository, and which of them are the student's."""
    files: dict[str, bytes] = {}
    for relative in RELEASED_FILES:
        files[relative] = (REPO / relative).read_bytes()
    files["README.md"] = STUDENT_README.read_bytes()
    files["pyproject.toml"] = student_pyproject().encode()
    for folder in RELEASED_FOLDERS:
        files.update(_folder(REPO / folder))
    owned = set()
    for a in assignments or ASSIGNMENTS.values():
        files.update(_folder(REPO / "assignments" / a.name))   # with its committed stub
        owned |= {f"assignments/{a.name}/{name}" for name in a.student_files()}
    return files, owned


def student_pyproject() -> str:
    """The student's pyproject.toml: the course's dependencies and markers, no
    instructor settings (hidden test paths, extras, lint rules for wrong solutions)."""
    instructor = (REPO / "pyproject.toml").read_text()
    blocks = {name: re.search(rf"^{name} = \[\n.*?^\]", instructor, re.M | re.S).group(0)
              for name in ("dependencies", "markers")}
    return (STUDENT_PYPROJECT.read_text().replace("@DEPENDENCIES@", blocks["dependencies"])
            .replace("@MARKERS@", blocks["markers"]))


def check_stubs_for_release(assignments) -> None:
    """The committed stubs are released as they are; with nbgrader installed, refuse
    stale ones (`grader validate` checks them too)."""
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        return
    from grader.authoring.notebooks import out_of_sync as notebooks_out_of_sync

    stale = out_of_sync(assignments) + [f"{name} (notebook)" for name in
                                        notebooks_out_of_sync(list(assignments))]
    if stale:
        raise ValueError(f"stubs out of date with reference/ for {', '.join(stale)}: "
                         "run `grader stubs` first")


def _folder(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(REPO)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(n in str(p.relative_to(REPO)) for n in NEVER_RELEASED)}


def release(out: Path, assignments=None) -> WriteLog:
    """Write the student repository into `out`: a fresh tree, no history, no secrets."""
    check_stubs_for_release(assignments or ASSIGNMENTS.values())
    files, owned = release_files(assignments)
    return write_tree(Path(out), files, owned)


def solution_files(assignments=None) -> dict[str, bytes]:
    """The published solutions, path -> content, for `grader solutions` and
    `grader class deliver --what solutions` alike: solutions/<name>/<file> (the reference
    without its markers) and, where there is one, the answered notebook, its checks shown."""
    files = {}
    for a in assignments or ASSIGNMENTS.values():
        files[f"solutions/{a.name}/{a.student_file}"] = strip_markers(
            a.reference_path().read_text()).encode()
        if a.concepts:
            from grader.authoring.notebooks import solved_notebook

            files[f"solutions/{a.name}/{a.concepts.notebook}"] = solved_notebook(a)
    return files


def solutions(out: Path, assignments=None) -> WriteLog:
    """Publish `solution_files` under `out`; no student file is touched."""
    files = solution_files(assignments)
    owned = {relative for relative in files if (Path(out) / relative).exists()}
    return write_tree(Path(out), files, owned)

