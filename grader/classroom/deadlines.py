"""Deadlines, extensions and the late policy of a term, from one TOML file.

    [late]
    policy = "penalty"   # "deadline": only the commit seen at the deadline counts
                         # "penalty":  the last commit seen in the late window counts,
                         #             minus per_day per started day late, at most cap
                         # "none":     the last commit seen in the late window, no penalty
    per_day = 0.10       # fraction of the score (penalty only)
    cap = 0.50           # the most a penalty takes (penalty only)
    window_days = 5      # how long after the deadline new commits are still recorded

    [deadlines]          # one per assignment, ISO 8601 with a time zone (Z = UTC)
    quantization = "2026-10-02T23:59:00Z"

    [extensions.ada]     # a student's own deadline for an assignment
    quantization = "2026-10-04T23:59:00Z"

How late a commit is comes from when a freeze first saw it (freeze.py), never from
commit dates, which students write. Days late = ceil((seen - deadline) / 1 day).
A student's submission window ends at `Schedule.window_end` (or at an earlier delivery,
windows.py); nothing that would help them is delivered before.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

POLICIES = ("deadline", "penalty", "none")
DAY = timedelta(days=1)


@dataclass(frozen=True)
class LatePolicy:
    policy: str = "deadline"
    per_day: float = 0.0
    cap: float = 0.0
    window_days: float = 0.0

    def accepts_late_work(self) -> bool:
        return self.policy != "deadline" and self.window_days > 0

    def penalty(self, days_late: int) -> float:
        """The fraction of the score taken for `days_late` started days."""
        if self.policy != "penalty" or days_late <= 0:
            return 0.0
        return min(self.cap, self.per_day * days_late)


@dataclass
class Schedule:
    deadlines: dict[str, datetime] = field(default_factory=dict)     # assignment -> when
    extensions: dict[tuple[str, str], datetime] = field(default_factory=dict)
    late: LatePolicy = LatePolicy()

    def deadline(self, student: str, assignment: str) -> datetime | None:
        return self.extensions.get((student, assignment), self.deadlines.get(assignment))

    def window_end(self, student: str, assignment: str) -> datetime | None:
        """Their deadline, plus the late window when late work is accepted; None: none."""
        due = self.deadline(student, assignment)
        if due is None:
            return None
        return due + DAY * (self.late.window_days if self.late.accepts_late_work() else 0)


def days_late(deadline: datetime, seen: datetime) -> int:
    return max(0, math.ceil((seen - deadline) / DAY))


def parse_time(text: str, where: str) -> datetime:
    """An ISO 8601 time with a zone; a time without one is refused (whose midnight?)."""
    try:
        when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ValueError(f"{where}: {text!r} has no time zone (add Z for UTC)")
    return when


def load_schedule(path: Path, known: set[str]) -> Schedule:
    """Read and check `path`; ValueError names the key at fault."""
    data = tomllib.loads(Path(path).read_text())
    late = data.get("late", {})
    policy = late.get("policy", "deadline")
    if policy not in POLICIES:
        raise ValueError(f"{path}: late.policy {policy!r} must be one of {', '.join(POLICIES)}")
    numbers = {}
    for key in ("per_day", "cap", "window_days"):
        value = late.get(key, 0.0)
        upper = math.inf if key == "window_days" else 1.0
        if not isinstance(value, (int, float)) or not 0 <= value <= upper:
            raise ValueError(f"{path}: late.{key} = {value!r} must be a number in [0, {upper}]")
        numbers[key] = float(value)
    schedule = Schedule(late=LatePolicy(policy, **numbers))
    for name, when in data.get("deadlines", {}).items():
        _check_assignment(path, f"deadlines.{name}", name, known)
        schedule.deadlines[name] = parse_time(when, f"{path}: deadlines.{name}")
    for student, own in data.get("extensions", {}).items():
        for name, when in own.items():
            _check_assignment(path, f"extensions.{student}.{name}", name, known)
            schedule.extensions[(student, name)] = parse_time(
                when, f"{path}: extensions.{student}.{name}")
    return schedule


def _check_assignment(path, key: str, name: str, known: set[str]) -> None:
    if name not in known:
        raise ValueError(f"{path}: {key}: no assignment {name!r} "
                         f"(known: {', '.join(sorted(known))})")
