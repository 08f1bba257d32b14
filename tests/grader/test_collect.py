"""Collecting a submission: a student file that is not taken fails its tests saying why.

grader/pipeline/collect.py takes only regular files under 1 MiB. A file it
leaves out must not be reported as "missing" (the student sees it right there
in their repository): every test of its assignment fails with the real reason,
in words that name no temporary path, and the submission's other assignments
are graded as usual. A flat upload (no `assignments` folder: the student file
at the top, as uploaded to Gradescope) is staged like a student repository,
with the same checks.
"""

import json
import shutil
from pathlib import Path

import pytest

from grader.course import ASSIGNMENTS
from grader.pipeline.collect import NotTaken, read_inside, stage_submission
from grader.pipeline.grade import GradeOptions, grade, stage

QUANTIZATION, DDP = ASSIGNMENTS["quantization"], ASSIGNMENTS["ddp"]


def graded(root: Path, tmp_path: Path) -> list[dict]:
    """The public tests of quantization and ddp for the submission at `root`."""
    output = tmp_path / "results.json"
    staged = stage(root, [QUANTIZATION, DDP])
    try:
        grade(staged, GradeOptions([QUANTIZATION, DDP], suite="public", output=output),
              log=lambda *_: None)
    finally:
        staged.cleanup()
    return json.loads(output.read_text())["tests"]


def correct_file(root: Path, assignment) -> Path:
    """The reference solution, as the submission's file of `assignment` (and the reference
    notebook as its notebook)."""
    path = assignment.student_path(root)
    path.parent.mkdir(parents=True)
    shutil.copyfile(assignment.reference_path(), path)
    if assignment.concepts:
        shutil.copyfile(assignment.reference_notebook(), assignment.notebook_path(root))
    return path


def assert_fails_saying(tests: list[dict], assignment, reason: str, tmp_path: Path) -> None:
    """Every test of the assignment's module fails with `reason` (its notebook is another
    file, collected on its own: tests/grader/test_notebooks.py)."""
    mine = [t for t in tests if t["name"].startswith(f"{assignment.name}/")
            and "/concepts/" not in t["name"]]
    assert mine, f"no {assignment.name} tests graded"
    for test in mine:
        assert test["status"] == "failed" and test["score"] == 0, test["name"]
        assert reason in test["output"], f"{test['name']}: {test['output'][:300]}"
        assert "missing" not in test["output"] and str(tmp_path) not in test["output"]
        assert "llmlab-" not in test["output"], "a temporary path: not the same every run"


def assert_all_pass(tests: list[dict], assignment) -> None:
    theirs = [t for t in tests if t["name"].startswith(f"{assignment.name}/")]
    assert theirs and all(t["status"] == "passed" for t in theirs), \
        [t["output"][:300] for t in theirs if t["status"] != "passed"][:2]


def test_a_symlinked_student_file_fails_every_test_saying_it_is_a_symlink(tmp_path):
    """A symlink (here: to the reference solution) is not followed; its tests say so."""
    root = tmp_path / "submission"
    target = QUANTIZATION.student_path(root)
    target.parent.mkdir(parents=True)
    target.symlink_to(QUANTIZATION.reference_path())
    correct_file(root, DDP)
    tests = graded(root, tmp_path)
    assert_fails_saying(tests, QUANTIZATION, "assignments/quantization/quantize.py is a "
                        "symbolic link: only regular files and folders are graded", tmp_path)
    assert_all_pass(tests, DDP)


def test_a_student_file_over_1_mib_fails_every_test_saying_how_large_it_is(tmp_path):
    """A 2 MiB file (a correct solution padded with a comment) is not taken: its tests say
    how large it was; ranks of a distributed assignment report it like single workers."""
    root = tmp_path / "submission"
    path = correct_file(root, DDP)
    with open(path, "a") as f:
        f.write("#" * ((2 << 20) - path.stat().st_size - 1) + "\n")
    assert path.stat().st_size == 2 << 20
    correct_file(root, QUANTIZATION)
    tests = graded(root, tmp_path)
    assert_fails_saying(tests, DDP, "assignments/ddp/ddp.py is 2,097,152 bytes: files over "
                        "1 MiB are not graded", tmp_path)
    assert_all_pass(tests, QUANTIZATION)


