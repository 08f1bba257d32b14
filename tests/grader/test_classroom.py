"""Class grading: every student's repository, at a frozen commit, graded where
students cannot interfere; one CSV row each, nothing lost on a bad repository."""

import csv
import shutil
import subprocess

import pytest

from grader.classroom import Student, freeze, read_roster, write_roster
from grader.cli import main
from grader.course import ASSIGNMENTS

QUANTIZATION = ASSIGNMENTS["quantization"]


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=s", "-c", "user.email=s@x", *args], cwd=cwd,
                   check=True, capture_output=True)


def student_repository(tmp_path, name, solution):
    """A student's repository with one commit holding `solution` (a file, or None)."""
    repo = tmp_path / name
    target = QUANTIZATION.student_path(repo)
    target.parent.mkdir(parents=True)
    if solution is None:
        target.write_text("# not started\n")
    else:
        shutil.copyfile(solution, target)
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-qm", "work", cwd=repo)
    return repo


def test_a_roster_with_a_bad_name_or_a_duplicate_is_refused(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("student,repository\n../evil,/x\n")
    with pytest.raises(ValueError, match="letters, digits"):
        read_roster(roster)
    roster.write_text("student,repository\nada,/x\nada,/y\n")
    with pytest.raises(ValueError, match="listed twice: ada"):
        read_roster(roster)


def test_freeze_records_each_head_and_later_pushes_do_not_count(tmp_path):
    repo = student_repository(tmp_path, "ada", None)
    frozen = freeze([Student("ada", str(repo)), Student("gone", str(tmp_path / "nothing"))],
                    log=lambda m: None)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True).stdout.strip()
    assert [s.commit for s in frozen] == [head, ""]
    (repo / "late.txt").write_text("after the deadline")
    git("add", ".", cwd=repo)
    git("commit", "-qm", "late", cwd=repo)
    assert freeze(frozen, log=lambda m: None)[0].commit == head  # a frozen commit stays


def test_grading_a_class_writes_one_row_per_student_and_survives_a_missing_repo(tmp_path):
    reference = QUANTIZATION.reference_path()
    good = student_repository(tmp_path, "ada", reference)
    empty = student_repository(tmp_path, "alan", None)
    roster = tmp_path / "roster.csv"
    write_roster(roster, [Student("ada", str(good)), Student("alan", str(empty)),
                          Student("grace", str(tmp_path / "no-such-repo"))])
    out = tmp_path / "grades"
    code = main(["class", "grade", str(roster), "--out", str(out), "--assignment",
                 "quantization", "--suite", "public"])
    assert code == 0
    rows = {r["student"]: r for r in csv.DictReader(open(out / "grades.csv"))}
    assert float(rows["ada"]["score"]) == float(rows["ada"]["max_score"]) > 0
    assert float(rows["alan"]["score"]) == 0 and rows["alan"]["status"] == "graded"
    assert rows["grace"]["status"].startswith("could not fetch")
    assert (out / "ada" / "results.json").is_file() and not (out / "grace").exists()
