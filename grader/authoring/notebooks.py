"""The concept notebooks, from reference/ to the release: made and checked.

`released_notebook` is nbgrader's generate_assignment on one notebook: the same
preprocessors in the same order (lock cells, clear solutions, outputs and hidden
tests, checksums), all but SaveCells, which records the cells in a gradebook
database that grading here does not use (grader/kit/notebooks.py reads the answer
key from the reference notebook itself). `grader stubs` writes the result to
assignments/<name>/; the release copies that committed file.

`problems` is `grader validate`'s share:
- the manifest's `[concepts]` points name exactly the test cells of the reference
  notebook, with their nbgrader points, and the task exists;
- every question reads an answer variable, ids are unique, there is one plot;
- the released notebook is what nbgrader makes now, holds no answer, no hidden
  test and no output;
- (full checks) the reference notebook runs, hidden tests and plot included, in a
  Jupyter kernel (nbclient) beside the reference solution, within
  EXECUTION_LIMIT_S.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from grader.course import REPO, Assignment
from grader.kit import notebooks

EXECUTION_LIMIT_S = 60.0     # the whole reference notebook, kernel start-up and plot included
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"


# --------------------------------------------------------------- the release --
def released_notebook(assignment: Assignment, root: Path = REPO) -> bytes:
    """The student's notebook, as nbgrader's generate_assignment writes it."""
    import nbformat
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import SaveCells

    notebook = nbformat.read(assignment.reference_notebook(root), as_version=4)
    resources = {"nbgrader": {"notebook": Path(assignment.concepts.notebook).stem,
                              "assignment": assignment.name}}
    for step in GenerateAssignment().preprocessors:
        if step is not SaveCells:
            notebook, resources = step().preprocess(notebook, resources)
    return (nbformat.writes(notebook) + "\n").encode()


def solved_notebook(assignment: Assignment, root: Path = REPO) -> bytes:
    """The published solution: the reference notebook without any marker line (answers
    and checks shown), outputs cleared."""
    import nbformat

    notebook = nbformat.read(assignment.reference_notebook(root), as_version=4)
    markers = (BEGIN_SOLUTION, END_SOLUTION, notebooks.HIDDEN_BEGIN, notebooks.HIDDEN_END)
    for cell in notebook.cells:
        cell.source = "\n".join(line for line in cell.source.split("\n")
                                 if not any(m in line for m in markers))
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return (nbformat.writes(notebook) + "\n").encode()


def out_of_sync(assignments: list[Assignment], root: Path = REPO) -> list[str]:
    """Assignments whose committed notebook differs from the one made from reference/."""
    stale = []
    for a in assignments:
        if a.concepts is None:
            continue
        path = a.notebook_path(root)
        if not path.is_file() or path.read_bytes() != released_notebook(a, root):
            stale.append(a.name)
    return stale


def write_notebooks(assignments: list[Assignment], root: Path = REPO) -> list[Path]:
    """Regenerate assignments/<name>/<notebook> in this (instructor) repository."""
    written = []
    for a in assignments:
        if a.concepts is None:
            continue
        path, data = a.notebook_path(root), released_notebook(a, root)
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
            written.append(path)
    return written


# ------------------------------------------------------------------ the checks --
def problems(assignments: list[Assignment], root: Path = REPO) -> list[str]:
    """The quick checks (module docstring); empty: the notebooks are consistent."""
    found = []
    for a in assignments:
        if a.concepts is None:
            continue
        reference = a.reference_notebook(root)
        if not reference.is_file():
            found.append(f"{a.name}: {reference.relative_to(root)} is missing")
            continue
        found += [f"{a.name}: {p}" for p in key_problems(a, root)]
        released = a.notebook_path(root)
        if released.is_file():
            found += [f"{a.name}: released {a.concepts.notebook}: {p}"
                      for p in leaks(notebooks.read_notebook(reference),
                                     notebooks.read_notebook(released))]
    return found


def key_problems(assignment: Assignment, root: Path = REPO) -> list[str]:
    """The answer key against the manifest, and the notebook's shape."""
    cells = notebooks.read_notebook(assignment.reference_notebook(root))
    found = []
    ids = [notebooks.grade_id(c) for c in cells if notebooks.grade_id(c)]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        found.append(f"grade_ids repeat: {repeated}")
    own = {notebooks.grade_id(c): c["nbgrader"].get("points") for c in cells
           if notebooks.is_test(c)}
    declared = assignment.concepts.points
    if set(own) != set(declared):
        found.append(f"the manifest's [concepts] points name {sorted(declared)}, the "
                     f"notebook's test cells are {sorted(own)}")
    found += [f"question {q}: the notebook gives {own[q]} points, the manifest {declared[q]}"
              for q in sorted(set(own) & set(declared)) if float(own[q] or 0) != declared[q]]
    for question in notebooks.answer_key(assignment.reference_notebook(root), declared):
        if not question.names:
            found.append(f"question {question.id} reads no answer variable")
        if not question.hidden.strip():
            found.append(f"question {question.id} has no hidden check")
    plots = [c for c in cells if notebooks.PLOT_TAG in c["tags"]]
    if len(plots) != 1:
        found.append(f"{len(plots)} cells are tagged {notebooks.PLOT_TAG!r} (one plot expected)")
    return found


