"""Hidden properties of DDP (Task 6.3, SPEC §3.6): buckets and overlap.

The probe records, in order, every gradient accumulation (a hook installed
before the student's DDP, so it runs first) and every `dist.all_reduce` the
student's code issues during backward and finish_gradient_synchronization().
Expected buckets follow SPEC §3.6 (tests/ddp/expect.py: expected_buckets).
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ddp.expect import MB, expected_buckets, make_problem, parameter_table
from tests.ddp.test_ddp import run_ddp

pytestmark = pytest.mark.task("6.3")
points = pytest.mark.points


def step_events(result, step=0):
    """The events of one step: ("grad", parameter index) and ("all_reduce", numel, async)."""
    events, current = [], 0
    for kind, value, flag in result["events"]:
        if kind == "step":
            if current == step:
                return events
            current, events = current + 1, []
        elif current == step:
            events.append((kind, value, flag))
    return events


def describe(events, names):
    return ", ".join(f"grad {names[v]}" if k == "grad" else
                     f"all_reduce({v} elements{', async' if a else ''})" for k, v, a in events)


def bucket_numels(problem, bucket_size_mb):
    numel = {n: k for n, k, _, _ in parameter_table(problem.state)}
    return [sum(numel[n] for n in bucket) for bucket in expected_buckets(problem.state,
                                                                         bucket_size_mb)]


@points(3)
def test_one_asynchronous_all_reduce_per_bucket_launched_during_backward(ranks):
    """One async all_reduce per bucket (one parameter each at bucket_size_mb=0), the first
    launched before the last gradient is computed."""
    problem = make_problem(11, 2)
    results = run_ddp(ranks(2), problem, bucket_size_mb=0.0, record=True)
    names = [n for n, *_ in parameter_table(problem.state)]
    expected = bucket_numels(problem, 0.0)
    for rank, result in enumerate(results):
        events = step_events(result)
        story = f"rank {rank} events: {describe(events, names)}"
        reduces = [e for e in events if e[0] == "all_reduce"]
        assert [e[1] for e in reduces] == expected, \
            f"expected one all_reduce per bucket of sizes {expected} in bucket order; {story}"
        assert all(e[2] for e in reduces), f"every bucket's all_reduce must be async; {story}"
        first_reduce = next(i for i, e in enumerate(events) if e[0] == "all_reduce")
        last_grad = max(i for i, e in enumerate(events) if e[0] == "grad")
        assert first_reduce < last_grad, \
            f"no all_reduce was launched before the last gradient was computed; {story}"


@points(3)
@given(seed=st.integers(0, 2**10), capacity=st.integers(0, 60),
       extra_float32=st.booleans())
@settings(max_examples=15)
def test_buckets_follow_reverse_order_and_the_size_limit(ranks, seed, capacity,
                                                         extra_float32):
    """Buckets are filled greedily in reverse registration order up to bucket_size_mb
    (MB = 2^20 bytes), with a new bucket at a dtype change: one all_reduce each, in order."""
    problem = make_problem(seed, 2, dims=(3, 5, 2),
                           extra_dtype=torch.float32 if extra_float32 else None)
    bucket_size_mb = capacity * 8 / MB  # a whole number of float64 elements
    results = run_ddp(ranks(2), problem, bucket_size_mb=bucket_size_mb, record=True, seed=seed)
    names = [n for n, *_ in parameter_table(problem.state)]
    buckets = expected_buckets(problem.state, bucket_size_mb)
    expected = bucket_numels(problem, bucket_size_mb)
    for rank, result in enumerate(results):
        events = step_events(result)
        got = [e[1] for e in events if e[0] == "all_reduce"]
        assert got == expected, (
            f"bucket_size_mb = {capacity} * 8 / 2^20 (room for {capacity} float64 numbers): "
            f"expected buckets {buckets} -> all_reduce sizes {expected}, rank {rank} issued "
            f"{got}; events: {describe(events, names)}")


@points(2)
def test_a_parameter_larger_than_the_limit_gets_its_own_bucket(ranks):
    """A parameter larger than the limit gets a bucket alone; parameters that fill a bucket
    exactly share it."""
    problem = make_problem(12, 2, dims=(3, 5, 2))
    bucket_size_mb = 12 * 8 / MB  # room for 12 float64 numbers
    # reverse order: extra.bias 2 + extra.weight 10 = 12 (exactly full), head.bias 2 +
    # head.weight 10, fc2.bias 5, fc2.weight 25 (alone), fc1.bias 5, fc1.weight 15 (alone)
    results = run_ddp(ranks(2), problem, bucket_size_mb=bucket_size_mb, record=True)
    got = [e[1] for e in step_events(results[0]) if e[0] == "all_reduce"]
    assert got == bucket_numels(problem, bucket_size_mb) == [12, 12, 5, 25, 5, 15], \
        f"all_reduce sizes {got} (expected [12, 12, 5, 25, 5, 15])"


@points(2)
def test_every_iteration_issues_the_same_buckets(ranks):
    """Every step issues the same all_reduces again (state is reset after finishing)."""
    steps = 3
    problem = make_problem(13, 2, steps=steps)
    results = run_ddp(ranks(2), problem, steps=steps, bucket_size_mb=20 * 8 / MB, record=True)
    expected = bucket_numels(problem, 20 * 8 / MB)
    for step in range(steps):
        got = [e[1] for e in step_events(results[1], step) if e[0] == "all_reduce"]
        assert got == expected, f"step {step}: all_reduce sizes {got}, expected {expected}"
