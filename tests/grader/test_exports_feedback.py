"""Issue 23: exports state facts (a blank is not a zero), say what Canvas cannot match and
carry Canvas's assignment ids; feedback shows the grade of record; solutions delivery
sends what `grader solutions` writes; delivered.csv keeps every delivery."""

import csv
import json
from types import SimpleNamespace

import pytest

from grader.authoring.release import solutions
from grader.classroom.deadlines import Schedule, parse_time
from grader.classroom.deliver import COLUMNS, deliver_class, solution_files
from grader.classroom.exports import canvas_title, export, load_canvas_ids, notes_path
from grader.classroom.feedback import feedback_markdown, write_feedback
from grader.classroom.gradebook import Row, write_gradebook
from grader.classroom.roster import Student
from grader.classroom.windows import Gate
from grader.cli import main
from grader.course import ASSIGNMENTS
from tests.grader.test_feedback import STUDENT, result, results_json, student_remote, tree

NOT_OF_RECORD = ["not due (deadline 2026-10-02T23:59:00+00:00)",
                 "window open (extension until 2026-10-09T23:59:00+00:00)",
                 "unreachable: could not fetch: repository not found",
                 "ungradable: grade again", "no commit recorded at the deadline"]
ROSTER = [Student("ada", "/x", extra={"canvas_id": "101"}),
          Student("bob", "/y", extra={"sis_id": "s2"})]


def book(*rows: Row) -> dict:
    return {row.key: row for row in rows}


def exported(tmp_path, rows, kind, students=ROSTER, ids=None):
    """The export's lines and its warnings."""
    warnings = export(rows, students, kind, tmp_path / f"{kind}.csv", ids)
    return list(csv.reader(open(tmp_path / f"{kind}.csv"))), warnings


# ------------------------------------------------------------------ facts only --
@pytest.mark.parametrize("status", NOT_OF_RECORD)
@pytest.mark.parametrize("kind", ["plain", "canvas"])
def test_a_row_that_is_not_of_record_exports_blank_never_zero(tmp_path, kind, status):
    rows = book(Row("ada", "quantization", score=0.0, max_score=36, status=status),
                Row("bob", "quantization", score=30.0, max_score=36))
    lines, _ = exported(tmp_path, rows, kind)
    column = 1 if kind == "plain" else 5
    assert lines[2][column] == "" and lines[3][column] == "30.0"


def test_the_reason_for_each_blank_is_written_beside_it(tmp_path):
    rows = book(Row("ada", "quantization", max_score=36, status=NOT_OF_RECORD[3]),
                Row("ada", "lora", score=5.0, max_score=10))
    plain, _ = exported(tmp_path, rows, "plain")
    assert plain[0][-1] == "notes" and plain[2][-1] == "quantization: ungradable: grade again"
    assert plain[2][-2] == "5.0"                                # the total: numbers shown
    exported(tmp_path, rows, "canvas")
    assert list(csv.reader(open(notes_path(tmp_path / "canvas.csv")))) == [
        ["student", "assignment", "status"], ["ada", "quantization", "ungradable: grade again"]]


@pytest.mark.parametrize("kind", ["plain", "canvas"])
@pytest.mark.parametrize("status", ["graded", "nothing submitted"])
def test_a_real_zero_exports_as_zero(tmp_path, kind, status):
    rows = book(Row("ada", "quantization", score=0.0, max_score=36, status=status))
    lines, _ = exported(tmp_path, rows, kind)
    assert lines[2][1 if kind == "plain" else 5] == "0.0"


@pytest.mark.parametrize("kind", ["plain", "canvas"])
def test_a_student_without_a_row_exports_blank(tmp_path, kind):
    rows = book(Row("ada", "quantization", score=3.0, max_score=36),
                Row("bob", "lora", score=4.0, max_score=10))
    lines, _ = exported(tmp_path, rows, kind)
    first = 1 if kind == "plain" else 5
    assert lines[2][first:first + 2] == ["3.0", ""] and lines[3][first:first + 2] == ["", "4.0"]


@pytest.mark.parametrize("kind", ["plain", "canvas"])
def test_an_overridden_row_exports_its_final_score(tmp_path, kind):
    rows = book(Row("ada", "quantization", score=40.0, raw_score=35.0, adjustment=5.0,
                    max_score=78, override="regrade request 12"))
    lines, _ = exported(tmp_path, rows, kind)
    assert lines[2][1 if kind == "plain" else 5] == "40.0"


# -------------------------------------------------------------------- matching --
def test_canvas_without_a_roster_warns_once_that_nothing_matches(tmp_path):
    rows = book(Row("ada", "quantization", score=1.0), Row("bob", "quantization", score=1.0))
    _, warnings = exported(tmp_path, rows, "canvas", students=[], ids={"quantization": 7})
    assert len(warnings) == 1 and "no roster" in warnings[0]


