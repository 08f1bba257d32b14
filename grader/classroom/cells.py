"""CSV cells a spreadsheet cannot run (OWASP's "CSV Injection"), for every CSV the
grader writes: gradebook.csv, grades.csv, the Canvas and plain exports, freeze.csv
and delivered.csv. Every writer passes its rows through `cells`.

Excel, LibreOffice and Google Sheets read a cell that starts with = + - @, a tab
or a carriage return as a formula: `=HYPERLINK(...)` in a roster's name column, or
in text a student's repository put in a status, would run in the instructor's
spreadsheet. Such a text cell is written with a leading single quote, which the
spreadsheet shows as text:

    =1+1        ->  '=1+1
    'quoted     ->  ''quoted      (one more quote, so that `uncell` is exact)
    -10, 36.0   ->  -10, 36.0     (numbers, and text that is a plain number, stay numbers)

Numbers are never quoted: a score, a maximum or a negative adjustment must stay a
number in a spreadsheet and in Canvas's import. gradebook.csv and freeze.csv are
also the grader's own records, read back with `uncell`, so every value round-trips.
"""

from __future__ import annotations

import re

FORMULA = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def cell(value):
    """`value` as a spreadsheet may read it: a text cell that could start a formula
    (or starts with the quote itself) gets a leading quote; anything else is unchanged."""
    if isinstance(value, str) and value.startswith((*FORMULA, QUOTE)) \
            and not NUMBER.fullmatch(value):
        return QUOTE + value
    return value


def cells(row: list | dict) -> list | dict:
    """`cell` of every value of a csv.writer row (a list) or a csv.DictWriter row (a dict)."""
    if isinstance(row, dict):
        return {key: cell(value) for key, value in row.items()}
    return [cell(value) for value in row]


def uncell(text: str) -> str:
    """The value `cell` wrote as `text`."""
    return text[1:] if text.startswith(QUOTE) else text
