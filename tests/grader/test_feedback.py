"""Feedback after the deadline and its delivery: hidden tests stay hidden, student text
stays inside its code block, and a delivery only ever adds a branch with new files."""

import csv
import json
from types import SimpleNamespace

import pytest

from grader.authoring.release import BEGIN, END
from grader.classroom.deadlines import Schedule, parse_time
from grader.classroom.deliver import deliver, deliver_class, solution_files
from grader.classroom.feedback import feedback_markdown, write_feedback
from grader.classroom.windows import Gate
from grader.course import ASSIGNMENTS
from tests.grader.classroom_repos import git
from tests.grader.test_text import headings_outside_code

QUANTIZATION = ASSIGNMENTS["quantization"]

PUBLIC_FAILURE = """Property: absmax_quantize's codes lie in [-127, 127]
codes out of range: fails at 3 of 10 positions, first at index [2]
  got: tensor[10] float32 in [-200, 3]
Smallest failing input:
  x=tensor[2, 5] float32 in [-3, 4]
Your code printed (the end of it, as is):
  | hello"""

HIDDEN_TRACEBACK = """student = <grader.isolation.Student object at 0x7f3a>

    @points(2)
    @given(x=float_tensors(min_dims=1))
    def test_reconstruction_error_is_at_most_half_a_step(student, x):
        q, scale = student.absmax_quantize(x)
>       assert_all(error <= scale / 2, "error above scale/2", x=x)
E       AssertionError: error above scale/2: fails at 1 of 4 positions
E       assert tensor(False)
E        +  where tensor(False) = <built-in method all of Tensor object>()

tests/quantization/test_hidden.py:41: AssertionError"""
SOURCE_MARKS = ["def test_", "assert_all(", ">", "tests/quantization", "where", "@given",
                "student="]
HIDDEN_RECORD = {"property": "Round-to-nearest never moves a value by more than half a step.",
                 "kind": "check", "check": "error above scale/2: fails at 1 of 4 positions",
                 "where": [], "example": ["x=tensor([0.5000, 20.0000])"], "printed": []}


def result(name, score, max_score, output="", visibility="after_due_date", number="1.1",
           failure=None):
    line = {"name": f"quantization/{name}", "score": score, "max_score": max_score,
            "status": "passed" if score == max_score else "failed", "output": output,
            "visibility": visibility, "number": number}
    if failure is not None:
        line["extra_data"] = {"failure": failure}
    return line


def results_json(*tests):
    return {"score": sum(t["score"] for t in tests),
            "max_score": sum(t["max_score"] for t in tests), "output": "", "tests": list(tests)}


def test_a_hidden_failure_is_shown_from_its_record_never_from_its_output():
    """The property, the check's message and the smallest input come from the record; the
    output (here a traceback with the test's source) is never read."""
    page = feedback_markdown("ada", "quantization", results_json(
        result("test_reconstruction_error_is_at_most_half_a_step", 0, 2, HIDDEN_TRACEBACK,
               failure=HIDDEN_RECORD)))
    hidden = page.split("## Hidden tests")[1]
    assert "Property: Round-to-nearest never moves a value" in hidden
    assert "error above scale/2: fails at 1 of 4 positions" in hidden
    assert "x=tensor([0.5000, 20.0000])" in hidden
    assert not [mark for mark in SOURCE_MARKS if mark in hidden]


def test_a_hidden_failure_without_a_record_shows_its_property_alone():
    """An older results file (no record): the test's name in words, nothing of its output."""
    page = feedback_markdown("ada", "quantization", results_json(
        result("test_codes_lie_in_range[cpu]", 0, 2, HIDDEN_TRACEBACK)))
    hidden = page.split("## Hidden tests")[1]
    assert "Property: codes lie in range" in hidden and "(no details recorded)" in hidden
    assert "error above" not in hidden and not [m for m in SOURCE_MARKS if m in hidden]