def leaks(reference: list[dict], released: list[dict]) -> list[str]:
    """What the released notebook gives away or keeps that it should not."""
    secret = set()
    for cell in reference:
        if notebooks.is_answer(cell):
            secret |= set(_region(cell["source"], BEGIN_SOLUTION, END_SOLUTION))
        if notebooks.is_test(cell):
            secret |= set(_region(cell["source"], notebooks.HIDDEN_BEGIN, notebooks.HIDDEN_END))
    found = []
    for cell in released:
        text = cell["source"]
        for marker in (BEGIN_SOLUTION, notebooks.HIDDEN_BEGIN):
            if marker in text:
                found.append(f"cell {cell['index'] + 1} still has {marker!r}")
        shown = secret & {line.strip() for line in text.split("\n")}
        if shown:
            found.append(f"cell {cell['index'] + 1} shows the line {sorted(shown)[0]!r}")
    return found


def _region(source: str, begin: str, end: str) -> list[str]:
    """The non-trivial lines between the markers (a line like `pass` gives nothing away)."""
    lines, inside = [], False
    for line in source.split("\n"):
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside and len(line.strip()) > 8 and not line.strip().startswith("#"):
            lines.append(line.strip())
    return lines


def has_outputs(path: Path) -> bool:
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    return any(cell.get("outputs") or cell.get("execution_count")
               for cell in notebook.cells if cell.cell_type == "code")


# ------------------------------------------------------------- running it all --
def execute(assignment: Assignment, notebook: Path, implementation: Path,
            timeout_s: float = EXECUTION_LIMIT_S) -> tuple[list[str], float]:
    """Run every cell of `notebook` in a Jupyter kernel, beside `implementation` and the
    provided files, as a student's Jupyter would: (the cells' errors, seconds)."""
    import nbformat
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory(prefix="llmlab-notebook-") as tmp:
        for provided in assignment.provided_files():
            shutil.copyfile(provided, Path(tmp) / provided.name)
        shutil.copyfile(implementation, Path(tmp) / assignment.student_file)
        book = nbformat.read(notebook, as_version=4)
        client = NotebookClient(book, timeout=int(timeout_s), kernel_name="python3",
                                allow_errors=True, resources={"metadata": {"path": tmp}})
        started = time.monotonic()
        client.execute(env={**os.environ, "MPLBACKEND": "Agg"})
        took = time.monotonic() - started
    errors = [f"cell {i + 1} ({cell.metadata.get('nbgrader', {}).get('grade_id')}): "
              f"{output.ename}: {output.evalue}"
              for i, cell in enumerate(book.cells) for output in cell.get("outputs", [])
              if output.output_type == "error"]
    return errors, took


def execution_problems(assignments: list[Assignment], log=print) -> list[str]:
    """The reference notebooks run without an error (hidden tests pass) in time."""
    found = []
    for a in assignments:
        if a.concepts is None:
            continue
        errors, took = execute(a, a.reference_notebook(), a.reference_path())
        log(f"{a.name}: reference {a.concepts.notebook} ran in {took:.1f} s")
        found += [f"{a.name}: the reference notebook fails: {e}" for e in errors]
        if took > EXECUTION_LIMIT_S:
            found.append(f"{a.name}: the reference notebook took {took:.0f} s "
                         f"(at most {EXECUTION_LIMIT_S:g} s)")
    return found
