"""Hidden properties of broadcast_parameters (Task 6.1, SPEC §3.6)."""

import pytest
import torch

from grader.kit.checks import assert_equal, assert_raises
from tests.ddp.probes import broadcast_bad_src, broadcast_on_rank

pytestmark = pytest.mark.task("6.1")
points = pytest.mark.points


def rank_state(rank):
    """Different values on every rank; one non-contiguous parameter, a frozen one, a buffer."""
    g = torch.Generator().manual_seed(100 + rank)
    return {"a": torch.randn(4, 3, generator=g), "b": torch.randn(2, 5, generator=g),
            "frozen": torch.randn(3, generator=g), "stats": torch.randn(6, generator=g)}


@points(2)
@pytest.mark.parametrize("world_size, src", [(2, 0), (2, 1), (4, 0), (4, 3), (1, 0)])
def test_every_rank_ends_with_the_source_ranks_parameters_and_buffers(ranks, world_size, src):
    """Every parameter (frozen and non-contiguous ones too) and every buffer equals src's."""
    states = [rank_state(r) for r in range(world_size)]
    results = ranks(world_size).run(broadcast_on_rank, [(s,) for s in states],
                                    args=(src, True))
    for rank, result in enumerate(results):
        for name, value in states[src].items():
            assert_equal(result["state"][name], value,
                         f"{name} on rank {rank} after broadcast from rank {src}")


@points(1)
def test_parameters_stay_the_same_objects(ranks):
    """Broadcasting writes into the existing parameters (an optimizer may hold them)."""
    states = [rank_state(r) for r in range(2)]
    results = ranks(2).run(broadcast_on_rank, [(s,) for s in states], args=(1, True))
    assert all(r["same_objects"] for r in results), "parameters were replaced by new objects"


@points(1)
@pytest.mark.parametrize("src", [2, -1])
def test_src_out_of_range_raises_value_error(ranks, src):
    """src must be a rank of the group: 0 <= src < world size."""
    assert_raises(ValueError, ranks(2).run, broadcast_bad_src, args=(src,),
                  what=f"broadcast_parameters(module, src={src}) with world size 2")
