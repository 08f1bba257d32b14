"""The course: its assignments, read from one manifest per assignment.

Each assignment describes itself in `assignments/<name>/assignment.toml`; the
engine names no assignment. Keys (every one required unless a default is given):

    number          the assignment's number; orders every list (tables, grades.csv columns)
    title           one line, shown in the course tables
    student_file    the one file the grader takes from a submission, e.g. "quantize.py"
    provided_files  trusted code beside it that the student's module may import
                    (e.g. ["model.py"]); default []
    call_timeout_s  wall-clock limit of one call into student code (say why in a comment)
    time_budget_s   limit for the whole assignment's grading; default 900
    kernel_functions  the functions whose result the contract says Triton kernels compute
                    (e.g. ["quantize_rowwise"]); default []. Each must be in a task's
                    `implements`. Every call a test makes to one through the `student`
                    proxy replays its launches, and fails with "the returned values were
                    not computed by the kernel's launches" unless they compute its result
                    (grader/kit/kernels.py)
    [concepts]      optional: the assignment's concept-check notebook (grader/kit/notebooks.py)
        notebook    its file name, e.g. "concepts.ipynb" (student-owned, like student_file)
        task        the task its questions grade, declared in [[tasks]]
        points      {question id = points}: one entry per test cell of the reference
                    notebook (its nbgrader grade_id); `grader validate` checks they agree
    [[tasks]]       one table per task:
        id          "1.1": the first number is the assignment's
        title       short, for the grader's per-task tables
        handout     the "What" column of the handout's points table (markdown)
        implements  the functions, classes or "Class.method"s of the task (names the
                    stubs' "Task 1.1: implement ..." messages); may be empty

Everything else is found by convention:
    assignments/<name>/<student_file>     the student's copy (stub in the release)
    assignments/<name>/tests/             public tests
    reference/<name>/<student_file>       the solution, with nbgrader markers
    reference/<name>/<notebook>           the concept checks, answers and hidden tests in
    tests/<name>/                         the hidden suite
    tests/mutants/<name>/                 wrong solutions the hidden suite must catch
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = "assignment.toml"


@dataclass(frozen=True)
class Task:
    id: str
    title: str
    handout: str
    implements: tuple[str, ...]


@dataclass(frozen=True)
class Concepts:
    notebook: str                    # "concepts.ipynb"
    task: str                        # "1.4"
    points: dict[str, float]         # question id (test cell grade_id) -> points

    def __hash__(self) -> int:
        return hash((self.notebook, self.task, tuple(self.points.items())))


@dataclass(frozen=True)
class Assignment:
    name: str
    number: int
    title: str
    student_file: str
    tasks: tuple[Task, ...]
    provided: tuple[str, ...] = ()
    call_timeout_s: float = 60.0
    time_budget_s: float = 900.0
    concepts: Concepts | None = None
    kernel_functions: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return Path(self.student_file).stem

    @property
    def titles(self) -> dict[str, str]:
        """Task id -> title."""
        return {t.id: t.title for t in self.tasks}

    def student_path(self, root: Path) -> Path:
        """Where a student-shaped tree (a submission, a release) keeps the student's file."""
        return root / "assignments" / self.name / self.student_file

    def reference_path(self, root: Path = REPO) -> Path:
        return root / "reference" / self.name / self.student_file

    def notebook_path(self, root: Path) -> Path | None:
        """Where a student-shaped tree keeps the concept notebook (None: it has none)."""
        return root / "assignments" / self.name / self.concepts.notebook if self.concepts else None

    def reference_notebook(self, root: Path = REPO) -> Path | None:
        return root / "reference" / self.name / self.concepts.notebook if self.concepts else None

    def student_files(self) -> list[str]:
        """Every file a submission owns: the module, and the notebook if there is one."""
        return [self.student_file, *([self.concepts.notebook] if self.concepts else [])]

    def provided_files(self, root: Path = REPO) -> list[Path]:
        """Trusted code the student's module may import (e.g. a provided model)."""
        return [root / "assignments" / self.name / name for name in self.provided]

    def public_tests(self, root: Path = REPO) -> Path:
        return root / "assignments" / self.name / "tests"

    def hidden_tests(self, root: Path = REPO) -> Path:
        return root / "tests" / self.name

    def handout(self, root: Path = REPO) -> Path:
        return root / "assignments" / self.name / "README.md"

    def task_of(self, function: str) -> str | None:
        """For "LoRALinear.merge": the task implementing it, else "merge"'s, else
        "LoRALinear"'s."""
        owners = {name: task.id for task in self.tasks for name in task.implements}
        cls, _, method = function.rpartition(".")
        for key in (function, method, cls):
            if key and key in owners:
                return owners[key]
        return None


