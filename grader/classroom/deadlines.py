"""Deadlines, extensions and the late policy of a term, from one TOML file.

    [late]
    policy = "penalty"   # "deadline": only the commit seen at the deadline counts
                         # "penalty":  the last commit seen in the late window counts,
                         #             minus per_day per started day late, at most cap
                         # "none":     the last commit seen in the late window, no penalty
    per_day = 0.10       # fraction of the score (penalty only)
    cap = 0.50           # the most a penalty takes (penalty only)
    window_days = 5      # how long after the deadline new commits are still recorded
    grace_minutes = 0    # a commit first seen this long after the deadline is on time

    [deadlines]          # one per assignment, ISO 8601 with a time zone (Z = UTC)
    quantization = "2026-10-02T23:59:00Z"

    [extensions.ada]     # a student's own deadline for an assignment
    quantization = "2026-10-04T23:59:00Z"

How late a commit is comes from when a freeze first saw it (freeze.py), never from
commit dates, which students write.

    days late = ceil((seen - deadline - grace) / 1 day), when positive, else 0

With the "penalty" policy a late commit never earns less than the deadline's commit
did: when the last commit of the late window differs from the one seen at the
deadline, both are graded and the better final score is kept (the row's status
says which, its days_late and penalty are the chosen one's).

Worked example: deadline 2026-10-02T23:59Z, grace_minutes = 15, per_day = 0.10,
cap = 0.50, so deadline + grace is 10-03 00:14:00. A commit first seen at 00:14:00
is on time (0 days); one first seen at 00:14:01 is 1 day late (-10%); one first seen
at 00:14:01 on 10-04 is 2 days late (-20%). If the deadline's commit scored 40/50 and
that 2-day-late one 45/50, the late one keeps 45 x 0.8 = 36 < 40: the row is graded
at the deadline's commit, 40, days_late 0 ("graded (best: the deadline's commit ...)").
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
    grace_minutes: float = 0.0

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


def days_late(deadline: datetime, seen: datetime, grace_minutes: float = 0.0) -> int:
    """Started days between deadline + grace and `seen`; 0 when seen within the grace."""
    return max(0, math.ceil((seen - deadline - timedelta(minutes=grace_minutes)) / DAY))


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
    for key in ("per_day", "cap", "window_days", "grace_minutes"):
        value = late.get(key, 0.0)
        upper = math.inf if key in ("window_days", "grace_minutes") else 1.0
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
