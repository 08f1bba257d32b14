"""The grade of record states facts: each status from the freeze's records, the schedule
and the time of grading; unreachable repositories recorded once; instructor overrides;
a grace period and a late commit that never earns less than the on-time one; the
change report of a regrade."""

import csv
import json
from datetime import timedelta

import pytest

from grader.classroom.changes import changed, write_changes
from grader.classroom.deadlines import LatePolicy, Schedule, days_late, parse_time
from grader.classroom.freeze import (
    COLUMNS,
    Record,
    append_records,
    choose,
    freeze,
    read_records,
)
from grader.classroom.gradebook import Row, of_record
from grader.classroom.grading import apply_override, best
from grader.classroom.overrides import Override, load_overrides
from grader.classroom.roster import Student
from grader.cli import main
from tests.grader.classroom_repos import git, student_repository

DEADLINE = parse_time("2026-10-02T23:59:00Z", "test")
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
ADA = Student("ada", "/repo")
A, B = "a" * 40, "b" * 40
LATE = Schedule(deadlines={"quantization": DEADLINE},
                late=LatePolicy("penalty", per_day=0.1, cap=0.5, window_days=3))
STRICT = Schedule(deadlines={"quantization": DEADLINE})


def record(commit, seen, kind="deadline", note=""):
    return Record("ada", "quantization", "/repo", commit, seen.isoformat(),
                  DEADLINE.isoformat(), kind, note)


def status(records, schedule, now, student=ADA, **options):
    return choose(student, "quantization", records, schedule, now=now, **options)


# ------------------------------------------------------------------ statuses --
def test_a_deadline_in_the_future_is_not_due_and_names_it():
    choice = status([], STRICT, DEADLINE - HOUR)
    assert choice.status == f"not due (deadline {DEADLINE.isoformat()})" and not choice.commit


def test_a_recorded_commit_in_an_open_late_window_is_graded_provisionally():
    choice = status([record(A, DEADLINE + HOUR)], LATE, DEADLINE + DAY)
    end = (DEADLINE + 3 * DAY).isoformat()
    assert (choice.status, choice.graded, choice.commit) == (
        "", f"window open (until {end}): provisional", A)


def test_an_open_window_with_nothing_recorded_says_until_when():
    assert status([], LATE, DEADLINE + DAY).status == \
        f"window open (until {(DEADLINE + 3 * DAY).isoformat()})"


def test_an_extension_keeps_the_window_open_for_that_student_only():
    schedule = Schedule(deadlines={"quantization": DEADLINE},
                        extensions={("ada", "quantization"): DEADLINE + 2 * DAY})
    assert status([], schedule, DEADLINE + DAY).status.startswith("not due")
    assert status([], schedule, DEADLINE + DAY, Student("bob", "/b")).status.startswith(
        "no commit recorded")


def test_a_closed_window_the_freeze_could_not_read_is_unreachable_with_its_reason():
    lost = record("", DEADLINE + HOUR, "unreachable", "fatal: no such repository")
    assert status([lost], STRICT, DEADLINE + DAY).status == \
        f"unreachable: fatal: no such repository (since {(DEADLINE + HOUR).isoformat()})"


def test_a_later_success_after_an_unreachable_record_is_graded():
    records = [record("", DEADLINE + HOUR, "unreachable", "down"), record(A, DEADLINE + 2 * HOUR)]
    choice = status(records, STRICT, DEADLINE + DAY)
    assert (choice.status, choice.commit) == ("", A)


def test_a_record_of_an_empty_repository_is_nothing_submitted_of_record():
    choice = status([record("", DEADLINE + HOUR)], STRICT, DEADLINE + DAY)
    assert choice.status.startswith("nothing submitted (")
    assert of_record(Row("ada", "quantization", status=choice.status))


