"""Hostile cases for the feedback allowlist (issue 22): a hidden test's failure reaches a
student only as the fields the grader filled (grader/kit/describe.py's failure record,
rendered by `render_failure`): never the hidden test's source, pytest's introspection of
its assertions, a probe's frames, or text a submission shaped to look like any of these.

The end-to-end cases run a real pytest child with the grader's plugin on a hidden-style
test file and read its result log into the report, as grading does; the others build the
exceptions the worker and the pytest child hand to the record.
"""

import json
import subprocess
import sys
import textwrap

import pytest

from grader.classroom.feedback import feedback_markdown
from grader.course import REPO
from grader.isolation.errors import StudentCrash, rebuild_exception
from grader.kit.describe import failure_record, render_failure
from grader.pipeline.report import Report

# What must never reach a student from a hidden test: its source and pytest's view of it.
SECRET = "SECRET_EXPECTED_7"      # a name and value only the hidden test's source holds
INTROSPECTION = ("assert ", "where ", "+  where", "E   ", ">   ")

# A hidden test file: each test fails the way a real hidden test can, with SECRET in its
# source only. `StudentSays` plays the worker's rebuilt exception (student_traceback set).
HIDDEN_TESTS = f'''
import pytest

{SECRET} = [2, 3, 7, 5]


def student_error(cls, message, traceback=""):
    error = cls(message)
    error.student_traceback = traceback
    return error


def test_bare_assert_introspection():
    """A bare assert compares with a value only the test knows."""
    got = {{"k_shape": [2, 3, 7, 4]}}
    assert got["k_shape"] == {SECRET}


def test_assert_with_message():
    """An assert's own message is the grader's words; its introspection is the source."""
    got = [1]
    assert len(got) == len({SECRET}), "the cache holds the wrong number of positions"


def test_student_message_shaped_like_grader_lines():
    """The student's exception message pretends to be pytest's and the grader's lines."""
    raise student_error(ValueError, "bad\\nassert forged == 1\\n +  where x = probe()\\n"
                        "Property: full marks\\nSmallest failing input:\\n  x=forged\\n# 100/100")


def test_student_raises_an_assertion_error():
    """An AssertionError from the student's code is theirs, never a check's message."""
    raise student_error(AssertionError, "Property: forged\\nerror above scale/2: forged")


def test_test_code_raises():
    """The hidden test's own code fails on the student's result (a KeyError)."""
    probe = {{"k_shape": 1}}
    probe["{SECRET}"]


def test_fails_inside_a_probe():
    """A probe (trusted driver code, run in the worker) fails: its frames are not theirs."""
    raise student_error(RuntimeError, "shape mismatch", traceback=PROBE_TRACEBACK)


PROBE_TRACEBACK = """Traceback (most recent call last):
  File "/repo/grader/isolation/worker_main.py", line 150, in serve
    reply = self.handle(request)
  File "<probe drive_cache>", line 4, in drive_cache
    assert cache.k_cache.shape == {SECRET}
  File "/tmp/llmlab-worker-x/quantize.py", line 12, in absmax_quantize
    raise RuntimeError("shape mismatch")
  File "tests/quantization/test_hidden.py", line 3, in forged
    forged = 1
RuntimeError: shape mismatch
"""
'''


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """The hidden-style tests run by a pytest child with the grader's plugin, its result
    log read into a Report: test name -> that test's results.json entry."""
    folder = tmp_path_factory.mktemp("hidden")
    (folder / "test_hidden_style.py").write_text(HIDDEN_TESTS)
    log = folder / "log.jsonl"
    subprocess.run([sys.executable, "-m", "pytest", str(folder), "-q", "-p", "no:cacheprovider",
                    "-p", "grader.kit.plugin", "--results-log", str(log)],
                   cwd=folder, capture_output=True, text=True, timeout=120)
    report = Report({})
    for line in log.read_text().splitlines():   # tests outside an assignment: quantization's
        report.record({**json.loads(line), "assignment": "quantization"})
    tests = report.gradescope()["tests"]
    assert len(tests) == 6 and all(t["status"] == "failed" for t in tests), tests
    return {t["name"].split("/")[-1]: t for t in tests}


def shown_to_student(test: dict) -> str:
    """Everything of a hidden test a student can read: its output and its feedback page."""
    page = feedback_markdown("ada", "quantization", {"tests": [
        {**test, "name": f"quantization/{test['name'].split('/')[-1]}"}]})
    return test["output"] + "\n" + page


@pytest.mark.parametrize("name", ["test_bare_assert_introspection", "test_assert_with_message",
                                  "test_test_code_raises", "test_fails_inside_a_probe",
                                  "test_student_message_shaped_like_grader_lines"])
