"""The hidden suite proves itself: every catalogued wrong solution is caught.

tests/mutants/<assignment>/*.py are complete student files, each with one
realistic bug named in its docstring. One pytest session per assignment grades
them all (grader/authoring/catalogue.py): the hidden suite, the grading
profile, fresh worker processes for each mutant, stopping at its first failing
test. Every mutant must fail a test, and none may be ungradable.
"""

import json
from pathlib import Path

import pytest
import torch

from grader.course import ASSIGNMENTS, REPO, Assignment
from grader.pipeline.run import run_suite

CATALOGUE = REPO / "tests" / "mutants"
MUTANTS = sorted(p for p in CATALOGUE.glob("*/*.py") if p.parent.name in ASSIGNMENTS)
MINIMUM_PER_ASSIGNMENT = 10
BUDGET_S = 1800  # one assignment's whole catalogue; the slowest takes a few minutes
#: Each catalogue's duration on 2 cores (seconds), for the order of the tests only.
MEASURED_S = {"quantization": 125, "flash_attention": 95, "ddp": 90, "lora": 60,
              "kv_cache": 45, "moe": 40}


def gpu_only(mutant: Path) -> bool:
    """A bug only compiled kernels show (e.g. approximate division) says so in its docstring."""
    return "Caught on: GPU only" in mutant.read_text()


def bug(mutant: Path) -> str:
    """The first line of the mutant's docstring: what is wrong with it."""
    return (mutant.read_text().split('"""')[1].strip().splitlines() or ["?"])[0]


def slowest_first(names) -> list[str]:
    """The order the catalogues are handed to pytest-xdist's workers (tests/conftest.py):
    the longest first, so that no long one starts last. An unmeasured one counts as longest."""
    return sorted(names, key=lambda name: (-MEASURED_S.get(name, float("inf")), name))


def grade_catalogue(assignment: Assignment, mutants: list[Path], tmp_path: Path) -> list[dict]:
    """Grade `mutants` one after another in one pytest session; one result per mutant."""
    out = tmp_path / "catalogue.json"
    options = ["-p", "grader.authoring.catalogue", "--catalogue-out", str(out)]
    for mutant in mutants:
        options += ["--mutants", str(mutant)]
    run = run_suite(assignment, [assignment.hidden_tests()], submission=None, isolate=True,
                    profile="grading", on_record=lambda record: None, budget_s=BUDGET_S,
                    extra_args=options)
    results = json.loads(out.read_text()) if out.is_file() else []
    assert run.exit_code == 0 and len(results) == len(mutants), (
        f"the catalogue run stopped (exit code {run.exit_code}, None: out of time) after "
        f"{len(results)} of {len(mutants)} mutants:\n{run.output[-3000:]}")
    return results


def not_caught(result: dict) -> str:
    """One line of the failure message: the mutant, what happened, its bug."""
    mutant = Path(result["mutant"])
    if result["status"] == "ungradable":
        what = f"ungradable in {result['caught_by']}: {result['message']}"
    else:
        what = "survived the hidden suite"
    return f"  {mutant.parent.name}/{mutant.name} {what}\n      its bug: {bug(mutant)}"


def assert_all_caught(results: list[dict]) -> None:
    problems = [not_caught(r) for r in results if r["status"] != "failed"]
    assert not problems, (f"{len(problems)} of {len(results)} wrong solutions were not caught:\n"
                          + "\n".join(problems))


@pytest.mark.run_last  # tests/conftest.py: long tests go last, one per free worker
@pytest.mark.parametrize("name", slowest_first(ASSIGNMENTS))
def test_hidden_suite_catches_every_wrong_solution(name, tmp_path):
    """Grading each mutant fails at least one hidden test, and for a real reason."""
    mutants = [p for p in MUTANTS if p.parent.name == name and not gpu_only(p)]
    if not mutants:
        pytest.skip(f"{name} has no catalogued wrong solutions a CPU can catch")
    assert_all_caught(grade_catalogue(ASSIGNMENTS[name], mutants, tmp_path))


@pytest.mark.run_last
@pytest.mark.parametrize("mutant", [p for p in MUTANTS if gpu_only(p)],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_hidden_suite_catches_the_gpu_only_wrong_solution(mutant, tmp_path):
    """The same, on GPU runners, for bugs that only compiled kernels show."""
    if not torch.cuda.is_available():
        pytest.skip("a GPU-only bug: the interpreter cannot show it; checked on GPU runners")
    assert_all_caught(grade_catalogue(ASSIGNMENTS[mutant.parent.name], [mutant], tmp_path))


@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_catalogue_has_enough_documented_wrong_solutions(name):
    """At least ten wrong solutions per assignment that a CPU catches, each documented."""
    mutants = [p for p in MUTANTS if p.parent.name == name and not gpu_only(p)]
    assert len(mutants) >= MINIMUM_PER_ASSIGNMENT, f"{name}: only {len(mutants)} mutants"
    for mutant in mutants:
        text = mutant.read_text()
        assert text.startswith('"""') and len(text.split('"""')[1].strip()) > 10, \
            f"{mutant.name} must start with a docstring naming its bug"
