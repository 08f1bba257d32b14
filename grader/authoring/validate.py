"""`grader validate`: the instructor's check that the course is consistent.

Quick checks (seconds; `--quick` stops after them):
1. every assignment folder has a manifest, and every manifest its folders
   (reference, hidden tests, public tests, the files it names);
2. the released stubs are exactly what nbgrader makes from reference/, and import;
   the concept notebooks agree with their manifests and give nothing away
   (grader/authoring/notebooks.py);
3. every test is filed under a task its manifest declares, and every task has tests;
4. every generated table (README, student README, handout points) is current;
5. every test has the reference's time in tests/<name>/timings.json (`grader timings`),
   from which its time budget is scaled.
Full checks, after those:
6. the reference notebooks run in Jupyter, hidden tests and plot included;
7. the reference solutions score full marks on every suite, notebooks included;
8. the released stubs and blank notebooks score 0 (not a crash, not ungradable).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from grader.authoring import notebooks
from grader.authoring.docs import collected_tests, expected_blocks, stale_blocks
from grader.authoring.release import out_of_sync
from grader.course import MANIFEST, REPO, Assignment
from grader.pipeline import timings
from grader.pipeline.collect import stage_reference, stage_submission
from grader.pipeline.grade import GradeOptions, grade


def validate(assignments: list[Assignment], quick: bool = False, log=print,
             root: Path = REPO) -> list[str]:
    """Return the problems found (empty: valid)."""
    problems = manifest_problems(assignments, root)
    if problems:
        return problems  # the later checks read the manifests
    problems += [f"{name}: assignments/ stub is out of sync with reference/ "
                 "(run `grader stubs`)" for name in out_of_sync(assignments)]
    problems += [f"{name}: assignments/ notebook is out of sync with reference/ "
                 "(run `grader stubs`)" for name in notebooks.out_of_sync(assignments, root)]
    problems += notebooks.problems(assignments, root)
    problems += import_problems(assignments, root)
    records = collected_tests(assignments, root)
    problems += task_problems(assignments, records)
    problems += stale_blocks(expected_blocks(assignments, root, records), root)
    problems += timings.problems(assignments, records, root)
    if quick or problems:
        return problems
    problems += notebooks.execution_problems(assignments, log)
    return problems + grading_problems(assignments, log)


def manifest_problems(assignments: list[Assignment], root: Path = REPO) -> list[str]:
    """Folders without a manifest, manifests without their folders or files."""
    problems = []
    declared = {a.name for a in assignments}
    for folder in ("assignments", "reference", "tests/mutants"):
        for path in sorted((root / folder).glob("*/")):
            if path.is_dir() and path.name not in declared and not path.name.startswith(("_",
                                                                                         ".")):
                if not (root / "assignments" / path.name / MANIFEST).is_file():
                    problems.append(f"{folder}/{path.name}: no assignments/{path.name}/"
                                    f"{MANIFEST} declares it")
    for a in assignments:
        required = [a.reference_path(root), a.student_path(root), a.handout(root),
                    a.public_tests(root), a.hidden_tests(root), *a.provided_files(root)]
        if a.concepts:
            required += [a.reference_notebook(root), a.notebook_path(root)]
        problems += [f"{a.name}: {p.relative_to(root)} is missing" for p in required
                     if not p.exists()]
        folder = root / "assignments" / a.name
        extra = sorted(p.name for p in folder.glob("*.py")
                       if p.name != a.student_file and p.name not in a.provided)
        problems += [f"{a.name}: assignments/{a.name}/{name} is not in the manifest's "
                     "provided_files (it would be released but never given to the worker)"
                     for name in extra]
        ids = [t.id for t in a.tasks]
        if len(set(ids)) != len(ids):
            problems.append(f"{a.name}: task ids repeat: {ids}")
    return problems


def import_problems(assignments: list[Assignment], root: Path = REPO) -> list[str]:
    """Every stub imports cleanly, beside its provided files, in one fresh interpreter."""
    stubs = [(a.name, str(a.student_path(root))) for a in assignments]
    code = f"""
import importlib.util, json, sys, traceback
failures = {{}}
for name, path in {stubs!r}:
    folder = path.rsplit("/", 1)[0]
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location("stub_" + name, path)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except BaseException:
        failures[name] = traceback.format_exc()[-800:]
    sys.path.remove(folder)
print(json.dumps(failures))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    try:
        failures = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return [f"importing the stubs failed:\n{result.stderr[-800:]}"]
    return [f"{name}: the stub does not import:\n{error}" for name, error in failures.items()]


def task_problems(assignments: list[Assignment], records: list[dict]) -> list[str]:
    """Each test's task is declared by its manifest; each declared task has a test."""
    problems = []
    by_name = {a.name: a for a in assignments}
    seen: set[tuple[str, str]] = set()
    for record in records:
        assignment = by_name.get(record["assignment"])
        if assignment is None:
            continue
        task = record["task"]
        if task is None:
            problems.append(f"{record['nodeid']}: no @pytest.mark.task(...) marker")
        elif task not in assignment.titles:
            problems.append(f"{record['nodeid']}: task {task} is not in "
                            f"assignments/{assignment.name}/{MANIFEST}")
        else:
            seen.add((assignment.name, task))
    for a in assignments:
        problems += [f"{a.name}: task {t.id} has no tests" for t in a.tasks
                     if (a.name, t.id) not in seen]
    return sorted(set(problems))


def grading_problems(assignments: list[Assignment], log=print) -> list[str]:
    """The reference scores full marks; the released stubs score 0 without crashing."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        staged = stage_reference(assignments)
        report = grade(staged, GradeOptions(assignments, output=Path(tmp) / "ref.json"), log)
        staged.cleanup()
        if report.score != report.max_score or report.ungradable:
            failing = [t.name for t in report.graded() if t.status != "passed"]
            problems.append(f"reference scores {report.score:g}/{report.max_score:g}; "
                            f"failing: {', '.join(failing[:10])}")
        staged = stage_submission(REPO, assignments)
        report = grade(staged, GradeOptions(assignments, output=Path(tmp) / "stub.json"), log)
        staged.cleanup()
        if report.score != 0 or report.ungradable:
            passing = [t.name for t in report.graded() if t.status == "passed"]
            problems.append(f"released stubs score {report.score:g} (should be 0); passing: "
                            f"{', '.join(passing[:10])}; ungradable: {len(report.ungradable)}")
    return problems
