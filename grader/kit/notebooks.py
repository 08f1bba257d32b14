"""Concept checks: a notebook of questions, answered by the student, graded here.

An assignment's concept notebook (`[concepts]` in its manifest) is written in
nbgrader's format, in reference/<name>/concepts.ipynb:

- answer cells (nbgrader `solution: true`): code that assigns each answer to the
  variable its question names, between `### BEGIN SOLUTION` / `### END SOLUTION`;
- test cells (`grade: true`, with `points`): visible checks of the answer's type,
  then its value checks between `### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS`;
- locked cells: instructions, imports, and one plot (tag "plot") that is not graded.

nbgrader's autograde runs the test cells in the student's kernel, beside the
student's code, which can then patch them (LESSONS: nbgrader PR #1324). Here the
student's notebook runs in a worker process (grader/isolation/worker.py) *without*
any test cell: where a test cell stands, the worker reports the values of the
variables it reads, as plain data, and the test cell (the reference's copy, hidden
checks included) runs in this trusted process on those values. So a question's
checks never meet student code, and answers never reach the worker.

How the student's notebook is run (`plan`), following nbgrader's rules:
- code cells run top to bottom in one namespace, as plain Python: lines that are
  IPython syntax (`%magic`, `!command`) are skipped;
- a cell with the grade_id of a locked reference cell runs the reference's source
  (nbgrader's OverwriteCells); a locked code cell the student deleted runs first;
- answer cells, and cells the student added, run as the student wrote them;
- a test cell the student deleted is checked at the end of the notebook;
- the plot is not run when grading (it earns nothing and may be slow).
A cell that raises is reported and the run goes on; a cell that crashes, hangs or
runs past the notebook's budget stops the run, and every question after it fails
saying so, while the questions before it keep their answers.
"""

from __future__ import annotations

import ast
import builtins
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
PLOT_TAG = "plot"
NOTEBOOK_BUDGET_S = 60.0     # all cells of one notebook together, student time
MAX_CELLS = 500              # a notebook longer than this is not run
CHECK_GLOBALS = {"math": math}   # what a test cell may use besides its answers and builtins
SHOWN_CHARS = 80             # of an answer, in a failure message


class NotebookProblem(ValueError):
    """The student's file is not a notebook that can be run (said in plain words)."""


# ------------------------------------------------------------ reading notebooks --
def read_notebook(data: bytes | str | Path) -> list[dict]:
    """The cells of an nbformat-4 notebook, each {"type", "source", "nbgrader", "tags"},
    checked to be that shape (a student's file is hostile until then)."""
    if isinstance(data, Path):
        data = data.read_bytes()
    try:
        notebook = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise NotebookProblem(f"it is not a notebook (not valid JSON: {error})") from None
    except RecursionError:
        raise NotebookProblem("it is not a notebook (JSON nested too deeply)") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise NotebookProblem("it is not a notebook (no list of cells)")
    if notebook.get("nbformat") != 4:
        raise NotebookProblem(f"it is nbformat {notebook.get('nbformat')!r}; save it as "
                              "nbformat 4 (any current Jupyter does)")
    if len(notebook["cells"]) > MAX_CELLS:
        raise NotebookProblem(f"it has {len(notebook['cells'])} cells (at most {MAX_CELLS})")
    return [_cell(raw, index) for index, raw in enumerate(notebook["cells"])]


def _cell(raw, index: int) -> dict:
    if not isinstance(raw, dict) or not isinstance(raw.get("cell_type"), str):
        raise NotebookProblem(f"cell {index} is not a notebook cell")
    source = raw.get("source", "")
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        source = "".join(source)
    if not isinstance(source, str):
        raise NotebookProblem(f"cell {index}'s source is not text")
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    nbgrader = metadata.get("nbgrader") if isinstance(metadata.get("nbgrader"), dict) else {}
    tags = metadata.get("tags") if isinstance(metadata.get("tags"), list) else []
    return {"type": raw["cell_type"], "source": source, "nbgrader": nbgrader,
            "tags": [t for t in tags if isinstance(t, str)], "index": index}


def grade_id(cell: dict) -> str | None:
    value = cell["nbgrader"].get("grade_id")
    return value if isinstance(value, str) and value else None


def is_test(cell: dict) -> bool:
    return cell["type"] == "code" and cell["nbgrader"].get("grade") is True


