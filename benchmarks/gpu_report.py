"""The GPU check's two Python ends (benchmarks/gpu_check.sh runs both):

    python benchmarks/gpu_report.py facts LOGS/facts.json [--require-gpu]
        step 1: the machine, printed and written as JSON (exit 1 with --require-gpu and
        no CUDA device, so a GPU check on a machine without one says so at the top)
    python benchmarks/gpu_report.py write LOGS OUT.md [--smoke] [--budget S] [--wall S]
        last: ONE markdown report from what the steps left in LOGS; exit 0 when every
        step passed, 1 otherwise

What a step leaves in LOGS: `<id>.log` (its stdout and stderr), a line in `steps.tsv`
(id, exit status or "skipped", seconds, time limit, command) and, for a grading step,
`<id>.json` (results.json in Gradescope's schema, grader/pipeline/report.py).
The steps, their titles and what each must show are declared once, in STEPS.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


@dataclass(frozen=True)
class Step:
    id: str      # the name of its log, JSON and steps.tsv row
    title: str   # its section heading in the report
    kind: str    # facts | pytest | grade | bench: how its log is read
    expect: str = ""  # grade: "full" (score = max) or "zero"; pytest: what the smoke shows


STEPS = [
    Step("facts", "Device facts", "facts"),
    Step("gpu_tests", "GPU-marked tests, hidden and public", "pytest"),
    Step("gpu_mutants", "GPU-only wrong solutions", "pytest"),
    Step("grade_reference", "Grading the reference (must be full marks)", "grade", "full"),
    Step("grade_stubs", "Grading the released stubs (must be 0)", "grade", "zero"),
    Step("bench_flash", "Benchmark: FlashAttention vs SDPA", "bench"),
    Step("bench_quantize", "Benchmark: int8 quantization, GB/s vs copy", "bench"),
    Step("bench_ddp", "Benchmark: DDP step time", "bench"),
    Step("bench_lora", "Benchmark: LoRA unmerged and merged vs nn.Linear", "bench"),
]
CONCURRENT = ("gpu_tests", "gpu_mutants", "grade_reference", "grade_stubs")
TIMED_OUT = {"124", "137"}  # timeout's status, and SIGKILL after its --kill-after
STOPPED = {"130", "143"}    # SIGINT, SIGTERM: gpu_check.sh was interrupted
LOG_LINES = 120             # the end of a log that the report shows


# ----------------------------------------------------------------------------- facts

def collect_facts() -> dict:
    """What the machine is: driver, GPUs, versions. Never fails for a missing piece."""
    facts: dict = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                   "python": platform.python_version(), "cpus": os.cpu_count(),
                   "cpu": cpu_name(), "nvidia_smi": nvidia_smi(),
                   "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET", ""),
                   "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)")}
    for package in ("pytest", "pytest-timeout", "hypothesis", "numpy"):
        try:
            facts[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            facts[package] = "not installed"
    try:
        import torch

        facts.update(torch=torch.__version__, torch_cuda=str(torch.version.cuda),
                     cuda_available=torch.cuda.is_available(),
                     gpu_count=torch.cuda.device_count())
        facts["gpus"] = [f"{p.name}, {p.total_memory / 2**30:.0f} GiB, sm_{p.major}{p.minor}, "
                         f"{p.multi_processor_count} SMs"
                         for p in map(torch.cuda.get_device_properties,
                                      range(facts["gpu_count"]))]
    except Exception as error:  # noqa: BLE001 - a fact too: torch does not import
        facts.update(torch=f"unavailable ({error})", cuda_available=False, gpu_count=0)
    try:
        import triton

        facts["triton"] = triton.__version__
    except Exception as error:  # noqa: BLE001
        facts["triton"] = f"unavailable ({error})"
    gpus = facts.get("gpus") or []
    facts["device"] = gpus[0].split(",")[0] if gpus else facts["cpu"]
    return facts


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvidia_smi() -> str:
    if shutil.which("nvidia-smi") is None:
        return "not present"
    query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
             "--format=csv,noheader"]
    try:
        done = subprocess.run(query, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"failed: {error}"
    return (done.stdout.strip() or done.stderr.strip()).replace("\n", "; ")


def facts_main(out: Path, require_gpu: bool) -> int:
    facts = collect_facts()
    out.write_text(json.dumps(facts, indent=1))
    for key, value in facts.items():
        print(f"{key}: {value}")
    if require_gpu and not facts["cuda_available"]:
        print("no CUDA device: this is not a GPU check (use --smoke on a CPU)")
        return 1
    return 0


# ----------------------------------------------------------------------------- reading logs

@dataclass
class Ran:
    """One steps.tsv row: how the step ended."""
    rc: str
    seconds: float
    limit: str
    command: str


def read_steps(logs: Path) -> dict[str, Ran]:
    ran = {}
    tsv = logs / "steps.tsv"
    for line in tsv.read_text().splitlines() if tsv.is_file() else []:
        step_id, rc, seconds, limit, command = (line.split("\t") + [""] * 5)[:5]
        ran[step_id] = Ran(rc, float(seconds or 0), limit, command)
    return ran


def read_log(logs: Path, step_id: str) -> str:
    path = logs / f"{step_id}.log"
    return path.read_text(errors="replace") if path.is_file() else ""


PYTEST_OUTCOMES = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed", "deselected")


def pytest_counts(log: str) -> tuple[dict[str, int], bool]:
    """The counts of pytest's final line, or, if it was killed before it, of its -v lines.
    Returns (counts, complete)."""
    for line in reversed(log.splitlines()):
        if re.search(r"\d+ (passed|failed|errors?|skipped|deselected)\b.* in [\d.]+s", line):
            counts = {o: 0 for o in PYTEST_OUTCOMES}
            for n, outcome in re.findall(r"(\d+) (\w+)", line):
                outcome = "errors" if outcome == "error" else outcome
                if outcome in counts:
                    counts[outcome] = int(n)
            return counts, True
    counts = {o: 0 for o in PYTEST_OUTCOMES}
    for outcome in re.findall(r"^\S+::\S+ (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b", log,
                              flags=re.M):
        key = {"ERROR": "errors", "XFAIL": "xfailed", "XPASS": "xpassed"}.get(
            outcome, outcome.lower())
        counts[key] += 1
    return counts, False


def pytest_section(log: str, smoke: bool) -> tuple[list[str], bool]:
    counts, complete = pytest_counts(log)
    shown = ", ".join(f"{o} {counts[o]}" for o in PYTEST_OUTCOMES)
    lines = [f"**Counts:** {shown}"
             + ("" if complete else " (pytest was stopped: counted from its progress lines)")]
    problems = [line for line in log.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    if problems:
        lines += ["", "Failing tests:", ""] + [f"- `{clean(p, 300)}`" for p in problems[:40]]
    reasons = [line for line in log.splitlines() if line.startswith("SKIPPED [")]
    if reasons:
        lines += ["", "Skipped, with pytest's reasons:", ""]
        lines += [f"- `{clean(r, 300)}`" for r in reasons[:20]]
    if smoke:
        wanted = "on a CPU, every one collected and skipped with its reason, none failed"
        ran = counts["skipped"] > 0 and counts["passed"] == 0
    else:
        wanted = "on a GPU, they run (some pass), none failed"
        ran = counts["passed"] > 0
    holds = complete and ran and counts["failed"] == 0 and counts["errors"] == 0
    lines += ["", f"**Expected:** {wanted}: {'holds' if holds else 'DOES NOT HOLD'}."]
    return lines, holds


def facts_section(logs: Path) -> list[str]:
    try:
        facts = json.loads((logs / "facts.json").read_text())
    except (OSError, ValueError):
        return []
    rows = [f"| {key} | {clean(str(value), 300).replace('|', '/')} |"
            for key, value in facts.items()]
    return ["| fact | value |", "|---|---|"] + rows


def grade_section(logs: Path, step: Step) -> tuple[list[str], bool]:
    path = logs / f"{step.id}.json"
    try:
        results = json.loads(path.read_text())
        score, max_score = float(results["score"]), float(results["max_score"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [f"**Score:** none: no readable results file ({error})."], False
    tests = results.get("tests", [])
    holds = max_score > 0 and math.isclose(score, max_score if step.expect == "full" else 0,
                                           abs_tol=1e-6)
    wanted = "full marks" if step.expect == "full" else "0"
    lines = [f"**Score:** {round(score, 2):g} / {round(max_score, 2):g} (expected {wanted}: "
             f"{'holds' if holds else 'DOES NOT HOLD'}), {len(tests)} tests", ""]
    lines += ["| task | tests | points |", "|---|---:|---:|"]
    for task, (n, got, best) in per_task(tests).items():
        lines.append(f"| {task} | {n} | {round(got, 2):g} / {round(best, 2):g} |")
    if step.expect == "full":
        wrong = [t for t in tests if t.get("status") != "passed"
                 or t.get("score", 0) != t.get("max_score", 0)]
        label = "Failing tests"
    else:
        wrong = [t for t in tests if t.get("score", 0) > 0]
        label = "Tests that gave the stubs points"
    if wrong:
        budget = sum("time budget" in t.get("output", "") for t in wrong)
        lines += ["", f"{label} ({len(wrong)}; {budget} of them ran out of time budget):", ""]
        lines += [f"- `{clean(t.get('name', '?'), 200)}`: "
                  f"{clean(first_line(t.get('output', '')), 200)}" for t in wrong[:40]]
    extra = results.get("extra_data", {})
    lines += ["", "Graded on: " + clean(json.dumps(
        {k: extra.get(k) for k in ("device", "triton_interpret", "torch", "triton")}), 300)]
    return lines, holds


def per_task(tests: list[dict]) -> dict[str, tuple[int, float, float]]:
    """task number -> (tests, points earned, points possible), in the order met."""
    tasks: dict[str, tuple[int, float, float]] = {}
    for test in tests:
        n, got, best = tasks.get(test.get("number") or "-", (0, 0.0, 0.0))
        tasks[test.get("number") or "-"] = (n + 1, got + test.get("score", 0),
                                            best + test.get("max_score", 0))
    return tasks


def first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def clean(text: str, limit: int) -> str:
    """One printable line for a markdown list item inside backticks or a table."""
    text = "".join(c if c.isprintable() else " " for c in text).replace("`", "'")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def fenced(text: str) -> list[str]:
    """`text` as a code block whose fence is longer than any run of backticks inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, text.rstrip("\n"), fence]


def tail(text: str, n: int = LOG_LINES) -> str:
    lines = text.splitlines()
    if len(lines) <= n:
        return text
    return f"[... {len(lines) - n} earlier lines in the log ...]\n" + "\n".join(lines[-n:])


# ----------------------------------------------------------------------------- the report

def status_of(ran: Ran | None, expectation_holds: bool) -> tuple[str, bool]:
    if ran is None:
        return "not run", False
    if ran.rc == "skipped":
        return "skipped: out of time", False
    if ran.rc in TIMED_OUT:
        return f"TIMED OUT (limit {ran.limit} s)", False
    if ran.rc in STOPPED:
        return f"STOPPED (exit {ran.rc}: the check was interrupted)", False
    if ran.rc != "0":
        return f"FAILED (exit {ran.rc})", False
    if not expectation_holds:
        return "FAILED (expectation)", False
    return "ok", True


def write_report(logs: Path, out: Path, smoke: bool, budget: str, wall: str) -> bool:
    ran = read_steps(logs)
    try:
        facts = json.loads((logs / "facts.json").read_text())
    except (OSError, ValueError):
        facts = {}
    version = lambda key: str(facts.get(key, "?")).split(" (")[0]
    date = facts.get("date") or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    device = facts.get("device", "unknown device")
    if smoke:
        device = f"SMOKE (CPU): {device}"
    lines = [f"# GPU check — {device}, {date}, torch {version('torch')}, "
             f"triton {version('triton')}", ""]
    if smoke:
        lines += ["**Smoke run on a CPU: no number in this report is a GPU measurement.** It "
                  "proves the wiring: every step runs and is read back, the gpu-marked tests "
                  "are selected (and skipped), grading gives the reference full marks and the "
                  "stubs 0 on one small task, each benchmark's --smoke runs.", ""]
    sections, table, all_ok = [], [], True
    for number, step in enumerate(STEPS, 1):
        log, step_ran = read_log(logs, step.id), ran.get(step.id)
        body, holds = read_body(logs, step, log, smoke)
        status, ok = status_of(step_ran, holds)
        all_ok &= ok
        seconds = f"{step_ran.seconds:.1f}" if step_ran else "–"
        limit = step_ran.limit if step_ran else "–"
        table.append(f"| {number} | {step.title} | {status} | {seconds} | {limit} |")
        sections += [f"## {number}. {step.title}", "",
                     f"Status: **{status}**, {seconds} s. Command: "
                     f"`{clean(step_ran.command if step_ran else '(not run)', 400)}`", ""]
        sections += body + [""]
    lines += ["| # | step | status | seconds | limit (s) |", "|---:|---|---|---:|---:|"] + table
    concurrent = ", ".join(str(i) for i, s in enumerate(STEPS, 1) if s.id in CONCURRENT)
    lines += ["", f"Wall time {wall} s of a {budget} s budget. Steps {concurrent} ran at the "
                  "same time (correctness only; their seconds overlap); the benchmarks ran "
                  "one at a time, with nothing else on the machine.", "",
              "Numbers worth keeping go into `benchmarks/RESULTS.md`, under a heading that "
              "names the device, torch and triton versions and the date (as the H100 "
              "quantization table there does).", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines + sections).rstrip("\n") + "\n")
    return all_ok


