"""Concept notebooks (grader/kit/notebooks.py): how a student's notebook is run and
checked. The rules of the plan and of a question's check, on small notebooks made
here; the catalogue of plausible wrong answers (tests/<name>/concept_mistakes.toml)
against every question's check; end-to-end grading of kv_cache's notebook, honest,
blank, wrong by one answer and hostile."""

import json
import re
import time
import tomllib
from pathlib import Path

import pytest

from grader.course import ASSIGNMENTS, REPO, get
from grader.kit import notebooks
from grader.kit.notebooks import Capture, Question, Run
from grader.pipeline.grade import GradeOptions, grade, stage

WITH_NOTEBOOKS = [a.name for a in ASSIGNMENTS.values() if a.concepts]


# ----------------------------------------------------------- small notebooks --
def cell(kind: str, source: str, grade_id: str | None = None, *, answer=False, test=False,
         locked=False, points=0, tags=()) -> dict:
    nbgrader = {"grade": test, "solution": answer, "locked": locked or test,
                "schema_version": 3}
    if grade_id:
        nbgrader["grade_id"] = grade_id
    if test:
        nbgrader["points"] = points
    metadata = {"nbgrader": nbgrader, "tags": list(tags)}
    return {"cell_type": kind, "source": source, "metadata": metadata, "outputs": []}


def notebook(*cells: dict) -> bytes:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                       "cells": list(cells)}).encode()


CHECK = ('assert type(x) is int, "x should be an int"\n'
         "### BEGIN HIDDEN TESTS\nassert x == 3\n### END HIDDEN TESTS")
REFERENCE = notebook(
    cell("markdown", "# intro", "intro", locked=True),
    cell("code", "import math", "setup", locked=True),
    cell("code", "### BEGIN SOLUTION\nx = 3\n### END SOLUTION", "q1_answer", answer=True),
    cell("code", CHECK, "q1", test=True, points=2),
    cell("code", "import matplotlib", "plot", locked=True, tags=["plot"]),
)
KEY = [Question("q1", 2.0, CHECK, ("x",))]


def steps_for(student: bytes) -> list:
    return notebooks.plan(notebooks.read_notebook(student),
                          notebooks.read_notebook(REFERENCE), KEY)


def test_locked_cells_run_as_the_reference_wrote_them():
    """A student who edits the locked setup cell runs the reference's setup."""
    student = notebook(cell("code", "import os; os.system('x')", "setup", locked=True),
                       cell("code", "x = 3", "q1_answer", answer=True),
                       cell("code", "assert True", "q1", test=True))
    assert steps_for(student)[0].source == "import math"


def test_test_cells_are_never_sent_to_the_worker():
    """Where a test cell stands, the worker only reports the names it reads."""
    steps = steps_for(REFERENCE)
    assert Capture("q1", ("x",)) in steps
    assert all("assert" not in s.source for s in steps if isinstance(s, Run))


def test_the_plot_is_not_run_and_magics_are_skipped():
    student = notebook(cell("code", "%matplotlib inline\nx = 3", "q1_answer", answer=True),
                       cell("code", "import matplotlib", "plot", locked=True, tags=["plot"]))
    sources = [s.source for s in steps_for(student) if isinstance(s, Run)]
    assert not any("matplotlib" in s and "skipped" not in s for s in sources)
    assert "pass  # skipped when graded: %matplotlib inline\nx = 3" in sources


def test_deleted_cells_are_restored_and_added_cells_run():
    """A deleted locked cell runs first, a deleted test cell is checked at the end, and
    a cell the student added runs where it stands."""
    student = notebook(cell("code", "helper = 1"), cell("code", "x = 3", "q1_answer",
                                                          answer=True))
    steps = steps_for(student)
    assert steps[0].source == "import math" and steps[1].source == "helper = 1"
    assert steps[-1] == Capture("q1", ("x",))


