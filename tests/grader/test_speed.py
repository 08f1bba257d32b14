"""Speed as a graded property (grader/kit/speed.py): the share of points a ratio earns,
partial credit from the test to results.json, and the speed tests end to end in smoke
mode (tiny shapes on this CPU: the machinery, not a measurement)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.course import REPO, get
from grader.kit import speed
from grader.pipeline.report import Report


@pytest.mark.parametrize("ratio, share", [(2.0, 1.0), (0.5, 1.0), (0.3, 0.5), (0.1, 0.0),
                                          (0.09, 0.0), (0.0, 0.0)])
def test_full_points_from_half_the_reference_speed_none_below_a_tenth(ratio, share):
    assert speed.fraction(ratio) == pytest.approx(share)


def test_the_median_of_interleaved_runs_decides_and_calls_alternate():
    calls = []

    def run(who, seconds):
        def call():
            calls.append(who)
            time.sleep(seconds)
            return who
        return call

    timings, mine, theirs = speed.compare(run("s", 0.02), run("r", 0.005), repeats=3)
    assert calls == ["s", "r"] * 4           # one untimed call each, then alternating
    assert (mine, theirs) == ("s", "r")
    assert 0.1 < timings.ratio < 0.75        # 0.25, with room for a loaded machine's overhead


def test_a_partial_share_scores_its_fraction_and_is_not_passed(tmp_path):
    """A test granted 40 % of 5 points scores 2 and reads "failed" (not full marks)."""
    report = Report({})
    report.record({"event": "collected", "nodeid": "t", "name": "quantization/t",
                   "assignment": "quantization", "task": "1.5", "suite": "hidden",
                   "points": 5.0})
    report.record({"event": "finished", "nodeid": "t", "status": "passed", "message": "0.26x",
                   "fraction": 0.4})
    line = report.gradescope()["tests"][0]
    assert (line["score"], line["max_score"], line["status"]) == (2.0, 5.0, "failed")
    assert report.by_task()[0][2:] == (0, 1, 2.0, 5.0)


def test_the_plugin_puts_the_granted_share_in_the_result_log(tmp_path):
    (tmp_path / "test_granted.py").write_text(
        "from grader.kit.speed import grant\n"
        "def test_half(request):\n"
        "    grant(request, 0.5, 'half as fast as needed')\n")
    log = tmp_path / "log.jsonl"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "grader.kit.plugin",
                    "-p", "no:cacheprovider", "--results-log", str(log), str(tmp_path)],
                   cwd=tmp_path, capture_output=True, timeout=300,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    finished = [json.loads(line) for line in log.read_text().splitlines()
                if '"finished"' in line]
    assert finished[0]["fraction"] == 0.5
    assert finished[0]["message"] == "half as fast as needed"


# Appended to the reference: the same kernel, after a second's sleep on every call.
SLEEPY = """

_fast = quantize_rowwise


def quantize_rowwise(x):
    import time

    time.sleep(1.0)
    return _fast(x)
"""


def grade_speed(root: Path, out: Path) -> dict:
    command = [sys.executable, "-m", "grader", "grade", "--submission", str(root),
               "--assignment", "quantization", "--suite", "hidden", "--task", "1.5",
               "--output", str(out)]
    subprocess.run(command, cwd=REPO, capture_output=True, timeout=600,
                   env={**os.environ, speed.SMOKE_ENV: "1"})
    return next(t for t in json.loads(out.read_text())["tests"] if "throughput" in t["name"])


def test_speed_is_graded_end_to_end_in_smoke_mode(tmp_path):
    """Smoke mode (tiny shapes, CPU): the reference earns the speed points, a correct
    kernel that sleeps a second a call earns none and is told its ratio, the stub none."""
    quantization = get("quantization")
    roots = {}
    for kind in ("reference", "sleepy", "stub"):
        folder = tmp_path / kind / "assignments" / "quantization"
        folder.mkdir(parents=True)
        roots[kind] = tmp_path / kind
    quantization.student_path(roots["reference"]).write_bytes(
        quantization.reference_path().read_bytes())
    quantization.student_path(roots["sleepy"]).write_text(
        quantization.reference_path().read_text() + SLEEPY)
    quantization.student_path(roots["stub"]).write_bytes(
        quantization.student_path(REPO).read_bytes())
    full = grade_speed(roots["reference"], tmp_path / "r.json")
    assert full["score"] == full["max_score"] > 0, full["output"]
    slow = grade_speed(roots["sleepy"], tmp_path / "s.json")
    assert slow["score"] == 0 and "x the reference's throughput" in slow["output"]
    stub = grade_speed(roots["stub"], tmp_path / "t.json")
    assert stub["score"] == 0 and "NotImplementedError" in stub["output"]
