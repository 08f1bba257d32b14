"""A class drill: local student repositories through freeze, grade, shards, merge, regrade.

    python benchmarks/bench_class.py --students 60 --suite public          # the drill
    python benchmarks/bench_class.py --students 6 --assignments all --no-shards
                                                                           # throughput

The class is a mix of kinds, in this order and repeated: correct (the reference),
stub, buggy (the catalogue's mutants, in turn), hostile (tests/hostile cases), missing
(no repository), force-pushed (the recorded commit rewritten away), late (a correct
commit 30 h after the deadline: 2 days at 10%/day) and late with an extension (a
correct commit inside a 2-day extension: on time).

Checks, each printed as it passes (an AssertionError stops the drill):
- the freeze fails, listing the missing repositories, and records the others;
- the shards, merged, give the unsharded gradebook (all columns but graded_at);
- a one-student regrade changes only that student's rows;
- grading another assignment later adds its rows and keeps the first's.
Prints students per hour with --jobs K on this machine, and a projection for a
class of 300 x 6 assignments on 20 two-core runners.
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from grader.authoring.release import expected_stub  # noqa: E402
from grader.course import ASSIGNMENTS  # noqa: E402

KINDS = ["correct", "stub", "buggy", "hostile", "missing", "force-pushed", "late", "extension",
         "correct", "buggy"]
HOSTILE = ["crash_at_import", "hostile_text", "forge_results", "steal_reference", "lying_tensor",
           "os_exit_in_call"]
DEADLINE = "2026-10-02T23:59:00Z"
STABLE = ["student", "assignment", "score", "max_score", "raw_score", "days_late", "penalty",
          "status", "repository", "commit", "seen_at", "grader_commit", "review"]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=s", "-c", "user.email=s@x", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


def files_of(kind: str, index: int, assignments) -> dict[str, str]:
    """The student-owned files of a student of `kind` (the index picks a mutant)."""
    files = {}
    for a in assignments:
        path = f"assignments/{a.name}/{a.student_file}"
        if kind == "stub":
            files[path] = expected_stub(a)
        elif kind == "buggy":
            mutants = sorted((REPO / "tests" / "mutants" / a.name).glob("*.py"))
            files[path] = mutants[index % len(mutants)].read_text()
        elif kind == "hostile" and a.name == "quantization":
            files[path] = (REPO / "tests" / "hostile" /
                           f"{HOSTILE[index % len(HOSTILE)]}.py").read_text()
        else:
            files[path] = a.reference_path().read_text()
    return files


def commit(repo: Path, files: dict[str, str], message: str) -> None:
    for relative, text in files.items():
        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
        (repo / relative).write_text(text)
    git("add", ".", cwd=repo)
    git("commit", "-qm", message, cwd=repo)


def build_class(root: Path, count: int, assignments) -> list[tuple[str, str]]:
    """Repositories under root/repos; the roster and deadlines beside them."""
    students = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        name = f"s{i:03d}-{kind}"
        repo = root / "repos" / name
        if kind != "missing":
            repo.mkdir(parents=True)
            git("init", "-q", "-b", "main", cwd=repo)
            first = "stub" if kind in ("late", "extension") else kind
            commit(repo, files_of(first, i, assignments), "work")
        students.append((name, kind))
    with open(root / "roster.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "repository", "section", "canvas_id"])
        for i, (name, _) in enumerate(students):
            writer.writerow([name, root / "repos" / name, "AB"[i % 2], 1000 + i])
    every = lambda when: "".join(f'{a.name} = "{when}"\n' for a in assignments)  # noqa: E731
    extensions = "".join(f"[extensions.{name}]\n{every('2026-10-04T23:59:00Z')}"
                         for name, kind in students if kind == "extension")
    (root / "deadlines.toml").write_text(
        '[late]\npolicy = "penalty"\nper_day = 0.1\ncap = 0.5\nwindow_days = 5\n\n'
        f"[deadlines]\n{every(DEADLINE)}\n{extensions}")
    return students


def cli(*args: str, expect: int | None = 0) -> float:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "grader", *args], cwd=REPO,
                            capture_output=True, text=True)
    if expect is not None and result.returncode != expect:
        raise AssertionError(f"grader {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return time.monotonic() - started


def freeze_and_push(root: Path, students, assignments) -> None:
    roster = str(root / "roster.csv")
    cli("class", "freeze", roster, "--now", "2026-10-03T00:05:00Z", expect=1)
    for i, (name, kind) in enumerate(students):
        repo = root / "repos" / name
        if kind in ("late", "extension"):
            commit(repo, files_of("correct", i, assignments), "after the deadline")
    cli("class", "freeze", roster, "--now", "2026-10-04T06:00:00Z", expect=1)
    cli("class", "freeze", roster, "--now", "2026-10-05T00:05:00Z", expect=1)
    records = list(csv.DictReader(open(root / "freeze.csv")))
    missing = sum(1 for _, kind in students if kind == "missing")
    assert len({r["student"] for r in records}) == len(students) - missing
    assert len({r["assignment"] for r in records}) == len(assignments)
    print(f"freeze: {len(records)} records, {missing} missing repositories listed, exit 1")
    for name, kind in students:
        if kind == "force-pushed":
            repo = root / "repos" / name
            git("checkout", "-q", "--orphan", "rewritten", cwd=repo)
            git("commit", "-qm", "rewritten", cwd=repo)
            git("branch", "-D", "main", cwd=repo)
            git("branch", "-m", "main", cwd=repo)
            git("reflog", "expire", "--expire=now", "--all", cwd=repo)
            git("gc", "-q", "--prune=now", cwd=repo)


def gradebook(folder: Path, columns=STABLE) -> dict:
    return {(r["student"], r["assignment"]): [r[c] for c in columns or r]
            for r in csv.DictReader(open(folder / "gradebook.csv"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=60)
    parser.add_argument("--assignments", default="quantization",
                        help="comma-separated, or 'all'")
    parser.add_argument("--suite", choices=["public", "hidden", "all"], default="all")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--no-shards", action="store_true", help="only the throughput")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()
    names = list(ASSIGNMENTS) if args.assignments == "all" else args.assignments.split(",")
    assignments = [ASSIGNMENTS[n] for n in names]
    root = args.keep or Path(tempfile.mkdtemp(prefix="llmlab-drill-"))
    root.mkdir(parents=True, exist_ok=True)
    students = build_class(root, args.students, assignments)
    freeze_and_push(root, students, assignments)
    roster = str(root / "roster.csv")
    grade = ["class", "grade", roster, "--suite", args.suite, "--jobs", str(args.jobs)]
    for a in assignments:
        grade += ["--assignment", a.name]

    wall = cli(*grade, "--out", str(root / "whole"))
    per_student = wall / args.students
    rows = list(csv.DictReader(open(root / "whole" / "gradebook.csv")))
    statuses = sorted({r["status"].split(":")[0] for r in rows})
    print(f"unsharded: {args.students} students x {len(assignments)} assignments "
          f"({args.suite} tests), --jobs {args.jobs}: {wall:.0f} s, "
          f"{3600 / per_student:.0f} students/hour; statuses: {statuses}")

    if not args.no_shards:
        started = time.monotonic()
        for i in range(1, args.shards + 1):
            cli(*grade, "--out", str(root / f"shard{i}"), "--shard", f"{i}/{args.shards}")
        cli("class", "merge", *(str(root / f"shard{i}") for i in range(1, args.shards + 1)),
            "--out", str(root / "merged"))
        assert gradebook(root / "merged") == gradebook(root / "whole"), "merge != unsharded"
        print(f"{args.shards} shards + merge == unsharded ({time.monotonic() - started:.0f} s)")

        shutil.copytree(root / "whole", root / "regrade")
        before = gradebook(root / "regrade", columns=None)      # graded_at too
        chosen = students[1][0]
        time.sleep(1)                                 # a new graded_at, to the second
        cli(*grade, "--out", str(root / "regrade"), "--student", chosen)
        after = gradebook(root / "regrade", columns=None)
        changed = {k for k in after if after[k] != before[k]}
        assert set(after) == set(before) and {k[0] for k in changed} == {chosen}
        print(f"regrade of {chosen}: its {len(changed)} row(s) regraded, the other "
              f"{len(after) - len(changed)} byte-identical")

        other = next(a for a in ASSIGNMENTS.values() if a not in assignments)
        cli("class", "grade", roster, "--out", str(root / "regrade"), "--suite", "public",
            "--assignment", other.name, "--student", students[0][0], "--at-head")
        later = gradebook(root / "regrade", columns=None)
        assert all(later[k] == after[k] for k in after) and (students[0][0], other.name) in later
        print(f"{other.name} graded later for {students[0][0]}: "
              f"{len(after)} earlier rows kept, its row added")
        cli("class", "export", str(root / "whole"), "--format", "canvas", "--roster", roster,
            "--output", str(root / "canvas.csv"))

    runners, shards = 2, 20
    per_runner = math.ceil(300 / shards) * per_student * 6 / len(assignments)
    print(f"projection: 300 students x 6 assignments on {shards} shards of {runners}-core "
          f"runners: {per_runner / 60:.0f} min of grading per shard (from "
          f"{per_student:.0f} s per student for {len(assignments)} assignment(s) here), plus "
          f"the install")
    print(f"outputs in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