def test_a_linked_folder_fails_every_test_saying_which_folder_is_a_link(tmp_path):
    """`assignments` linked to /proc/self/cwd/reference — the grader's own working
    directory is the instructor repository — is refused, not followed to the reference."""
    root = tmp_path / "submission"
    root.mkdir()
    (root / "assignments").symlink_to("/proc/self/cwd/reference")
    tests = graded(root, tmp_path)
    assert_fails_saying(tests, QUANTIZATION, "assignments is a symbolic link", tmp_path)
    assert_fails_saying(tests, DDP, "assignments is a symbolic link", tmp_path)


@pytest.mark.parametrize("link", ["assignments", "assignments/quantization",
                                  "assignments/quantization/quantize.py"])
def test_no_component_of_the_path_may_be_a_link(tmp_path, link):
    """Whichever component is the link, the file is not read and the link is named."""
    root = tmp_path / "submission"
    real = tmp_path / "elsewhere"
    (real / "quantization").mkdir(parents=True)
    (real / "quantization" / "quantize.py").write_text("x = 1\n")
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    (root / link).symlink_to(real / Path(link).relative_to("assignments")
                             if link != "assignments" else real)
    with pytest.raises(NotTaken, match=f"^{link} is a symbolic link"):
        read_inside(root, Path("assignments/quantization/quantize.py"))


def test_a_regular_file_inside_the_submission_is_read(tmp_path):
    path = tmp_path / "assignments" / "quantization" / "quantize.py"
    path.parent.mkdir(parents=True)
    path.write_text("x = 1\n")
    assert read_inside(tmp_path, Path("assignments/quantization/quantize.py")) == b"x = 1\n"


def staged_file(root: Path, assignment) -> tuple[bytes | None, str | None]:
    """What staging `root` takes as the student file of `assignment`, and why not if not."""
    staged = stage_submission(root, [assignment])
    try:
        path = assignment.student_path(staged.root)
        return (path.read_bytes() if path.is_file() else None,
                staged.problems.get(assignment.name))
    finally:
        staged.cleanup()


def test_a_flat_upload_is_staged_as_the_student_shaped_tree(tmp_path):
    """quantize.py uploaded on its own is graded as assignments/quantization/quantize.py."""
    (tmp_path / "quantize.py").write_text("x = 1\n")
    assert staged_file(tmp_path, QUANTIZATION) == (b"x = 1\n", None)


def test_a_symlink_in_a_flat_upload_is_refused_like_any_other(tmp_path):
    """A top-level quantize.py linked to the reference is not followed; the reason names it."""
    (tmp_path / "quantize.py").symlink_to(QUANTIZATION.reference_path())
    assert staged_file(tmp_path, QUANTIZATION) == (
        None, "quantize.py is a symbolic link: only regular files and folders are graded")


def test_a_file_missing_from_a_flat_upload_is_named_by_its_upload_name(tmp_path):
    """An upload without quantize.py says that file is missing, not a repository path."""
    (tmp_path / "quantise.py").write_text("x = 1\n")
    assert staged_file(tmp_path, QUANTIZATION) == (
        None, "quantize.py is missing from the submission")


def test_a_top_level_file_beside_an_assignments_folder_is_not_taken(tmp_path):
    """With an `assignments` folder the tree is student-shaped: a stray top-level copy
    (here: correct code) does not stand in for the file that folder lacks."""
    (tmp_path / "assignments").mkdir()
    shutil.copyfile(QUANTIZATION.reference_path(), tmp_path / "quantize.py")
    assert staged_file(tmp_path, QUANTIZATION) == (
        None, "assignments/quantization/quantize.py is missing from the submission")
