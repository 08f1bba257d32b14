"""Generated documentation: every table that lists assignments, tasks or points.

Tables live between markers in markdown files,

    <!-- BEGIN generated: points -->
    ...
    <!-- END generated: points -->

and are written by `grader docs` from the manifests (grader/course.py) and the
tests' own markers (`points`, `task`, `gpu`), read by collecting the suites.
`grader validate` fails when a written table differs from what would be
generated, so a handout's points can never go stale.

Blocks:
    assignments   the course table of README.md and the student README
    points        a handout's points table (assignments/<name>/README.md)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from grader.course import REPO, Assignment, discover

STUDENT_README = REPO / "grader" / "templates" / "STUDENT_README.md"
BLOCK = re.compile(r"(<!-- BEGIN generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
                   r"(<!-- END generated: (?P=name) -->)", re.S)


# ------------------------------------------------------------ what the tests say --
@dataclass
class TaskCount:
    """A task's tests, counted as test functions (parametrized cases count once)."""
    public: set[str] = field(default_factory=set)
    hidden: set[str] = field(default_factory=set)
    unscored: set[str] = field(default_factory=set)   # 0 points: GPU-only or peer checks
    unscored_public: set[str] = field(default_factory=set)   # 0 points: a notebook's checks
    points: float = 0.0
    gpu_points: float = 0.0                           # of which only GPU runners grade


def collected_tests(assignments: list[Assignment], root: Path = REPO) -> list[dict]:
    """The plugin's "collected" record of every public and hidden test (pytest
    --collect-only in a subprocess: collection imports the test modules)."""
    paths = [str(p) for a in assignments for p in (a.public_tests(root), a.hidden_tests(root))
             if p.is_dir()]
    with tempfile.TemporaryDirectory(prefix="llmlab-collect-") as tmp:
        log = Path(tmp) / "log.jsonl"
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
             "--reference", "--results-log", str(log), *paths],
            cwd=root, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError("collecting the tests failed:\n"
                               f"{(result.stdout + result.stderr)[-3000:]}")
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def count_by_task(records: list[dict]) -> dict[tuple[str, str | None], TaskCount]:
    counts: dict[tuple[str, str | None], TaskCount] = defaultdict(TaskCount)
    for record in records:
        count = counts[(record["assignment"], record["task"])]
        # a test function counts once, whatever its cases; a notebook's questions each
        function = record["nodeid"] if "/concepts/" in record["name"] else \
            record["nodeid"].split("[")[0]
        if record["points"] == 0:
            (count.unscored_public if record["suite"] == "public" else count.unscored
             ).add(function)
        else:
            getattr(count, record["suite"]).add(function)
        count.points += record["points"]
        if record["gpu"]:
            count.gpu_points += record["points"]
    return counts


# ------------------------------------------------------------------- the tables --
def points_table(assignment: Assignment, counts) -> str:
    rows = ["| Task | What | Public tests | Hidden tests | Points |",
            "|------|------|------:|------:|-------:|"]
    total = gpu_only = 0.0
    for task in assignment.tasks:
        count = counts.get((assignment.name, task.id), TaskCount())
        public, hidden = str(len(count.public)), str(len(count.hidden))
        if count.unscored_public:
            public += f" (+{len(count.unscored_public)} at 0 points)"
        if count.unscored:
            hidden += f" (+{len(count.unscored)} at 0 points)"
        rows.append(f"| {task.id} | {task.handout} | {public} | {hidden} | "
                    f"{_number(count.points)} |")
        total += count.points
        gpu_only += count.gpu_points
    on_cpu = (f" ({_number(total - gpu_only)} where no GPU runs the GPU-only tests)"
              if gpu_only else "")
    note = (f"Points are what the grader gives, public and hidden tests together: "
            f"{_number(total)} in all{on_cpu}. A test's points are shared by its parametrized "
            "cases; each notebook question counts as a test. Tests at 0 points check without "
            "grading: the notebook's own checks of each answer's type (public), GPU-only "
            "correctness tests (skipped on a CPU) and peer checks of the course's own "
            "reference against another library.")
    return "\n".join(rows) + "\n\n" + textwrap.fill(note, width=88, break_on_hyphens=False) + "\n"


def assignments_table(assignments: list[Assignment], student: bool) -> str:
    if student:
        rows = ["| # | assignment | your file |", "|---|---|---|"]
        rows += [f"| {a.number} | `{a.name}` | `assignments/{a.name}/{a.student_file}` |"
                 for a in assignments]
    else:
        rows = ["| # | assignment | student file |", "|---|---|---|"]
        rows += [f"| {a.number} | `{a.name}` — {a.title} | "
                 f"`assignments/{a.name}/{a.student_file}` |" for a in assignments]
    return "\n".join(rows) + "\n"


def _number(points: float) -> str:
    return f"{points:g}" if abs(points - round(points)) > 1e-9 else str(round(points))


# ------------------------------------------------------------ files and blocks --
def expected_blocks(assignments: list[Assignment], root: Path = REPO,
                    records: list[dict] | None = None) -> dict[Path, dict[str, str]]:
    """file -> block name -> generated body: the course tables list every assignment
    under `root`; handouts are those of `assignments`."""
    if records is None:
        records = collected_tests(assignments, root)
    counts = count_by_task(records)
    course = list(discover(root).values())
    files: dict[Path, dict[str, str]] = {
        root / "README.md": {"assignments": assignments_table(course, student=False)},
        root / STUDENT_README.relative_to(REPO): {
            "assignments": assignments_table(course, student=True)},
    }
    for a in assignments:
        files[a.handout(root)] = {"points": points_table(a, counts)}
    return files


def stale_blocks(expected: dict[Path, dict[str, str]], root: Path = REPO) -> list[str]:
    """What differs from the generated text, one line each (empty: all current)."""
    problems = []
    for path, blocks in expected.items():
        where = path.relative_to(root)
        text = path.read_text() if path.is_file() else ""
        found = {m["name"]: m["body"] for m in BLOCK.finditer(text)}
        for name, body in blocks.items():
            if name not in found:
                problems.append(f"{where}: no generated `{name}` block (run `grader docs`)")
            elif found[name] != body:
                problems.append(f"{where}: the `{name}` table is stale (run `grader docs`)")
    return problems


def write_blocks(expected: dict[Path, dict[str, str]]) -> list[Path]:
    """Rewrite each existing block with its generated body; return the files changed."""
    changed = []
    for path, blocks in expected.items():
        if not path.is_file():
            continue
        text = path.read_text()
        new = BLOCK.sub(lambda m, blocks=blocks: m.group(1) + blocks.get(m["name"], m["body"])
                        + m.group(4), text)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed
