"""Test order for the hidden ddp suite (the `ranks` fixture is grader/kit/ranks.py).

Ordering: starting a rank costs seconds (it imports torch), and the mutant catalogue
stops at the first failure, so tests that need only the two-rank group run first;
tests that also need the 4-rank or 1-rank group (parametrized `world_size`, or marked
`@pytest.mark.world_sizes(...)`) run after them, each group in file order.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent


def pytest_configure(config):
    config.addinivalue_line("markers", "world_sizes(*n): the rank groups a ddp test uses "
                                       "besides two ranks (ordering only)")


def _needs_other_groups(item) -> bool:
    sizes = set()
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "world_size" in callspec.params:
        sizes.add(callspec.params["world_size"])
    marker = item.get_closest_marker("world_sizes")
    if marker is not None:
        sizes.update(marker.args)
    return bool(sizes - {2})


def pytest_collection_modifyitems(config, items):
    """Two-rank tests first, then the rest; only this suite's items move, within their slots."""
    slots = [i for i, item in enumerate(items)
             if Path(str(item.fspath)).resolve().is_relative_to(HERE)]
    ours = sorted((items[i] for i in slots), key=_needs_other_groups)  # stable
    for slot, item in zip(slots, ours, strict=True):
        items[slot] = item

