"""Hostile cases for what students see before the due date (issue 22): nothing that
depends on the hidden tests or the concept questions' hidden answers.

A student who could read their total, a count or a table row that moves with one concept
answer would find every answer by resubmitting. `seen_before_due_date` reads Gradescope's
documented visibility (grader/pipeline/report.py); two submissions that differ only in
hidden results must look byte-identical through it, and through GitHub Classroom's payload.
"""

import json

import pytest

from grader.pipeline.grade import titles
from grader.pipeline.report import Report, seen_before_due_date

PUBLIC = [("quantization/public/test_worked_example", "1.1", "passed"),
          ("quantization/public/test_codes_in_range", "1.1", "failed"),
          ("quantization/public/concepts/q1_scale", "1.4", "passed")]   # 0 points, visible


def report_with(hidden: dict[str, str]) -> Report:
    """The same public results, and the hidden ones given (name -> status)."""
    report = Report({"grader_commit": "abc"}, titles())
    tests = [(name, task, status, "public") for name, task, status in PUBLIC]
    tests += [(name, "1.4" if "/concepts/" in name else "1.1", status, "hidden")
              for name, status in hidden.items()]
    for i, (name, task, status, suite) in enumerate(tests):
        points = 0.0 if "/public/concepts/" in name else 2.0
        report.record({"event": "collected", "nodeid": f"n{i}", "name": name, "doc": "P.",
                       "assignment": "quantization", "task": task, "suite": suite,
                       "points": points})
        message = "" if status == "passed" else "Your answer is not right"
        failure = None if status in ("passed", "skipped") else {
            "property": "P.", "kind": "check", "check": message}
        report.record({"event": "finished", "nodeid": f"n{i}", "status": status,
                       "message": "needs a GPU" if status == "skipped" else message,
                       **({"failure": failure} if failure else {})})
    return report


HIDDEN = {"quantization/test_error_at_most_half_a_step": "passed",
          "quantization/concepts/q2_bytes": "passed",
          "quantization/concepts/q3_error": "failed"}
VARIANTS = {
    "one concept answer right instead of wrong": {"quantization/concepts/q3_error": "passed"},
    "a hidden test failing": {"quantization/test_error_at_most_half_a_step": "failed"},
    "a hidden test ungradable": {"quantization/test_error_at_most_half_a_step": "ungradable"},
    "a hidden test skipped": {"quantization/test_error_at_most_half_a_step": "skipped"},
    "one more hidden test": {"quantization/test_scale_is_absmax_over_127": "failed"},
}


def seen(report: Report) -> str:
    return json.dumps(seen_before_due_date(report.gradescope()), sort_keys=True)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_what_a_student_sees_on_gradescope_does_not_depend_on_hidden_results(variant):
    """Byte-identical student-visible parts before the due date: score, counts, table,
    tests, whatever the hidden tests and concept answers did."""
    base, other = report_with(HIDDEN), report_with({**HIDDEN, **VARIANTS[variant]})
    assert base.gradescope()["score"] != other.gradescope()["score"] or \
        base.gradescope()["tests"] != other.gradescope()["tests"]   # they do differ
    assert seen(base) == seen(other)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_github_classrooms_payload_does_not_depend_on_hidden_results(variant):
    """The Classroom dashboard shows its score at once: the public tests alone."""
    base, other = report_with(HIDDEN), report_with({**HIDDEN, **VARIANTS[variant]})
    assert json.dumps(base.classroom()) == json.dumps(other.classroom())
    assert {t["name"] for t in base.classroom()["tests"]} == {name for name, *_ in PUBLIC}


def test_the_public_tests_stay_visible_and_the_total_appears_after_the_due_date():
    """What is hidden before the due date is still all there for after it (SPEC §4)."""
    results = report_with(HIDDEN).gradescope()
    assert results["visibility"] == "after_due_date" and results["stdout_visibility"] == "hidden"
    assert results["score"] == 2 * 3 and results["max_score"] == 2 * 5
    visible = [t["name"] for t in seen_before_due_date(results)["tests"]]
    assert visible == [name for name, *_ in PUBLIC]
    assert {t["visibility"] for t in results["tests"] if t["name"] not in visible} == \
        {"after_due_date"}
    assert all(t["name"].startswith("quantization/") and t["status"] in ("passed", "failed")
               for t in results["tests"])
    assert "2.00/4.00" in results["output"] and "public total" in results["output"]


def test_without_a_top_level_visibility_gradescope_would_show_the_total():
    """The leak the rule closes: Gradescope shows the top-level score unless hidden."""
    results = report_with(HIDDEN).gradescope()
    del results["visibility"]
    assert seen_before_due_date(results)["score"] == results["score"]
