"""Similarity checks between the students' graded files: they flag for a person, never grade.

`grader class similarity DIR` compares, per assignment, every pair of students' graded
student file with copydetect (winnowed fingerprints of k-grams of pygments tokens, every
identifier normalised, comments and docstrings dropped) and writes

    DIR/similarity/index.html      the pairs at or above the threshold, highest first, each
                                   with its shared passages side by side
    DIR/similarity/similarity.csv  assignment, student_a, student_b, score (every such pair)

Rules:
  - The code compared is the graded commit's student-owned file, re-read from the
    student's repository through owned.py (nothing checked out, the size limits of
    grading), or a `--code FOLDER` of `<student>/<student_file>` (or
    `<assignment>/<student>/<student_file>`). Only rows of status `graded` with a commit
    are compared; the others are skipped and counted (with `--code`, a student the
    gradebook has no row for is compared).
  - The boilerplate is what every student starts from: the released stub
    (`assignments/<name>/<student_file>`) and the provided files. Every k-gram of it is
    removed from each fingerprint before comparing, so shared starter code never counts
    (two students who both submit the stub score 0).
  - A pair's score is the larger of the two shares: the fraction of one student's
    fingerprinted tokens found in the other's file (1.0: all of it).
  - Student code reaches the page only through `html.escape`; the page has no script
    and a Content-Security-Policy that allows none. It never changes a grade: the page
    says so, and nothing here writes the gradebook.
"""

from __future__ import annotations

import csv
import html
import io
import itertools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grader.classroom.cells import cells
from grader.classroom.gradebook import GRADED, Row, read_gradebook
from grader.course import REPO, Assignment
from grader.pipeline.collect import MAX_FILE_BYTES

NOISE_TOKENS = 25       # k: a match shorter than 25 normalised tokens is noise (copydetect's)
WINDOW = 1              # winnowing window: every k-gram kept (guarantee = noise)
THRESHOLD = 0.5         # a pair sharing half of either file's fingerprinted code is shown
CSP = "default-src 'none'; style-src 'unsafe-inline'"


@dataclass
class Pair:
    assignment: str
    student_a: str
    student_b: str
    score: float
    passages_a: list[tuple[int, str]] = field(default_factory=list)  # (line, shared text)
    passages_b: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Codes:
    """One assignment's files to compare, and the rows that were not compared, why."""
    files: dict[str, str] = field(default_factory=dict)         # student -> code
    skipped: dict[str, str] = field(default_factory=dict)       # student -> reason


def boilerplate_hashes(assignment: Assignment, root: Path = REPO) -> np.ndarray:
    """Every k-gram hash of the released stub and the provided files."""
    from copydetect import CodeFingerprint

    folder = root / "assignments" / assignment.name
    hashes: list[int] = []
    for name in (assignment.student_file, *assignment.provided):
        path = folder / name
        if path.is_file():
            hashes.extend(CodeFingerprint(str(path), NOISE_TOKENS, 1).hashes)
    return np.unique(np.array(hashes, dtype=np.int64))


def compare(assignment: str, files: dict[str, str], boilerplate: np.ndarray,
            suffix: str = ".py") -> list[Pair]:
    """Every pair of `files` (student -> code), highest score first."""
    from copydetect import CodeFingerprint, compare_files

    prints = {student: CodeFingerprint(student + suffix, NOISE_TOKENS, WINDOW,
                                       boilerplate=boilerplate, fp=io.StringIO(code))
              for student, code in sorted(files.items())}
    pairs = []
    for a, b in itertools.combinations(sorted(prints), 2):
        _, shares, (slices_a, slices_b) = compare_files(prints[a], prints[b])
        pairs.append(Pair(assignment, a, b, round(float(max(shares)), 4),
                          _passages(files[a], slices_a), _passages(files[b], slices_b)))
    return sorted(pairs, key=lambda p: (-p.score, p.assignment, p.student_a, p.student_b))


def _passages(code: str, slices) -> list[tuple[int, str]]:
    """Each shared slice widened to whole lines (copydetect's ends can fall inside a
    token), as (first line number, text)."""
    slices = np.asarray(slices)
    if slices.size == 0:
        return []
    passages = []
    for start, end in zip(slices[0], slices[1], strict=True):
        first = code.rfind("\n", 0, int(start)) + 1
        last = code.find("\n", int(end))
        passages.append((code.count("\n", 0, first) + 1,
                         code[first:len(code) if last < 0 else last]))
    return passages


def codes_from_folder(folder: Path, assignment: Assignment) -> Codes:
    """`folder/<student>/<student_file>` for every student folder that has one."""
    codes = Codes()
    for student in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        path = student / assignment.student_file
        if not path.is_file():
            codes.skipped[student.name] = f"no {assignment.student_file}"
        elif path.stat().st_size > MAX_FILE_BYTES:
            codes.skipped[student.name] = f"{assignment.student_file} is over the size limit"
        else:
            codes.files[student.name] = path.read_text(errors="replace")
    return codes


