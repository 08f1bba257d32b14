"""What `grader test` and `grader grade` print: readable, with nothing that only makes
sense on pytest's own command line, and nothing cut mid-word."""

from types import SimpleNamespace

from grader.kit.describe import WIDTH, plain_failure, property_of, without_pytest_hints
from grader.pipeline.grade import titles
from grader.pipeline.report import Report
from grader.pipeline.text import shown, without_addresses

# Assertion messages as pytest's assertion rewriting writes them (pytest 8/9).
SHORT_DIFF = """codes differ
assert [0, 1, 2, 3, 4, 5, ...] == [1, 2, 3, 4, 5, 6, ...]
\x20\x20
  At index 0 diff: 0 != 1
  Use -v to get more diff"""
FULL_DIFF = """codes differ
assert [0, 1, 2] == [1, 2, 3]
\x20\x20
  At index 0 diff: 0 != 1
\x20\x20
  Full diff: (-: missing in left side, +: extra in left side)
    [
  +     0,
        1,
        2,
  -     3,
    ]"""
TRUNCATED = """assert 'x\\nx\\n' == 'y\\ny\\n'
\x20\x20
  - y
  - y...
\x20\x20
  ...Full output truncated (12 lines hidden), use '-vv' to show"""
OMITTED = """assert {'a': 1, 'b': 2} == {'a': 1, 'b': 3}
\x20\x20
  Omitting 1 identical items, use -vv to show
  Differing items:
  {'b': 2} != {'b': 3}
  Use -v to get more diff"""
HINTS = ["Use -v", "-vv", "Full diff", "Full output truncated", "Omitting"]


def test_pytest_hints_never_reach_a_student():
    """'Use -v to get more diff', 'use -vv to show', '...Full output truncated' are gone."""
    for message in (SHORT_DIFF, TRUNCATED, OMITTED):
        text = plain_failure(AssertionError(message))
        assert not [hint for hint in HINTS if hint in text], text
    assert "At index 0 diff: 0 != 1" in plain_failure(AssertionError(SHORT_DIFF))
    assert "{'b': 2} != {'b': 3}" in plain_failure(AssertionError(OMITTED))


def test_a_full_diff_block_is_dropped_and_what_precedes_it_kept():
    """The "Full diff:" block goes with its lines; the message and the first difference stay."""
    text = without_pytest_hints(FULL_DIFF)
    assert text == "codes differ\nassert [0, 1, 2] == [1, 2, 3]\n\n  At index 0 diff: 0 != 1"


def test_object_addresses_never_appear_and_the_repr_stays_readable():
    """'<built-in method equal of type object at 0x7f..>' reads '<built-in method equal>'."""
    message = ("assert <built-in method equal of type object at 0x7f4cd36cea40> == "
               "<function f at 0x7f00aa>\n"
               " +  where <bound method A.f of <m.A object at 0xdeadbeef>> = a.f\n"
               "  Use -v to get more diff")
    text = shown(plain_failure(AssertionError(message)))
    assert "0x" not in text and "Use -v" not in text
    assert "<built-in method equal> == <function f>" in text
    assert "<bound method A.f of <m.A object>>" in text


def test_every_reported_message_loses_its_addresses():
    """The report takes every message through `shown`, so no path keeps an address."""
    report = Report({})
    report.record({"event": "collected", "nodeid": "t", "name": "quantization/t",
                   "assignment": "quantization", "task": "1.1", "suite": "public",
                   "points": 1.0})
    report.record({"event": "finished", "nodeid": "t", "status": "failed",
                   "message": "Your code raised TypeError: <function g at 0x55aa> is bad"})
    assert "<function g> is bad" in report.failures_text()
    assert without_addresses("no repr, 0x10 stays") == "no repr, 0x10 stays"


def test_a_property_spanning_lines_is_shown_whole_and_wrapped():
    """The docstring's first paragraph, all of it; long lines wrap at WIDTH, never cut."""
    def test_example():
        """An update costs O(T_new): the tensor elements written while appending T_new
        positions after a long prefix are a small multiple of T_new's, never the prefix
        again (no torch.cat, no clone, no rewrite of the cache).

        Details that are not the property."""

    item = SimpleNamespace(function=test_example)
    text = plain_failure(AssertionError("too many writes"), item)
    lines = text.splitlines()
    assert all(len(line) <= WIDTH for line in lines)
    property_lines = lines[:lines.index("too many writes")]
    assert " ".join(line.strip() for line in property_lines) == (
        "Property: " + property_of(test_example.__doc__))
    assert property_lines[-1].endswith("no rewrite of the cache).")
    assert "Details" not in text


def report_with_one_test_per_task(points: float) -> tuple[Report, dict]:
    """A report listing one hidden test of `points` for every task of the course."""
    table = titles()
    report = Report({}, table)
    for i, (assignment, task) in enumerate(table):
        report.record({"event": "collected", "nodeid": f"t{i}", "name": f"{assignment}/t{i}",
                       "assignment": assignment, "task": task, "suite": "hidden",
                       "points": points})
    return report, table


def test_the_task_table_shows_every_task_title_in_full():
    """The longest titles of the course (flash_attention's, moe's) are not cut."""
    report, table = report_with_one_test_per_task(1.0)
    text = report.text_summary()
    for (assignment, task), title in table.items():
        row = next(line for line in text.splitlines() if line.startswith(f"{assignment} ")
                   and f" {task} " in f" {line} ")
        assert title in row, (title, row)
    longest = max(table.values(), key=len)
    assert len(longest) > 39  # the old column cut titles at 39 characters


def test_the_task_table_columns_line_up():
    """Every row puts its tests and points at the same columns as the header."""
    report, _ = report_with_one_test_per_task(12.5)
    lines = report.text_summary().splitlines()
    rows = [line for line in lines if "/" in line]
    assert len({len(line) for line in rows}) == 1, rows
    assert len(lines[0]) == len(rows[0])
