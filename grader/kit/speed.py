"""Speed as a graded property, on GPU runners only.

A speed test times the student's kernel against the reference's on the same
machine, in the same run, interleaved: student, reference, baseline, ... for
one untimed warm-up round (compilation, autotuning, caches) and REPEATS timed
rounds. This trusted process times each request with its own clock, around the
whole round trip to the worker: student code can make itself look no faster
than it is, and nothing it patches in its own process moves that clock.

Every request of a round, warm-up included, is the same `Request`:

- fresh seeds, one per call, drawn here from `secrets` (the operating system's
  entropy) when the round starts, never reused: no input can be predicted,
  cached from an earlier call or precomputed before its request arrives;
- the probe in the worker makes each call's inputs from its seed, calls the
  kernel once per seed and digests EACH output inside the same request, then
  synchronises the device: deferred work is still timed, because the reply
  carries values that depend on every output;
- the digests are weighted sums with weights drawn from a second secret seed
  (`weight_seed`), so a digest cannot be matched without the output itself;
- the reference worker gets the same request, and the test compares the replies
  digest by digest, call by call, in every round: a skipped, stale or unwritten
  output fails the test whichever call it was in.

Warm-up and timed requests go through the same probe with the same arguments'
shapes: the worker cannot tell a timed call from another, and has no reason to
(every call is checked). Making inputs and digests costs the same on both sides
(the same probe, seeds, shapes and device); the *baseline* measures that cost
in the reference worker (the same probe with the kernel call replaced by empty
outputs; never sent to the student) and it is kept out of the ratio:

    r = (median(reference s) − median(baseline s)) / (median(student s) − median(baseline s))

(the student's kernel throughput relative to the reference's), and the test's
points are scaled by

    fraction(r) = 1                          if r >= FULL_AT (0.5)
                  (r - NONE_BELOW) / (FULL_AT - NONE_BELOW)    between
                  0                          if r <  NONE_BELOW (0.1)

A student's net time below the *physical floor* of its request (the bytes a
call must move over the device's peak bandwidth, or its FLOPs over the peak
FLOP/s, `PEAKS`) is impossible for a kernel that did the work: it is reported
as suspicious, not fast (no points, flagged for review). The peaks are upper
bounds (the fastest variant of each device), so the floor is a true lower bound.

Timing is the one graded property that is not bit-for-bit deterministic: the
median of interleaved repeats and the wide band between 0.1x and 0.5x keep a
run-to-run difference of a few percent from moving a score by more than a few
percent of the task.

On a CPU these tests are skipped (the interpreter's speed says nothing about a
GPU kernel), except in smoke mode (LLMLAB_SPEED_SMOKE=1), which runs them on
tiny shapes so that the machinery is tested without a GPU; its scores mean nothing.
"""

from __future__ import annotations

import os
import secrets
import statistics
import time
from dataclasses import dataclass

FULL_AT = 0.5
NONE_BELOW = 0.1
REPEATS = 5
SMOKE_ENV = "LLMLAB_SPEED_SMOKE"
SEED_BITS = 63   # torch.Generator.manual_seed takes any of them


def smoke_mode() -> bool:
    return os.environ.get(SMOKE_ENV) == "1"


def fraction(ratio: float) -> float:
    """The share of the points earned at `ratio` times the reference's throughput."""
    if ratio >= FULL_AT:
        return 1.0
    if ratio < NONE_BELOW:
        return 0.0
    return (ratio - NONE_BELOW) / (FULL_AT - NONE_BELOW)


# ------------------------------------------------------------ one request --
@dataclass(frozen=True)
class Request:
    """What a timed (or warm-up) request sends to a worker: one seed per call, from which
    the probe makes that call's inputs, and the seed of the digests' weights."""

    seeds: tuple[int, ...]
    weight_seed: int


class Seeds:
    """Secret seeds, drawn from the operating system's entropy, none ever drawn twice."""

    def __init__(self):
        self.drawn: set[int] = set()

    def fresh(self) -> int:
        while True:
            seed = secrets.randbits(SEED_BITS)
            if seed not in self.drawn:
                self.drawn.add(seed)
                return seed

    def request(self, calls: int) -> Request:
        return Request(tuple(self.fresh() for _ in range(calls)), self.fresh())


# --------------------------------------------------------------- timings --
@dataclass
class Comparison:
    """Seconds per request, one entry per timed round."""

    student_s: list[float]
    reference_s: list[float]
    baseline_s: list[float]

    def _net(self, seconds: list[float]) -> float:
        """A median request's time less the baseline's (making inputs and digests)."""
        baseline = statistics.median(self.baseline_s) if self.baseline_s else 0.0
        return max(statistics.median(seconds) - baseline, 1e-9)

    @property
    def student_net_s(self) -> float:
        return self._net(self.student_s)

    @property
    def reference_net_s(self) -> float:
        return self._net(self.reference_s)

    @property
    def ratio(self) -> float:
        return self.reference_net_s / self.student_net_s

    def summary(self, what: str) -> str:
        return (f"{what}: {self.ratio:.2f}x the reference's throughput (median of "
                f"{len(self.student_s)} interleaved runs, less the "
                f"{statistics.median(self.baseline_s or [0.0]) * 1e3:.2f} ms of making "
                f"inputs and checking outputs: yours {self.student_net_s * 1e3:.2f} ms, the "
                f"reference's {self.reference_net_s * 1e3:.2f} ms) -> "
                f"{fraction(self.ratio):.0%} of the points (full at >= {FULL_AT}x, "
                f"none below {NONE_BELOW}x)")


