"""The class's records without grading: roster, shards, deadlines, freeze, the commit
each policy grades, fetch by hash, the gradebook, merges and exports."""

import csv
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from grader.classroom.deadlines import LatePolicy, Schedule, load_schedule, parse_time
from grader.classroom.exports import export
from grader.classroom.freeze import Record, choose, freeze, read_records
from grader.classroom.git import CommitGone, GitError, fetch_commit
from grader.classroom.gradebook import Row, merge, read_gradebook, write_gradebook
from grader.classroom.owned import take_owned_files
from grader.classroom.roster import Student, read_roster, shard
from grader.cli import main
from grader.course import ASSIGNMENTS, REPO
from grader.pipeline.collect import git_commit
from tests.grader.classroom_repos import (
    QUANTIZATION,
    commit,
    force_push_away,
    git,
    student_repository,
)

DEADLINE = parse_time("2026-10-02T23:59:00Z", "test")
HOUR = timedelta(hours=1)


def record(commit_hash, seen, kind="deadline", student="ada"):
    return Record(student, "quantization", "/repo", commit_hash, seen.isoformat(),
                  DEADLINE.isoformat(), kind)


# ------------------------------------------------------------------- roster --
def test_a_roster_with_a_bad_name_or_a_duplicate_is_refused(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("student,repository\n../evil,/x\n")
    with pytest.raises(ValueError, match="letters, digits"):
        read_roster(roster)
    roster.write_text("student,repository\nada,/x\nada,/y\n")
    with pytest.raises(ValueError, match="listed twice: ada"):
        read_roster(roster)


def test_shards_partition_the_class_whatever_the_roster_order():
    students = [Student(f"s{i:02d}", "/x") for i in range(23)]
    shards = [shard(students, f"{i}/4") for i in range(1, 5)]
    names = [s.name for part in shards for s in part]
    assert sorted(names) == [s.name for s in students] and len(set(names)) == 23
    assert [s.name for s in shard(students[::-1], "2/4")] == [s.name for s in shards[1]]
    with pytest.raises(ValueError, match="I/N"):
        shard(students, "5/4")


# ---------------------------------------------------------------- deadlines --
def test_a_deadline_file_with_an_unknown_assignment_or_no_time_zone_is_refused(tmp_path):
    path = tmp_path / "deadlines.toml"
    path.write_text('[deadlines]\nquantisation = "2026-10-02T23:59:00Z"\n')
    with pytest.raises(ValueError, match="deadlines.quantisation: no assignment"):
        load_schedule(path, set(ASSIGNMENTS))
    path.write_text('[deadlines]\nquantization = "2026-10-02T23:59:00"\n')
    with pytest.raises(ValueError, match="no time zone"):
        load_schedule(path, set(ASSIGNMENTS))
    path.write_text('[late]\npolicy = "lenient"\n')
    with pytest.raises(ValueError, match="late.policy"):
        load_schedule(path, set(ASSIGNMENTS))


def test_an_extension_moves_only_that_students_deadline(tmp_path):
    path = tmp_path / "deadlines.toml"
    path.write_text('[deadlines]\nquantization = "2026-10-02T23:59:00Z"\n'
                    '[extensions.ada]\nquantization = "2026-10-04T23:59:00Z"\n')
    schedule = load_schedule(path, set(ASSIGNMENTS))
    assert schedule.deadline("ada", "quantization") == DEADLINE + timedelta(days=2)
    assert schedule.deadline("bob", "quantization") == DEADLINE
    assert schedule.deadline("bob", "lora") is None


# ------------------------------------------------------------------- freeze --
def test_freeze_records_nothing_before_the_deadline_and_each_head_once_after(tmp_path):
    repo = student_repository(tmp_path, "ada", None)
    students = [Student("ada", str(repo))]
    schedule = Schedule(deadlines={"quantization": DEADLINE})
    early, failures = freeze(students, ["quantization"], schedule, [], DEADLINE - HOUR)
    assert early == [] and failures == []
    first, _ = freeze(students, ["quantization"], schedule, [], DEADLINE + HOUR)
    assert [(r.commit, r.kind) for r in first] == [(git("rev-parse", "HEAD", cwd=repo),
                                                   "deadline")]
    commit(repo, QUANTIZATION.student_path(repo), QUANTIZATION.reference_path(), "late")
    again, _ = freeze(students, ["quantization"], schedule, first, DEADLINE + 2 * HOUR)
    assert again == []          # "deadline" policy: a later push is never recorded


def test_freeze_records_a_later_push_as_late_within_the_window(tmp_path):
    repo = student_repository(tmp_path, "ada", None)
    students = [Student("ada", str(repo))]
    schedule = Schedule(deadlines={"quantization": DEADLINE},
                        late=LatePolicy("penalty", per_day=0.1, cap=0.3, window_days=5))
    first, _ = freeze(students, ["quantization"], schedule, [], DEADLINE + HOUR)
    same, _ = freeze(students, ["quantization"], schedule, first, DEADLINE + 2 * HOUR)
    assert same == []           # unchanged HEAD: nothing new
    late = commit(repo, QUANTIZATION.student_path(repo), QUANTIZATION.reference_path(), "late")
    seen, _ = freeze(students, ["quantization"], schedule, first, DEADLINE + 30 * HOUR)
    assert [(r.commit, r.kind) for r in seen] == [(late, "late")]
    after, _ = freeze(students, ["quantization"], schedule, first, DEADLINE + 6 * 24 * HOUR)
    assert after == []          # the window has closed


def test_a_failed_freeze_lists_each_student_and_exits_nonzero_without_torch(tmp_path):
    """The freeze, merge and delivery jobs install the grader without its dependencies."""
    repo = student_repository(tmp_path, "ada", None)
    roster = tmp_path / "roster.csv"
    roster.write_text(f"student,repository\nada,{repo}\nbob,{tmp_path / 'gone'}\n")
    blocker = ("import sys\nclass Block:\n    def find_spec(self, name, *args):\n"
               "        if name.split('.')[0] in {'torch', 'hypothesis', 'pytest', 'numpy',"
               " 'triton'}:\n            raise ImportError(name)\n"
               "sys.meta_path.insert(0, Block())\nfrom grader.cli import main\n"
               "import grader.classroom.deliver, grader.classroom.exports, "
               "grader.classroom.feedback, grader.authoring.release\n"
               f"sys.exit(main(['class', 'freeze', {str(roster)!r}, '--assignment', "
               "'quantization']))\n")
    result = subprocess.run([sys.executable, "-c", blocker], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "bob (quantization): fatal:" in result.stderr and "repository exists" not in \
        result.stderr
    assert [(r.student, r.kind) for r in read_records(tmp_path / "freeze.csv")] == \
        [("ada", "deadline"), ("bob", "unreachable")]


# ------------------------------------------------------ the commit to grade --
def test_the_deadline_policy_grades_the_commit_seen_at_the_deadline():
    records = [record("a" * 40, DEADLINE + HOUR), record("b" * 40, DEADLINE + 30 * HOUR, "late")]
    choice = choose(Student("ada", "/repo"), "quantization", records,
                    Schedule(deadlines={"quantization": DEADLINE}))
    assert (choice.commit, choice.days_late, choice.penalty) == ("a" * 40, 0, 0.0)


def test_the_penalty_policy_counts_started_days_from_when_the_commit_was_seen():
    schedule = Schedule(deadlines={"quantization": DEADLINE},
                        late=LatePolicy("penalty", per_day=0.1, cap=0.25, window_days=9))
    ada = Student("ada", "/repo")
    for hours, days, penalty in [(30, 2, 0.2), (24 * 7, 7, 0.25)]:
        records = [record("a" * 40, DEADLINE + HOUR),
                   record("b" * 40, DEADLINE + hours * HOUR, "late")]
        choice = choose(ada, "quantization", records, schedule)
        assert (choice.commit, choice.days_late, choice.penalty) == ("b" * 40, days, penalty)


def test_nothing_recorded_is_not_graded_unless_the_roster_names_a_commit():
    schedule = Schedule(deadlines={"quantization": DEADLINE})
    assert choose(Student("ada", "/repo"), "quantization", [], schedule).status.startswith(
        "no commit recorded")
    assert choose(Student("ada", "/repo", "c" * 40), "quantization", [], schedule).commit == \
        "c" * 40


# ----------------------------------------------------------------- fetching --
def test_the_recorded_commit_is_fetched_by_hash_after_the_branch_moved(tmp_path):
    repo = student_repository(tmp_path, "ada", None)
    first = git("rev-parse", "HEAD", cwd=repo)
    commit(repo, QUANTIZATION.student_path(repo), QUANTIZATION.reference_path(), "later")
    assert fetch_commit(str(repo), first, tmp_path / "store") == first
    assert take_owned_files(tmp_path / "store", first, QUANTIZATION, tmp_path / "tree") == {
        "quantization.notebook": "assignments/quantization/concepts.ipynb is missing from the "
                                 "submission"}
    assert "not started" in QUANTIZATION.student_path(tmp_path / "tree").read_text()


def test_a_commit_force_pushed_away_is_its_own_status(tmp_path):
    repo = student_repository(tmp_path, "ada", None)
    first = git("rev-parse", "HEAD", cwd=repo)
    force_push_away(repo)
    with pytest.raises(CommitGone, match="no longer exists"):
        fetch_commit(str(repo), first, tmp_path / "tree")
    with pytest.raises(GitError, match="does not appear to be a git repository") as caught:
        fetch_commit(str(tmp_path / "gone"), first, tmp_path / "tree2")
    assert not isinstance(caught.value, CommitGone)


# ---------------------------------------------------------------- gradebook --
def rows(*specs):
    return {(s, a): Row(s, a, score=score, max_score=36.0, raw_score=score,
                        graded_at=f"2026-10-03T0{hour}:00:00+00:00")
            for s, a, score, hour in specs}


def test_a_regrade_changes_only_its_row_and_another_assignment_adds_columns(tmp_path):
    write_gradebook(tmp_path, rows(("ada", "lora", 1, 1), ("bob", "lora", 2, 1)))
    book = read_gradebook(tmp_path)
    book.update(rows(("ada", "lora", 5, 2), ("ada", "quantization", 3, 2)))
    write_gradebook(tmp_path, book)
    grades = {r["student"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert list(grades["ada"]) == ["student", "score", "max_score", "quantization", "lora",
                                   "status", "review"]          # assignment order
    assert (grades["ada"]["lora"], grades["bob"]["lora"], grades["bob"]["quantization"]) == \
        ("5.0", "2.0", "")
    assert grades["ada"]["max_score"] == "72.0"


def test_merging_shards_gives_the_unsharded_gradebook_and_keeps_the_latest_grading(tmp_path):
    everyone = rows(("ada", "lora", 1, 1), ("bob", "lora", 2, 1), ("cy", "lora", 3, 1))
    write_gradebook(tmp_path / "whole", everyone)
    for i, key in enumerate(sorted(everyone)):
        write_gradebook(tmp_path / f"shard{i}", {key: everyone[key]})
    merge([tmp_path / f"shard{i}" for i in range(3)], tmp_path / "merged")
    assert (tmp_path / "merged" / "gradebook.csv").read_text() == \
        (tmp_path / "whole" / "gradebook.csv").read_text()
    write_gradebook(tmp_path / "regraded", rows(("bob", "lora", 9, 3)))
    write_gradebook(tmp_path / "stale", rows(("bob", "lora", 0, 0)))
    merged = merge([tmp_path / "regraded", tmp_path / "stale"], tmp_path / "merged")
    assert merged[("bob", "lora")].score == 9 and merged[("ada", "lora")].score == 1


def test_exports_always_carry_the_maximum(tmp_path):
    book = rows(("ada", "quantization", 30, 1), ("bob", "quantization", 12, 1))
    students = [Student("ada", "/x", extra={"canvas_id": "101", "section": "A"})]
    export(book, students, "canvas", tmp_path / "canvas.csv")
    canvas = list(csv.reader(open(tmp_path / "canvas.csv")))
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert canvas[1][0] == "Points Possible" and canvas[1][5] == "36.0"
    assert canvas[2][:2] == ["ada", "101"] and canvas[2][4] == "A" and canvas[2][5] == "30.0"
    export(book, [], "plain", tmp_path / "plain.csv")
    plain = list(csv.reader(open(tmp_path / "plain.csv")))
    assert plain[1] == ["(max points)", "36.0", "36.0", ""]
    assert plain[3] == ["bob", "12.0", "12.0", ""]                      # notes: none


def test_the_cli_refuses_an_unknown_student(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("student,repository\nada,/x\n")
    assert main(["class", "grade", str(roster), "--out", str(tmp_path / "g"), "--student",
                 "zed"]) == 2


def test_the_example_deadlines_and_roster_load():
    schedule = load_schedule(REPO / "classroom" / "deadlines.example.toml", set(ASSIGNMENTS))
    assert set(schedule.deadlines) == set(ASSIGNMENTS) and schedule.late.policy == "penalty"
    students = read_roster(REPO / "classroom" / "roster.example.csv")
    assert students[0].extra == {"section": "A", "canvas_id": "1001"}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the checkout to another user")
def test_the_grader_commit_is_recorded_from_a_checkout_another_user_owns(tmp_path):
    """Under sudo, git refuses a checkout the runner's user owns ("dubious ownership")."""
    repo = student_repository(tmp_path, "ada", None)
    for path in [repo, *repo.rglob("*")]:
        os.lchown(path, 4242, 4242)
    assert git_commit(repo) == git("-c", "safe.directory=*", "rev-parse", "HEAD", cwd=repo)
