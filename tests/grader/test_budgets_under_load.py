"""Budgets that hold under load (grader/pipeline/timings.py): with every core kept busy by
processes the grader does not own, a correct submission keeps every point, and a
submission that computes far longer than the reference is still stopped, saying by what."""

import json
import os
import subprocess
import sys

import pytest

from grader.course import ASSIGNMENTS
from grader.isolation.errors import StudentCrash
from grader.isolation.proxies import StudentProxy
from grader.isolation.worker import WorkerConfig, WorkerProcess
from grader.pipeline import timings
from grader.pipeline.collect import stage_reference
from grader.pipeline.grade import GradeOptions, grade


@pytest.fixture
def busy_machine():
    """One CPU-burning process per core, and one more, at normal priority."""
    burners = [subprocess.Popen([sys.executable, "-c", "while 1: pass"])
               for _ in range(len(os.sched_getaffinity(0)) + 1)]
    try:
        yield burners
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def test_a_correct_submission_keeps_every_point_on_a_busy_machine(tmp_path, busy_machine):
    quantization = ASSIGNMENTS["quantization"]
    output = tmp_path / "results.json"
    staged = stage_reference([quantization])
    try:
        grade(staged, GradeOptions([quantization], suite="hidden", output=output), log=lambda m: 0)
    finally:
        staged.cleanup()
    results = json.loads(output.read_text())
    lost = [f"{t['name']}: {t['output'][-300:]}" for t in results["tests"]
            if t["score"] != t["max_score"]]
    assert not lost, "\n".join(lost)
    full = sum(t["max_score"] for t in results["tests"])
    assert results["score"] == pytest.approx(full, abs=0.01)


LOOPS = """
import time
def spin(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return seconds
"""


def test_code_that_computes_far_longer_is_stopped_on_a_busy_machine(tmp_path, busy_machine):
    """50 x a 0.2 s reference: stopped by its budget (the floor), named in the message."""
    path = tmp_path / "slow.py"
    path.write_text(LOOPS)
    worker = WorkerProcess(WorkerConfig(scratch_files={"slow.py": path}, module="slow",
                                        call_timeout_s=300))  # the budget stops it first
    try:
        budget = timings.budget_s(0.2)
        worker.new_test(budget_s=budget, over_budget=timings.over_budget(budget, 0.2))
        with pytest.raises(StudentCrash, match=r"stopped by the per-test time budget of 10 s "
                                               r"\(the floor every test gets"):
            StudentProxy(worker, "slow").spin(50 * 0.2)
        assert worker.test_used_s >= budget
    finally:
        worker.stop()
