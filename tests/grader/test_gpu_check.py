"""The GPU check (benchmarks/gpu_check.sh), in its CPU smoke mode.

A lent GPU machine is rare and its minutes are few, so the script that runs there must
work the first time. Its --smoke run on this CPU goes through every step: the gpu-marked
tests are selected and skipped, grading gives the reference full marks and the stubs 0 on
one small task, each benchmark's own --smoke runs, and one report is written.
"""

import importlib.util
import os
import re
import subprocess
import sys

from grader.course import REPO


def report_steps():
    """The steps the report declares (benchmarks/gpu_report.py: STEPS)."""
    spec = importlib.util.spec_from_file_location("gpu_report", REPO / "benchmarks" /
                                                  "gpu_report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module.STEPS


def test_the_smoke_run_reports_every_step_passed_with_the_expected_scores_and_skips(tmp_path):
    """Exit 0; a section per step, each ok; the smoke disclaimer; reference full marks and
    stubs 0 on the graded task; the gpu-marked tests and GPU-only mutants skipped, none
    failed."""
    out = tmp_path / "report.md"
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--smoke", "--out", str(out),
         "--logs", str(tmp_path / "logs")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = out.read_text()
    assert report.startswith("# GPU check — SMOKE (CPU)"), report[:200]
    assert "no number in this report is a GPU measurement" in report

    sections = {}
    for number, step in enumerate(report_steps(), 1):
        heading = f"## {number}. {step.title}\n"
        assert heading in report, f"no section for step {step.id}"
        sections[step.id] = report.split(heading, 1)[1].split("\n## ", 1)[0]
        assert sections[step.id].startswith("\nStatus: **ok**"), (
            f"step {step.id}: {sections[step.id][:1500]}")

    for step_id, expected in (("grade_reference", "full marks"), ("grade_stubs", "0")):
        score = re.search(r"\*\*Score:\*\* (\S+) / (\S+) \(expected (.+?): (\w+)\)",
                          sections[step_id])
        assert score, f"{step_id}: no score in {sections[step_id][:1500]}"
        got, best, wanted, holds = score.groups()
        assert float(best) > 0 and wanted == expected and holds == "holds"
        assert float(got) == (float(best) if expected == "full marks" else 0.0)

    for step_id in ("gpu_tests", "gpu_mutants"):
        counts = re.search(r"\*\*Counts:\*\* (.*)", sections[step_id])
        assert counts, f"{step_id}: no counts in {sections[step_id][:1500]}"
        counts = {outcome: int(n) for outcome, n in re.findall(r"(\w+) (\d+)", counts.group(1))}
        assert counts["skipped"] > 0 and counts["failed"] == counts["errors"] == 0, counts
        assert counts["passed"] == 0, f"{step_id}: a gpu test ran on a CPU: {counts}"
