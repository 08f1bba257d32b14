"""What students read names only what they have.

The released repository (grader/authoring/release.py) holds the handouts, the concept
notebooks and the student README, but not SPEC.md, benchmarks/, reference/ or the
hidden tests/<name>/: a handout that cites them sends a student looking for a file that
is not there.
"""

import re

import pytest

from grader.authoring.release import STUDENT_README
from grader.course import REPO, discover

NAMES = sorted(discover())
STUDENT_TEXTS = {**{f"assignments/{name}/{file}": REPO / "assignments" / name / file
                    for name in NAMES for file in ("README.md", "concepts.ipynb")},
                 "grader/templates/STUDENT_README.md": STUDENT_README}
texts = pytest.mark.parametrize("path", sorted(STUDENT_TEXTS))


def lines_matching(path: str, pattern: str) -> list[str]:
    text = STUDENT_TEXTS[path].read_text()
    return [f"{path}:{i}: {line.strip()}" for i, line in enumerate(text.splitlines(), 1)
            if re.search(pattern, line)]


@texts
def test_no_handout_cites_the_specification(path):
    """SPEC.md is the course's own contract: a handout states the decision instead."""
    assert not lines_matching(path, r"SPEC"), "quote the decision, not SPEC §N"


@texts
def test_no_handout_points_into_benchmarks(path):
    """benchmarks/ (bench_*.py, RESULTS.md) is not released: say what the course measured."""
    assert not lines_matching(path, r"benchmarks/|bench_\w+\.py")


@texts
def test_no_handout_mentions_results_md(path):
    """RESULTS.md lives in benchmarks/, which students do not have."""
    assert not lines_matching(path, r"RESULTS\.md")


@texts
def test_no_handout_points_into_the_reference_solution(path):
    """reference/ holds the solutions; students have only their stubs."""
    assert not lines_matching(path, r"(?<![\w/.-])reference/")


@texts
def test_no_handout_points_at_hidden_test_files(path):
    """tests/<name>/ holds the hidden tests; the public ones are assignments/<name>/tests/."""
    hidden = "|".join(map(re.escape, NAMES))
    assert not lines_matching(path, rf"(?<![\w/.-])tests/({hidden})\b")


def test_the_checks_catch_what_they_look_for():
    """The patterns above match the references they forbid, and not the public paths."""
    samples = {
        "SPEC": "as SPEC §3.3 says",
        r"benchmarks/|bench_\w+\.py": "run python benchmarks/bench_kv_cache.py",
        r"RESULTS\.md": "see RESULTS.md",
        r"(?<![\w/.-])reference/": "runs on `reference/`",
        r"(?<![\w/.-])tests/(quantization)\b": "the hidden tests/quantization/ folder",
    }
    for pattern, sample in samples.items():
        assert re.search(pattern, sample), pattern
    assert not re.search(r"(?<![\w/.-])tests/(quantization)\b", "assignments/quantization/tests/")
    assert not re.search(r"(?<![\w/.-])reference/", "the course's reference solution")
