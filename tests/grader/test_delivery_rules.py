"""Hostile cases for delivery (issue 22): nothing reaches a student who may still submit,
an early delivery ends the windows it opens, and no delivered path lands beside one of
the student's that a case-insensitive or normalising file system takes for the same."""

from datetime import timedelta

import pytest

from grader.classroom.deadlines import load_schedule, parse_time
from grader.classroom.deliver import clashes, deliver
from grader.classroom.freeze import choose, read_records, recorded_commits
from grader.classroom.roster import read_roster
from grader.cli import main
from grader.course import ASSIGNMENTS
from tests.grader.classroom_repos import git

D = parse_time("2026-10-02T23:59:00Z", "test")
DAY = timedelta(days=1)
LATE = '[late]\npolicy = "penalty"\nper_day = 0.1\ncap = 0.5\nwindow_days = 5\n'
DEADLINE = '[deadlines]\nquantization = "2026-10-02T23:59:00Z"\n'
ADA_EXTENDED = '[extensions.ada]\nquantization = "2026-10-04T23:59:00Z"\n'
WORK = "assignments/quantization/quantize.py"
SOLUTION = "solutions/quantization/quantize.py"


def at(when):
    return when.isoformat().replace("+00:00", "Z")


def push(tmp_path, name, text):
    """The student commits `text` as their work and pushes it; the commit."""
    work = tmp_path / f"{name}-work"
    if not work.exists():
        git("init", "-q", "--bare", "-b", "main", str(tmp_path / f"{name}.git"), cwd=tmp_path)
        git("init", "-q", "-b", "main", str(work), cwd=tmp_path)
    (work / WORK).parent.mkdir(parents=True, exist_ok=True)
    (work / WORK).write_text(text)
    git("add", ".", cwd=work)
    git("commit", "-qm", "work", cwd=work)
    git("push", "-q", str(tmp_path / f"{name}.git"), "main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def klass(tmp_path, schedule, names=("ada", "bob")):
    """A class whose students each pushed a stub, with its deadlines and feedback pages."""
    for name in names:
        push(tmp_path, name, "# not started\n")
        (tmp_path / "grades" / "feedback" / name).mkdir(parents=True)
        (tmp_path / "grades" / "feedback" / name / "quantization.md").write_text(f"# {name}")
    roster = tmp_path / "roster.csv"
    roster.write_text("student,repository\n" + "".join(
        f"{n},{tmp_path / f'{n}.git'}\n" for n in names))
    (tmp_path / "deadlines.toml").write_text(schedule)
    return roster


def run(roster, command, when, *extra):
    where = [str(roster)] + ([str(roster.parent / "grades")] if command == "deliver" else [])
    what = ["--what", "solutions", "--assignment", "quantization"] if command == "deliver" \
        else []
    return main(["class", command, *where, *what, "--now", at(when), *extra])


def branches(tmp_path, name):
    return git("branch", "--list", "--format=%(refname:short)", cwd=tmp_path / f"{name}.git")


def graded(tmp_path, roster, name, at_head=False):
    """What a grading now takes for `name`: (commit, status)."""
    schedule = load_schedule(roster.with_name("deadlines.toml"), set(ASSIGNMENTS))
    records = recorded_commits(read_records(roster.with_name("freeze.csv")))
    student = next(s for s in read_roster(roster) if s.name == name)
    choice = choose(student, "quantization", records.get((name, "quantization"), []),
                    schedule, at_head=at_head)
    return choice.commit, choice.status


# ------------------------------------------------------------- open windows --
def test_feedback_waits_for_a_student_inside_the_late_window(tmp_path):
    """Past the deadline but inside window_days: the student may still push, so a page
    that names what failed would be answered by a push (before: delivered)."""
    roster = klass(tmp_path, LATE + DEADLINE, names=("bob",))
    assert run(roster, "freeze", D + timedelta(hours=1)) == 0
    assert run(roster, "deliver", D + DAY, "--what", "feedback") == 0
    assert branches(tmp_path, "bob") == "main"
    assert run(roster, "deliver", D + 5 * DAY + timedelta(hours=1), "--what", "feedback") == 0
    assert branches(tmp_path, "bob") == "llmlab-feedback\nmain"


def test_feedback_waits_for_an_extension_and_the_late_window_after_it(tmp_path):
    """ada's extension ends 2 days after the class's deadline, her late window 5 days
    after that: on day 6 bob's window is over, hers is not (before: delivered)."""
    roster = klass(tmp_path, LATE + DEADLINE + ADA_EXTENDED)
    assert run(roster, "deliver", D + 6 * DAY, "--what", "feedback") == 0
    assert (branches(tmp_path, "ada"), branches(tmp_path, "bob")) == \
        ("main", "llmlab-feedback\nmain")
    rows = (tmp_path / "grades" / "delivered.csv").read_text()
    assert "waiting: the window for quantization is open until 2026-10-09T23:59" in rows


def test_solutions_go_to_no_one_while_one_students_window_is_open(tmp_path, capsys):
    """Students share: solutions delivered to bob reach ada, still inside her extension's
    late window (before: bob got them on day 6)."""
    roster = klass(tmp_path, LATE + DEADLINE + ADA_EXTENDED)
    assert run(roster, "deliver", D + 6 * DAY) == 2
    assert "ada (the window for quantization is open until" in capsys.readouterr().err
    assert (branches(tmp_path, "ada"), branches(tmp_path, "bob")) == ("main", "main")
    assert not (tmp_path / "grades" / "delivered.csv").exists()


def test_an_assignment_without_a_deadline_is_never_delivered_without_early(tmp_path):
    """No deadline, no end to the window (before: delivered at once)."""
    roster = klass(tmp_path, LATE)
    assert run(roster, "deliver", D) == 2
    assert run(roster, "deliver", D, "--what", "feedback") == 0
    assert (branches(tmp_path, "ada"), branches(tmp_path, "bob")) == ("main", "main")


# ---------------------------------------------------------- early delivery --
def test_an_early_delivery_ends_the_window_and_a_later_push_is_not_graded(tmp_path):
    """Solutions on day 1 with --early: bob's HEAD then is graded (1 day late); his copy
    of the solution pushed after it is never recorded nor graded (before: 62/74 from 0)."""
    roster = klass(tmp_path, LATE + DEADLINE)
    assert run(roster, "freeze", D + timedelta(hours=1)) == 0
    last = push(tmp_path, "bob", "# half done\n")           # not seen by any freeze
    assert run(roster, "deliver", D + DAY, "--early", "exam moved forward") == 0
    assert branches(tmp_path, "bob") == "llmlab-solutions\nmain"
    message = git("log", "-1", "--format=%B", "llmlab-solutions", cwd=tmp_path / "bob.git")
    assert "exam moved forward" in message and "commits pushed after it are not" in message
    delivered = (tmp_path / "grades" / "delivered.csv").read_text()
    assert "2026-10-03T23:59:00+00:00,exam moved forward" in delivered
    copied = push(tmp_path, "bob", git("show", f"llmlab-solutions:{SOLUTION}",
                                        cwd=tmp_path / "bob.git"))
    assert run(roster, "freeze", D + 2 * DAY) == 0
    assert copied not in (tmp_path / "freeze.csv").read_text()
    assert graded(tmp_path, roster, "bob") == (last, "")


def test_early_feedback_before_the_deadline_ends_only_that_students_window(tmp_path):
    """Deadline policy, feedback to ada a day early: her HEAD then is what the deadline
    takes; bob, who got nothing, keeps his window."""
    roster = klass(tmp_path, DEADLINE)
    (tmp_path / "grades" / "feedback" / "bob" / "quantization.md").unlink()
    assert run(roster, "deliver", D - DAY, "--what", "feedback", "--early", "leaves") == 1
    early = git("rev-parse", "main", cwd=tmp_path / "ada.git")
    push(tmp_path, "ada", "# after the feedback\n")
    bob = push(tmp_path, "bob", "# bob's last\n")
    assert run(roster, "freeze", D + timedelta(hours=1)) == 0
    assert graded(tmp_path, roster, "ada") == (early, "")
    assert graded(tmp_path, roster, "bob") == (bob, "")


def test_a_repository_hidden_until_the_solutions_are_out_is_never_graded(tmp_path):
    """cy's repository cannot be read at any freeze nor at the delivery; once it appears
    holding the solution, the freeze must not record it as on time (before: graded)."""
    roster = klass(tmp_path, LATE + DEADLINE)
    roster.write_text(roster.read_text() + f"cy,{tmp_path / 'cy.git'}\n")
    assert run(roster, "freeze", D + timedelta(hours=1)) == 1
    assert run(roster, "deliver", D + 6 * DAY) == 1            # cy: not delivered
    push(tmp_path, "cy", "# the solution, copied\n")
    assert run(roster, "freeze", D + 6 * DAY + timedelta(hours=1)) == 0
    commit, status = graded(tmp_path, roster, "cy")
    assert (commit, status.split(":")[0]) == ("", "unreachable")   # the freeze's fact, ungraded
    assert graded(tmp_path, roster, "cy", at_head=True)[1]     # not HEAD either


# ------------------------------------------------------------ folded paths --
@pytest.mark.parametrize("theirs, ours", [
    ("FEEDBACK/quantization.md", "feedback/quantization.md"),
    ("feedback/QUANTIZATION.MD", "feedback/quantization.md"),
    ("Feedback/notes.md", "feedback/quantization.md"),               # a folder of theirs
    ("FEEDBACK", "feedback/quantization.md"),                        # a file where ours is a folder
    ("\uff46eedback/quantization.md", "feedback/quantization.md"),   # fullwidth f
    ("feedbac\u212a/quantization.md", "feedback/quantization.md"),   # Kelvin sign
    ("feed\u200dback/quantization.md", "feedback/quantization.md"),  # zero-width joiner
    ("feedback./quantization.md", "feedback/quantization.md"),       # Windows drops the dot
    ("feedback /quantization.md", "feedback/quantization.md"),       # and the space
    ("solution\u017f/quantization/quantize.py", SOLUTION),            # long s
    ("feedback/cafe\u0301.md", "feedback/caf\u00e9.md"),              # NFD beside NFC
    ("feedback/caf\u00e9.md", "feedback/cafe\u0301.md"),              # NFC beside NFD
])
def test_a_path_that_folds_to_one_of_the_students_is_refused(theirs, ours):
    assert clashes({theirs, "notes.md"}, {ours: b"x"}) == ours


def test_paths_that_differ_after_folding_are_not_refused():
    assert clashes({"feedbacks/quantization.md", "feedback.md", "Feedback2/x"},
                   {"feedback/quantization.md": b"x", SOLUTION: b"y"}) == ""


@pytest.mark.parametrize("theirs", ["FEEDBACK/quantization.md", "\uff46eedback/x.md"])
def test_a_delivery_beside_a_case_or_width_variant_pushes_nothing(tmp_path, theirs):
    work, remote = tmp_path / "work", tmp_path / "ada.git"
    git("init", "-q", "--bare", "-b", "main", str(remote), cwd=tmp_path)
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path)
    (work / theirs).parent.mkdir(parents=True)
    (work / theirs).write_text("mine")
    git("add", ".", cwd=work)
    git("commit", "-qm", "mine", cwd=work)
    git("push", "-q", str(remote), "main", cwd=work)
    with pytest.raises(ValueError, match="already exists in the student's tree"):
        deliver(str(remote), "", "llmlab-feedback", {"feedback/quantization.md": b"page"},
                "feedback", workdir=tmp_path / "clone")
    assert git("branch", "--list", cwd=remote) == "* main"