def test_no_hidden_source_or_introspection_reaches_the_student(graded, name):
    """Neither the output nor the page holds the hidden test's source (SECRET) or a line of
    pytest's introspection."""
    text = shown_to_student(graded[name])
    assert SECRET not in text, text
    lines = [line.strip().lstrip("`") for line in text.splitlines()]
    assert not [line for line in lines if line.startswith(INTROSPECTION)], text


def test_an_asserts_own_message_is_kept_and_a_bare_assert_says_the_property_fails(graded):
    """The allowlist keeps what the grader wrote: the docstring and the assert's message."""
    kept = graded["test_assert_with_message"]["output"].splitlines()
    assert kept[1] == "the cache holds the wrong number of positions"
    bare = graded["test_bare_assert_introspection"]["output"].splitlines()
    assert bare == ["Property: A bare assert compares with a value only the test knows.",
                    "the property does not hold for this input"]


def test_a_message_shaped_like_grader_lines_stays_one_quoted_line(graded):
    """The student's message is data: one quoted line under its label, never a line of its
    own (no forged 'Property:', 'Smallest failing input' or heading)."""
    lines = graded["test_student_message_shaped_like_grader_lines"]["output"].splitlines()
    assert len(lines) == 2 and lines[1].startswith('Your code raised ValueError, message '
                                                   '(quoted): "bad\\nassert')
    assert sum(line.startswith("Property:") for line in lines) == 1
    page = shown_to_student(graded["test_student_message_shaped_like_grader_lines"])
    assert "\n# 100/100" not in page and "\nSmallest failing input" not in page


def test_an_assertion_error_from_student_code_is_quoted_as_theirs(graded):
    """A student's AssertionError is 'Your code raised', not a check the grader reports."""
    lines = graded["test_student_raises_an_assertion_error"]["output"].splitlines()
    assert lines[1].startswith('Your code raised AssertionError, message (quoted): "Property')
    assert len(lines) == 2


def test_only_frames_of_the_students_own_file_are_shown():
    """A probe's frame, the worker's and one forged for a hidden test file are dropped;
    the student's own file's frame stays. (The test's file is none of an assignment's,
    so this case names the student file through a quantization test's path.)"""
    error = rebuild_exception({"type": "RuntimeError", "builtin": True,
                               "message": "shape mismatch",
                               "traceback": HIDDEN_TESTS.split('PROBE_TRACEBACK = """')[1]
                               .split('"""')[0].replace("{SECRET}", SECRET)})
    item = type("Item", (), {"fspath": REPO / "tests" / "quantization" / "test_x.py",
                             "function": None})()
    text = render_failure(failure_record(error, item))
    assert 'quantize.py, line 12, in absmax_quantize: raise RuntimeError("shape mismatch")' \
        in text
    assert SECRET not in text and "probe" not in text and "test_hidden" not in text


def test_hypothesis_explanations_naming_source_lines_are_dropped():
    """Only the falsifying example and its draws are kept from hypothesis's notes."""
    error = AssertionError("error above scale/2")
    error.add_note("Falsifying example: test_x(\n    student=<proxy>,\n    x=tensor([1.]),\n)")
    error.add_note("Draw 1: 3")
    error.add_note(f"Explanation:\n    These lines were always and only run by failing "
                   f"examples:\n        tests/quantization/test_hidden.py:41  # {SECRET}")
    text = render_failure(failure_record(error))
    assert "x=tensor([1.])" in text and "Draw 1: 3" in text
    assert SECRET not in text and "test_hidden.py" not in text


def test_a_crash_reason_with_the_students_import_error_stays_on_one_line():
    """'crashed at import: <their message>': their line breaks cannot forge lines."""
    record = failure_record(StudentCrash("your module crashed at import: ValueError: x\n"
                                         "Property: forged\n# 100/100"))
    assert render_failure(record).splitlines() == [
        "Your code did not finish: your module crashed at import: ValueError: x\\n"
        "Property: forged\\n# 100/100"]


def test_a_closed_tests_output_keeps_the_reason_not_the_runners_console():
    """A test the runner never finished says why (the first line); the console after it,
    which shows other tests' failures and source, stays in the instructor's log."""
    report = Report({})
    report.record({"event": "collected", "nodeid": "t", "name": "quantization/t",
                   "assignment": "quantization", "task": "1.1", "suite": "public",
                   "points": 1.0, "doc": "A property."})
    console = textwrap.dedent(f"""\
        not run: grading stopped while running your code; the test runner failed:
        >       assert got == {SECRET}
        E       assert [1] == [2, 3, 7, 5]""")
    report.close_assignment("quantization", "failed", console)
    (test,) = report.gradescope()["tests"]
    assert SECRET not in test["output"] and "assert" not in test["output"]
    assert test["output"] == "Property: A property.\nnot run: grading stopped while running " \
        "your code; the test runner failed:"
    assert SECRET in report.failures_text()   # the instructor's terminal keeps it
