"""The hidden suite proves itself: every catalogued wrong solution is caught.

tests/mutants/<assignment>/*.py are complete student files, each with one
realistic bug named in its docstring. Each is graded by the hidden suite
(grading profile, worker isolation, stopping at the first failing test); at
least one test must fail, and none may be ungradable.
"""

import shutil
from pathlib import Path

import pytest
import torch

from grader.course import ASSIGNMENTS, REPO
from grader.pipeline.run import run_suite

CATALOGUE = REPO / "tests" / "mutants"
MUTANTS = sorted(p for p in CATALOGUE.glob("*/*.py") if p.parent.name in ASSIGNMENTS)
MINIMUM_PER_ASSIGNMENT = 10


def grade_hidden(mutant: Path, tmp_path: Path) -> dict[str, str]:
    assignment = ASSIGNMENTS[mutant.parent.name]
    target = assignment.student_path(tmp_path)
    target.parent.mkdir(parents=True)
    shutil.copyfile(mutant, target)
    outcomes: dict[str, str] = {}

    def on_record(record):
        if record["event"] == "finished":
            outcomes[record["nodeid"]] = record["status"]

    run = run_suite(assignment, [assignment.hidden_tests()], submission=tmp_path,
                    isolate=True, profile="grading", on_record=on_record, budget_s=600,
                    extra_args=["-x"])
    assert run.exit_code in (0, 1), f"pytest could not run the suite:\n{run.output[-2000:]}"
    return outcomes


def gpu_only(mutant: Path) -> bool:
    """A bug only compiled kernels show (e.g. approximate division) says so in its docstring."""
    return "Caught on: GPU only" in mutant.read_text()


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_hidden_suite_catches_the_wrong_solution(mutant, tmp_path):
    """Grading the mutant fails at least one hidden test, and for a real reason."""
    if gpu_only(mutant) and not torch.cuda.is_available():
        pytest.skip("a GPU-only bug: the interpreter cannot show it; checked on GPU runners")
    outcomes = grade_hidden(mutant, tmp_path)
    assert "ungradable" not in outcomes.values(), f"ungradable while grading {mutant.name}"
    bug = (mutant.read_text().split('"""')[1].strip().splitlines() or ["?"])[0]
    assert "failed" in outcomes.values(), f"{mutant.name} survived the hidden suite: {bug}"


@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_catalogue_has_enough_documented_wrong_solutions(name):
    """At least ten wrong solutions per assignment that a CPU catches, each documented."""
    mutants = [p for p in MUTANTS if p.parent.name == name and not gpu_only(p)]
    assert len(mutants) >= MINIMUM_PER_ASSIGNMENT, f"{name}: only {len(mutants)} mutants"
    for mutant in mutants:
        text = mutant.read_text()
        assert text.startswith('"""') and len(text.split('"""')[1].strip()) > 10, \
            f"{mutant.name} must start with a docstring naming its bug"