def test_nothing_recorded_and_nothing_unreachable_is_no_commit_recorded():
    choice = status([], STRICT, DEADLINE + DAY)
    assert choice.status == f"no commit recorded (at the deadline {DEADLINE.isoformat()})"
    assert not of_record(Row("ada", "quantization", status=choice.status))


def test_without_a_deadline_the_status_says_what_was_graded():
    assert status([], Schedule(), DEADLINE, Student("ada", "/r", A)).graded == \
        "graded (no deadline: the roster's commit)"
    assert status([], Schedule(), DEADLINE, at_head=True).graded == \
        "graded (no deadline: HEAD, --at-head)"


def test_a_delivery_cut_closes_an_open_window():
    records = [record(A, DEADLINE + HOUR), record("", DEADLINE + 2 * HOUR, "delivered")]
    assert status(records, LATE, DEADLINE + DAY).graded == "graded"


# -------------------------------------------------------------- the freeze --
def test_an_unreachable_repository_is_recorded_once_and_tried_again(tmp_path):
    gone = Student("ada", str(tmp_path / "missing"))
    first, failures = freeze([gone], ["quantization"], STRICT, [], DEADLINE + HOUR)
    assert [(r.kind, r.commit) for r in first] == [("unreachable", "")] and failures
    assert "missing" in first[0].note
    again, failures = freeze([gone], ["quantization"], STRICT, first, DEADLINE + 2 * HOUR)
    assert again == [] and failures                     # tried again, not written twice
    repo = student_repository(tmp_path, "missing", None)
    found, failures = freeze([gone], ["quantization"], STRICT, first, DEADLINE + 3 * HOUR)
    assert [(r.kind, r.commit) for r in found] == [
        ("deadline", git("rev-parse", "HEAD", cwd=repo))] and not failures


def _freeze_cli(roster, now, *extra):
    return main(["class", "freeze", str(roster), "--now", now, *extra])


def test_report_once_fails_only_the_run_that_first_finds_a_repository_unreachable(
        tmp_path, capsys):
    roster = tmp_path / "roster.csv"
    roster.write_text(f"student,repository\nada,{tmp_path / 'missing'}\n")
    (tmp_path / "deadlines.toml").write_text('[deadlines]\nquantization = "2026-10-02T23:59:00Z"\n')
    assert _freeze_cli(roster, "2026-10-03T00:05:00Z", "--report-once") == 1
    capsys.readouterr()
    assert _freeze_cli(roster, "2026-10-03T01:05:00Z", "--report-once") == 0
    assert "still unreachable since 2026-10-03T00:05:00+00:00" in capsys.readouterr().err
    assert _freeze_cli(roster, "2026-10-03T02:05:00Z") == 1      # the default: SPEC §5


def test_an_old_freeze_csv_gains_the_note_column_and_keeps_every_row(tmp_path):
    path = tmp_path / "freeze.csv"
    old = [c for c in COLUMNS if c != "note"]
    path.write_text(",".join(old) + "\n" + f"ada,quantization,/repo,{A},"
                    f"{(DEADLINE + HOUR).isoformat()},{DEADLINE.isoformat()},deadline\n")
    append_records(path, [record(B, DEADLINE + DAY, "late")])
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 3
    assert [(r.commit, r.kind) for r in read_records(path)] == [(A, "deadline"), (B, "late")]
    assert not list(tmp_path.glob(".*tmp"))