def compare(run_student, run_reference, run_baseline, calls: int,
            repeats: int = REPEATS) -> tuple[Comparison, list[tuple[object, object]]]:
    """Time `run_student(request)`, `run_reference(request)` and `run_baseline(request)`
    in turn, for one untimed warm-up round and `repeats` timed ones, each round with a
    fresh `Request` of `calls` seeds sent to all three.

    Returns the timings and every round's (student's reply, reference's reply), the
    warm-up's included: the caller checks them all."""
    seeds, timings, replies = Seeds(), Comparison([], [], []), []
    for round_ in range(repeats + 1):
        request = seeds.request(calls)
        reply = {}
        for key, times, run in (("student", timings.student_s, run_student),
                                ("reference", timings.reference_s, run_reference),
                                ("baseline", timings.baseline_s, run_baseline)):
            started = time.perf_counter()
            reply[key] = run(request)
            if round_ > 0:
                times.append(time.perf_counter() - started)
        replies.append((reply["student"], reply["reference"]))
    return timings, replies


# ------------------------------------------------------ the physical floor --
@dataclass(frozen=True)
class Peak:
    """A device's peaks, upper bounds: the fastest variant of that device."""

    bandwidth: float   # bytes/s from device memory
    flops: float       # fp16 dense tensor-core FLOP/s
    cache: float       # bytes of last-level cache, which may serve some reads faster


#: Matched by name, in order (torch.cuda.get_device_name, or "cpu").
PEAKS = {
    # H200 SXM and NVL: HBM3e 4.8 TB/s; 989.5 TFLOP/s fp16 dense (SXM; NVL 835); L2 50 MB
    "H200": Peak(4.8e12, 989.5e12, 50e6),
    # H100 NVL 3.9 TB/s (SXM 3.35, PCIe 2.0); 989.5 TFLOP/s fp16 dense (SXM); L2 50 MB
    "H100": Peak(3.9e12, 989.5e12, 50e6),
    # any other GPU: above a B200's 8 TB/s and 2.25 PFLOP/s fp16 dense, 126 MB of L2
    "GPU": Peak(8e12, 2.5e15, 128e6),
    # smoke mode on a CPU: far above any CPU's, so the floor tests the machinery only
    "cpu": Peak(1e12, 1e14, 1e9),
}


def peak_of(device_name: str) -> Peak:
    """The peaks of a device named like torch.cuda.get_device_name() ("NVIDIA H100 80GB
    HBM3"), or "cpu"."""
    for name, peak in PEAKS.items():
        if name.lower() in device_name.lower():
            return peak
    return PEAKS["GPU"]


def device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name() if device == "cuda" else "cpu"


def floor_s(peak: Peak, bytes_moved: float, flops: float) -> float:
    """The least time one call can take on a device with `peak`:

        max((bytes − 2 · cache) / bandwidth,  flops / peak FLOP/s)

    Twice the cache: it may hold the tail of an input written just before the call,
    and of an output the digest reads just after it."""
    return max(max(bytes_moved - 2 * peak.cache, 0.0) / peak.bandwidth, flops / peak.flops)


def verdict(timings: Comparison, floor: float, what: str, device: str) -> tuple[float, str]:
    """The share of the points and why: the fraction of the ratio, or nothing when the
    student's net time per request is below `floor` (seconds), the physical floor."""
    if timings.student_net_s < floor:
        return 0.0, (f"{what}: yours took {timings.student_net_s * 1e3:.3f} ms a request "
                     f"beyond making inputs and checking outputs, below the physical floor "
                     f"of {floor * 1e3:.3f} ms on this {device} (bytes moved / peak "
                     "bandwidth, FLOPs / peak FLOP/s): suspicious, not fast. No speed "
                     "points; flagged for review")
    return fraction(timings.ratio), timings.summary(what)


def grant(request, share: float, message: str) -> None:
    """Give the running test `share` of its points, saying why (grader/kit/plugin.py puts
    both in the result). A share of 0 fails the test with the message, as an assertion
    (the student reads the message itself, not "your code raised")."""
    __tracebackhide__ = True
    if share <= 0:
        raise AssertionError(message)
    request.node.user_properties.append(("llmlab_fraction", min(1.0, share)))
    request.node.user_properties.append(("llmlab_message", message))
