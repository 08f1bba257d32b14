"""The Gradescope autograder (grader/authoring/gradescope.py), run the way Gradescope runs it.

The zip is unpacked into <tmp>/autograder/source and its run_autograder grades
<tmp>/autograder/submission into <tmp>/autograder/results/results.json:
LLMLAB_AUTOGRADER_ROOT points it at <tmp>/autograder, and this interpreter stands
in for the /autograder/venv that setup.sh makes. setup.sh itself installs system
packages, so it is only read, not run.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.authoring.gradescope import build_autograder
from grader.authoring.release import expected_stub
from grader.course import ASSIGNMENTS, REPO
from grader.pipeline.collect import git_commit
from grader.pipeline.report import seen_before_due_date

QUANTIZATION = ASSIGNMENTS["quantization"]
CRASH_AT_IMPORT = REPO / "tests" / "hostile" / "crash_at_import.py"


@pytest.fixture(scope="module")
def autograder(tmp_path_factory) -> Path:
    """The autograder of quantization, built once for the module."""
    return build_autograder(tmp_path_factory.mktemp("build") / "autograder.zip", [QUANTIZATION])


def run_autograder(autograder: Path, tmp_path: Path, upload: dict[str, bytes],
                   python: str = sys.executable) -> dict:
    """Unpack the zip, place the upload's files in the submission, run run_autograder as
    Gradescope does (as a script; its working directory is none of ours) and read the
    results."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(autograder) as archive:
        archive.extractall(root / "source")
    for relative, content in upload.items():
        path = root / "submission" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "submission").mkdir(exist_ok=True)
    (root / "results").mkdir()
    env = {"LLMLAB_AUTOGRADER_ROOT": str(root), "LLMLAB_PYTHON": python}
    done = subprocess.run(["bash", str(root / "source" / "run_autograder")], cwd=tmp_path,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads((root / "results" / "results.json").read_text())


def header(path: Path, field: str) -> str:
    return re.search(rf"^{field}: (.*)$", path.read_text(), re.MULTILINE).group(1).strip()


def test_the_reference_in_a_repository_submission_gets_full_marks(autograder, tmp_path):
    """A GitHub submission (a student-shaped tree) holding the reference scores everything."""
    upload = {str(QUANTIZATION.student_path(Path("."))): QUANTIZATION.reference_path()
              .read_bytes(),
              str(QUANTIZATION.notebook_path(Path("."))): QUANTIZATION.reference_notebook()
              .read_bytes()}
    results = run_autograder(autograder, tmp_path, upload)
    assert results["max_score"] > 0 and results["score"] == results["max_score"]
    assert all(t["status"] == "passed" for t in results["tests"])
    hidden = [t for t in results["tests"] if t["visibility"] == "after_due_date"]
    assert hidden, "the hidden tests were not graded"
    before = seen_before_due_date(results)   # Gradescope's visibility: public tests only
    assert "score" not in before and before["tests"] and all(
        t["name"].startswith("quantization/public/") for t in before["tests"])
    assert not [t["name"] for t in hidden if t["name"] in before["output"]]
    assert results["extra_data"]["grader_commit"] == git_commit(REPO), \
        "the autograder's copy has no git history: grading reports the commit it was built at"


def test_the_released_stub_uploaded_flat_scores_zero(autograder, tmp_path):
    """The stub and the blank notebook uploaded as loose files (quantize.py and
    concepts.ipynb) are graded, and every test fails."""
    results = run_autograder(autograder, tmp_path,
                             {QUANTIZATION.student_file: expected_stub(QUANTIZATION).encode(),
                              QUANTIZATION.concepts.notebook:
                              QUANTIZATION.notebook_path(REPO).read_bytes()})
    assert results["max_score"] > 0 and results["score"] == 0
    assert results["tests"] and all(t["status"] == "failed" for t in results["tests"])
    assert "missing" not in json.dumps(results["tests"]), "the flat upload was not found"


def test_a_submission_that_crashes_at_import_scores_zero_saying_so(autograder, tmp_path):
    """tests/hostile/crash_at_import.py: every test fails, saying it did not import (the
    notebook's questions, with no notebook uploaded, say that it is missing)."""
    expect = re.compile(header(CRASH_AT_IMPORT, "Expect"))
    upload = {str(QUANTIZATION.student_path(Path("."))): CRASH_AT_IMPORT.read_bytes()}
    results = run_autograder(autograder, tmp_path, upload)
    assert results["max_score"] > 0 and results["score"] == 0
    assert results["tests"] and all(t["status"] == "failed" for t in results["tests"])
    module_tests = [t for t in results["tests"] if "/concepts/" not in t["name"]]
    assert all(expect.search(t["output"]) for t in module_tests), \
        [t["output"][:300] for t in module_tests if not expect.search(t["output"])][:2]
    assert all("concepts.ipynb is missing" in t["output"] for t in results["tests"]
               if "/concepts/" in t["name"])


def test_an_autograder_that_cannot_grade_still_leaves_valid_results(autograder, tmp_path):
    """No grader at all (its Python fails): results.json scores 0 and says it is not the
    student's fault, and run_autograder still exits 0 for Gradescope to show it."""
    results = run_autograder(autograder, tmp_path, {}, python=shutil.which("false"))
    assert results["score"] == 0 and results["tests"] == []
    assert "The autograder failed" in results["output"]
    assert "not your fault" in results["output"]


def test_the_zip_holds_only_what_grading_the_chosen_assignments_needs(autograder):
    """Never the mutants, the hostile catalogue, the grader's own tests, or another
    assignment's hidden tests, reference or folder."""
    names = zipfile.ZipFile(autograder).namelist()
    forbidden = ("tests/mutants/", "tests/hostile/", "tests/grader/", "benchmarks/",
                 ".github/", "classroom/", "notebooks/")
    for other in ASSIGNMENTS:
        if other != QUANTIZATION.name:
            forbidden += (f"tests/{other}/", f"reference/{other}/", f"assignments/{other}/")
    leaked = [n for n in names if n.removeprefix("source/").startswith(forbidden)
              or "__pycache__" in n]
    assert not leaked, leaked[:10]
    for needed in ("setup.sh", "run_autograder", "source/pyproject.toml",
                   "source/gradescope.json", "source/grader/cli.py",
                   "source/reference/quantization/quantize.py",
                   "source/tests/quantization/test_absmax_quantize.py",
                   "source/assignments/quantization/tests/test_quantize.py"):
        assert needed in names, needed


def test_the_scripts_are_executable_in_the_zip(autograder):
    """Gradescope runs setup.sh and run_autograder as programs: mode 0755 in the entries."""
    archive = zipfile.ZipFile(autograder)
    for script in ("setup.sh", "run_autograder"):
        assert archive.getinfo(script).external_attr >> 16 & 0o777 == 0o755, script


def test_two_builds_of_one_tree_are_byte_identical(autograder, tmp_path):
    """Sorted entries, fixed timestamps and modes: the same tree, the same bytes."""
    again = build_autograder(tmp_path / "again.zip", [QUANTIZATION])
    assert again.read_bytes() == autograder.read_bytes()


def test_setup_sh_is_valid_bash_that_installs_python_3_11_and_cpu_torch(autograder):
    """setup.sh (not run here: it installs system packages) parses, and names the pinned
    CPU torch and Ubuntu 22.04's python3.11."""
    text = zipfile.ZipFile(autograder).read("setup.sh").decode()
    checked = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "torch==2.13.0" in text and "download.pytorch.org/whl/cpu" in text
    assert "python3.11" in text and "set -euo pipefail" in text
