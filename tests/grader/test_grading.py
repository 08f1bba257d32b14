"""`grader grade` end to end, as CI and instructors call it (a subprocess)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.authoring.release import release
from grader.course import ASSIGNMENTS, REPO

MUTANT = REPO / "tests/mutants/quantization/rounds_half_away_from_zero.py"
STATUSES = {"passed", "failed"}
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}


def grade(*args, output: Path, env: dict | None = None) -> tuple[int, dict]:
    command = [sys.executable, "-m", "grader", "grade", *map(str, args), "--output", str(output)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900,
                            env={**os.environ, **(env or {})})
    assert output.is_file(), f"no results file:\n{result.stdout}\n{result.stderr}"
    return result.returncode, json.loads(output.read_text())


def assert_gradescope_schema(results: dict, *assignments: str) -> None:
    assert {"score", "max_score", "execution_time", "output", "tests", "extra_data"} <= set(results)
    assert results["tests"], "no tests in results"
    for test in results["tests"]:
        assert {"name", "score", "max_score", "status", "output", "visibility"} <= set(test)
        assert test["name"].split("/")[0] in (assignments or ASSIGNMENTS)
        assert test["status"] in STATUSES and test["visibility"] in VISIBILITIES
        assert 0 <= test["score"] <= test["max_score"]
    total = sum(t["score"] for t in results["tests"])
    assert results["score"] == pytest.approx(total, abs=0.01)
    extra = results["extra_data"]
    for key in ("grader_version", "grader_commit", "hypothesis", "device", "torch"):
        assert key in extra
    assert extra["hypothesis"]["derandomize"] is True


def student_submission(tmp_path: Path, solution: Path | None) -> Path:
    release(tmp_path)
    if solution is not None:
        shutil.copyfile(solution, tmp_path / "assignments/quantization/quantize.py")
    return tmp_path


def test_reference_gets_full_marks(tmp_path):
    """grader grade --reference: every test passes, exit 0, a valid results.json,
    and a markdown summary where GitHub Actions asks for one."""
    summary = tmp_path / "summary.md"
    code, results = grade("--reference", "--assignment", "quantization",
                          output=tmp_path / "results.json",
                          env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert code == 0
    assert_gradescope_schema(results, "quantization")
    assert results["score"] == results["max_score"] > 0
    assert any(t["name"].startswith("quantization/public/") for t in results["tests"])
    markdown = summary.read_text()
    assert markdown.startswith(f"## Grade: {results['score']:.2f} / {results['max_score']:.2f}")
    assert "| quantization | 1.3 quantize_rowwise (Triton kernel) |" in markdown


def test_released_stub_scores_zero_without_crashing(tmp_path):
    """The untouched student release scores 0, with no ungradable test, exit 0."""
    submission = student_submission(tmp_path / "student", None)
    code, results = grade("--submission", submission, output=tmp_path / "results.json")
    assert code == 0
    assert_gradescope_schema(results)
    assert {t["name"].split("/")[0] for t in results["tests"]} == set(ASSIGNMENTS)
    assert results["score"] == 0 and results["max_score"] > 0
    assert not any("UNGRADABLE" in t["output"] for t in results["tests"])
    assert all("NotImplementedError" in t["output"] for t in results["tests"])


@pytest.fixture(scope="module")
def mutant_runs(tmp_path_factory):
    """A wrong quantization (and the ddp stub) graded twice on the hidden suites."""
    tmp_path = tmp_path_factory.mktemp("mutant")
    submission = student_submission(tmp_path / "student", MUTANT)
    runs = []
    for i in range(2):
        code, results = grade("--submission", submission, "--suite", "hidden",
                              "--assignment", "quantization", "--assignment", "ddp",
                              output=tmp_path / f"results{i}.json")
        assert code == 0
        runs.append(results)
    return runs


def test_two_grading_runs_give_identical_results(mutant_runs):
    """Same submission, same results.json, apart from the timings (ddp: its ranks run in
    threads, yet the message of a failure must not depend on which thread came first)."""
    first, second = ({k: v for k, v in run.items() if k != "execution_time"}
                     for run in mutant_runs)
    assert 0 < first["score"] < first["max_score"]
    assert first == second


def test_failure_feedback_is_plain_words_not_a_wall_of_tensors(mutant_runs):
    """A failed property names itself, the smallest input, and no test source."""
    failed = [t for t in mutant_runs[0]["tests"]
              if t["status"] == "failed" and t["name"].startswith("quantization/")]
    assert failed
    for test in failed:
        assert test["output"].startswith("Property: ")
        assert "tensor([" not in test["output"]
        assert "def test_" not in test["output"] and "assert_" not in test["output"]
    assert any("Smallest failing input" in t["output"] for t in failed)


def test_missing_student_file_scores_zero_and_says_so(tmp_path):
    """A submission without the student's file is graded (0), not a grader crash."""
    (tmp_path / "empty").mkdir()
    code, results = grade("--submission", tmp_path / "empty", "--suite", "hidden",
                          output=tmp_path / "results.json")
    assert code == 0 and results["score"] == 0
    assert all("missing from the submission" in t["output"] for t in results["tests"])


def test_a_grading_run_killed_part_way_leaves_a_valid_results_file(tmp_path):
    """results.json is rewritten after every test: killing the grader loses nothing finished."""
    submission = student_submission(tmp_path / "student", None)
    source = (REPO / "reference/quantization/quantize.py").read_text()
    hanging = source.replace("    q, scale = _launch_quantize_rows(x)\n",
                             "    while True:\n        pass\n")
    assert hanging != source
    (submission / "assignments/quantization/quantize.py").write_text(hanging)
    output = tmp_path / "results.json"
    command = [sys.executable, "-m", "grader", "grade", "--submission", str(submission),
               "--suite", "hidden", "--output", str(output)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(1)
            if output.is_file() and sum(t["status"] == "passed" for t in
                                        json.loads(output.read_text())["tests"]) >= 10:
                break
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    results = json.loads(output.read_text())
    assert_gradescope_schema(results, "quantization")
    assert sum(t["status"] == "passed" for t in results["tests"]) >= 10
    assert 0 < results["score"] < results["max_score"]
