"""The `ranks` fixture: the student's code on several ranks at once (distributed assignments).

    def test_gradients_are_averaged(ranks):
        results = ranks(2).run(probe, per_rank=[(shard0,), (shard1,)])

`ranks(n)` is a `RankGroup` (grader/isolation/ranks.py): n worker processes,
one per rank, running the student's file (the one grader/kit/plugin.py's
Session grades) and the assignment's provided files, in one gloo process group
(`ranks(1, "nccl")` on a GPU). Starting a rank costs seconds (it imports
torch), so groups are kept across tests, one per (assignment, student file,
world size, backend), restarted after a crash and stopped when the session
ends. Student code always runs in those processes, even for local public
tests: what the ranks printed is printed again at teardown, so pytest shows it
beside a failing test ("Captured stdout teardown", rank by rank).

Registered for every test run by the repository's root conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.course import assignment_of_path

_GROUPS: dict[tuple, object] = {}  # (assignment, student file, world size, backend) -> group


@pytest.fixture
def ranks(request):
    """ranks(n, backend="gloo") -> the RankGroup of world size n for this test."""
    groups = {}

    def get(world_size: int, backend: str = "gloo"):
        if (world_size, backend) not in groups:  # once per test, not per hypothesis example
            groups[world_size, backend] = rank_group(request, world_size, backend)
        return groups[world_size, backend]

    yield get
    for group in groups.values():
        printed = group.printed()
        if printed:
            print(printed)  # pytest shows it with a failing test ("Captured stdout teardown")


def rank_group(request, world_size: int, backend: str = "gloo"):
    """The session's group for this test's assignment, world size and backend, told that
    a new test starts (the previous test's crash is forgotten)."""
    from grader.isolation.ranks import GroupConfig, RankGroup

    session = request.config.llmlab
    assignment = assignment_of_path(Path(str(request.node.fspath)))
    if assignment is None:
        raise RuntimeError(f"{request.node.nodeid} is not inside an assignment's tests")
    student_file = session.student_file(assignment)
    key = (assignment.name, str(student_file), world_size, backend)
    if key not in _GROUPS:
        files = {p.name: p for p in assignment.provided_files()}
        files[assignment.student_file] = student_file
        _GROUPS[key] = RankGroup(GroupConfig(
            world_size=world_size, scratch_files=files, module=assignment.module,
            call_timeout_s=assignment.call_timeout_s,
            collective_timeout_s=max(1.0, assignment.call_timeout_s / 2), backend=backend,
            problem=session.problems.get(assignment.name)))
        request.config.add_cleanup(lambda: _stop(key))
    group = _GROUPS[key]
    group.new_test()
    return group


def stop_groups_for(student_file: Path) -> None:
    """Stop every group running `student_file` (the mutant catalogue moves to the next one)."""
    for key in [key for key in _GROUPS if key[1] == str(student_file)]:
        _stop(key)


def _stop(key) -> None:
    group = _GROUPS.pop(key, None)
    if group is not None:
        group.close()