# ---------------------------------------------------------------- overrides --
@pytest.mark.parametrize("entry, key", [
    ('student = "zed"\nassignment = "quantization"\nadjust = 1\nreason = "r"', "student"),
    ('student = "ada"\nassignment = "nope"\nadjust = 1\nreason = "r"', "assignment"),
    ('student = "ada"\nassignment = "quantization"\nadjust = 1', "reason"),
    (f'student = "ada"\nassignment = "quantization"\ncommit = "{A}"\nscore = 3\nreason = "r"',
     "score"),
    ('student = "ada"\nassignment = "quantization"\nreason = "r"', "commit, adjust or score"),
    ('student = "ada"\nassignment = "quantization"\ncommit = "abc"\nreason = "r"', "commit"),
    ('student = "ada"\nassignment = "quantization"\nadjust = "5"\nreason = "r"', "adjust"),
])
def test_an_invalid_override_is_refused_naming_its_index_and_key(tmp_path, entry, key):
    path = tmp_path / "overrides.toml"
    path.write_text(f'[[override]]\nstudent = "ada"\nassignment = "quantization"\n'
                    f'adjust = 1\nreason = "fine"\n\n[[override]]\n{entry}\n')
    with pytest.raises(ValueError, match=rf"override\[1\]: {key}"):
        load_overrides(path, {"ada"}, {"quantization"})


def test_a_valid_override_file_is_read(tmp_path):
    path = tmp_path / "overrides.toml"
    path.write_text(f'[[override]]\nstudent = "ada"\nassignment = "quantization"\n'
                    f'commit = "{A}"\ndays_late = 1\nreason = "mailed"\n')
    assert load_overrides(path, {"ada"}, {"quantization"})[("ada", "quantization")] == \
        Override("ada", "quantization", "mailed", A, 1)


def graded_row(raw=40.0, penalty=0.2, status="graded"):
    return Row("ada", "quantization", score=raw * (1 - penalty), max_score=50.0,
               raw_score=raw, penalty=penalty, status=status)


def test_an_adjustment_is_added_after_the_penalty_and_clamped():
    row = graded_row()
    apply_override(row, Override("ada", "quantization", "test 2.3 was wrong", adjust=5.0))
    assert (row.score, row.adjustment, row.override) == (37.0, 5.0, "test 2.3 was wrong")
    high, low = graded_row(), graded_row()
    apply_override(high, Override("ada", "quantization", "r", adjust=100.0))
    apply_override(low, Override("ada", "quantization", "r", adjust=-100.0))
    assert (high.score, low.score) == (50.0, 0.0)


def test_a_score_override_replaces_the_final_score_through_the_adjustment():
    row = graded_row()
    apply_override(row, Override("ada", "quantization", "r", score=45.0))
    assert row.score == 45.0 == row.raw_score * (1 - row.penalty) + row.adjustment


def test_a_score_override_makes_an_unreachable_row_of_record_but_not_a_row_not_due():
    row = graded_row(0.0, 0.0, "unreachable: down")
    apply_override(row, Override("ada", "quantization", "r", score=30.0))
    assert (row.status, row.score, of_record(row)) == ("graded (override)", 30.0, True)
    waiting = graded_row(0.0, 0.0, "not due (deadline T)")
    apply_override(waiting, Override("ada", "quantization", "r", score=30.0))
    assert (waiting.status, waiting.score) == ("not due (deadline T)", 0.0)


def test_a_commit_override_is_graded_at_that_commit_instead_of_the_freezes(tmp_path):
    repo = student_repository(tmp_path, "ada", None)
    mailed = git("rev-parse", "HEAD", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "later", cwd=repo)
    roster = tmp_path / "roster.csv"
    roster.write_text(f"student,repository\nada,{repo}\n")
    (tmp_path / "deadlines.toml").write_text('[deadlines]\nquantization = "2026-10-02T23:59:00Z"\n')
    append_records(tmp_path / "freeze.csv", [Record("ada", "quantization", str(repo),
                   git("rev-parse", "HEAD", cwd=repo), (DEADLINE + HOUR).isoformat(),
                   DEADLINE.isoformat(), "deadline")])
    (tmp_path / "overrides.toml").write_text(
        f'[[override]]\nstudent = "ada"\nassignment = "quantization"\ncommit = "{mailed}"\n'
        'reason = "force-pushed; staff accepted the mailed commit"\n')
    assert main(["class", "grade", str(roster), "--out", str(tmp_path / "out"), "--suite",
                 "public", "--assignment", "quantization", "--now", "2026-10-04T00:00:00Z"]) == 0
    row = next(csv.DictReader(open(tmp_path / "out" / "gradebook.csv")))
    assert (row["commit"], row["status"], row["days_late"]) == (mailed, "graded", "0")
    assert row["override"] == "force-pushed; staff accepted the mailed commit"


