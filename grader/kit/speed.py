"""Speed as a graded property, on GPU runners only.

A speed test times the student's kernel against the reference's on the same
machine, in the same run, interleaved: student, reference, student, reference,
... REPEATS times each. Both run in worker processes the same way (a probe that
makes fresh inputs on the GPU, warms up, then runs the kernel ITERATIONS times
and synchronises), and this trusted process times each call with its own clock:
student code can make itself look no faster than it is. The ratio is

    r = median(reference seconds) / median(student seconds)

(the student's throughput relative to the reference's), and the test's points
are scaled by

    fraction(r) = 1                          if r >= FULL_AT (0.5)
                  (r - NONE_BELOW) / (FULL_AT - NONE_BELOW)    between
                  0                          if r <  NONE_BELOW (0.1)

A kernel whose output differs from the reference's earns nothing for speed
(its correctness is graded by the other tasks). Timing is the one graded
property that is not bit-for-bit deterministic: the median of interleaved
repeats and the wide band between 0.1x and 0.5x keep a run-to-run difference of
a few percent from moving a score by more than a few percent of the task.

On a CPU these tests are skipped (the interpreter's speed says nothing about a
GPU kernel), except in smoke mode (LLMLAB_SPEED_SMOKE=1), which runs them on
tiny shapes so that the machinery is tested without a GPU; its scores mean nothing.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass

FULL_AT = 0.5
NONE_BELOW = 0.1
REPEATS = 5
SMOKE_ENV = "LLMLAB_SPEED_SMOKE"


def smoke_mode() -> bool:
    return os.environ.get(SMOKE_ENV) == "1"


def fraction(ratio: float) -> float:
    """The share of the points earned at `ratio` times the reference's throughput."""
    if ratio >= FULL_AT:
        return 1.0
    if ratio < NONE_BELOW:
        return 0.0
    return (ratio - NONE_BELOW) / (FULL_AT - NONE_BELOW)


@dataclass
class Comparison:
    student_s: list[float]
    reference_s: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.reference_s) / statistics.median(self.student_s)

    def summary(self, what: str) -> str:
        return (f"{what}: {self.ratio:.2f}x the reference's throughput (median of "
                f"{len(self.student_s)} interleaved runs: yours "
                f"{statistics.median(self.student_s) * 1e3:.2f} ms, the reference's "
                f"{statistics.median(self.reference_s) * 1e3:.2f} ms) -> "
                f"{fraction(self.ratio):.0%} of the points (full at >= {FULL_AT}x, "
                f"none below {NONE_BELOW}x)")


def compare(run_student, run_reference, repeats: int = REPEATS) -> tuple[Comparison, object,
                                                                          object]:
    """Time `run_student()` and `run_reference()` alternately, `repeats` times each, after
    one untimed call of each (compilation, autotuning, caches). Returns the timings and the
    last value each returned (a checksum of its output, compared by the caller)."""
    student_value, reference_value = run_student(), run_reference()
    timings = Comparison([], [])
    for _ in range(repeats):
        for times, run in ((timings.student_s, run_student),
                           (timings.reference_s, run_reference)):
            started = time.perf_counter()
            value = run()
            times.append(time.perf_counter() - started)
            if run is run_student:
                student_value = value
            else:
                reference_value = value
    return timings, student_value, reference_value


def grant(request, share: float, message: str) -> None:
    """Give the running test `share` of its points, saying why (grader/kit/plugin.py puts
    both in the result). A share of 0 fails the test with the message."""
    import pytest

    if share <= 0:
        pytest.fail(message, pytrace=False)
    request.node.user_properties.append(("llmlab_fraction", min(1.0, share)))
    request.node.user_properties.append(("llmlab_message", message))