def test_a_duplicated_test_cell_is_checked_once():
    student = notebook(cell("code", "x = 3", "q1_answer", answer=True),
                       cell("code", "assert True", "q1", test=True),
                       cell("code", "x = 4", "q1", test=True))
    steps = steps_for(student)
    assert [s for s in steps if isinstance(s, Capture)] == [Capture("q1", ("x",))]
    assert steps[-1].source == "x = 4"  # a copy is the student's code, run as such


@pytest.mark.parametrize("data, says", [
    (b"\x00not json", "not valid JSON"),
    (b'{"cells": "no"}', "no list of cells"),
    (b'{"nbformat": 3, "cells": []}', "nbformat 3"),
    (b'{"nbformat": 4, "cells": [{"cell_type": "code", "source": 7}]}', "not text"),
    (b'{"nbformat": 4, "cells": [1]}', "not a notebook cell"),
    (b"[" * 100_000, "nested too deeply"),
])
def test_a_file_that_is_not_a_notebook_is_refused_in_words(data, says):
    with pytest.raises(notebooks.NotebookProblem, match=says):
        notebooks.read_notebook(data)


def test_a_right_answer_passes_and_a_wrong_one_does_not_reveal_the_key():
    KEY[0].check({"x": 3})
    with pytest.raises(AssertionError) as wrong:
        KEY[0].check({"x": 4})
    assert str(wrong.value) == "not the right answer (you gave x = 4)"


@pytest.mark.parametrize("answers, says", [
    ({}, "`x` is not defined"),
    ({"x": 3.0}, "x should be an int (you gave x = 3.0)"),
    ({"x": {"__handle__": 1, "type": "Lying"}}, "is a Lying, not a plain value"),
    ({"x": "3" * 10_000}, "x should be an int"),
])
def test_a_question_fails_with_a_plain_reason(answers, says):
    with pytest.raises(AssertionError, match=re.escape(says)) as error:
        KEY[0].check(answers)
    assert len(str(error.value)) < 300


def test_the_answer_key_reads_the_variables_a_check_uses():
    assert notebooks.read_names("import math\nassert abs(a - math.pi) < b\nc = 1\nassert c") \
        == ("a", "b")


# -------------------------------------------- the six notebooks and their key --
def mistakes(name: str) -> dict[str, dict[str, list]]:
    return tomllib.loads((REPO / "tests" / name / "concept_mistakes.toml").read_text())


GRADING_LIMIT_S = 30   # what running one notebook may add to grading, on 2 cores


@pytest.fixture(scope="module")
def reference_answers():
    """Each notebook's answers, computed by the reference notebook in a worker, as grading
    runs it: without error, and within GRADING_LIMIT_S (about 1 to 6 s here)."""
    found = {}
    for name in WITH_NOTEBOOKS:
        a = get(name)
        started = time.monotonic()
        run = notebooks.grade_notebook(a, a.reference_notebook(), a.reference_path())
        assert time.monotonic() - started < GRADING_LIMIT_S
        assert not run.errors and run.stopped is None, (run.errors, run.stopped)
        found[name] = run
    return found


@pytest.mark.parametrize("name", WITH_NOTEBOOKS)
def test_every_plausible_mistake_loses_exactly_its_question(name, reference_answers):
    """Each wrong answer of the catalogue fails its own question and no other: a wrong
    answer costs exactly its points. The reference's answers pass every question."""
    a = get(name)
    key = notebooks.answer_key(a.reference_notebook(), a.concepts.points)
    right = reference_answers[name].answers
    for question in key:
        question.check(right[question.id])
    catalogue = mistakes(name)
    assert set(catalogue) == {q.id for q in key}, "every question has catalogued mistakes"
    for wrong_question, variables in catalogue.items():
        for variable, values in variables.items():
            for value in values:
                failing = []
                for question in key:
                    answers = dict(right[question.id])
                    if variable in answers:
                        answers[variable] = value
                    try:
                        question.check(answers)
                    except AssertionError:
                        failing.append(question.id)
                assert failing == [wrong_question], f"{variable} = {value!r}"