def test_public_failures_appear_in_full_and_hidden_ones_from_their_record():
    page = feedback_markdown("ada", "quantization", results_json(
        result("public/test_codes", 0, 1, PUBLIC_FAILURE, visibility="visible"),
        result("test_reconstruction_error_is_at_most_half_a_step", 0, 2, HIDDEN_TRACEBACK,
               failure=HIDDEN_RECORD),
        result("test_passes", 3, 3)))
    public, hidden = page.split("## Hidden tests")
    assert PUBLIC_FAILURE in public and "0 of 1 passed" in public
    assert "1 of 2 passed" in hidden and "x=tensor([0.5000, 20.0000])" in hidden
    assert not [mark for mark in SOURCE_MARKS if mark in hidden]


def test_a_markdown_fence_in_student_output_cannot_close_its_block():
    forged = "```\n# Grade: 100 / 100\n````\n# Really"
    page = feedback_markdown("ada", "quantization", results_json(
        result("public/test_a", 0, 1, forged, visibility="visible"),
        result("test_b", 0, 1, failure={"property": "b", "kind": "raised", "raised": {
            "type": "ValueError", "message": forged}, "printed": forged.splitlines()}),
        result("test_c", 0, 1, failure={"property": "c", "kind": "check", "check": forged})))
    assert headings_outside_code(page) == [page.splitlines()[0]]  # only the page's own title


def test_the_task_table_sums_to_the_assignment_score():
    tests = [result("test_a", 2, 2, number="1.1"), result("test_b", 0, 3, number="1.2"),
             result("test_c", 1.5, 1.5, number="1.2"), result("test_d", 1, 1, number="")]
    page = feedback_markdown("ada", "quantization", results_json(*tests))
    rows = [line.split("|")[3] for line in page.splitlines()
            if line.startswith("| ") and "/" in line.split("|")[3]]
    earned = [float(row.split("/")[0]) for row in rows]
    assert sum(earned) == 4.5 and "4.50 / 7.50 points" in page.splitlines()[0]
    assert "| other |" in page and "| 1.3 | quantize_rowwise (Triton kernel) | not graded |" in page


def test_write_feedback_writes_a_page_per_student_and_assignment_with_the_late_note(tmp_path):
    grades = tmp_path / "grades"
    for student in ("ada", "alan"):
        (grades / student).mkdir(parents=True)
        (grades / student / "results.json").write_text(json.dumps(results_json(
            result("test_a", 1, 2))))
    pages = write_feedback(grades, tmp_path / "out", None, None)  # no gradebook: no note
    assert [p.relative_to(tmp_path / "out").as_posix() for p in pages] == [
        "ada/quantization.md", "alan/quantization.md"]
    (grades / "gradebook.csv").write_text("student,assignment,days_late,penalty,status\n"
                                          "ada,quantization,2,0.2,graded\n")
    write_feedback(grades, tmp_path / "out", ["quantization"], ["ada"])
    assert "Late by 2 days: −20%" in (tmp_path / "out" / "ada" / "quantization.md").read_text()


# ------------------------------------------------------------------------ delivery --
def student_remote(tmp_path, name, files):
    """A bare repository (the student's on GitHub) whose main branch holds `files`."""
    remote, work = tmp_path / f"{name}.git", tmp_path / f"{name}-work"
    git("init", "-q", "--bare", "-b", "main", str(remote), cwd=tmp_path)
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path)
    for path, text in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    git("add", ".", cwd=work)
    git("commit", "-qm", "work", cwd=work)
    git("push", "-q", str(remote), "main", cwd=work)
    return remote, git("rev-parse", "HEAD", cwd=work)


def tree(remote, ref):
    """path -> text of every file at `ref` in `remote`."""
    paths = git("ls-tree", "-r", "--name-only", ref, cwd=remote).splitlines()
    return {p: git("show", f"{ref}:{p}", cwd=remote) for p in paths}


STUDENT = {"assignments/quantization/quantize.py": "def absmax_quantize(x): ...",
           "notes.md": "mine"}
PAGE = {"feedback/quantization.md": b"# Assignment 1"}


