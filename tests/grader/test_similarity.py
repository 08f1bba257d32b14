"""`grader class similarity`: planted near-copies rank first, the stub never counts, student
code stays text on the page, the CSV cannot run formulas, and grades are never touched.

The cases (similarity_cases/kv_cache/, completed by `_cases`): ada is today's reference
solution without its markers and stub1, stub2 the released stub, both made from the
repository's files so they never drift; ada_copy (stored) is ada with
its locals renamed, causal_attention moved before KVCache and its comments rewritten;
bob, cat, dan and eve are independent solutions of the same API in different styles
(einsum, scaled_dot_product_attention over one buffer, a per-head loop, a cursor
property); stub1 and stub2 submitted the released stub unchanged.
"""

from __future__ import annotations

import csv
import functools
import shutil
import tempfile
from pathlib import Path

from grader.authoring.release import strip_markers
from grader.classroom.gradebook import Row, read_gradebook, write_gradebook
from grader.classroom.similarity import (
    THRESHOLD,
    boilerplate_hashes,
    codes_from_folder,
    compare,
    similarity,
)
from grader.course import ASSIGNMENTS, REPO
from tests.grader.classroom_repos import git, student_repository

KV = ASSIGNMENTS["kv_cache"]
STORED = Path(__file__).parent / "similarity_cases" / "kv_cache"


@functools.cache
def _cases() -> Path:
    """The stored cases, with ada (the reference without its markers) and stub1, stub2 (the
    released stub) made from today's files, in a folder of their own."""
    folder = Path(tempfile.mkdtemp(prefix="llmlab-similarity-"))
    shutil.copytree(STORED, folder, dirs_exist_ok=True)
    stub = KV.student_path(REPO).read_text()
    made = {"ada": strip_markers(KV.reference_path().read_text()), "stub1": stub, "stub2": stub}
    for name, text in made.items():
        (folder / name).mkdir(exist_ok=True)
        (folder / name / KV.student_file).write_text(text)
    return folder


INDEPENDENT = ["ada", "bob", "cat", "dan", "eve"]


def _pairs(names=None):
    files = codes_from_folder(_cases(), KV).files
    if names is not None:
        files = {n: files[n] for n in names}
    return compare("kv_cache", files, boilerplate_hashes(KV))


def _score(pairs, a, b):
    return next(p.score for p in pairs if {p.student_a, p.student_b} == {a, b})


def test_planted_near_copy_ranks_above_every_independent_pair():
    pairs = _pairs()
    assert {pairs[0].student_a, pairs[0].student_b} == {"ada", "ada_copy"}
    copied = _score(pairs, "ada", "ada_copy")
    others = [p.score for p in pairs if {p.student_a, p.student_b} != {"ada", "ada_copy"}]
    assert copied > THRESHOLD and copied > max(others)


def test_no_independent_pair_reaches_the_threshold():
    pairs = _pairs(INDEPENDENT + ["stub1"])
    assert max(p.score for p in pairs) < THRESHOLD


def test_the_stub_scores_zero_against_itself():
    assert _score(_pairs(["stub1", "stub2"]), "stub1", "stub2") == 0.0


def test_without_the_boilerplate_the_stub_would_match():
    """The rule above is the boilerplate's doing: with none, two stubs are identical."""
    import numpy as np
    files = codes_from_folder(_cases(), KV).files
    pairs = compare("kv_cache", {n: files[n] for n in ("stub1", "stub2")}, np.array([]))
    assert pairs[0].score > 0.9


def _class(tmp_path: Path, students: dict[str, str], status: dict | None = None) -> Path:
    """A gradebook and a --code folder with `students` (name -> code)."""
    out, code = tmp_path / "class", tmp_path / "code"
    rows = {}
    for name, text in students.items():
        (code / name).mkdir(parents=True)
        (code / name / KV.student_file).write_text(text)
        row = Row(name, "kv_cache", score=10.0, max_score=10.0, raw_score=10.0,
                  status=(status or {}).get(name, "graded"))
        rows[row.key] = row
    write_gradebook(out, rows)
    return out