@pytest.mark.parametrize("name", WITH_NOTEBOOKS)
def test_the_blank_notebook_answers_nothing(name):
    """The released notebook, run as grading runs it beside the reference solution, leaves
    every answer undefined: each question fails, naming the cell that raised."""
    a = get(name)
    run = notebooks.grade_notebook(a, a.notebook_path(REPO), a.reference_path())
    for question in notebooks.answer_key(a.reference_notebook(), a.concepts.points):
        with pytest.raises(AssertionError, match="not defined"):
            question.check(run.answers_for(question))
    assert len(run.errors) == len(a.concepts.points)
    assert all("NotImplementedError" in error for error in run.errors)


@pytest.mark.parametrize("name", WITH_NOTEBOOKS)
def test_the_released_notebook_gives_nothing_away(name):
    """No answer, hidden check or output in assignments/<name>/: nbgrader made it."""
    from grader.authoring import notebooks as authoring

    a = get(name)
    released = a.notebook_path(REPO)
    assert authoring.leaks(notebooks.read_notebook(a.reference_notebook()),
                           notebooks.read_notebook(released)) == []
    assert not authoring.has_outputs(released)
    assert authoring.key_problems(a) == []


def test_an_answer_left_in_the_release_is_found():
    from grader.authoring.notebooks import leaks

    reference = notebooks.read_notebook(REFERENCE)
    leaky = notebooks.read_notebook(notebook(cell("code", "x = 3 ** 1  # a long enough line",
                                                  "q1_answer", answer=True)))
    reference[2]["source"] = "### BEGIN SOLUTION\nx = 3 ** 1  # a long enough line\n### END"
    assert leaks(reference, leaky) == ["cell 1 shows the line 'x = 3 ** 1  # a long enough line'"]


@pytest.mark.parametrize("name", WITH_NOTEBOOKS)
def test_the_reference_notebook_runs_in_jupyter(name):
    """Every cell of the reference notebook, the plot and the hidden tests included, runs
    in a Jupyter kernel beside the reference solution, within seconds."""
    from grader.authoring.notebooks import EXECUTION_LIMIT_S, execute

    a = get(name)
    errors, took = execute(a, a.reference_notebook(), a.reference_path())
    assert errors == []
    assert took < EXECUTION_LIMIT_S


# ------------------------------------------------------ grading, end to end --
KV = get("kv_cache")


def kv_submission(tmp_path: Path, edit=None, raw: bytes | None = None) -> Path:
    """A student-shaped tree: the reference cache.py, and the reference notebook with
    answer cells replaced by `edit` ({answer grade_id: source}) or the bytes `raw`."""
    root = tmp_path / "submission"
    folder = root / "assignments" / "kv_cache"
    folder.mkdir(parents=True)
    (folder / "cache.py").write_bytes(KV.reference_path().read_bytes())
    book = json.loads(KV.reference_notebook().read_text())
    for c in book["cells"]:
        gid = c["metadata"].get("nbgrader", {}).get("grade_id")
        if edit and gid in edit:
            c["source"] = edit[gid]
    (folder / "concepts.ipynb").write_bytes(raw if raw is not None else
                                            json.dumps(book).encode())
    return root


def grade_concepts(root: Path, tmp_path: Path) -> dict[str, dict]:
    """The concept questions' results, by question id (and the report's ungradable)."""
    report = grade(stage(root, [KV]), GradeOptions(
        [KV], suite="hidden", output=tmp_path / "results.json",
        tasks=(KV.concepts.task,)), log=lambda m: None)
    assert not report.ungradable
    results = json.loads((tmp_path / "results.json").read_text())
    return {t["name"].split("/")[-1]: t for t in results["tests"]
            if t["name"].startswith("kv_cache/concepts/")}


def answer_cell(number: int) -> str:
    return [q for q in KV.concepts.points][number - 1] + "_answer"


def scores(tests: dict) -> list[float]:
    return [tests[q]["score"] for q in KV.concepts.points]


