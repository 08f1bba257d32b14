"""The strike rule: what crashed or hung in STRIKES tests is not run again.

A hang costs a whole call timeout (20 s or more). Within one test, the first
crash or hang already fails the rest of the test at once (the worker or rank
group is "poisoned" until the next test); across tests, this rule stops a
function that twenty tests call from costing twenty timeouts and the
assignment's time budget: after its second bad test it fails at once, saying
why ("not run again: ... timed out in 2 earlier tests").

Both a single worker (grader/isolation/worker.py, per student function) and a
rank group (grader/isolation/ranks.py, per probe, counted once for all ranks)
keep a `Strikes`.
"""

from __future__ import annotations

from grader.isolation.errors import StudentCrash

STRIKES = 2  # tests something may crash or hang in before it is no longer run


class Strikes:
    """Per key (a student function, a probe): the tests it crashed or hung in."""

    def __init__(self, limit: int | None = STRIKES):
        self.limit = limit  # None: count, never refuse (the group's ranks: it counts itself)
        self.counts: dict[str, tuple[int, str]] = {}  # key -> (tests, last reason)

    def check(self, key: str) -> None:
        """Raise StudentCrash if `key` is out of strikes."""
        count, reason = self.counts.get(key, (0, ""))
        if self.limit is not None and count >= self.limit:
            raise StudentCrash(f"not run again: {key} crashed or timed out in {count} earlier "
                               f"tests (last time: {reason})")

    def record(self, key: str, reason: str) -> None:
        """`key` crashed or hung in the current test (at most once a test: the rest of the
        test then fails without running it)."""
        count, _ = self.counts.get(key, (0, ""))
        self.counts[key] = (count + 1, reason)
