"""grader/isolation/ranks.py: groups of worker processes that share one gloo process group."""

import time

import pytest
import torch
import torch.distributed as dist

from grader.isolation.errors import StudentCrash
from grader.isolation.ranks import GroupConfig, RankGroup

STUDENT = '''
import time
import torch
import torch.distributed as dist

def total(x):
    dist.all_reduce(x)
    return x

def fail_on(rank):
    if dist.get_rank() == rank:
        raise ValueError("bad rank")
    dist.barrier()

def hang_on(rank):
    if dist.get_rank() == rank:
        time.sleep(60)
    dist.barrier()
'''


def summed(module, x):
    return module.total(x)


def failing(module, rank):
    return module.fail_on(rank)


def hanging(module, rank):
    print("about to wait")
    return module.hang_on(rank)


def where_am_i(module):
    return [dist.get_rank(), dist.get_world_size()]


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    path = tmp_path_factory.mktemp("ranks") / "student.py"
    path.write_text(STUDENT)
    group = RankGroup(GroupConfig(world_size=2, scratch_files={"student.py": path},
                                  module="student", call_timeout_s=8.0,
                                  collective_timeout_s=4.0))
    yield group
    group.close()


def test_every_rank_runs_the_probe_with_its_own_arguments(group):
    """per_rank arguments reach their rank; a collective across the group works."""
    group.new_test()
    assert group.run(where_am_i) == [[0, 2], [1, 2]]
    out = group.run(summed, [(torch.tensor([1.0]),), (torch.tensor([2.0]),)])
    assert [t.tolist() for t in out] == [[3.0], [3.0]]


def test_an_exception_on_one_rank_fails_the_call_and_the_group_recovers(group):
    """The failing rank's exception, typed and named; the next call works."""
    group.new_test()
    with pytest.raises(ValueError, match="on rank 1 of 2: bad rank"):
        group.run(failing, args=(1,))
    assert group.run(where_am_i) == [[0, 2], [1, 2]]


def test_a_hang_is_bounded_poisons_the_test_and_counts_strikes(group):
    """A rank that hangs fails the call in bounded time, the rest of the test at once,
    the next test gets a fresh group, and after two such tests the probe is not rerun."""
    for attempt in range(2):
        group.new_test()
        start = time.monotonic()
        with pytest.raises((StudentCrash, RuntimeError)) as failure:
            group.run(hanging, args=(0,))
        assert time.monotonic() - start < 20
        if attempt == 0:
            assert "about to wait" in getattr(failure.value, "student_output", "")
    with pytest.raises(StudentCrash):
        group.run(where_am_i)  # poisoned for the rest of this test
    group.new_test()
    assert group.run(where_am_i) == [[0, 2], [1, 2]]
    with pytest.raises(StudentCrash, match="not run again"):
        group.run(hanging, args=(0,))