def test_all_may_not_be_combined_with_a_selection(tmp_path, capsys):
    roster = tmp_path / "roster.csv"
    roster.write_text("student,repository\nada,/x\n")
    assert main(["class", "grade", str(roster), "--out", str(tmp_path), "--all",
                 "--student", "ada"]) == 2
    assert "grader: --all:" in capsys.readouterr().err


# ----------------------------------------------------------------- lateness --
def test_a_commit_seen_within_the_grace_minutes_is_on_time_one_second_more_is_a_day():
    assert days_late(DEADLINE, DEADLINE + timedelta(minutes=15), 15) == 0
    assert days_late(DEADLINE, DEADLINE + timedelta(minutes=15, seconds=1), 15) == 1
    graced = Schedule(deadlines=LATE.deadlines, late=LatePolicy("penalty", 0.1, 0.5, 3, 15))
    for seconds, late in [(15 * 60, 0), (15 * 60 + 1, 1)]:
        records = [record(A, DEADLINE), record(B, DEADLINE + timedelta(seconds=seconds), "late")]
        assert status(records, graced, DEADLINE + 4 * DAY).days_late == late


def test_a_penalised_late_commit_also_grades_the_deadlines_commit():
    records = [record(A, DEADLINE + HOUR), record(B, DEADLINE + 30 * HOUR, "late")]
    choice = status(records, LATE, DEADLINE + 4 * DAY)
    assert (choice.commit, choice.days_late) == (B, 2)
    assert (choice.on_time.commit, choice.on_time.days_late, choice.on_time.penalty) == (A, 0, 0)


def test_the_better_final_score_is_kept_never_below_the_on_time_one():
    on_time = Row("ada", "quantization", score=40.0, raw_score=40.0, commit=A, status="graded")
    late = Row("ada", "quantization", score=36.0, raw_score=45.0, days_late=2, penalty=0.2,
               commit=B, status="graded")
    chosen = best(late, on_time)
    assert (chosen.commit, chosen.score, chosen.days_late) == (A, 40.0, 0)
    assert chosen.status.startswith("graded (best: the deadline's commit")
    better = Row("ada", "quantization", score=48.0, raw_score=60.0, days_late=2, penalty=0.2,
                 commit=B, status="graded")
    assert best(better, Row("ada", "quantization", score=40.0, commit=A)).commit == B


# ------------------------------------------------------------ change report --
def test_the_change_report_lists_each_changed_test_and_the_row(tmp_path):
    def results(first, second):
        return {"tests": [{"name": "q/1", "score": first, "status": "passed"},
                          {"name": "q/2", "score": second, "status": "failed"}]}
    old_row = Row("ada", "quantization", score=5.0, status="graded")
    new_row = Row("ada", "quantization", score=7.0, status="graded")
    lines = changed("ada", "quantization", results(5.0, 0.0), results(5.0, 2.0), old_row,
                    new_row)
    assert [(x["test"], x["old_score"], x["new_score"]) for x in lines] == [
        ("q/2", 0.0, 2.0), ("", 5.0, 7.0)]
    write_changes(tmp_path, lines)
    assert len(list(csv.DictReader(open(tmp_path / "changes.csv")))) == 2
    assert "- ada / quantization / q/2: +2 points" in (tmp_path / "changes.md").read_text()


def test_an_unchanged_regrade_reports_no_change(tmp_path):
    row = Row("ada", "quantization", score=5.0)
    same = {"tests": [{"name": "q/1", "score": 5.0, "status": "passed"}]}
    assert changed("ada", "quantization", same, json.loads(json.dumps(same)), row, row) == []
