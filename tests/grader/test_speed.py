"""Speed as a graded property (grader/kit/speed.py): the share of points a ratio earns,
fresh secret seeds for every call, the physical floor, partial credit from the test to
results.json, the speed tests end to end in smoke mode (tiny shapes on this CPU: the
machinery, not a measurement), and the catalogue of speed attacks
(tests/grader/speed_hostile/, README there), each of which gets no speed points."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.course import REPO, get
from grader.kit import speed
from grader.pipeline.report import Report

SPEED_HOSTILE = REPO / "tests" / "grader" / "speed_hostile"


@pytest.mark.parametrize("ratio, share", [(2.0, 1.0), (0.5, 1.0), (0.3, 0.5), (0.1, 0.0),
                                          (0.09, 0.0), (0.0, 0.0)])
def test_full_points_from_half_the_reference_speed_none_below_a_tenth(ratio, share):
    assert speed.fraction(ratio) == pytest.approx(share)


def test_the_median_of_interleaved_runs_less_the_baseline_decides_and_calls_alternate():
    calls = []

    def run(who, seconds):
        def call(request):
            calls.append(who)
            time.sleep(seconds)
            return who
        return call

    timings, replies = speed.compare(run("s", 0.025), run("r", 0.01), run("b", 0.005),
                                     calls=2, repeats=3)
    assert calls == ["s", "r", "b"] * 4      # one untimed round, then three timed ones
    assert replies == [("s", "r")] * 4       # every round's replies, the warm-up's too
    assert 0.1 < timings.ratio < 0.5         # (10 - 5) / (25 - 5) = 0.25, with room


def test_every_call_gets_a_fresh_secret_seed_and_every_run_the_same_request():
    """No seed is drawn twice (calls, rounds, digest weights); the student, the reference
    and the baseline get the same request in a round; the warm-up's looks like the rest."""
    seen = {"s": [], "r": [], "b": []}

    def run(who):
        return lambda request: seen[who].append(request)

    speed.compare(run("s"), run("r"), run("b"), calls=20, repeats=speed.REPEATS)
    assert seen["s"] == seen["r"] == seen["b"]
    assert len(seen["s"]) == speed.REPEATS + 1
    assert {type(r) for r in seen["s"]} == {speed.Request}
    assert {len(r.seeds) for r in seen["s"]} == {20}
    drawn = [seed for r in seen["s"] for seed in (*r.seeds, r.weight_seed)]
    assert len(set(drawn)) == len(drawn) == 21 * (speed.REPEATS + 1)


def test_a_second_grading_draws_other_seeds():
    """The seeds come from the operating system's entropy, not from a fixed seed."""
    first, second = speed.Seeds().request(8), speed.Seeds().request(8)
    assert not set(first.seeds) & set(second.seeds)


@pytest.mark.parametrize("name, peak", [("NVIDIA H100 80GB HBM3", "H100"),
                                        ("NVIDIA H100 PCIe", "H100"), ("NVIDIA H200", "H200"),
                                        ("NVIDIA B200", "GPU"), ("cpu", "cpu")])
def test_each_device_has_its_peaks(name, peak):
    assert speed.peak_of(name) is speed.PEAKS[peak]


def test_the_floor_is_bytes_over_bandwidth_or_flops_over_peak():
    h100 = speed.PEAKS["H100"]
    # quantize_rowwise [8192, 8192] fp16: 192 MiB moved, the L2 may serve 2 x 50 MB
    assert speed.floor_s(h100, 3 * 8192**2, 0) == pytest.approx(26e-6, rel=0.02)
    # flash_attention_forward, non-causal fp16 [4, 16, 2048, 64]: 68.7 GFLOP
    assert speed.floor_s(h100, 0, 4 * 64 * 2048**2 * 64) == pytest.approx(69e-6, rel=0.02)


def test_a_time_below_the_physical_floor_is_suspicious_not_fast():
    """A request 10x faster than the reference's but under the floor earns nothing and
    says so; the same times above the floor earn full points."""
    timings = speed.Comparison(student_s=[0.0011] * 5, reference_s=[0.002] * 5,
                               baseline_s=[0.001] * 5)          # nets: 0.1 ms and 1 ms
    share, message = speed.verdict(timings, floor=0.0005, what="k", device="NVIDIA H100")
    assert share == 0
    assert "below the physical floor" in message and "flagged for review" in message
    assert speed.verdict(timings, floor=0.00005, what="k", device="NVIDIA H100")[0] == 1


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


def grade_speed(root: Path, out: Path) -> dict:
    command = [sys.executable, "-m", "grader", "grade", "--submission", str(root),
               "--assignment", "quantization", "--suite", "hidden", "--task", "1.5",
               "--output", str(out)]
    subprocess.run(command, cwd=REPO, capture_output=True, timeout=600,
                   env={**os.environ, speed.SMOKE_ENV: "1"})
    return next(t for t in json.loads(out.read_text())["tests"] if "throughput" in t["name"])


def test_the_reference_earns_the_speed_points_end_to_end_in_smoke_mode(tmp_path):
    """Smoke mode (tiny shapes, CPU), graded as a submission: the reference's kernel earns
    the speed points and is told its ratio (slow, stale and stub kernels: the catalogue
    below)."""
    quantization = get("quantization")
    quantization.student_path(tmp_path).parent.mkdir(parents=True)
    quantization.student_path(tmp_path).write_bytes(quantization.reference_path().read_bytes())
    full = grade_speed(tmp_path, tmp_path / "r.json")
    assert full["score"] == full["max_score"] > 0, full["output"]
    assert "x the reference's throughput" in full["output"]


def expected(case: Path) -> str:
    return re.search(r"^Expect: (.*)$", case.read_text(), re.MULTILINE).group(1)


@pytest.mark.parametrize("name", ["quantization", "flash_attention"])
def test_every_catalogued_speed_attack_gets_no_speed_points(name, tmp_path):
    """Each attack in tests/grader/speed_hostile/ (the reference's kernel behind a trick
    that earned speed points before fresh seeds and per-call checks), graded in fresh
    workers in smoke mode, fails the speed test (0 points) saying what its Expect: says."""
    assignment = get(name)
    cases = sorted(SPEED_HOSTILE.glob(f"{name}_*.py"))
    folder = tmp_path / "cases"
    folder.mkdir()
    for case in cases:  # complete student files: the reference, then the trick
        (folder / case.name).write_text(
            f"{assignment.reference_path().read_text()}\n\n{case.read_text()}")
    if name == "quantization":  # and a control: the stub earns nothing either
        (folder / "stub.py").write_bytes(assignment.student_path(REPO).read_bytes())
    out = tmp_path / "catalogue.json"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "grader.authoring.catalogue", "--isolate", "--mutants", str(folder),
         "--catalogue-out", str(out), str(assignment.hidden_tests() / "test_speed.py")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, speed.SMOKE_ENV: "1"})
    assert out.is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    results = {Path(r["mutant"]).name: r for r in json.loads(out.read_text())}
    assert len(cases) >= 2 and len(results) == len(list(folder.glob("*.py")))
    for case in cases:
        result = results[case.name]
        assert result["status"] == "failed", f"{case.name} earned speed points: {result}"
        assert re.search(expected(case), result["message"]), (case.name, result["message"])
    if name == "quantization":
        assert "NotImplementedError" in results["stub.py"]["message"], results["stub.py"]
