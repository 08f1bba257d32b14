"""Instructor overrides: `overrides.toml` beside the roster, one [[override]] per row.

    [[override]]
    student = "ada"
    assignment = "quantization"
    commit = "<40 hex>"   # grade this commit instead of the freeze's choice (on time,
    days_late = 0         #   unless days_late says otherwise; the policy's penalty then)
    reason = "force-pushed after the deadline; staff accepted the commit mailed on 10-05"

    [[override]]
    student = "bob"
    assignment = "lora"
    adjust = 5.0          # points added after the late penalty (may be negative), or
    # score = 40.0        # the final score, replacing the computed one
    reason = "regrade request 12: test 2.3 was wrong"

Every entry needs a reason (it is written in the row's `override` column). An entry
gives a commit, or adjust, or score; commit may go with adjust. A commit makes an
unreachable or unrecorded row gradable; a score makes any due row of record
(`graded (override)` when it was not graded). A row not yet due is left not due: an
override waits for the deadline. The final score is always
clamp(raw x (1 - penalty) + adjustment, 0, max_score).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

HEX = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Override:
    student: str
    assignment: str
    reason: str
    commit: str = ""
    days_late: int = 0
    adjust: float = 0.0
    score: float | None = None


def load_overrides(path: Path, students: set[str], assignments: set[str]
                   ) -> dict[tuple[str, str], Override]:
    """Read and check `path` (none: no overrides); ValueError names the entry by index
    and the key at fault."""
    if not Path(path).exists():
        return {}
    entries = tomllib.loads(Path(path).read_text()).get("override", [])
    found: dict[tuple[str, str], Override] = {}
    for i, entry in enumerate(entries):
        override = _check(entry, f"{path}: override[{i}]", students, assignments)
        key = (override.student, override.assignment)
        if key in found:
            raise ValueError(f"{path}: override[{i}]: a second entry for {key[0]} / {key[1]}")
        found[key] = override
    return found


def _check(entry: dict, where: str, students: set[str], assignments: set[str]) -> Override:
    known = {"student", "assignment", "reason", "commit", "days_late", "adjust", "score"}
    for key in entry:
        if key not in known:
            raise ValueError(f"{where}: {key}: unknown key (known: {', '.join(sorted(known))})")
    if entry.get("student") not in students:
        raise ValueError(f"{where}: student: {entry.get('student')!r} is not in the roster")
    if entry.get("assignment") not in assignments:
        raise ValueError(f"{where}: assignment: no assignment {entry.get('assignment')!r}")
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"{where}: reason: every override says why")
    if "score" in entry and ("commit" in entry or "adjust" in entry):
        raise ValueError(f"{where}: score: replaces the score, so not with commit or adjust")
    if not {"commit", "adjust", "score"} & set(entry):
        raise ValueError(f"{where}: commit, adjust or score: the entry changes nothing")
    commit = entry.get("commit", "")
    if "commit" in entry and not (isinstance(commit, str) and HEX.fullmatch(commit)):
        raise ValueError(f"{where}: commit: {commit!r} is not 40 lower-case hex digits")
    for key in ("adjust", "score"):
        value = entry.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: {key}: {value!r} is not a number")
    late = entry.get("days_late", 0)
    if isinstance(late, bool) or not isinstance(late, int) or late < 0:
        raise ValueError(f"{where}: days_late: {late!r} is not a whole number >= 0")
    if late and not commit:
        raise ValueError(f"{where}: days_late: only with commit")
    score = entry.get("score")
    return Override(entry["student"], entry["assignment"], reason.strip(), commit, late,
                    float(entry.get("adjust", 0.0)), None if score is None else float(score))


def final_score(raw: float, penalty: float, adjustment: float, max_score: float) -> float:
    """raw x (1 - penalty) + adjustment, clamped to [0, max_score]."""
    return round(min(max_score, max(0.0, raw * (1 - penalty) + adjustment)), 4)
