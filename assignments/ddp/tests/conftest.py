"""The `ranks` fixture for the public ddp tests.

ranks(n) is a group of n worker processes, one per rank, each running your
ddp.py with a gloo process group already initialised (grader/isolation/ranks.py). Your
code always runs in those processes, even locally: print() there goes to the
worker's output, shown below a failing test rank by rank ("--- rank 0:").
"""

import pytest

from grader.isolation.ranks import rank_group


@pytest.fixture
def ranks(request):
    """ranks(n) -> the RankGroup of world size n; prints what the ranks printed."""
    groups = {}

    def get(world_size: int):
        if world_size not in groups:
            groups[world_size] = rank_group(request, world_size)
        return groups[world_size]

    yield get
    for group in groups.values():
        printed = group.printed()
        if printed:
            print(printed)  # pytest shows it with a failing test ("Captured stdout teardown")