def is_answer(cell: dict) -> bool:
    return cell["nbgrader"].get("solution") is True


def is_locked_code(cell: dict) -> bool:
    return (cell["type"] == "code" and cell["nbgrader"].get("locked") is True
            and not is_answer(cell) and not is_test(cell))


# ------------------------------------------------------------------ the key --
@dataclass(frozen=True)
class Question:
    """One test cell of the reference notebook: what it reads and how it checks."""

    id: str                    # its grade_id, e.g. "q1_code_of_half"
    points: float
    source: str = field(repr=False)   # the reference's test cell, hidden checks included
    names: tuple[str, ...]     # the answer variables it reads

    @property
    def visible(self) -> str:
        """The checks students see in their notebook (type, format)."""
        return split_hidden(self.source)[0]

    @property
    def hidden(self) -> str:
        return split_hidden(self.source)[1]

    def visible_only(self) -> Question:
        """The same question with only the checks students see (type and format)."""
        return Question(self.id, 0.0, self.visible, self.names)

    def check(self, answers: dict[str, object]) -> None:
        """Run this question's checks on the student's answers, here (trusted); an
        AssertionError says what is wrong without telling the right answer."""
        missing = [name for name in self.names if name not in answers]
        if missing:
            raise AssertionError(f"`{missing[0]}` is not defined when its check runs")
        for name in self.names:
            value = answers[name]
            if isinstance(value, dict) and "__handle__" in value:
                raise AssertionError(f"`{name}` is a {value.get('type', 'object')}, not a "
                                     "plain value (an int, a float or a str)")
        namespace = {"__builtins__": builtins, **CHECK_GLOBALS, **answers}
        given = ", ".join(f"{name} = {_shown(answers[name])}" for name in self.names)
        _run_check(self.visible, namespace, given, reveal=True)
        _run_check(self.hidden, namespace, given, reveal=False)


def _run_check(source: str, namespace: dict, given: str, reveal: bool) -> None:
    try:
        exec(compile(source, "<question check>", "exec"), namespace)  # trusted source
    except AssertionError as error:
        if reveal and str(error):
            raise AssertionError(f"{error} (you gave {given})") from None
        raise AssertionError(f"not the right answer (you gave {given})") from None
    except Exception as error:  # the answer's value broke the check: still the answer's
        raise AssertionError(f"your answer could not be checked (you gave {given}; "
                             f"{type(error).__name__}: {_shown(str(error))})") from None


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def split_hidden(source: str) -> tuple[str, str]:
    """(visible, hidden): the lines outside and inside the HIDDEN TESTS markers."""
    visible, hidden, inside = [], [], False
    for line in source.split("\n"):
        if HIDDEN_BEGIN in line:
            inside = True
        elif HIDDEN_END in line:
            inside = False
        else:
            (hidden if inside else visible).append(line)
    return "\n".join(visible), "\n".join(hidden)


def answer_key(path: Path, points: dict[str, float] | None = None) -> list[Question]:
    """The questions of a reference notebook, in order; `points` (the manifest's) override
    the cells' own nbgrader points."""
    return key_of(read_notebook(path), points)


def key_of(cells: list[dict], points: dict[str, float] | None = None) -> list[Question]:
    """answer_key, from cells already read."""
    questions = []
    for cell in cells:
        if not is_test(cell):
            continue
        qid = grade_id(cell)
        own = cell["nbgrader"].get("points", 0)
        value = (points or {}).get(qid, own)
        questions.append(Question(qid, float(value), cell["source"],
                                  read_names(cell["source"])))
    return questions


def read_names(source: str) -> tuple[str, ...]:
    """The variables a test cell reads but neither defines nor gets from builtins or
    CHECK_GLOBALS: its question's answers."""
    tree = ast.parse(source)
    loaded, stored = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                loaded.append(node)
            else:
                stored.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            stored |= {(a.asname or a.name).split(".")[0] for a in node.names}
    known = stored | set(dir(builtins)) | set(CHECK_GLOBALS)
    in_order = sorted(loaded, key=lambda node: (node.lineno, node.col_offset))
    return tuple(dict.fromkeys(n.id for n in in_order if n.id not in known))


# ------------------------------------------------------------------ the plan --
@dataclass(frozen=True)
class Run:
    label: str      # "cell 5 (q1_code_of_half_answer)", for messages
    source: str


@dataclass(frozen=True)
class Capture:
    question: str
    names: tuple[str, ...]


