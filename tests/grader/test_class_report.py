"""`grader class report DIR`: its statistics against hand computations on a small
gradebook, its item analysis, its escaping, and the pages in a headless Chromium."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest

from grader.classroom.gradebook import Row, write_gradebook
from grader.classroom.report import CSP, write_report
from grader.classroom.report_stats import item_analysis, read_tests, summarize

Q = "quantization"


def _test(name, score, max_score, hidden=True, example=None):
    entry = {"name": f"{Q}/{name}", "score": score, "max_score": max_score,
             "status": "passed" if score == max_score else "failed",
             "visibility": "after_due_date" if hidden else "visible", "number": "1"}
    if example is not None:
        entry["extra_data"] = {"failure": {"property": name, "kind": "check",
                                           "example": example}}
    return entry


# quantization's tests: import (public, 1: all pass), shape (public, 1), scale (hidden, 2),
# round[a] and round[b] (hidden, 1 each: one property). ada 6, bob 5, cy 3, dee 2 points.
TESTS = {
    "ada": [_test("test_import", 1, 1, False), _test("test_shape", 1, 1, False),
            _test("test_scale", 2, 2), _test("test_round[a]", 1, 1), _test("test_round[b]", 1, 1)],
    "bob": [_test("test_import", 1, 1, False), _test("test_shape", 0, 1, False),
            _test("test_scale", 2, 2), _test("test_round[a]", 1, 1), _test("test_round[b]", 1, 1)],
    "cy": [_test("test_import", 1, 1, False), _test("test_shape", 1, 1, False),
           _test("test_scale", 0, 2, example=["x=tensor([1e30])"]),
           _test("test_round[a]", 0, 1, example=["x=tensor([0.5])"]),
           _test("test_round[b]", 1, 1)],
    "dee": [_test("test_import", 1, 1, False), _test("test_shape", 1, 1, False),
            _test("test_scale", 0, 2, example=["x=tensor([1e30])"]),
            _test("test_round[a]", 0, 1, example=["x=tensor([0.5])"]),
            _test("test_round[b]", 0, 1, example=["x=<script>alert(1)</script>"])],
}


def _class(folder: Path, extra: list[Row] = ()) -> Path:
    rows = [Row("ada", Q, 6, 6, 6), Row("bob", Q, 5, 6, 5),
            Row("cy", Q, 2.4, 6, 3, days_late=2, penalty=0.2), Row("dee", Q, 2, 6, 2),
            Row("eve", Q, 0, 6, 0, status="nothing submitted"),
            Row("ada", "lora", 10, 10, 10), Row("bob", "lora", 7, 10, 7),
            Row("cy", "lora", 0, 10, 0, status="not due (deadline 2026-12-01T00:00:00+00:00)"),
            Row("dee", "lora", 2, 10, 2), Row("eve", "lora", 4, 10, 4, review="uses eval"),
            *extra]
    write_gradebook(folder, {r.key: r for r in rows})
    for student, tests in TESTS.items():
        (folder / student).mkdir(exist_ok=True)
        (folder / student / "results.json").write_text(json.dumps({"tests": tests}))
    return folder


def _tests(folder):
    return {s: read_tests(folder, s, Q) for s in TESTS}


def _hand_pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy)


def test_summary_of_five_scores_matches_hand_computation(tmp_path):
    rows = [r for r in _rows(_class(tmp_path)) if r.assignment == Q]
    summary = summarize(Q, rows)
    # scores of record 6, 5, 2.4, 2, 0: sorted 0, 2, 2.4, 5, 6; linear positions (n-1)p = 1, 2, 3
    assert summary.mean == pytest.approx((6 + 5 + 2.4 + 2 + 0) / 5)
    assert summary.quantiles() == pytest.approx((2.0, 2.4, 5.0))
    assert summary.counts["zeros"] == 1 and summary.counts["late"] == 1


def test_quartiles_interpolate_linearly_between_order_statistics(tmp_path):
    rows = [r for r in _rows(_class(tmp_path)) if r.assignment == "lora"]
    summary = summarize("lora", rows)
    # of record 2, 4, 7, 10 (cy's "not due" row is not a zero): positions 0.75, 1.5, 2.25
    assert summary.n == 4
    assert summary.mean == pytest.approx(23 / 4)
    assert summary.quantiles() == pytest.approx((2 + 0.75 * 2, 4 + 0.5 * 3, 7 + 0.25 * 3))
    assert summary.counts["not due"] == 1 and summary.counts["flagged for review"] == 1
    assert summary.counts["zeros"] == 0


def test_discrimination_is_pearson_of_passing_with_the_rest_of_the_score(tmp_path):
    items = {i.name: i for i in item_analysis(_tests(_class(tmp_path)), by_property=True)}
    # totals ada 6, bob 5, cy 3, dee 2; scale earned 2, 2, 0, 0; round earned 2, 2, 1, 0
    scale = _hand_pearson([1, 1, 0, 0], [6 - 2, 5 - 2, 3 - 0, 2 - 0])
    rounding = _hand_pearson([1, 1, 0, 0], [6 - 2, 5 - 2, 3 - 1, 2 - 0])
    assert items[f"{Q}/test_scale"].discrimination == pytest.approx(scale)
    assert items[f"{Q}/test_round"].discrimination == pytest.approx(rounding)
    assert items[f"{Q}/test_round"].failing == pytest.approx(2 / 4)


def test_items_are_sorted_by_points_lost_worst_first(tmp_path):
    tests = _tests(_class(tmp_path))
    by_property = [i.name for i in item_analysis(tests, by_property=True)]
    by_test = [i.name for i in item_analysis(tests, by_property=False)]
    assert by_property == [f"{Q}/{n}" for n in
                           ("test_scale", "test_round", "test_shape", "test_import")]
    assert by_test == [f"{Q}/{n}" for n in ("test_scale", "test_round[a]", "test_round[b]",
                                            "test_shape", "test_import")]


def test_undefined_discrimination_is_shown_as_a_dash(tmp_path):
    items = {i.name: i for i in item_analysis(_tests(_class(tmp_path)), by_property=True)}
    assert items[f"{Q}/test_import"].discrimination is None
    html = (write_report(tmp_path, progress=False)).read_text()
    row = re.search(r"<tr><td>quantization/test_import</td>.*?</tr>", html).group(0)
    assert "<td>—</td>" in row


def test_common_failing_inputs_are_counted(tmp_path):
    html = write_report(_class(tmp_path), progress=False).read_text()
    assert "<pre>x=tensor([0.5])</pre></td><td>2</td>" in html
    assert "<pre>x=tensor([1e30])</pre></td><td>2</td>" in html


def test_student_text_is_escaped_and_unsafe_names_get_no_page(tmp_path):
    hostile = Row("<script>x</script>", Q, 1, 6, 1, review="<b>eval</b>")
    html = write_report(_class(tmp_path, [hostile]), progress=False).read_text()
    assert "<script>" not in html and "<b>eval" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert "x=&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert sorted(p.name for p in (tmp_path / "report" / "students").iterdir()) == \
        ["ada.html", "bob.html", "cy.html", "dee.html", "eve.html"]


def test_report_is_the_same_for_the_same_inputs(tmp_path):
    from datetime import UTC, datetime
    when = datetime(2026, 12, 1, tzinfo=UTC)
    first = write_report(_class(tmp_path), now=when, progress=False).read_bytes()
    assert write_report(tmp_path, now=when, progress=False).read_bytes() == first


def test_similarity_report_is_linked_when_present(tmp_path):
    (_class(tmp_path) / "similarity").mkdir()
    (tmp_path / "similarity" / "index.html").write_text("<p>pairs</p>")
    assert "../similarity/index.html" in write_report(tmp_path, progress=False).read_text()


def test_progress_bar_counts_students(tmp_path):
    import io
    stream = io.StringIO()
    write_report(_class(tmp_path), progress=stream)
    assert stream.getvalue().endswith("] 5/5 students\n")


def _rows(folder):
    from grader.classroom.gradebook import read_gradebook
    return list(read_gradebook(folder).values())


CHROMIUM = shutil.which("chromium")
PROBE = ("<script nonce=\"probe\">window.addEventListener('load', () => {"
         "const imgs = [...document.images]; const p = document.createElement('div');"
         "p.id = 'probe'; p.textContent = 'loaded=' + imgs.filter(i => i.naturalWidth > 0)"
         ".length + ' images=' + imgs.length + ' tables=' + document.querySelectorAll('table')"
         ".length; document.body.appendChild(p);});</script>")


def _open(page: Path, tmp_path: Path) -> tuple[str, str]:
    """The probe's line and Chromium's console lines, for a copy of `page` whose CSP also
    allows the probe's script (nonce 'probe'): the report's own policy is otherwise kept,
    so an image or style it blocks still shows as a violation."""
    html = page.read_text()
    assert CSP in html
    relaxed = CSP.replace("style-src 'unsafe-inline'",
                          "style-src 'unsafe-inline'; script-src 'nonce-probe'")
    copy = page.with_name("probe-" + page.name)
    copy.write_text(html.replace(CSP, relaxed).replace("</body>", PROBE + "</body>"))
    done = subprocess.run([CHROMIUM, "--headless=new", "--disable-gpu", "--no-sandbox",
                           "--dump-dom", "--enable-logging=stderr", "--v=0",
                           f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=5000", copy.as_uri()],
                          capture_output=True, text=True, timeout=60)
    probe = re.search(r'<div id="probe">([^<]*)</div>', done.stdout)
    console = [line for line in done.stderr.splitlines()
               if "CONSOLE" in line or "Content Security Policy" in line
               or "Refused to" in line or "Uncaught" in line]
    return (unescape(probe.group(1)) if probe else ""), "\n".join(console)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (/usr/bin/chromium) "
                                                "to open the report headless")
def test_report_opens_in_headless_chromium_with_every_plot_and_table(tmp_path):
    index = write_report(_class(tmp_path), progress=False)
    probe, console = _open(index, tmp_path)
    # two assignments: a histogram each; summary, two item tables each (lora has no results,
    # so no failing-input table), quantization's failing inputs, late days
    assert probe == "loaded=2 images=2 tables=8", (probe, console)
    assert console == ""
    probe, console = _open(tmp_path / "report" / "students" / "cy.html", tmp_path)
    assert probe == "loaded=0 images=0 tables=1" and console == ""


def test_late_table_lists_late_rows_and_extensions(tmp_path):
    from datetime import UTC, datetime

    from grader.classroom.deadlines import Schedule
    extended = Schedule(extensions={("dee", Q): datetime(2026, 10, 9, tzinfo=UTC)})
    html = write_report(_class(tmp_path), extended, progress=False).read_text()
    late = html[html.index("<h2>Late days and extensions</h2>"):]
    lines = re.findall(r"<tr><td><a href=\"students/(\w+).html\">.*?</tr>", late)
    assert lines == ["cy", "dee"]
    assert "<td>2</td><td>20%</td>" in late and "2026-10-09T00:00:00+00:00" in late


def test_the_command_writes_the_index_and_the_student_pages(tmp_path, capsys):
    from grader.cli import main
    assert main(["class", "report", str(_class(tmp_path))]) == 0
    assert (tmp_path / "report" / "index.html").is_file()
    assert (tmp_path / "report" / "students" / "ada.html").is_file()
    assert "5/5 students" in capsys.readouterr().err
