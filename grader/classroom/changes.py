"""What a regrade changed: DIR/changes.csv and DIR/changes.md.

When `grade` replaces rows graded before, the old per-student results
(`results/<assignment>.json`, read before they are overwritten) are compared with the
new ones: one CSV line per test whose score or status changed, and one per row whose
final score changed (test ""), so a regrade's effect on each student is on record.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from grader.classroom.cells import cells

COLUMNS = ["student", "assignment", "test", "old_score", "new_score", "old_status",
           "new_status"]


def read_results(out: Path, student: str, assignment: str) -> dict:
    path = Path(out) / student / "results" / f"{assignment}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def changed(student: str, assignment: str, old: dict, new: dict, old_row, new_row) -> list[dict]:
    """The lines of changes.csv for one row: its tests', then the row's own."""
    lines = []
    before = {t.get("name"): t for t in old.get("tests", [])}
    after = {t.get("name"): t for t in new.get("tests", [])}
    for name in sorted(set(before) | set(after), key=str):
        a, b = before.get(name, {}), after.get(name, {})
        if (a.get("score"), a.get("status")) != (b.get("score"), b.get("status")):
            lines.append({"student": student, "assignment": assignment, "test": name,
                          "old_score": a.get("score", ""), "new_score": b.get("score", ""),
                          "old_status": a.get("status", ""), "new_status": b.get("status", "")})
    if (old_row.score, old_row.status) != (new_row.score, new_row.status):
        lines.append({"student": student, "assignment": assignment, "test": "",
                      "old_score": old_row.score, "new_score": new_row.score,
                      "old_status": old_row.status, "new_status": new_row.status})
    return lines


def write_changes(out: Path, lines: list[dict]) -> None:
    """changes.csv (every line) and changes.md (who gained or lost points on what)."""
    out = Path(out)
    with open(out / "changes.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(cells(line) for line in lines)
    from grader.pipeline.text import shown

    text = ["# Changes in this regrade", ""]
    for line in lines:
        delta = _number(line["new_score"]) - _number(line["old_score"])
        what = shown(line["test"]) if line["test"] else "row total"
        text.append(f"- {shown(line['student'])} / {shown(line['assignment'])} / {what}: "
                    f"{delta:+g} points ({shown(str(line['old_status']))} -> "
                    f"{shown(str(line['new_status']))})")
    if not lines:
        text.append("No score or status changed.")
    (out / "changes.md").write_text("\n".join(text) + "\n")


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