def test_students_canvas_cannot_match_are_each_warned_about(tmp_path):
    rows = book(*(Row(name, "quantization", score=1.0) for name in ("ada", "bob", "cy", "dee")))
    students = [*ROSTER, Student("cy", "/z", extra={"section": "A"})]
    _, warnings = exported(tmp_path, rows, "canvas", students, ids={"quantization": 7})
    assert sorted(w.split(":")[0] for w in warnings) == ["cy", "dee"]
    assert "neither canvas_id nor sis_id" in next(w for w in warnings if w.startswith("cy"))
    assert "not in the roster" in next(w for w in warnings if w.startswith("dee"))


def test_the_cli_warns_and_exits_nonzero_only_when_strict(tmp_path, capsys):
    write_gradebook(tmp_path / "g", book(Row("ada", "quantization", score=1.0, max_score=36)))
    command = ["class", "export", str(tmp_path / "g"), "--format", "canvas",
               "--output", str(tmp_path / "c.csv")]
    assert main(command) == 0
    assert "warning: no roster" in capsys.readouterr().err
    assert main([*command, "--strict"]) == 1


def test_a_canvas_id_titles_its_column_and_a_column_without_one_is_warned_about(tmp_path):
    rows = book(Row("ada", "quantization", score=1.0), Row("ada", "lora", score=1.0))
    lines, warnings = exported(tmp_path, rows, "canvas", ids={"quantization": 12345})
    quantization = f"1 {ASSIGNMENTS['quantization'].title}"
    assert lines[0][5:] == [f"{quantization} (12345)", f"2 {ASSIGNMENTS['lora'].title}"]
    assert canvas_title("lora", {}) == f"2 {ASSIGNMENTS['lora'].title}"
    assert [w.split(":")[0] for w in warnings] == ["lora"]


@pytest.mark.parametrize("text, key", [
    ('[assignments]\nquantisation = 3\n', "assignments.quantisation"),
    ('[assignments]\nquantization = "12"\n', "assignments.quantization"),
    ('[assignments]\nquantization = 1.5\n', "assignments.quantization"),
    ('[assignments]\nquantization = true\n', "assignments.quantization")])
def test_a_canvas_file_with_an_unknown_name_or_a_non_integer_id_is_refused(tmp_path, text, key):
    (tmp_path / "canvas.toml").write_text(text)
    with pytest.raises(ValueError, match=key):
        load_canvas_ids(tmp_path / "canvas.toml", set(ASSIGNMENTS))


def test_the_cli_reads_canvas_toml_beside_the_roster(tmp_path):
    (tmp_path / "roster.csv").write_text("student,repository,canvas_id\nada,/x,101\n")
    (tmp_path / "canvas.toml").write_text("[assignments]\nquantization = 77\n")
    write_gradebook(tmp_path / "g", book(Row("ada", "quantization", score=1.0, max_score=36)))
    assert main(["class", "export", str(tmp_path / "g"), "--format", "canvas", "--output",
                 str(tmp_path / "c.csv"), "--roster", str(tmp_path / "roster.csv")]) == 0
    assert next(csv.reader(open(tmp_path / "c.csv")))[5].endswith(" (77)")


# ------------------------------------------------------------------- feedback --
FULL = results_json(result("test_a", 78, 78))
LATE = Row("ada", "quantization", score=70.2, raw_score=78, max_score=78, days_late=1,
           penalty=0.1)


def test_the_feedback_heading_and_table_show_the_final_score():
    page = feedback_markdown("ada", "quantization", FULL, row=LATE)
    assert page.splitlines()[0].endswith("70.20 / 78.00 points")
    assert "| tests passed (raw score) | 78.00 / 78.00 |" in page
    assert "| Late by 1 day: −10% | −7.80 |" in page
    assert "**70.20 / 78.00**" in page


def test_an_adjustment_shows_with_its_reason():
    row = Row("ada", "quantization", score=75.2, raw_score=78, max_score=78, days_late=1,
              penalty=0.1, adjustment=5.0, override="regrade request 12: test 2.3 was wrong")
    page = feedback_markdown("ada", "quantization", FULL, row=row)
    assert "| adjusted by the course staff: regrade request 12: test 2.3 was wrong | +5.00 |" \
        in page
    assert page.splitlines()[0].endswith("75.20 / 78.00 points")


def pages_for(tmp_path, *rows: Row, results=None) -> dict[str, str]:
    grades = tmp_path / "grades"
    write_gradebook(grades, book(*rows))
    for student, data in (results or {}).items():
        (grades / student).mkdir(parents=True, exist_ok=True)
        (grades / student / "results.json").write_text(json.dumps(data))
    written = write_feedback(grades, tmp_path / "out")
    return {p.relative_to(tmp_path / "out").as_posix(): p.read_text() for p in written}


