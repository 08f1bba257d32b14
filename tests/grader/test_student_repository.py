"""A release is a student's repository: its own workflow's commands work there, the
grader offers student commands only, and nothing instructor-only ships with it.

The release is `git init`ed and its commands run from it, as a student runs them
(the grader that runs is the released copy: `python -m grader` from its root)."""

import base64
import json
import os
import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from grader.authoring.release import release
from grader.course import ASSIGNMENTS

INSTRUCTOR_ONLY = ["validate", "timings", "release", "solutions", "stubs", "docs",
                   "gradescope", "class"]


@pytest.fixture(scope="module")
def student_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("student") / "llmlab"
    release(root, [ASSIGNMENTS["quantization"]])
    for command in (["init", "-q"], ["add", "."],
                    ["-c", "user.name=s", "-c", "user.email=s@x", "commit", "-qm", "release"]):
        subprocess.run(["git", *command], cwd=root, check=True, capture_output=True)
    return root


def grader(root, *args, env=None):
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=root, text=True,
                          capture_output=True, timeout=600, env={**os.environ, **(env or {})})


def test_the_student_cli_offers_no_instructor_command(student_repo):
    result = grader(student_repo, "--help")
    assert result.returncode == 0
    listed = re.findall(r"^    ([a-z]+)\s", result.stdout, re.MULTILINE)
    assert listed == ["test", "grade"], result.stdout
    for command in INSTRUCTOR_ONLY:
        assert grader(student_repo, command, "--help").returncode == 2, command
    assert "--reference" not in grader(student_repo, "grade", "--help").stdout
    assert not (student_repo / "grader" / "classroom").exists()
    assert not (student_repo / "grader" / "authoring").exists()


def test_the_released_project_has_no_instructor_settings(student_repo):
    project = tomllib.loads((student_repo / "pyproject.toml").read_text())
    assert project["tool"]["pytest"]["ini_options"]["testpaths"] == ["assignments"]
    # only the students' own extra: Jupyter and matplotlib, to open the notebooks
    assert project["project"].get("optional-dependencies") == {
        "notebooks": ["jupyter", "matplotlib"]}
    assert "ruff" not in project.get("tool", {})
    assert any(d.startswith("torch") for d in project["project"]["dependencies"])


def test_hidden_suite_is_refused_and_all_says_hidden_tests_are_absent(student_repo, tmp_path):
    refused = grader(student_repo, "grade", "--submission", ".", "--suite", "hidden")
    assert refused.returncode == 2 and "not in a student repository" in refused.stderr
    output = tmp_path / "results.json"
    graded = grader(student_repo, "grade", "--submission", ".", "--output", str(output))
    assert graded.returncode == 0
    results = json.loads(output.read_text())
    assert "hidden tests are not in this repository" in results["output"]
    assert results["tests"] and all(t["visibility"] == "visible" for t in results["tests"])


def test_the_workflows_grade_step_scores_the_stub_0_and_reports_to_classroom(student_repo,
                                                                             tmp_path):
    """The released workflow's own commands, run in the released repository."""
    workflow = yaml.safe_load((student_repo / ".github/workflows/autograde.yml").read_text())
    job = workflow["jobs"]["run-autograding-tests"]
    assert job["name"] == "Autograding Tests" == workflow["name"]   # Classroom looks for it
    assert set(workflow[True]) == {"push", "workflow_dispatch"}      # yaml reads `on` as True
    step = next(s for s in job["steps"] if s.get("id") == "llmlab")
    github_output = tmp_path / "github_output"
    script = step["run"].replace("grader grade", f"{sys.executable} -m grader grade")
    result = subprocess.run(["bash", "-c", script], cwd=student_repo, text=True,
                            capture_output=True, timeout=600,
                            env={**os.environ, "GITHUB_OUTPUT": str(github_output)})
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((student_repo / "results.json").read_text())
    assert results["score"] == 0 < results["max_score"]
    line = github_output.read_text().strip()
    report = json.loads(base64.b64decode(line.removeprefix("result=")))
    assert report["status"] == "fail" and report["max_score"] == results["max_score"]
    assert {t["status"] for t in report["tests"]} == {"fail"}
    installs = "\n".join(s.get("run", "") for s in job["steps"])
    assert '-e ".[dev]"' not in installs and "pip install -e ." in installs
