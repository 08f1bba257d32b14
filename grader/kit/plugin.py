"""The pytest side of the course: the `student` seam, profiles, markers, result log.

Loaded by the repository's root conftest.py, so plain `pytest` and the grader
see the same setup:

- `student`: the code under test. For public tests run locally it is the
  student's module itself (so a debugger works); for hidden tests, and for
  every test when grading (`--isolate`), it is a proxy to a worker process.
- `reference`: the instructor's module, in-process (hidden tests only).
- which code is "the student's": `--submission DIR` (a student-shaped tree),
  `--reference`, or by default `reference/` when it exists (the instructor
  repository) and the working copy otherwise (a student's repository).
- markers: `points(n)`, `gpu` (skipped with a reason without CUDA), `slow`.
- `--results-log FILE`: one JSON line per collected and per finished test,
  read by the grader to build results.json incrementally.
- per-test time budgets: each test's calls into student code may use, together,
  a multiple of the reference's CPU time on the same test (grader/pipeline/timings.py).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pytest  # noqa: I001  (after hypothesis_setup: environment first)

from grader.course import REPO, Assignment, assignment_of_path
from grader.kit import profiles as hypothesis_setup  # noqa: F401  (sets TRITON_INTERPRET, profiles)
from grader.kit.describe import failure_record, property_of, render_failure


def pytest_addoption(parser):
    group = parser.getgroup("llmlab", "LLM Systems Lab")
    group.addoption("--submission", default=None,
                    help="a student-shaped directory whose assignments/<name>/<file> is tested")
    group.addoption("--reference", action="store_true",
                    help="test the reference solutions (default where reference/ exists)")
    group.addoption("--isolate", action="store_true",
                    help="run the student's code in a worker process for public tests too")
    group.addoption("--results-log", default=None, help="JSON-lines log for the grader")
    group.addoption("--submission-problem", action="append", default=[], metavar="NAME=WHY",
                    help="assignment NAME's file was not collected from the submission, and "
                         "why (grader/pipeline/collect.py): its tests fail saying so")
    group.addoption("--task", action="append", default=[], metavar="ID",
                    help="run only the tests of this task, e.g. --task 5.1 (repeatable)")
    group.addoption("--no-test-budgets", action="store_true",
                    help="no per-test time budgets from tests/<name>/timings.json (used "
                         "when measuring them, grader/pipeline/timings.py)")


def pytest_configure(config):
    config.addinivalue_line("markers", "points(n): points the test is worth")
    config.addinivalue_line("markers", 'task(id): the task a test grades, e.g. task("5.1")')
    config.addinivalue_line("markers", "speed: graded by throughput against the reference "
                                       "(grader/kit/speed.py)")
    config.addinivalue_line("markers", "concepts: a question of the concept notebook "
                                       "(grader/kit/notebooks.py)")
    config.llmlab = Session(config)
    config.pluginmanager.register(config.llmlab, "llmlab-session")


def pytest_unconfigure(config):
    session = getattr(config, "llmlab", None)
    if session is not None:
        session.close()


# ------------------------------------------------------- which submission --
class Session:
    """Per-run state: where the student's code is, one worker per assignment."""

    def __init__(self, config):
        self.config = config
        submission = config.getoption("--submission")
        use_reference = config.getoption("--reference") or (
            submission is None and (REPO / "reference").is_dir())
        self.root = Path(submission).resolve() if submission else REPO
        self.use_reference = use_reference and submission is None
        self.isolate = config.getoption("--isolate")
        # assignment -> why its file was not collected (a symlink, too large, missing)
        self.problems = dict(p.split("=", 1) for p in config.getoption("--submission-problem"))
        self.workers: dict[str, object] = {}
        self.modules: dict[str, object] = {}
        self.notebook_runs: dict[str, object] = {}   # assignment -> NotebookRun
        self.test_budgets = not config.getoption("--no-test-budgets")
        self.timings: dict[str, dict | None] = {}  # assignment -> nodeid -> reference's s
        log = config.getoption("--results-log")
        self.log = open(log, "a", buffering=1) if log else None

    def student_file(self, assignment: Assignment) -> Path:
        if self.use_reference:
            return assignment.reference_path()
        return assignment.student_path(self.root)

    def worker(self, assignment: Assignment):
        """The student's module in a worker process, one per assignment and session."""
        return self._worker(assignment.name, assignment, self.student_file(assignment),
                            self.problems.get(assignment.name))

    def reference_worker(self, assignment: Assignment):
        """The reference solution in a worker of its own, started like the student's:
        a speed test times both the same way (grader/kit/speed.py)."""
        return self._worker(f"{assignment.name} (reference)", assignment,
                            assignment.reference_path(), None)

    def _worker(self, key: str, assignment: Assignment, module: Path, problem: str | None):
        from grader.isolation.worker import WorkerConfig, WorkerProcess

        if key not in self.workers:
            files = {p.name: p for p in assignment.provided_files()}
            files[assignment.student_file] = module
            self.workers[key] = WorkerProcess(WorkerConfig(
                scratch_files=files, module=assignment.module,
                call_timeout_s=assignment.call_timeout_s, problem=problem))
        return self.workers[key]

    def notebook_file(self, assignment: Assignment) -> Path:
        if self.use_reference:
            return assignment.reference_notebook()
        return assignment.notebook_path(self.root)

    def notebook_run(self, assignment: Assignment):
        """The student's concept notebook, run once per session in its own worker."""
        from grader.isolation.errors import GraderFault

        if assignment.name not in self.notebook_runs:
            try:
                self.notebook_runs[assignment.name] = self._run_notebook(assignment)
            except GraderFault as fault:  # the machine's: every question is ungradable
                self.notebook_runs[assignment.name] = fault
        return self.notebook_runs[assignment.name]

    def _run_notebook(self, assignment: Assignment):
        from grader.kit.notebooks import NotebookRun, grade_notebook
        from grader.pipeline.collect import notebook_key

        problem = self.problems.get(notebook_key(assignment))
        if problem:
            return NotebookRun(problem=problem)
        module = self.student_file(assignment)
        taken = module.is_file() and assignment.name not in self.problems
        return grade_notebook(assignment, self.notebook_file(assignment),
                              module if taken else None)

    def test_budget(self, assignment: Assignment, nodeid: str) -> dict:
        """The new_test arguments that bound this test's time in student code: a multiple
        of the reference's time on it (grader/pipeline/timings.py), or nothing."""
        from grader.pipeline import timings

        if not self.test_budgets:
            return {}
        if assignment.name not in self.timings:
            self.timings[assignment.name] = timings.load(assignment)
        reference_s = (self.timings[assignment.name] or {}).get(nodeid)
        budget = timings.budget_s(reference_s)
        return {} if budget is None else {"budget_s": budget,
                                          "over_budget": timings.over_budget(budget, reference_s)}

    def in_process_module(self, assignment: Assignment):
        """Import the student's module here, beside the provided files."""
        if assignment.name not in self.modules:
            path = self.student_file(assignment)
            if assignment.name in self.problems:
                pytest.fail(self.problems[assignment.name], pytrace=False)
            if not path.is_file():
                pytest.fail(f"{path} does not exist", pytrace=False)
            for folder in {path.parent, assignment.public_tests().parent}:
                if str(folder) not in sys.path:
                    sys.path.insert(0, str(folder))
            spec = importlib.util.spec_from_file_location(assignment.module, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[assignment.module] = module
            spec.loader.exec_module(module)
            self.modules[assignment.name] = module
        return self.modules[assignment.name]

    def use_submission(self, root: Path) -> None:
        """Grade the student-shaped tree `root` from now on (grader/authoring/catalogue.py).

        The workers that imported the previous code are stopped and forgotten:
        the next test starts fresh ones, as a separate grading run would.
        """
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()
        self.modules.clear()
        self.root, self.use_reference = Path(root).resolve(), False

    def write(self, record: dict) -> None:
        if self.log is not None:
            self.log.write(json.dumps(record) + "\n")

    # Hooks: this object is registered as a plugin, so pytest calls these.
    def pytest_collection_finish(self, session):
        cases = Counter(_function_key(item) for item in session.items)
        for item in session.items:
            self.write({"event": "collected", **_describe_item(item, cases[_function_key(item)])})

    def pytest_runtest_logreport(self, report):
        failed_outside_call = report.when != "call" and report.failed
        if not (report.when == "call" or failed_outside_call or report.skipped):
            return
        share = None
        if report.passed:
            status, message = "passed", ""
            granted = dict(report.user_properties)   # a speed test's share (grader/kit/speed.py)
            if "llmlab_fraction" in granted:
                share, message = granted["llmlab_fraction"], granted.get("llmlab_message", "")
        elif report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            status, message = "skipped", str(reason)
        else:
            status = "ungradable" if getattr(report, "llmlab_ungradable", False) else "failed"
            failure = getattr(report, "llmlab_failure", None) or _failure_without_error(report)
            message = render_failure(failure)
        record = {"event": "finished", "nodeid": report.nodeid, "status": status,
                  "message": message, "duration": round(report.duration, 3)}
        if not (report.passed or report.skipped):
            record["failure"] = failure   # the fields the report renders (describe.py)
        if share is not None:
            record["fraction"] = share
        if hasattr(report, "llmlab_student_s"):  # time in student code (timings.py)
            record["student_s"] = round(report.llmlab_student_s, 3)
        self.write(record)

    def close(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        if self.log is not None:
            self.log.close()


def _assignment(request) -> Assignment:
    assignment = assignment_of_path(Path(str(request.node.fspath)))
    if assignment is None:
        raise RuntimeError(f"{request.node.nodeid} is not inside tests/<name>/ or "
                           "assignments/<name>/tests/")
    return assignment


def is_public_path(path) -> bool:
    return Path(str(path)).resolve().is_relative_to(REPO / "assignments")


# ----------------------------------------------------------------- fixtures --
@pytest.fixture
def student(request):
    """The student's module: in-process for local public tests, else a worker proxy."""
    from grader.isolation.proxies import StudentProxy

    session: Session = request.config.llmlab
    assignment = _assignment(request)
    if is_public_path(request.node.fspath) and not session.isolate:
        return session.in_process_module(assignment)
    seed = sum(map(ord, request.node.nodeid)) % (2**31)
    worker = session.worker(assignment)
    worker.new_test(**session.test_budget(assignment, request.node.nodeid))
    request.node.llmlab_worker = worker  # its time in student code goes in the result log
    return StudentProxy(worker, assignment.module, seed=seed,
                        kernels=assignment.kernel_functions)


@pytest.fixture
def reference(request):
    """The instructor's solution, imported in this (trusted) process."""
    assignment = _assignment(request)
    name = f"llmlab_reference_{assignment.name}"
    if name not in sys.modules:
        provided = str(assignment.public_tests().parent)  # e.g. experts.py beside moe.py
        if provided not in sys.path:
            sys.path.insert(0, provided)
        spec = importlib.util.spec_from_file_location(name, assignment.reference_path())
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]  # no half-built module for the next test
            raise
    return sys.modules[name]


@pytest.fixture
def reference_worker(request):
    """The reference solution, run in a worker process like the student's (speed tests)."""
    from grader.isolation.proxies import StudentProxy

    assignment = _assignment(request)
    worker = request.config.llmlab.reference_worker(assignment)
    worker.new_test()
    return StudentProxy(worker, assignment.module)


@pytest.fixture
def notebook_run(request):
    """The student's concept notebook, run in a worker (grader/kit/notebooks.py)."""
    from grader.isolation.errors import GraderFault

    run = request.config.llmlab.notebook_run(_assignment(request))
    if isinstance(run, GraderFault):
        raise run
    return run


@pytest.fixture
def kernel_device() -> str:
    """Where Triton kernels run: "cuda" on a GPU machine, else "cpu" (the interpreter)."""
    from grader.kit.strategies import KERNEL_DEVICE

    return KERNEL_DEVICE


@pytest.fixture(autouse=True)
def _seeded():
    import torch

    torch.manual_seed(0)


# ------------------------------------------------------------------ markers --
def pytest_collection_modifyitems(config, items):
    import torch

    tasks = set(config.getoption("--task"))
    if tasks:
        chosen = [item for item in items if task_of(item) in tasks]
        config.hook.pytest_deselected(items=[i for i in items if task_of(i) not in tasks])
        items[:] = chosen
    from grader.kit.speed import smoke_mode

    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU (this machine has none)")
    for item in items:
        smoke = "speed" in item.keywords and smoke_mode()   # speed tests, tiny, on a CPU
        if "gpu" in item.keywords and not torch.cuda.is_available() and not smoke:
            item.add_marker(no_gpu)


def points_of(item, cases: int = 1) -> float:
    """A test function's points, shared evenly by its parametrized cases; a case with its
    own points (`pytest.param(..., marks=pytest.mark.points(2))`) keeps them."""
    marker = item.get_closest_marker("points")
    own = getattr(getattr(item, "callspec", None), "marks", ())
    if marker is not None and any(m.name == "points" for m in own):
        marker = next(m for m in own if m.name == "points")
        cases = 1
    return (float(marker.args[0]) if marker else 1.0) / cases


def task_of(item) -> str | None:
    """The task a test belongs to: its closest `@pytest.mark.task("1.3")` (a module's
    `pytestmark = pytest.mark.task("1.3")` counts), else None."""
    marker = item.get_closest_marker("task")
    return str(marker.args[0]) if marker and marker.args else None


def _function_key(item) -> tuple:
    return (str(item.fspath), getattr(item, "originalname", item.name))


def _describe_item(item, cases: int = 1) -> dict:
    assignment = assignment_of_path(Path(str(item.fspath)))
    public = is_public_path(item.fspath)
    name = item.name if not public else f"public/{item.name}"
    if item.get_closest_marker("concepts") is not None:
        name = f"{'public/' if public else ''}concepts/{item.callspec.id}"
    doc = property_of(item.function.__doc__) if hasattr(item, "function") else ""
    return {
        "nodeid": item.nodeid,
        "name": f"{assignment.name if assignment else 'other'}/{name}",
        "assignment": assignment.name if assignment else None,
        "task": task_of(item),
        "suite": "public" if public else "hidden",
        "points": points_of(item, cases),
        "gpu": "gpu" in item.keywords,
        "doc": doc,
    }


# ------------------------------------------------------------ result log --
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    worker = getattr(item, "llmlab_worker", None)
    if call.when == "call" and worker is not None:
        report.llmlab_student_s = worker.test_used_s
    if report.failed and call.excinfo is not None:
        from grader.isolation.errors import GraderFault

        error = call.excinfo.value
        report.llmlab_ungradable = isinstance(error, GraderFault)
        report.llmlab_failure = failure_record(error, item, public=is_public_path(item.fspath))
    return report


def _failure_without_error(report) -> dict:
    """A failure pytest reports with no exception (a strict xfail that passed): its text
    is pytest's own, shown for a public test only (a hidden one's would be its source)."""
    public = is_public_path(report.fspath)
    return {"property": "", "kind": "check",
            "check": report.longreprtext[-3000:] if public else "the test failed"}