def test_rows_without_results_get_a_page_saying_what_the_gradebook_says(tmp_path):
    pages = pages_for(tmp_path, Row("ada", "quantization", max_score=78,
                                    status="nothing submitted"),
                      Row("bob", "quantization", max_score=78, status=NOT_OF_RECORD[2]))
    assert "0.00 / 78.00 points" in pages["ada/quantization.md"].splitlines()[0]
    assert "score of record is 0" in pages["ada/quantization.md"]
    bob = pages["bob/quantization.md"]
    assert "no score recorded" in bob.splitlines()[0] and NOT_OF_RECORD[2] in bob
    assert "course staff" in bob


def test_an_ungradable_page_keeps_the_graders_own_error_out(tmp_path):
    status = "ungradable: grade again (FileNotFoundError: tests/quantization/test_hidden.py)"
    page = pages_for(tmp_path, Row("ada", "quantization", status=status))["ada/quantization.md"]
    assert "ungradable" in page and "test_hidden" not in page and "grade again" in page


def test_a_row_not_due_gets_no_page(tmp_path):
    assert pages_for(tmp_path, Row("ada", "quantization", status=NOT_OF_RECORD[0])) == {}


def test_a_window_open_page_says_the_score_is_provisional(tmp_path):
    pages = pages_for(tmp_path, Row("ada", "quantization", score=78, raw_score=78,
                                    max_score=78, status=NOT_OF_RECORD[1]),
                      results={"ada": FULL})
    assert "Provisional" in pages["ada/quantization.md"]


# ------------------------------------------------------------------ delivery --
def test_solutions_delivery_sends_what_grader_solutions_writes(tmp_path):
    solutions(tmp_path / "out", [ASSIGNMENTS["quantization"]])
    written = {p.relative_to(tmp_path / "out").as_posix(): p.read_bytes()
               for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert solution_files("quantization") == written
    assert "solutions/quantization/concepts.ipynb" in written


def test_delivered_csv_keeps_every_delivery_and_upgrades_an_old_header(tmp_path):
    remote, graded = student_remote(tmp_path, "ada", STUDENT)
    grades, pages = tmp_path / "grades", tmp_path / "pages"
    (pages / "ada").mkdir(parents=True)
    (pages / "ada" / "quantization.md").write_text("# for ada")
    grades.mkdir()
    (grades / "delivered.csv").write_text("student,repository,branch,commit,status\n"
                                          "old,/o,llmlab-feedback,,delivered\n")
    students = [SimpleNamespace(name="ada", repository=str(remote))]
    deadline = Schedule({"quantization": parse_time("2026-10-02T23:59:00Z", "test")})
    for day in ("04", "05"):
        gate = Gate(deadline, tmp_path / "freeze.csv", parse_time(f"2026-10-{day}T00:00:00Z",
                                                                  "test"))
        deliver_class(students, grades, "feedback", [ASSIGNMENTS["quantization"]], pages,
                      log=lambda m: None, gate=gate)
    rows = list(csv.DictReader(open(grades / "delivered.csv")))
    assert list(rows[0]) == COLUMNS and rows[0]["student"] == "old"
    assert [(r["student"], r["delivered_at"][:10]) for r in rows[1:]] == [
        ("ada", "2026-10-04"), ("ada", "2026-10-05")]
    assert tree(remote, "llmlab-feedback")["feedback/quantization.md"] == "# for ada"


def test_a_delivery_that_stops_part_way_keeps_each_finished_students_row_once(tmp_path):
    remotes = {name: student_remote(tmp_path, name, STUDENT)[0] for name in ("ada", "bob")}
    pages = tmp_path / "pages"
    for name in remotes:
        (pages / name).mkdir(parents=True)
        (pages / name / "quantization.md").write_text(f"# for {name}")
    (tmp_path / "grades").mkdir()

    def log(line):
        if line.startswith("bob:"):
            raise KeyboardInterrupt          # the run is stopped after ada's push
    gate = Gate(Schedule({"quantization": parse_time("2026-10-02T23:59:00Z", "test")}),
                tmp_path / "freeze.csv", parse_time("2026-10-04T00:00:00Z", "test"))
    with pytest.raises(KeyboardInterrupt):
        deliver_class([SimpleNamespace(name=n, repository=str(r)) for n, r in remotes.items()],
                      tmp_path / "grades", "feedback", [ASSIGNMENTS["quantization"]], pages,
                      log=log, gate=gate)
    rows = list(csv.DictReader(open(tmp_path / "grades" / "delivered.csv")))
    assert [(r["student"], r["status"]) for r in rows] == [("ada", "delivered")]
