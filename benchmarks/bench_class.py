"""A class drill: local student repositories through freeze, grade, shards, merge, regrade.

    python benchmarks/bench_class.py --students 60 --suite public          # the drill
    python benchmarks/bench_class.py --students 6 --assignments all --no-shards
                                                                           # throughput

The class is a mix of kinds, in this order and repeated: correct (the reference),
stub, buggy (the catalogue's mutants, in turn), hostile (tests/hostile cases), missing
(no repository), force-pushed (the recorded commit rewritten away), late (a correct
commit 30 h after the deadline: 2 days at 10%/day), late with an extension (a correct
commit inside a 2-day extension: on time), deleted (a repository that existed and is
deleted before the freeze: unreachable) and open-extension (an extension that has not
ended at --now: window open). The graded assignment has a second, not-due companion
(NOT_DUE_ASSIGNMENT, deadline after --now), so every student also has a "not due" row.
overrides.toml beside the roster grades the first force-pushed student at the commit
it force-pushed (staff accepted it), and adds points to the first stub. One student's
row is then left "ungradable" the way a run whose grading process died leaves it
(grading.ungradable, BrokenProcessPool), and the term is exported to Canvas.

Checks, each printed as it passes (an AssertionError stops the drill):
- the freeze exits 1 the first time it finds the missing and deleted repositories for
  a deadline and records them unreachable with the reason; later freezes of the same
  deadline exit 0 (--report-once);
- the shards, merged, give the unsharded gradebook (all columns but graded_at);
- a one-student regrade changes only that student's rows;
- grading another assignment later adds its rows and keeps the first's;
- every status kind the class was built for is in the gradebook (graded, nothing
  submitted or a real zero, not due, window open, unreachable, ungradable, overridden);
- the Canvas export has no 0 that is not the student's: every number is a row of
  record (graded / nothing submitted) with exactly its score, every other row is blank.
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
         "correct", "buggy", "deleted", "open-extension"]
HOSTILE = ["crash_at_import", "hostile_text", "forge_results", "steal_reference", "lying_tensor",
           "os_exit_in_call"]
DEADLINE = "2026-10-02T23:59:00Z"
EXTENSION_END = "2026-10-04T23:59:00Z"          # ended, late window included, by NOW
OPEN_EXTENSION_END = "2026-10-20T23:59:00Z"     # still open at NOW
NOT_DUE_ASSIGNMENT, NOT_DUE_DEADLINE = "moe", "2026-11-30T23:59:00Z"
NOW = "2026-10-08T00:05:00Z"                    # grade and export as of this time
CANVAS_ID0 = 5000                               # canvas.toml: assignment i -> 5000 + i
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
            first = "stub" if kind in ("late", "extension", "open-extension") else \
                "correct" if kind == "deleted" else kind
            commit(repo, files_of(first, i, assignments), "work")
        if kind == "deleted":                     # it existed; gone before the freeze
            shutil.rmtree(repo)
        students.append((name, kind))
    with open(root / "roster.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "repository", "section", "canvas_id"])
        for i, (name, _) in enumerate(students):
            writer.writerow([name, root / "repos" / name, "AB"[i % 2], 1000 + i])
    every = lambda when: "".join(f'{a.name} = "{when}"\n' for a in assignments)  # noqa: E731
    ends = {"extension": EXTENSION_END, "open-extension": OPEN_EXTENSION_END}
    extensions = "".join(f"[extensions.{name}]\n{every(ends[kind])}"
                         for name, kind in students if kind in ends)
    (root / "deadlines.toml").write_text(
        '[late]\npolicy = "penalty"\nper_day = 0.1\ncap = 0.5\nwindow_days = 2\n\n'
        f'[deadlines]\n{every(DEADLINE)}{NOT_DUE_ASSIGNMENT} = "{NOT_DUE_DEADLINE}"\n\n'
        f"{extensions}")
    (root / "canvas.toml").write_text("[assignments]\n" + "".join(
        f"{name} = {CANVAS_ID0 + i}\n" for i, name in enumerate(ASSIGNMENTS)))
    return students


def write_overrides(root: Path, students, assignment: str) -> dict[str, str]:
    """overrides.toml: the first force-pushed student graded at the commit it force-pushed,
    and 5 points for the first stub; {student: what} for the checks."""
    pushed = next(name for name, kind in students if kind == "force-pushed")
    stub = next(name for name, kind in students if kind == "stub")
    head = git("rev-parse", "HEAD", cwd=root / "repos" / pushed)
    (root / "overrides.toml").write_text(
        f'[[override]]\nstudent = "{pushed}"\nassignment = "{assignment}"\n'
        f'commit = "{head}"\nreason = "force-pushed after the deadline; staff accepted '
        f'the commit mailed on 10-05"\n\n'
        f'[[override]]\nstudent = "{stub}"\nassignment = "{assignment}"\n'
        f'adjust = 5.0\nreason = "regrade request 12: test 2.3 was wrong"\n')
    return {pushed: "commit", stub: "adjust"}


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
    freeze = ["class", "freeze", roster, "--report-once"]
    cli(*freeze, "--now", "2026-10-03T00:05:00Z", expect=1)     # first seen unreachable
    for i, (name, kind) in enumerate(students):
        repo = root / "repos" / name
        if kind in ("late", "extension", "open-extension"):
            commit(repo, files_of("correct", i, assignments), "after the deadline")
    for now in ("2026-10-04T06:00:00Z", "2026-10-05T00:05:00Z", NOW):
        cli(*freeze, "--now", now, expect=0)                     # reported once, not hourly
    records = list(csv.DictReader(open(root / "freeze.csv")))
    gone = {name for name, kind in students if kind in ("missing", "deleted")}
    unreachable = {r["student"] for r in records if r["kind"] == "unreachable"}
    assert unreachable == gone and all(r["note"] for r in records
                                       if r["kind"] == "unreachable"), unreachable ^ gone
    committed = {r["student"] for r in records if r["commit"]}
    still_open = {name for name, kind in students if kind == "open-extension"}
    assert committed == {name for name, _ in students} - gone - still_open
    assert NOT_DUE_ASSIGNMENT not in {r["assignment"] for r in records}
    print(f"freeze: {len(records)} records, {len(gone)} unreachable repositories recorded "
          f"with their reason, exit 1 once for the deadline, then 0 (--report-once)")
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


def leave_ungradable(folder: Path, student: str, assignment: str) -> None:
    """The row a run whose grading process died leaves (grading.py's pool handler)."""
    from concurrent.futures.process import BrokenProcessPool

    from grader.classroom.gradebook import read_gradebook, write_gradebook
    from grader.classroom.grading import ClassRun, ungradable
    from grader.classroom.roster import read_roster

    book = read_gradebook(folder)
    row = book[(student, assignment)]
    who = next(s for s in read_roster(folder.parent / "roster.csv") if s.name == student)
    run = ClassRun(assignments=[ASSIGNMENTS[assignment]], out=folder)
    (dead,) = ungradable(who, run, {assignment: row.max_score},
                         BrokenProcessPool("a process in the pool was terminated abruptly"))
    book[dead.key] = dead
    write_gradebook(folder, book)


def check_term(root: Path, students, overridden: dict[str, str]) -> None:
    """The term's gradebook holds every kind of row, and Canvas gets only the student's."""
    from grader.classroom.gradebook import of_record, read_gradebook

    term, roster = root / "term", str(root / "roster.csv")
    shutil.copytree(root / "whole", term)
    victim = next(name for name, kind in students if kind == "correct")
    graded_one = next(iter(a for (s, a) in read_gradebook(term) if s == victim
                           and a != NOT_DUE_ASSIGNMENT))
    leave_ungradable(term, victim, graded_one)
    book = read_gradebook(term)
    kinds = {name: kind for name, kind in students}

    wanted = {"not due": [k for k in book if k[1] == NOT_DUE_ASSIGNMENT],
              "not due|window open": [(n, graded_one) for n, k in kinds.items()
                                      if k == "open-extension"],   # its own deadline
              "unreachable": [(n, graded_one) for n, k in kinds.items()
                              if k in ("missing", "deleted")],
              "ungradable": [(victim, graded_one)]}
    for kind, keys in wanted.items():
        wrong = [(k, book[k].status) for k in keys
                 if not any(book[k].status.startswith(one) for one in kind.split("|"))]
        assert keys and not wrong, f"{kind}: {wrong[:3]}"
    for name, what in overridden.items():
        row = book[(name, graded_one)]
        assert row.override, f"{name}: override not applied: {row}"
        if what == "commit":
            assert of_record(row) and row.raw_score > 0, f"{name}: {row.status}"
        else:
            assert row.adjustment == 5.0 and row.score == min(row.max_score,
                                                              row.raw_score * (1 - row.penalty)
                                                              + 5.0), row
    assert any(of_record(row) and row.score == 0 for row in book.values()), "no real zero"
    counts = {}
    for row in book.values():
        counts[row.status.split(" (")[0].split(":")[0]] = \
            counts.get(row.status.split(" (")[0].split(":")[0], 0) + 1
    print(f"term: {len(book)} rows: {dict(sorted(counts.items()))}; "
          f"{len(overridden)} overridden")

    canvas = root / "canvas.csv"
    cli("class", "export", str(term), "--format", "canvas", "--roster", roster,
        "--canvas", str(root / "canvas.toml"), "--output", str(canvas))
    ids = {f"{CANVAS_ID0 + i}": name for i, name in enumerate(ASSIGNMENTS)}
    by_canvas_id = {row["canvas_id"]: row["student"]
                    for row in csv.DictReader(open(root / "roster.csv"))}
    lines = list(csv.DictReader(open(canvas)))
    assert lines[0]["Student"] == "Points Possible"
    columns = {}
    for column in lines[0]:
        found = [name for cid, name in ids.items() if column.endswith(f"({cid})")]
        if found:
            columns[column] = found[0]
    assert set(columns.values()) == {a for _, a in book}, columns
    zeros = blanks = 0
    for line in lines[1:]:
        student = by_canvas_id[line["ID"]]
        for column, assignment in columns.items():
            row, cell = book[(student, assignment)], line[column]
            if of_record(row):
                assert cell != "" and float(cell) == row.score, (student, assignment, cell, row)
                zeros += float(cell) == 0
            else:
                assert cell == "", f"{student} {assignment}: {cell!r} for {row.status!r}"
                blanks += 1
    assert len(lines) - 1 == len({s for s, _ in book})
    print(f"canvas: every number is the student's score of record ({zeros} real zeros, each "
          f"graded or nothing submitted); {blanks} rows not of record are blank")
    cli("class", "feedback", str(term))
    print(f"feedback pages: {len(list((term / 'feedback').rglob('*.md')))}")


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
    overridden = write_overrides(root, students, assignments[0].name)
    roster = str(root / "roster.csv")
    grade = ["class", "grade", roster, "--suite", args.suite, "--jobs", str(args.jobs),
             "--now", NOW]
    for a in assignments:
        grade += ["--assignment", a.name]
    if NOT_DUE_ASSIGNMENT not in names:                # not due: rows, and no grading cost
        grade += ["--assignment", NOT_DUE_ASSIGNMENT]

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

        other = next(a for a in ASSIGNMENTS.values()
                     if a not in assignments and a.name != NOT_DUE_ASSIGNMENT)
        cli("class", "grade", roster, "--out", str(root / "regrade"), "--suite", "public",
            "--assignment", other.name, "--student", students[0][0], "--at-head")
        later = gradebook(root / "regrade", columns=None)
        assert all(later[k] == after[k] for k in after) and (students[0][0], other.name) in later
        print(f"{other.name} graded later for {students[0][0]}: "
              f"{len(after)} earlier rows kept, its row added")

    check_term(root, students, overridden)

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
