"""The hidden suite proves itself: every catalogued wrong solution is caught.

tests/mutants/<assignment>/*.py are complete student files, each with one
realistic bug named in its docstring. One pytest session per assignment grades
them all (grader/authoring/catalogue.py): the hidden suite, the grading
profile, fresh worker processes for each mutant, stopping at its first failing
test. Every mutant must fail a test, and none may be ungradable.
"""

import json
import sys
from pathlib import Path

import pytest
import torch

from grader.course import ASSIGNMENTS, REPO, Assignment
from grader.pipeline.run import run_suite

CATALOGUE = REPO / "tests" / "mutants"
MUTANTS = sorted(p for p in CATALOGUE.glob("*/*.py") if p.parent.name in ASSIGNMENTS)
MINIMUM_PER_ASSIGNMENT = 10
BUDGET_S = 1800  # one assignment's whole catalogue; the slowest takes a few minutes
#: The share of each catalogue (CPU-catchable mutants) the public tests catch, as measured
#: (rounded down), so that it can only go up; every assignment reaches the goal of 0.6.
PUBLIC_SHARE_GOAL = 0.6
PUBLIC_SHARE_FLOOR = {"ddp": 0.63, "flash_attention": 0.88, "kv_cache": 0.6, "lora": 0.86,
                      "moe": 0.76, "quantization": 0.64}
#: Public catalogues that take long: ddp starts a fresh 2-rank group per mutant (~6 s each).
SLOW_PUBLIC = {"ddp"}
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


def classic(mutant: Path) -> bool:
    """A mistake course staff see every term says so in its header (tests/mutants/*/README.md)."""
    return "\nClassic: yes\n" in mutant.read_text().split('"""')[1]


def grade_catalogue(assignment: Assignment, mutants: list[Path], tmp_path: Path, *,
                    public: bool = False) -> list[dict]:
    """Grade `mutants` one after another in one pytest session; one result per mutant.

    public: against the public tests, each mutant imported in-process (as a student's
    local run does, and much faster; the catalogue is trusted code) instead of the
    hidden suite in fresh workers."""
    out = tmp_path / "catalogue.json"
    options = ["-p", "grader.authoring.catalogue", "--catalogue-out", str(out)]
    for mutant in mutants:
        options += ["--mutants", str(mutant)]
    suite = assignment.public_tests() if public else assignment.hidden_tests()
    run = run_suite(assignment, [suite], submission=None, isolate=not public,
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


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=[pytest.mark.run_last] if name in SLOW_PUBLIC else [])
    for name in sorted(ASSIGNMENTS)])
def test_public_tests_catch_every_classic_mistake(name, tmp_path, record_property):
    """The public tests, which students run before the deadline, catch every classic
    mistake (`Classic: yes`), and at least the recorded share of the whole catalogue."""
    mutants = [p for p in MUTANTS if p.parent.name == name and not gpu_only(p)]
    if not mutants:
        pytest.skip(f"{name} has no catalogued wrong solutions a CPU can catch")
    results = grade_catalogue(ASSIGNMENTS[name], mutants, tmp_path, public=True)
    caught = [r for r in results if r["status"] == "failed"]
    share = len(caught) / len(results)
    report = {"assignment": name, "mutants": len(results), "caught": len(caught),
              "share": round(share, 3),
              "floor": max(PUBLIC_SHARE_FLOOR.get(name, 0.0), PUBLIC_SHARE_GOAL),
              "survivors": sorted(Path(r["mutant"]).name for r in results
                                  if r["status"] == "survived"),
              "classic": sorted(p.name for p in mutants if classic(p))}
    (tmp_path / "public_share.json").write_text(json.dumps(report, indent=1))
    record_property("public_share", report["share"])
    print(f"{name}: the public tests catch {len(caught)} of {len(results)} wrong solutions "
          f"({share:.0%})", file=sys.stderr)
    summary = (f"{name}: the public tests catch {len(caught)} of {len(results)} wrong solutions "
               f"({share:.0%}; floor {report['floor']:.0%}, goal {PUBLIC_SHARE_GOAL:.0%})")
    ungradable = [not_caught(r) for r in results if r["status"] == "ungradable"]
    assert not ungradable, f"{summary}; ungradable under the public tests:\n" + "\n".join(
        ungradable)
    missed = [f"  {name}/{Path(r['mutant']).name}: {bug(Path(r['mutant']))}"
              for r in results if r["status"] == "survived" and classic(Path(r["mutant"]))]
    assert report["classic"], f"{name}: no wrong solution is marked `Classic: yes`"
    assert not missed, (f"{summary}; {len(missed)} classic mistakes pass every public test "
                        "(add a small worked example that shows each):\n" + "\n".join(missed))
    assert share >= report["floor"], (
        f"{summary}: below the recorded floor; still passing every public test: "
        + ", ".join(report["survivors"]))