def test_the_reference_notebook_gets_full_marks_and_a_blank_one_zero(tmp_path):
    full = grade_concepts(kv_submission(tmp_path / "a"), tmp_path / "a")
    assert scores(full) == list(KV.concepts.points.values())
    blank = grade_concepts(kv_submission(tmp_path / "b", raw=KV.notebook_path(REPO)
                                         .read_bytes()), tmp_path / "b")
    assert scores(blank) == [0] * len(KV.concepts.points)
    assert "raised NotImplementedError" in blank[answer_cell(1)[:-7]]["output"]


def test_one_wrong_answer_loses_exactly_its_points(tmp_path):
    tests = grade_concepts(kv_submission(tmp_path, {answer_cell(4): "cached_score_entries = "
                                                    "1024 * 1024"}), tmp_path)
    expected = list(KV.concepts.points.values())
    expected[3] = 0
    assert scores(tests) == expected
    output = tests[answer_cell(4)[:-7]]["output"]
    assert "not the right answer (you gave cached_score_entries = 1048576)" in output
    # the class feedback page shows it (a hidden failure keeps its message, never code)
    from grader.classroom.feedback import hidden_failure

    assert "not the right answer" in hidden_failure(tests[answer_cell(4)[:-7]])


@pytest.mark.parametrize("hostile, says", [
    ("while True:\n    pass", "timed out"),
    ("import os\nos._exit(3)", "exited with code 3"),
])
def test_a_notebook_that_hangs_or_crashes_keeps_the_answers_before_it(tmp_path, hostile,
                                                                      says):
    """The run stops at the cell: earlier questions keep their points, later ones fail
    naming the cell, and grading finishes within the cell's timeout."""
    started = time.monotonic()
    tests = grade_concepts(kv_submission(tmp_path, {answer_cell(3): hostile}), tmp_path)
    points = list(KV.concepts.points.values())
    assert scores(tests) == points[:2] + [0] * (len(points) - 2)
    later = tests[answer_cell(4)[:-7]]["output"]
    assert "stopped before this question" in later and says in later
    assert answer_cell(3) in later
    assert time.monotonic() - started < KV.call_timeout_s + 60


HUNT = '''
import glob, os, re
found = ""
for pattern in ["/proc/*/cwd/reference/kv_cache/concepts.ipynb", "/work/*/reference/kv_cache/*",
                "/tmp/*/reference/kv_cache/*", "/proc/*/cwd/tests/kv_cache/*.py", "**/*.ipynb"]:
    for path in glob.glob(pattern, recursive=True):
        try:
            text = open(path).read()
        except OSError:
            continue
        if "BEGIN HIDDEN TESTS" in text:
            found = text
kv_bytes = int(re.search(r"kv_bytes == ([0-9_]+)", found).group(1)) if found else -1
'''


def test_a_notebook_that_hunts_for_the_answers_finds_none(tmp_path):
    """Hidden checks never leave the trusted process: the worker has no file that holds
    them, so a notebook looking for them finds nothing and earns nothing for it."""
    from grader.isolation.sandbox import sandbox

    if not sandbox().switch_user:
        pytest.skip(f"the files are hidden only when the grader runs as root: "
                    f"{sandbox().describe()}")
    tests = grade_concepts(kv_submission(tmp_path, {answer_cell(1): HUNT}), tmp_path)
    assert tests[answer_cell(1)[:-7]]["score"] == 0
    assert "kv_bytes = -1" in tests[answer_cell(1)[:-7]]["output"]


@pytest.mark.parametrize("raw, says", [(b"{not a notebook", "not valid JSON"), (None, "link")])
def test_a_broken_or_linked_notebook_fails_its_questions_only(tmp_path, raw, says):
    root = kv_submission(tmp_path, raw=raw if raw is not None else b"{}")
    if raw is None:
        path = root / "assignments/kv_cache/concepts.ipynb"
        path.unlink()
        path.symlink_to(KV.reference_notebook())
    tests = grade_concepts(root, tmp_path)
    assert scores(tests) == [0] * len(KV.concepts.points)
    assert all(says in t["output"] for t in tests.values())
