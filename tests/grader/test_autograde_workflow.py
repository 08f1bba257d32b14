"""The student workflow (autograde.yml) spends Actions minutes only where a push needs them:
a newer push cancels the run it supersedes, and a push grades only the assignments it
changed (every assignment when anything else changed, on a first or forced push, or by hand).

The changed-files step is run here as Actions runs it: its script, in a git repository."""

import os
import subprocess

import yaml

from grader.course import REPO

AUTOGRADE = REPO / ".github" / "workflows" / "autograde.yml"
NO_COMMIT = "0" * 40   # github.event.before on a branch's first push


def workflow() -> dict:
    return yaml.safe_load(AUTOGRADE.read_text())


def steps() -> list[dict]:
    return workflow()["jobs"]["run-autograding-tests"]["steps"]


def changed_step() -> dict:
    return next(step for step in steps() if step.get("id") == "changed")


def git(cwd, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout


def student_repo(tmp_path):
    """A student-shaped repository with two assignments; returns it and its first commit."""
    repo = tmp_path / "student"
    for name in ("quantization", "lora"):
        (repo / "assignments" / name).mkdir(parents=True)
        (repo / "assignments" / name / f"{name}.py").write_text("x = 1\n")
    (repo / "pyproject.toml").write_text("[project]\n")
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "release")
    return repo, git(repo, "rev-parse", "HEAD").strip()


def graded_after(repo, tmp_path, changes: dict[str, str], *, before: str,
                 event: str = "push") -> str:
    """Commit `changes` (path -> text), run the step, return the arguments it chose."""
    for path, text in changes.items():
        (repo / path).write_text(text)
    git(repo, "commit", "-qam", "push")
    output = tmp_path / "github_output"
    output.write_text("")
    subprocess.run(["bash", "-e", "-c", changed_step()["run"]], cwd=repo, check=True,
                   capture_output=True, env={**os.environ, "EVENT": event, "BEFORE": before,
                                             "GITHUB_OUTPUT": str(output)})
    return output.read_text().split("assignments=", 1)[1].strip()


def test_a_newer_push_to_the_same_branch_cancels_the_run_in_progress():
    concurrency = workflow()["concurrency"]
    assert "github.ref" in concurrency["group"]
    assert concurrency["cancel-in-progress"] is True


def test_a_push_of_only_markdown_starts_no_run():
    assert "**.md" in workflow()[True]["push"]["paths-ignore"]   # yaml reads `on:` as True


def test_a_push_grades_only_the_assignments_it_changed(tmp_path):
    repo, first = student_repo(tmp_path)
    chosen = graded_after(repo, tmp_path, {"assignments/lora/lora.py": "x = 2\n"}, before=first)
    assert chosen == "--assignment lora"


def test_a_change_outside_the_assignments_grades_every_assignment(tmp_path):
    repo, first = student_repo(tmp_path)
    chosen = graded_after(repo, tmp_path, {"assignments/lora/lora.py": "x = 2\n",
                                           "pyproject.toml": "[project]\nname = 'x'\n"},
                          before=first)
    assert chosen == ""


def test_a_first_push_or_a_manual_run_grades_every_assignment(tmp_path):
    repo, first = student_repo(tmp_path)
    change = {"assignments/lora/lora.py": "x = 2\n"}
    assert graded_after(repo, tmp_path, change, before=NO_COMMIT) == ""
    change = {"assignments/lora/lora.py": "x = 3\n"}
    assert graded_after(repo, tmp_path, change, before=first, event="workflow_dispatch") == ""


def test_the_grading_step_grades_the_chosen_assignments():
    grade = next(step for step in steps() if step.get("id") == "llmlab")
    assert grade["env"]["ONLY"] == "${{ steps.changed.outputs.assignments }}"
    assert "grader grade $target $ONLY" in grade["run"]