def test_student_code_on_the_page_stays_text(tmp_path):
    hostile = (_cases() / "ada" / "cache.py").read_text().replace(
        "        self.seq_len = end\n",
        "        self.seq_len = end  # </pre><script>alert(1)</script><img src=x onerror=f()>\n")
    out = _class(tmp_path, {"ada": (_cases() / "ada" / "cache.py").read_text(),
                            "<b>mal": hostile})
    pairs, _ = similarity(out, [KV], code=tmp_path / "code")
    assert pairs and any("<script>" in t for _, t in pairs[0].passages_b + pairs[0].passages_a)
    page = (out / "similarity" / "index.html").read_text()
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;/pre&gt;&lt;script&gt;" in page
    assert ('<meta http-equiv="Content-Security-Policy" '
            'content="default-src \'none\'; style-src \'unsafe-inline\'">') in page


def test_the_page_says_it_never_changes_a_grade_and_grades_are_unchanged(tmp_path):
    code = {n: (_cases() / n / "cache.py").read_text() for n in ("ada", "ada_copy", "bob")}
    out = _class(tmp_path, code)
    before = (out / "gradebook.csv").read_bytes()
    similarity(out, [KV], code=tmp_path / "code")
    assert (out / "gradebook.csv").read_bytes() == before
    assert "never changes a grade" in (out / "similarity" / "index.html").read_text()


def test_csv_lists_flagged_pairs_and_neutralises_formulas(tmp_path):
    ada = (_cases() / "ada" / "cache.py").read_text()
    out = _class(tmp_path, {"=cmd": ada,
                            "ada_copy": (_cases() / "ada_copy" / "cache.py").read_text(),
                            "bob": (_cases() / "bob" / "cache.py").read_text()})
    similarity(out, [KV], code=tmp_path / "code")
    with open(out / "similarity" / "similarity.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["assignment", "student_a", "student_b", "score"]
    assert [r[:3] for r in rows[1:]] == [["kv_cache", "'=cmd", "ada_copy"]]
    assert float(rows[1][3]) > THRESHOLD


def test_rows_not_graded_are_skipped_and_counted(tmp_path):
    ada = (_cases() / "ada" / "cache.py").read_text()
    out = _class(tmp_path, {"ada": ada, "twin": ada, "late": ada},
                 status={"late": "window open (late window until 2026-10-09)"})
    pairs, skipped = similarity(out, [KV], code=tmp_path / "code")
    assert [(p.student_a, p.student_b) for p in pairs] == [("ada", "twin")]
    assert list(skipped["kv_cache"]) == ["late"]


def test_the_graded_commit_is_read_from_each_repository(tmp_path):
    """Without --code, each graded row's file is re-read at its commit (owned.py)."""
    rows = {}
    status = {"gus": "window open (late window until 2026-10-09)"}
    for name, solution in (("ada", "ada"), ("ada_copy", "ada_copy"), ("bob", "bob"),
                           ("gus", "ada")):        # gus: a provisional row, not compared
        repo = student_repository(tmp_path / "repos", name, _cases() / solution / "cache.py",
                                  assignment=KV)
        row = Row(name, "kv_cache", status=status.get(name, "graded"), repository=str(repo),
                  commit=git("rev-parse", "HEAD", cwd=repo))
        rows[row.key] = row
    rows[("hal", "kv_cache")] = Row("hal", "kv_cache", status="no commit recorded")
    out = tmp_path / "class"
    write_gradebook(out, rows)
    pairs, skipped = similarity(out, [KV])
    assert {pairs[0].student_a, pairs[0].student_b} == {"ada", "ada_copy"}
    assert [(p.student_a, p.student_b) for p in pairs] == [("ada", "ada_copy")]
    assert skipped["kv_cache"] == {"gus": status["gus"], "hal": "no commit recorded"}
    assert len(read_gradebook(out)) == 5


def test_the_command_writes_the_report(tmp_path, capsys):
    from grader.cli import main
    out = _class(tmp_path, {n: (_cases() / n / "cache.py").read_text()
                            for n in ("ada", "ada_copy")})
    shutil.rmtree(out / "similarity", ignore_errors=True)
    assert main(["class", "similarity", str(out), "--code", str(tmp_path / "code")]) == 0
    assert (out / "similarity" / "index.html").is_file()
    assert "1 pairs at or above 0.50" in capsys.readouterr().out
