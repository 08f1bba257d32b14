"""Hidden properties of DDP (Task 6.3, SPEC §3.6): the numbers.

Every rank runs the same small network on its own shard of the batch; the
expected gradients and parameters come from one process running the whole
batch in float64 (tests/ddp/expect.py). Ranks start from different weights:
DDP must broadcast rank 0's at construction.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.kit.checks import assert_close, assert_equal, assert_raises
from tests.ddp.expect import (
    FROZEN,
    assert_grads_match,
    make_problem,
    rank_states,
    single_process_run,
)
from tests.ddp.probes import construct_on_rank, train_on_rank

pytestmark = pytest.mark.task("6.3")
points = pytest.mark.points


def run_ddp(group, problem, *, steps=1, optimizer="sgd", lr=0.1, bucket_size_mb=25.0,
            seed=0, record=False, straggle_s=0.0, method="ddp"):
    """Every rank trains with the student's DDP; per-rank results."""
    states = rank_states(problem, seed)
    per_rank = [(states[r], problem.xs[r], problem.ys[r], problem.use_extra[r])
                for r in range(group.world_size)]
    return group.run(train_on_rank, per_rank, method=method, steps=steps, optimizer=optimizer,
                     lr=lr, bucket_size_mb=bucket_size_mb, record=record,
                     straggle_s=straggle_s,
                     strike_key="DDP" if method == "ddp" else "all_reduce_gradients")


def assert_same_on_every_rank(results, key, what):
    """Bitwise equal across ranks: they all applied the same averaged gradient."""
    for rank, result in enumerate(results[1:], start=1):
        for name, value in results[0][key].items():
            assert_equal(result[key][name], value,
                         f"{what}: {name} on rank {rank} differs from rank 0's")


@points(4)
@pytest.mark.parametrize("world_size", [2, 4, 1])
def test_gradients_equal_the_single_process_full_batch_gradients(ranks, world_size):
    """After one step every rank's gradients equal one process's full-batch gradients."""
    problem = make_problem(1, world_size)
    results = run_ddp(ranks(world_size), problem)
    expected, _ = single_process_run(problem, steps=1)
    for rank, result in enumerate(results):
        assert_grads_match(result["grads"][0], expected[0], f"rank {rank} of {world_size}")


@points(2)
@pytest.mark.world_sizes(4)
def test_construction_broadcasts_rank_0_parameters_and_buffers(ranks):
    """Right after DDP(...) every rank holds rank 0's parameters and buffers."""
    problem = make_problem(2, 4)
    results = run_ddp(ranks(4), problem, steps=0)
    for rank, result in enumerate(results):
        for name, value in problem.state.items():
            assert_equal(result["initial"][name], value,
                         f"{name} on rank {rank} after construction (should be rank 0's)")


@points(2)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_float32_and_float64_models_give_full_batch_gradients(ranks, dtype):
    """Gradients match the full-batch gradients in the model's own dtype."""
    problem = make_problem(3, 2, dtype=dtype, dims=(4, 6, 3))
    results = run_ddp(ranks(2), problem, bucket_size_mb=0.0)
    expected, _ = single_process_run(problem, steps=1)
    for rank, result in enumerate(results):
        for name, grad in result["grads"][0].items():
            if name not in FROZEN:
                assert grad.dtype == dtype, f"{name}.grad should be {dtype}, got {grad.dtype}"
        assert_grads_match(result["grads"][0], expected[0], f"rank {rank}")


@points(3)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_parameters_stay_identical_across_ranks_and_match_one_process(ranks, optimizer):
    """Over several optimizer steps (a slow rank included) parameters stay identical on
    every rank and equal a single-process run."""
    steps = 4
    problem = make_problem(4, 2, steps=steps)
    results = run_ddp(ranks(2), problem, steps=steps, optimizer=optimizer, lr=0.05,
                      bucket_size_mb=0.0002, straggle_s=0.05)
    expected_grads, expected_final = single_process_run(problem, steps, optimizer, lr=0.05)
    for step in range(steps):
        assert_grads_match(results[0]["grads"][step], expected_grads[step],
                           f"step {step} ({optimizer}), rank 0")
    assert_same_on_every_rank(results, "final", f"after {steps} {optimizer} steps")
    for name, value in expected_final.items():
        assert_close(results[0]["final"][name], value,
                     f"{name} after {steps} {optimizer} steps (vs one process)")


