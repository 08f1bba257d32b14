"""Time budgets: a test's student time, scaled from the reference's (grader/pipeline/
timings.py), and a submission's total (grader/pipeline/grade.py). Correct answers that
each arrive just under the call timeout must not cost a grading job its day."""

import json
import os
import subprocess
import sys
import time
import types

import pytest

from grader.course import ASSIGNMENTS, REPO
from grader.isolation.errors import StudentCrash
from grader.isolation.proxies import StudentProxy
from grader.isolation.worker import WorkerConfig, WorkerProcess
from grader.pipeline import grade as grading
from grader.pipeline import timings
from grader.pipeline.collect import stage_reference
from grader.pipeline.grade import GradeOptions, grade

SLOW = """
import time
def wait(seconds):
    time.sleep(seconds)
    return seconds
def spin(seconds):
    end = time.process_time() + seconds   # CPU seconds, however busy the machine
    while time.process_time() < end:
        pass
    return seconds
"""


def make_student(tmp_path, source: str):
    path = tmp_path / "slow.py"
    path.write_text(source)
    worker = WorkerProcess(WorkerConfig(scratch_files={"slow.py": path}, module="slow",
                                        call_timeout_s=20))
    return worker, StudentProxy(worker, "slow")


def test_a_test_stops_when_its_calls_together_use_up_its_budget(tmp_path):
    """Each call is well under its timeout; the second one runs past what the test has left
    (CPU seconds), and the rest of the test fails at once, saying so."""
    worker, student = make_student(tmp_path, SLOW)
    try:
        worker.new_test(budget_s=2.0, over_budget="ran past this test's time budget of 2 s")
        assert student.spin(1.2) == 1.2
        with pytest.raises(StudentCrash, match="ran past this test's time budget of 2 s"):
            student.spin(15)   # stopped by the budget, not by the 20 s call timeout
        assert 1.9 < worker.test_used_s < 6.0   # stopped long before 15 s, however busy
        with pytest.raises(StudentCrash, match="time budget"):
            student.wait(0)
        worker.new_test(budget_s=2.0)  # the next test starts afresh
        assert student.spin(1.2) == 1.2
    finally:
        worker.stop()


def test_sleeping_is_charged_like_computing(tmp_path):
    """Answers that each arrive just under the call timeout, asleep in between, still run
    past the test's budget (tests/hostile/slow_but_correct.py)."""
    worker, student = make_student(tmp_path, SLOW)
    try:
        worker.new_test(budget_s=1.0, over_budget="over budget")
        with pytest.raises(StudentCrash, match="over budget"):
            student.wait(3)
        assert 0.9 < worker.test_used_s < 2.5
    finally:
        worker.stop()


def test_waiting_for_a_busy_core_is_not_charged(tmp_path):
    """The worker shares its one core with a process that computes all the time, so its
    1 s of work takes about 2 s of wall time: only its own second is charged."""
    worker, student = make_student(tmp_path, SLOW)
    burner = None
    try:
        worker.new_test(budget_s=1.7, over_budget="over budget")
        assert student.wait(0) == 0                       # started, its pid known
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(worker._worker_pid(), {core})
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                  preexec_fn=lambda: os.sched_setaffinity(0, {core}))
        started = time.monotonic()
        assert student.spin(1.0) == 1.0
        assert time.monotonic() - started > 1.5, "the core was not shared"
        assert worker.test_used_s < 1.6
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
        worker.stop()


def test_threads_the_student_starts_spend_the_same_budget(tmp_path):
    """Work moved to threads is counted (all the worker's threads): no one buys time so."""
    source = SLOW + """
import threading
def spin_thread(seconds):
    end = time.thread_time() + seconds   # this thread's CPU seconds
    while time.thread_time() < end:
        pass
def spin_in_threads(seconds, n):
    threads = [threading.Thread(target=spin_thread, args=(seconds,)) for _ in range(n)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return seconds
"""
    worker, student = make_student(tmp_path, source)
    try:
        worker.new_test(budget_s=1.0, over_budget="over budget")
        with pytest.raises(StudentCrash, match="over budget"):
            student.spin_in_threads(0.7, 3)   # 0.7 s of wall at most per thread, 2.1 CPU s
    finally:
        worker.stop()