def plan(student: list[dict], reference: list[dict], key: list[Question]) -> list:
    """What the worker runs, in order: Run steps (code cells) and Capture steps (where a
    question's test cell stands). See the module docstring for the rules."""
    by_id = {grade_id(c): c for c in reference if grade_id(c)}
    questions = {q.id: q for q in key}
    present = {grade_id(c) for c in student if grade_id(c)}
    steps: list = [Run(f"locked cell {grade_id(c)} (restored)", python_source(c["source"]))
                   for c in reference if is_locked_code(c) and grade_id(c) not in present
                   and PLOT_TAG not in c["tags"]]
    seen: set[str] = set()   # grade_ids met so far: a repeated one is the student's copy
    for cell in student:
        gid = grade_id(cell)
        ours = by_id.get(gid) if gid not in seen else None
        if gid is not None:
            seen.add(gid)
        if gid in questions and ours is not None:
            steps.append(Capture(gid, questions[gid].names))
            continue
        if cell["type"] != "code" or (ours is not None and PLOT_TAG in ours["tags"]):
            continue
        source = ours["source"] if ours is not None and is_locked_code(ours) else cell["source"]
        label = f"cell {cell['index'] + 1}" + (f" ({gid})" if gid else "")
        steps.append(Run(label, python_source(source)))
    steps += [Capture(q.id, q.names) for q in key if q.id not in seen]
    return steps


IPYTHON_LINE = re.compile(r"^(\s*)([%!].*)$")


def python_source(source: str) -> str:
    """A cell as plain Python: each IPython-only line (`%time`, `!pip`) becomes `pass`."""
    return "\n".join(IPYTHON_LINE.sub(r"\1pass  # skipped when graded: \2", line)
                     for line in source.split("\n"))


# ------------------------------------------------------------------ the run --
@dataclass
class NotebookRun:
    """What running the student's notebook produced, for the questions' checks."""

    answers: dict[str, dict] = field(default_factory=dict)   # question -> {name: value}
    errors: list[str] = field(default_factory=list)          # "cell 5 raised ..." in order
    errors_before: dict[str, int] = field(default_factory=dict)  # question -> len(errors)
    stopped: str | None = None       # why the run ended early, naming the cell
    problem: str | None = None       # why the notebook was not run at all
    unread: dict[str, str] = field(default_factory=dict)  # question -> why its answers
    #                                  could not be sent (too large, not plain: wire.py)
    key: dict[str, Question] = field(default_factory=dict)   # the questions it was run for

    def answers_for(self, question: Question) -> dict[str, object]:
        """The question's captured answers; fails saying why when there are none."""
        if self.problem:
            raise AssertionError(f"your notebook was not graded: {self.problem}")
        if question.id in self.unread:
            raise AssertionError(f"your answer could not be read: {self.unread[question.id]}")
        if question.id not in self.answers:
            raise AssertionError(f"the notebook stopped before this question: {self.stopped}")
        return self.answers[question.id]

    def explain(self, question: Question, error: AssertionError) -> AssertionError:
        """The failure, with the last cell error before the question's check, if any."""
        earlier = self.errors[:self.errors_before.get(question.id, 0)]
        if not earlier or "not defined" not in str(error):
            return error
        return AssertionError(f"{error}; before it, {earlier[-1]}")


def grade_notebook(assignment, notebook: Path, module: Path | None) -> NotebookRun:
    """Run the student's `notebook` in a fresh worker beside `module` (their
    implementation, None when it was not taken) and the provided files: the answers
    each question of the answer key will check.

    The course's copy of the notebook (its locked cells, its test cells) is the reference
    notebook; in a student's repository, which has none, the student's own notebook stands
    in for it (public checks only: grader/kit/notebooks.format_test)."""
    from grader.isolation.worker import WorkerConfig, WorkerProcess

    try:
        cells = read_notebook(notebook.read_bytes())
    except FileNotFoundError:
        return NotebookRun(problem=f"{assignment.concepts.notebook} is missing from the "
                                   "submission")
    except NotebookProblem as problem:
        return NotebookRun(problem=f"{assignment.concepts.notebook}: {problem}")
    reference = assignment.reference_notebook()
    if not reference.is_file():
        reference = notebook
    course = read_notebook(reference)
    key = key_of(course, assignment.concepts.points)
    steps = plan(cells, course, key)
    files = {p.name: p for p in assignment.provided_files()}
    if module is not None:
        files[assignment.student_file] = module   # else importing it fails in its cell
    worker = WorkerProcess(WorkerConfig(
        scratch_files=files, module=None, call_timeout_s=assignment.call_timeout_s,
        extra_environment={"MPLBACKEND": "Agg"}))
    try:
        run = run_notebook(worker, steps)
    finally:
        worker.stop()
    run.key = {q.id: q for q in key}
    return run