def codes_from_gradebook(rows: list[Row], assignment: Assignment) -> Codes:
    """Each graded row's student file, re-read from its repository at the graded commit."""
    from grader.classroom.git import GitError, fetch_commit
    from grader.classroom.owned import read_owned
    from grader.pipeline.collect import NotTaken

    codes = Codes()
    relative = f"assignments/{assignment.name}/{assignment.student_file}"
    for row in rows:
        if row.status != GRADED or not row.commit or not row.repository:
            codes.skipped[row.student] = row.status if row.status != GRADED else "no commit"
            continue
        with tempfile.TemporaryDirectory(prefix="llmlab-similarity-") as tmp:
            store = Path(tmp) / "store"
            try:
                commit = fetch_commit(row.repository, row.commit, store)
                data = read_owned(store, commit, relative, MAX_FILE_BYTES)
            except (GitError, NotTaken) as error:
                codes.skipped[row.student] = f"could not read: {error}"
                continue
        codes.files[row.student] = data.decode("utf-8", errors="replace")
    return codes


def similarity(folder: Path, assignments: list[Assignment], code: Path | None = None,
               threshold: float = THRESHOLD, root: Path = REPO) -> tuple[list[Pair], dict]:
    """Write DIR/similarity/; return the pairs at or above `threshold` and, per
    assignment, the students skipped and why."""
    book = read_gradebook(folder)
    flagged, skipped = [], {}
    for assignment in assignments:
        rows = [r for r in book.values() if r.assignment == assignment.name]
        if code is not None:
            per_assignment = Path(code) / assignment.name
            codes = codes_from_folder(per_assignment if per_assignment.is_dir() else code,
                                      assignment)
            for row in rows:            # a row the gradebook has is compared only if graded
                if row.status != GRADED and codes.files.pop(row.student, None) is not None:
                    codes.skipped[row.student] = row.status
        else:
            codes = codes_from_gradebook(rows, assignment)
        skipped[assignment.name] = codes.skipped
        pairs = compare(assignment.name, codes.files, boilerplate_hashes(assignment, root))
        flagged += [p for p in pairs if p.score >= threshold]
    flagged.sort(key=lambda p: (-p.score, p.assignment, p.student_a, p.student_b))
    out = Path(folder) / "similarity"
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "similarity.csv", flagged)
    (out / "index.html").write_text(render(flagged, skipped, threshold), encoding="utf-8")
    return flagged, skipped


def write_csv(path: Path, pairs: list[Pair]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["assignment", "student_a", "student_b", "score"])
        for p in pairs:
            writer.writerow(cells([p.assignment, p.student_a, p.student_b, p.score]))


STYLE = """body{font-family:sans-serif;margin:2em;max-width:110em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;vertical-align:top}
.side{display:grid;grid-template-columns:1fr 1fr;gap:1em}
pre{background:#f6f6f6;padding:.5em;overflow-x:auto;white-space:pre-wrap;font-size:.85em}
.note{background:#fff4d6;padding:.5em 1em;border-left:4px solid #e0a800}"""


def render(pairs: list[Pair], skipped: dict, threshold: float) -> str:
    """The page: a summary table, then each pair's shared passages side by side."""
    e = html.escape
    parts = [f'<!doctype html><html><head><meta charset="utf-8">'
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
             f"<title>Similarity</title><style>{STYLE}</style></head><body>",
             "<h1>Similarity between submissions</h1>",
             '<p class="note">These pairs are flagged for a person to look at. A high score '
             "is not proof of copying, and this report never changes a grade.</p>",
             f"<p>Pairs whose score is at least {threshold:.2f}: the share of one student's "
             "code (after removing the released stub and provided files, with identifiers "
             "normalised) also found in the other's. Compared with copydetect, k = "
             f"{NOISE_TOKENS} tokens.</p>"]
    for name, reasons in skipped.items():
        if reasons:
            listed = ", ".join(f"{e(s)} ({e(r)})" for s, r in sorted(reasons.items()))
            parts.append(f"<p>{e(name)}: {len(reasons)} not compared: {listed}</p>")
    if not pairs:
        parts.append("<p>No pair reaches the threshold.</p>")
    else:
        parts.append("<table><tr><th>assignment</th><th>student</th><th>student</th>"
                     "<th>score</th></tr>")
        for i, p in enumerate(pairs):
            parts.append(f'<tr><td>{e(p.assignment)}</td><td>{e(p.student_a)}</td>'
                         f'<td>{e(p.student_b)}</td><td><a href="#pair{i}">{p.score:.2f}</a>'
                         "</td></tr>")
        parts.append("</table>")
    for i, p in enumerate(pairs):
        parts.append(f'<h2 id="pair{i}">{e(p.assignment)}: {e(p.student_a)} and '
                     f"{e(p.student_b)}, {p.score:.2f}</h2><div class=\"side\">")
        for student, passages in ((p.student_a, p.passages_a), (p.student_b, p.passages_b)):
            shown = "".join(f"<p>from line {line}</p><pre>{e(text)}</pre>"
                            for line, text in passages)
            parts.append(f"<div><h3>{e(student)}</h3>{shown}</div>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)