def test_starting_the_worker_is_not_counted_against_the_test(tmp_path):
    """Starting Python and importing torch is the grader's cost, however slow the machine."""
    worker, student = make_student(tmp_path, "import torch\n" + SLOW)
    try:
        worker.new_test(budget_s=0.5)
        assert student.wait(0) == 0 and worker.starts == 1
    finally:
        worker.stop()


def test_a_budget_is_a_multiple_of_the_reference_time_with_a_floor():
    assert timings.budget_s(None) is None
    assert timings.budget_s(0.01) == timings.FLOOR_S
    assert timings.budget_s(5.0) == 5.0 * timings.FACTOR


def test_a_stopped_test_names_its_budget_and_where_it_comes_from():
    assert timings.over_budget(12.0, 1.2).startswith(
        "stopped by the per-test time budget of 12 s (10 x the reference "
        "solution's 1.2 s on this test; only your code's own time counts")
    assert "(the floor every test gets; the reference solution needs 0.01 s;" in \
        timings.over_budget(10.0, 0.01)


def test_validate_names_a_missing_or_stale_timings_file(tmp_path):
    """A test added after `grader timings` ran has no budget: validate says so."""
    assignment = ASSIGNMENTS["quantization"]
    records = [{"assignment": "quantization", "nodeid": f"tests/quantization/t.py::{name}"}
               for name in ("test_old", "test_new")]
    assert "timings.json is missing" in timings.problems([assignment], records, tmp_path)[0]
    path = timings.timings_path(assignment, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"cpu": {"tests": {records[0]["nodeid"]: 0.1}}}))
    [problem] = timings.problems([assignment], records, tmp_path)
    assert "is stale: 1 tests have no timing, e.g. tests/quantization/t.py::test_new" in problem


def test_a_spent_total_budget_fails_the_next_assignment_saying_why(tmp_path, monkeypatch):
    """The first assignment is graded; the clock then jumps past the submission's total,
    so the second is never run: its tests are listed and each fails with the reason,
    and results.json is complete and valid."""
    first, second = ASSIGNMENTS["moe"], ASSIGNMENTS["lora"]
    jump = {"s": 0.0}
    clock = types.SimpleNamespace(monotonic=lambda: time.monotonic() + jump["s"])
    monkeypatch.setattr(grading, "time", clock)

    def log(message):
        if message.startswith(f"grading {first.name}"):
            jump["s"] = 1000.0  # counted once the first assignment is done

    output = tmp_path / "results.json"
    staged = stage_reference([first, second])
    try:
        report = grade(staged, GradeOptions([first, second], suite="public", output=output,
                                            total_budget_s=600), log=log)
    finally:
        staged.cleanup()
    results = json.loads(output.read_text())
    by_assignment = {a.name: [t for t in results["tests"] if t["name"].startswith(f"{a.name}/")]
                     for a in (first, second)}
    assert by_assignment[first.name] and all(t["status"] == "passed"
                                             for t in by_assignment[first.name])
    assert by_assignment[second.name] and all(
        t["status"] == "failed" and t["score"] == 0 and t["output"].splitlines()[-1] ==
        "not run: this submission's total time budget of 600 s ran out (all assignments "
        "together; is some of your code very slow or stuck?)" for t in by_assignment[second.name])
    assert not report.ungradable
    assert results["score"] == sum(t["max_score"] for t in by_assignment[first.name])


def test_grade_with_no_time_left_exits_0_with_every_test_failed(tmp_path):
    """`grader grade --total-budget 0`: the student's doing, never ungradable."""
    output = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "grader", "grade", "--reference", "--assignment", "moe",
         "--suite", "public", "--total-budget", "0", "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads(output.read_text())
    assert results["tests"] and results["score"] == 0
    assert all(t["status"] == "failed" and "total time budget of 0 s ran out" in t["output"]
               for t in results["tests"])
    assert results["extra_data"]["time_budgets"]["total_s"] == 0