def run_notebook(worker, steps: list) -> NotebookRun:
    """Run the plan's steps in `worker` (a WorkerProcess importing nothing itself):
    cells one request each, so a timeout names its cell and keeps earlier answers."""
    from grader.isolation.errors import GraderFault, StudentCrash

    result = NotebookRun()
    worker.new_test(budget_s=NOTEBOOK_BUDGET_S,
                    over_budget=f"the notebook ran past its {NOTEBOOK_BUDGET_S:g} s budget")
    first = True
    for step in steps:
        try:
            if isinstance(step, Capture):
                result.errors_before[step.question] = len(result.errors)
                result.answers[step.question] = _captured(
                    worker.request({"op": "capture", "names": list(step.names)}), step.names)
                continue
            request = {"op": "cell", "source": step.source, "name": f"<{step.label}>"}
            if first:
                request["seed"], first = 0, False
            worker.request(request)
        except GraderFault:
            raise  # the machine's failure: ungradable, never the student's
        except StudentCrash as crash:
            result.stopped = f"{step_label(step)}: {crash}"
            break
        except Exception as error:  # the cell raised: reported, and the run goes on
            if isinstance(step, Capture):  # the worker refused to send the answers
                result.unread[step.question] = f"{type(error).__name__}: {error}"[:300]
                continue
            said = f": {_shown(str(error))}" if str(error) else ""
            result.errors.append(f"{step_label(step)} raised {type(error).__name__}{said}")
    return result


def step_label(step) -> str:
    return step.label if isinstance(step, Run) else f"the check of {step.question}"


def _captured(value, names: tuple[str, ...]) -> dict[str, object]:
    """The worker's capture reply, checked: a dict of only the names asked for."""
    from grader.isolation.errors import StudentCrash

    if type(value) is not dict or not set(value) <= set(names):
        raise StudentCrash("the worker sent a malformed capture")
    return value


# ------------------------------------------------------------ the pytest side --
def concept_test(name: str):
    """The test function of assignment `name`'s concept questions, one case per question
    (its id and the manifest's points), for tests/<name>/test_concepts.py."""
    import pytest

    from grader.course import get

    assignment = get(name)
    key = answer_key(assignment.reference_notebook(), assignment.concepts.points)
    cases = [pytest.param(q, id=q.id, marks=pytest.mark.points(q.points)) for q in key]

    @pytest.mark.concepts
    @pytest.mark.task(assignment.concepts.task)
    @pytest.mark.parametrize("question", cases)
    def test_concept_question(question, notebook_run):
        """Your notebook's answer to the question is right (computed, checked here)."""
        answers = notebook_run.answers_for(question)
        try:
            question.check(answers)
        except AssertionError as error:
            raise notebook_run.explain(question, error) from None

    return test_concept_question


def format_test(name: str):
    """The public test of assignment `name`'s notebook, for assignments/<name>/tests/: it
    runs the notebook as grading does and applies each test cell's visible checks (type,
    format). 0 points: the values are checked in official grading (`concept_test`)."""
    import pytest

    from grader.course import get

    assignment = get(name)

    @pytest.mark.concepts
    @pytest.mark.task(assignment.concepts.task)
    @pytest.mark.points(0)
    @pytest.mark.parametrize("question_id", list(assignment.concepts.points))
    def test_answer_passes_the_notebooks_own_checks(question_id, notebook_run):
        """Your notebook runs and this answer passes the checks its test cell shows (its
        value is checked in official grading)."""
        question = notebook_run.key.get(question_id)
        if question is None and not notebook_run.problem:
            raise AssertionError(f"the test cell {question_id} is missing from your notebook: "
                                 "copy it back from the release")
        question = question or Question(question_id, 0.0, "", ())
        answers = notebook_run.answers_for(question)
        try:
            question.visible_only().check(answers)
        except AssertionError as error:
            raise notebook_run.explain(question, error) from None

    return test_answer_passes_the_notebooks_own_checks