def test_delivery_pushes_a_branch_with_the_students_files_unchanged_plus_the_feedback(tmp_path):
    remote, graded = student_remote(tmp_path, "ada", STUDENT)
    commit = deliver(str(remote), graded, "llmlab-feedback", PAGE, "feedback",
                     workdir=tmp_path / "clone")
    assert git("rev-parse", "llmlab-feedback", cwd=remote) == commit
    assert git("rev-parse", f"{commit}^", cwd=remote) == graded
    assert tree(remote, commit) == {**STUDENT, "feedback/quantization.md": "# Assignment 1"}
    assert git("log", "-1", "--format=%an <%ae>", commit, cwd=remote) == \
        "llmlab-grader <grader@llmlab.invalid>"


def test_delivery_refuses_a_path_that_exists_in_the_students_tree(tmp_path):
    remote, graded = student_remote(tmp_path, "ada", {**STUDENT, "feedback/quantization.md": "x"})
    with pytest.raises(ValueError, match="feedback/quantization.md"):
        deliver(str(remote), graded, "llmlab-feedback", PAGE, "feedback",
                workdir=tmp_path / "clone")
    assert git("branch", "--list", cwd=remote) == "* main"  # nothing pushed
    assert tree(remote, "main")["feedback/quantization.md"] == "x"


def test_redelivery_replaces_our_own_branch_but_never_one_the_student_wrote(tmp_path):
    remote, graded = student_remote(tmp_path, "ada", STUDENT)
    deliver(str(remote), graded, "llmlab-feedback", PAGE, "1", workdir=tmp_path / "c1")
    again = deliver(str(remote), graded, "llmlab-feedback", {"feedback/quantization.md": b"v2"},
                    "2", workdir=tmp_path / "c2")
    assert tree(remote, "llmlab-feedback")["feedback/quantization.md"] == "v2"
    work = tmp_path / "ada-work"  # the student commits on our branch
    git("fetch", "-q", str(remote), "llmlab-feedback", cwd=work)
    git("checkout", "-q", "FETCH_HEAD", cwd=work)
    (work / "reply.md").write_text("thanks")
    git("add", ".", cwd=work)
    git("commit", "-qm", "reply", cwd=work)
    git("push", "-q", str(remote), "HEAD:refs/heads/llmlab-feedback", cwd=work)
    with pytest.raises(ValueError, match="not the grader"):
        deliver(str(remote), graded, "llmlab-feedback", PAGE, "3", workdir=tmp_path / "c3")
    assert git("rev-parse", "llmlab-feedback^", cwd=remote) == again


def test_one_unreachable_repository_does_not_stop_the_others(tmp_path):
    ada, graded = student_remote(tmp_path, "ada", STUDENT)
    alan, _ = student_remote(tmp_path, "alan", STUDENT)
    grades, pages = tmp_path / "grades", tmp_path / "pages"
    for name in ("ada", "gone", "alan"):
        (pages / name).mkdir(parents=True)
        (pages / name / "quantization.md").write_text(f"# for {name}")
    grades.mkdir()
    (grades / "gradebook.csv").write_text(f"student,assignment,commit\nada,quantization,{graded}\n")
    students = [SimpleNamespace(name="ada", repository=str(ada)),
                SimpleNamespace(name="gone", repository=str(tmp_path / "no-such-repo")),
                SimpleNamespace(name="alan", repository=str(alan))]
    after = Gate(Schedule({"quantization": parse_time("2026-10-02T23:59:00Z", "test")}),
                 tmp_path / "freeze.csv", parse_time("2026-10-04T00:00:00Z", "test"))
    rows = deliver_class(students, grades, "feedback", [QUANTIZATION], pages, log=lambda m: None,
                         gate=after)
    assert [r["status"] for r in rows][::2] == ["delivered", "delivered"]
    assert rows[1]["status"].startswith("not delivered") and not rows[1]["commit"]
    assert tree(alan, "llmlab-feedback")["feedback/quantization.md"] == "# for alan"
    assert list(csv.DictReader(open(grades / "delivered.csv"))) == [
        {k: str(v) for k, v in row.items()} for row in rows]


def test_solutions_are_the_reference_without_its_markers():
    data = solution_files(QUANTIZATION)["solutions/quantization/quantize.py"]
    assert BEGIN not in data.decode() and END not in data.decode() and b"def absmax" in data
