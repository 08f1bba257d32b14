"""The GitHub Actions workflows parse, and every grader command they run exists."""

import os
import re
import subprocess

import pytest
import yaml

from grader.cli import _parser
from grader.course import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
COMMAND = re.compile(r"\bgrader ((?:class )?[a-z]+)")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_a_workflow_parses_and_names_only_real_grader_commands(path):
    workflow = yaml.safe_load(path.read_text())
    assert workflow["jobs"], f"{path.name}: no jobs"
    scripts = [step.get("run", "") for job in workflow["jobs"].values()
               for step in job.get("steps", [])]
    known = _parser()._subparsers._group_actions[0].choices
    classroom = known["class"]._subparsers._group_actions[0].choices
    for command in COMMAND.findall("\n".join(scripts)):
        words = command.split()
        assert words[0] in known, f"{path.name}: no command `grader {command}`"
        if words[0] == "class":
            assert words[1] in classroom, f"{path.name}: no command `grader {command}`"


# ------------------------------------------- grade-class: concurrency and pushes --
CLASS = REPO / ".github" / "workflows" / "grade-class.yml"
APPEND_ONLY = ("classroom/freeze.csv", "classroom/grades/delivered.csv")


def class_jobs() -> dict:
    return yaml.safe_load(CLASS.read_text())["jobs"]


def group(where: dict) -> str | None:
    concurrency = where.get("concurrency")
    return concurrency.get("group") if isinstance(concurrency, dict) else concurrency


def scripts(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job.get("steps", []))


def test_grade_class_has_no_workflow_level_concurrency():
    assert "concurrency" not in yaml.safe_load(CLASS.read_text())


def test_the_freeze_job_has_a_group_no_other_job_shares():
    jobs = class_jobs()
    assert group(jobs["freeze"]), "the freeze job needs its own concurrency group"
    others = {name: group(job) for name, job in jobs.items() if name != "freeze"}
    assert group(jobs["freeze"]) not in others.values(), others


def test_no_job_that_grades_merges_or_delivers_can_be_cancelled_in_progress():
    for name, job in class_jobs().items():
        if re.search(r"grader class (grade|merge|deliver|feedback)", scripts(job)):
            concurrency = job.get("concurrency")
            if isinstance(concurrency, dict):
                assert concurrency.get("cancel-in-progress") in (False, None), name


def test_the_jobs_writing_the_gradebook_share_one_group():
    writers = [name for name, job in class_jobs().items()
               if re.search(r"git add classroom/grades\b(?!/)", scripts(job))]
    assert writers and all(group(class_jobs()[n]) == "classroom-grades" for n in writers)


def test_every_step_that_pushes_rebases_and_retries():
    for name, job in class_jobs().items():
        for step in job.get("steps", []):
            run = step.get("run", "")
            if "git push" in run:
                loop = re.search(r"for attempt in [^;]*;\s*do(.*?)done", run, re.S)
                assert loop, f"{name}: push without retries"
                assert re.search(r"git pull --rebase.*git push", loop[1], re.S), name


def test_gitattributes_merges_the_append_only_records_by_union():
    lines = [line.split() for line in (REPO / ".gitattributes").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    declared = {words[0] for words in lines if "merge=union" in words[1:]}
    assert set(APPEND_ONLY) <= declared


def test_the_freeze_reports_an_unreachable_repository_once():
    assert re.search(r"grader class freeze [^\n]*--report-once", scripts(class_jobs()["freeze"]))


def run_git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True, env={**os.environ, "GIT_AUTHOR_NAME": "t",
                                          "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                                          "GIT_COMMITTER_EMAIL": "t@t"}).stdout


def test_two_appends_to_freeze_csv_survive_a_rebase_with_the_header_once(tmp_path):
    """Two clones append different rows; the second pushes after `git pull --rebase`."""
    origin, header = tmp_path / "origin.git", "student,assignment,commit\n"
    run_git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    seed = tmp_path / "seed"
    run_git(tmp_path, "clone", "-q", str(origin), str(seed))
    (seed / "classroom").mkdir()
    (seed / ".gitattributes").write_text((REPO / ".gitattributes").read_text())
    (seed / "classroom" / "freeze.csv").write_text(header + "ada,quantization,a1\n")
    run_git(seed, "add", "-A")
    run_git(seed, "commit", "-qm", "seed")
    run_git(seed, "push", "-q", "origin", "HEAD:main")
    clones = [tmp_path / "one", tmp_path / "two"]
    for clone, row in zip(clones, ["bob,quantization,b1\n", "cy,quantization,c1\n"], strict=True):
        run_git(tmp_path, "clone", "-q", str(origin), str(clone))
        with open(clone / "classroom" / "freeze.csv", "a") as f:
            f.write(row)
        run_git(clone, "commit", "-qam", row)
    run_git(clones[0], "push", "-q")
    run_git(clones[1], "pull", "-q", "--rebase")
    run_git(clones[1], "push", "-q")
    text = run_git(clones[1], "show", "origin/main:classroom/freeze.csv")
    assert text.count(header) == 1
    assert sorted(text.splitlines()[1:]) == ["ada,quantization,a1", "bob,quantization,b1",
                                             "cy,quantization,c1"]