@points(3)
def test_unused_parameters_count_as_zero_gradients_even_when_ranks_differ(ranks):
    """A parameter unused on some ranks averages as zeros; unused everywhere it gets
    a zero gradient, not None; frozen parameters never get one."""
    steps = 3
    use_extra = [[True, False, False], [False, True, False]]  # [rank][step]
    problem = make_problem(5, 2, steps=steps, use_extra=use_extra)
    results = run_ddp(ranks(2), problem, steps=steps, bucket_size_mb=0.0)
    expected, expected_final = single_process_run(problem, steps)
    for rank, result in enumerate(results):
        for step in range(steps):
            assert_grads_match(result["grads"][step], expected[step],
                               f"rank {rank}, step {step} (extra used on ranks "
                               f"{[r for r in range(2) if use_extra[r][step]]})")
    assert_same_on_every_rank(results, "final", "after 3 steps with unused parameters")


@points(3)
@pytest.mark.world_sizes(4)
@given(seed=st.integers(0, 2**16), world_size=st.sampled_from([2, 4]),
       buckets=st.sampled_from([0.0, 1e-4, 4e-4, 25.0, 1e4]),
       dims=st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 4)))
@settings(max_examples=12)
def test_any_bucket_size_gives_the_same_gradients(ranks, seed, world_size, buckets, dims):
    """Tiny buckets (one parameter each), medium ones and one huge bucket all give
    the full-batch gradients."""
    problem = make_problem(seed, world_size, dims=dims)
    results = run_ddp(ranks(world_size), problem, bucket_size_mb=buckets, seed=seed)
    expected, _ = single_process_run(problem, steps=1)
    for rank, result in enumerate(results):
        assert_grads_match(result["grads"][0], expected[0],
                           f"rank {rank} of {world_size}, bucket_size_mb={buckets}")


@points(2)
def test_many_iterations_keep_working(ranks):
    """Ten steps in a row: every step's gradients are right (state resets after finish)."""
    steps = 10
    problem = make_problem(6, 2, steps=steps, batch=2)
    results = run_ddp(ranks(2), problem, steps=steps, bucket_size_mb=0.0003)
    expected, _ = single_process_run(problem, steps)
    for step in range(steps):
        for rank, result in enumerate(results):
            assert_grads_match(result["grads"][step], expected[step], f"rank {rank}, step {step}")


@points(1)
@pytest.mark.parametrize("bucket_size_mb", [-1.0, float("nan"), float("inf"), -1e-9])
def test_bad_bucket_size_raises_value_error(ranks, bucket_size_mb):
    """bucket_size_mb must be a finite number >= 0."""
    group = ranks(2)
    assert_raises(ValueError, group.run, construct_on_rank, args=(bucket_size_mb,),
                  what=f"DDP(..., bucket_size_mb={bucket_size_mb})")


@pytest.mark.gpu
@pytest.mark.world_sizes(1)
@points(0)
def test_nccl_single_rank_on_the_gpu(ranks):
    """World size 1 over NCCL on a GPU: gradients equal the full-batch gradients."""
    problem = make_problem(7, 1)
    group = ranks(1, "nccl")
    problem.state = {k: v.cuda() for k, v in problem.state.items()}
    problem.xs = [x.cuda() for x in problem.xs]
    problem.ys = [y.cuda() for y in problem.ys]
    results = run_ddp(group, problem, bucket_size_mb=0.0)
    problem.state = {k: v.cpu() for k, v in problem.state.items()}
    problem.xs = [x.cpu() for x in problem.xs]
    problem.ys = [y.cpu() for y in problem.ys]
    expected, _ = single_process_run(problem, steps=1)
    grads = {k: (v.cpu() if v is not None else None) for k, v in results[0]["grads"][0].items()}
    assert_grads_match(grads, expected[0], "rank 0 (nccl)")
