"""Adding an assignment touches only its own folders.

A toy assignment is added to a copy of the repository — a manifest, a
reference, a handout, public and hidden tests, nothing else — and the copy's
own `grader` regenerates its stub and tables, validates it and grades it.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from grader.course import REPO

COPIED = ["grader", "conftest.py", "pyproject.toml", "README.md", "assignments", "reference",
          "tests"]
NOT_COPIED = shutil.ignore_patterns("__pycache__", ".hypothesis", "mutants", "hostile", "grader")

TOY_FILES = {
    "assignments/toy/assignment.toml": '''
number = 99
title = "a toy: doubling a tensor"
student_file = "toy.py"
call_timeout_s = 20  # a correct call takes microseconds

[[tasks]]
id = "99.1"
title = "double"
handout = "`double` (§1)"
implements = ["double"]
''',
    "reference/toy/toy.py": '''"""Assignment 99: a toy."""

import torch


def double(x: torch.Tensor) -> torch.Tensor:
    """2 * x, same shape and dtype."""
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION
''',
    "assignments/toy/README.md": '''# Assignment 99: a toy

<!-- BEGIN generated: points -->
<!-- END generated: points -->

## 1. double
''',
    "assignments/toy/tests/test_toy.py": '''import pytest
import torch


@pytest.mark.points(1)
@pytest.mark.task("99.1")
def test_99_1_double_of_two_is_four(student):
    """double([2.0]) == [4.0]."""
    assert student.double(torch.tensor([2.0])).tolist() == [4.0]
''',
    "tests/toy/__init__.py": "",
    "tests/toy/test_double.py": '''import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader.kit.checks import assert_equal

pytestmark = pytest.mark.task("99.1")


@pytest.mark.points(2)
@given(values=st.lists(st.integers(-1000, 1000), min_size=1, max_size=8))
def test_double_is_twice_the_input(student, values):
    """double(x) == 2 * x exactly for small integers in float32."""
    x = torch.tensor(values, dtype=torch.float32)
    assert_equal(student.double(x), 2 * x, "double(x)")
''',
}


def grader(copy: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """The copy's own grader (python -m puts the copy's folder first on sys.path)."""
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=copy,
                          capture_output=True, text=True, timeout=timeout)


def make_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    for name in COPIED:
        source, target = REPO / name, copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=None if name == "grader" else NOT_COPIED)
        else:
            shutil.copyfile(source, target)
    for name, text in TOY_FILES.items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_text(text.lstrip("\n"))
    return copy


def files(copy: Path) -> dict[str, bytes]:
    """The copy's files (caches left out)."""
    return {str(p.relative_to(copy)): p.read_bytes() for p in copy.rglob("*")
            if p.is_file() and not {"__pycache__", ".hypothesis"} & set(p.parts)}


def test_a_new_assignment_needs_only_its_own_folders(tmp_path):
    copy = make_copy(tmp_path)
    before = files(copy)

    for step in (["stubs"], ["docs"], ["timings", "--assignment", "toy"]):
        result = grader(copy, *step)
        assert result.returncode == 0, result.stdout + result.stderr
    stub = (copy / "assignments/toy/toy.py").read_text()
    assert 'raise NotImplementedError("Task 99.1: implement double' in stub
    handout = (copy / "assignments/toy/README.md").read_text()
    assert "| 99.1 | `double` (§1) | 1 | 1 | 3 |" in handout
    changed = {name for name, data in files(copy).items() if before.get(name) != data}
    outside = {name for name in changed
               if not name.startswith(("assignments/toy/", "reference/toy/", "tests/toy/"))}
    assert outside == {"README.md", "grader/templates/STUDENT_README.md"}  # generated tables

    result = grader(copy, "validate", "--assignment", "toy")
    assert result.returncode == 0 and "valid" in result.stdout, result.stdout + result.stderr

    result = grader(copy, "grade", "--reference", "--assignment", "toy", "--output", "r.json")
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((copy / "r.json").read_text())
    assert results["score"] == 3 and {t["name"].split("/")[0] for t in results["tests"]} == {
        "toy"}


def test_validate_names_a_folder_without_a_manifest(tmp_path):
    copy = make_copy(tmp_path)
    (copy / "assignments/toy/assignment.toml").unlink()
    result = grader(copy, "validate", "--quick")
    assert result.returncode == 1
    assert "reference/toy: no assignments/toy/assignment.toml declares it" in result.stdout


def test_validate_fails_on_a_stale_points_table(tmp_path):
    copy = make_copy(tmp_path)
    assert grader(copy, "stubs").returncode == 0
    handout = copy / "assignments/toy/README.md"
    handout.write_text(handout.read_text().replace(
        "<!-- END generated: points -->",
        "| 99.1 | `double` | 1 | 1 | 5 |\n<!-- END generated: points -->"))
    result = grader(copy, "validate", "--quick", "--assignment", "toy")
    assert result.returncode == 1
    assert "assignments/toy/README.md: the `points` table is stale (run `grader docs`)" \
        in result.stdout