def load_manifest(path: Path) -> Assignment:
    """One assignment from its manifest; a missing or wrong key is a ValueError naming it."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML ({error})") from None
    where = f"{path.parent.name}/{MANIFEST}"

    def need(table: dict, key: str, kind: type | tuple, default=None):
        value = table.get(key, default)
        if value is None or not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"{where}: `{key}` is missing or not a {_kind_name(kind)}")
        return value

    tasks = tuple(
        Task(id=need(t, "id", str), title=need(t, "title", str),
             handout=need(t, "handout", str, t.get("title")),
             implements=tuple(need(t, "implements", list, [])))
        for t in need(data, "tasks", list))
    number = need(data, "number", int)
    for task in tasks:
        if task.id.split(".")[0] != str(number):
            raise ValueError(f"{where}: task {task.id} does not belong to assignment {number}")
    concepts = _concepts(data.get("concepts"), need, where, {t.id for t in tasks})
    kernels = tuple(need(data, "kernel_functions", list, []))
    implemented = {name for task in tasks for name in task.implements}
    for name in kernels:
        if not isinstance(name, str) or name not in implemented:
            raise ValueError(f"{where}: kernel function {name!r} is not in any task's "
                             "`implements`")
    return Assignment(
        name=path.parent.name, number=number, title=need(data, "title", str),
        student_file=need(data, "student_file", str), tasks=tasks,
        provided=tuple(need(data, "provided_files", list, [])),
        call_timeout_s=float(need(data, "call_timeout_s", (int, float))),
        time_budget_s=float(need(data, "time_budget_s", (int, float), 900)),
        concepts=concepts, kernel_functions=kernels)


def _concepts(table, need, where: str, task_ids: set[str]) -> Concepts | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ValueError(f"{where}: `concepts` must be a table")
    task = need(table, "task", str)
    if task not in task_ids:
        raise ValueError(f"{where}: concepts task {task} is not declared in [[tasks]]")
    points = need(table, "points", dict)
    if not points or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                             for v in points.values()):
        raise ValueError(f"{where}: concepts `points` must map question ids to positive numbers")
    return Concepts(notebook=need(table, "notebook", str), task=task,
                    points={k: float(v) for k, v in points.items()})


def discover(root: Path = REPO) -> dict[str, Assignment]:
    """Every assignments/<name>/assignment.toml under `root`, ordered by number."""
    found = [load_manifest(p) for p in sorted((root / "assignments").glob(f"*/{MANIFEST}"))]
    numbers = [a.number for a in found]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"two assignments share a number: {sorted(numbers)}")
    return {a.name: a for a in sorted(found, key=lambda a: a.number)}


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({"str": "string", "int": "integer", "float": "number",
                        "list": "list", "dict": "table"}.get(k.__name__, k.__name__) for k in kinds)


ASSIGNMENTS: dict[str, Assignment] = discover()


def get(name: str) -> Assignment:
    try:
        return ASSIGNMENTS[name]
    except KeyError:
        known = ", ".join(ASSIGNMENTS)
        raise ValueError(f"unknown assignment {name!r}; known: {known}") from None


def assignment_of_path(path: Path) -> Assignment | None:
    """The assignment a test file belongs to: tests/<name>/... or assignments/<name>/tests/..."""
    parts = Path(path).resolve().parts
    for i, part in enumerate(parts[:-1]):
        if part in ("tests", "assignments") and parts[i + 1] in ASSIGNMENTS:
            return ASSIGNMENTS[parts[i + 1]]
    return None
