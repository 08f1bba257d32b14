"""Hidden properties of all_reduce_gradients, the naive version (Task 6.2, SPEC §3.6).

Every rank broadcasts rank 0's weights (broadcast_parameters), runs its shard,
calls all_reduce_gradients; the expected gradients come from one process
running the whole batch in float64 (tests/ddp/expect.py).
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.kit.checks import assert_close
from tests.ddp.expect import assert_grads_match, make_problem, single_process_run
from tests.ddp.test_ddp import assert_same_on_every_rank, run_ddp

pytestmark = pytest.mark.task("6.2")
points = pytest.mark.points


@points(3)
@pytest.mark.parametrize("world_size", [2, 4, 1])
def test_gradients_are_the_mean_over_ranks(ranks, world_size):
    """After all_reduce_gradients every rank holds the full-batch gradients (the mean over
    ranks of the shards' gradients, not their sum)."""
    problem = make_problem(21, world_size)
    results = run_ddp(ranks(world_size), problem, method="naive")
    expected, _ = single_process_run(problem, steps=1)
    for rank, result in enumerate(results):
        assert_grads_match(result["grads"][0], expected[0], f"rank {rank} of {world_size}")


@points(2)
@pytest.mark.world_sizes(4)
@given(seed=st.integers(0, 2**16), world_size=st.sampled_from([2, 4]),
       dims=st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 4)),
       batch=st.integers(1, 4))
@settings(max_examples=10)
def test_full_batch_gradients_for_any_shapes(ranks, seed, world_size, dims, batch):
    """Full-batch gradients for any layer sizes and shard sizes."""
    problem = make_problem(seed, world_size, dims=dims, batch=batch)
    results = run_ddp(ranks(world_size), problem, method="naive", seed=seed)
    expected, _ = single_process_run(problem, steps=1)
    for rank, result in enumerate(results):
        assert_grads_match(result["grads"][0], expected[0], f"rank {rank} of {world_size}")


@points(2)
def test_missing_gradients_count_as_zeros_and_are_materialised(ranks):
    """A parameter unused on some ranks averages as zeros; unused on every rank it gets a
    zero gradient (not None); a frozen parameter keeps grad None."""
    steps = 2
    use_extra = [[True, False], [False, False]]
    problem = make_problem(22, 2, steps=steps, use_extra=use_extra)
    results = run_ddp(ranks(2), problem, method="naive", steps=steps)
    expected, _ = single_process_run(problem, steps)
    for rank, result in enumerate(results):
        for step in range(steps):
            assert_grads_match(result["grads"][step], expected[step], f"rank {rank}, step {step}")


@points(2)
@pytest.mark.world_sizes(4)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_parameters_stay_identical_and_match_one_process(ranks, optimizer):
    """Several optimizer steps: parameters identical on every rank, equal to one process."""
    steps = 3
    problem = make_problem(23, 4, steps=steps)
    results = run_ddp(ranks(4), problem, method="naive", steps=steps, optimizer=optimizer,
                      lr=0.05)
    _, expected_final = single_process_run(problem, steps, optimizer, lr=0.05)
    assert_same_on_every_rank(results, "final", f"after {steps} {optimizer} steps")
    for name, value in expected_final.items():
        assert_close(results[0]["final"][name], value, f"{name} after {steps} {optimizer} steps")
