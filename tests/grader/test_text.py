"""grader/pipeline/text.py: student text is shown safely, wherever it is shown."""

import os
import subprocess
import sys

from grader.course import REPO
from grader.pipeline.text import fenced, shown

NASTY = "\udcff\x00\x1b[2J\x1b[32mok\x1b[0m\n```\n# Grade: 100 / 100"


def test_shown_text_encodes_as_utf8_and_has_no_control_characters():
    text = shown(NASTY)
    text.encode("utf-8")  # a lone surrogate would raise here
    assert "\x1b" not in text and "\x00" not in text
    assert "\\x00" in text and "\\udcff" in text and "ok" in text


def test_shown_keeps_newlines_and_tabs_and_cuts_the_middle_of_long_text():
    assert shown("a\n\tb") == "a\n\tb"
    long = shown("x" * 50 + "y" * 50, limit=20)
    assert long.startswith("x" * 10) and long.endswith("y" * 10) and "cut" in long


def test_a_fence_in_the_text_cannot_close_the_code_block():
    fence, body, closing = fenced("before\n````\n# forged heading")
    assert fence == closing == "`````" and "````" in body


def test_the_cli_prints_and_summarises_hostile_text(tmp_path):
    """`grader grade` exits 0 and the step summary keeps the text inside its block.

    CI=true as on GitHub Actions: pytest then renders full diffs of failed `==`
    asserts, which for this submission's 2000 wrong codes once ran for hours."""
    submission = tmp_path / "submission" / "assignments" / "quantization"
    submission.mkdir(parents=True)
    (submission / "quantize.py").write_text(
        (REPO / "tests" / "hostile" / "hostile_text.py").read_text())
    summary = tmp_path / "summary.md"
    result = subprocess.run(
        [sys.executable, "-m", "grader", "grade", "--submission", str(tmp_path / "submission"),
         "--assignment", "quantization", "--suite", "public", "--output",
         str(tmp_path / "results.json")],
        cwd=REPO, capture_output=True, timeout=600,
        env={**os.environ, "CI": "true", "GITHUB_STEP_SUMMARY": str(summary),
             "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    text = summary.read_text()
    assert "\x1b" not in text and "\x00" not in text
    assert not headings_outside_code(text), "student text escaped its code block"


def headings_outside_code(markdown: str) -> list[str]:
    """Level-1 headings outside fenced code blocks (CommonMark: a backtick fence closes
    only with a fence at least as long)."""
    headings, fence = [], 0
    for line in markdown.splitlines():
        stripped = line.strip()
        run = len(stripped) - len(stripped.lstrip("`"))
        if run >= 3 and not stripped[run:].strip("`").strip() and (not fence or run >= fence):
            fence = 0 if fence else run
        elif not fence and line.startswith("# "):
            headings.append(line)
    return headings