def read_body(logs: Path, step: Step, log: str, smoke: bool) -> tuple[list[str], bool]:
    """The step's section (without its heading) and whether what it must show holds."""
    if step.kind == "facts":
        return facts_section(logs) or fenced(tail(log) or "(no output)"), True
    if step.kind == "pytest":
        body, holds = pytest_section(log, smoke)
        return body + ["", "End of the log:", ""] + fenced(tail(log, 25)), holds
    if step.kind == "grade":
        body, holds = grade_section(logs, step)
        return body + ["", "End of the log:", ""] + fenced(tail(log, 25)), holds
    return fenced(tail(log) or "(no output)"), True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    facts = commands.add_parser("facts", help="the machine, as JSON")
    facts.add_argument("out", type=Path)
    facts.add_argument("--require-gpu", action="store_true")
    write = commands.add_parser("write", help="the markdown report")
    write.add_argument("logs", type=Path)
    write.add_argument("out", type=Path)
    write.add_argument("--smoke", action="store_true")
    write.add_argument("--budget", default="?", help="seconds the steps were allowed")
    write.add_argument("--wall", default="?", help="seconds the steps took")
    args = parser.parse_args(argv)
    if args.command == "facts":
        return facts_main(args.out, args.require_gpu)
    return 0 if write_report(args.logs, args.out, args.smoke, args.budget, args.wall) else 1


if __name__ == "__main__":
    sys.exit(main())
