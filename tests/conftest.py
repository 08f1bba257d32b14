"""Run order for the repository's own test command, `pytest -n 2`.

pytest-xdist hands each worker a run of consecutive tests at a time. The
tests marked `run_last` (each assignment's mutant catalogue,
tests/test_catalogue.py: a minute or more each) would, left in their place,
go to one worker together and run one after another while the other worker
idles. At the end of the collection they are handed out one or two at a time,
to whichever worker is free, in their own order (slowest first).
"""


def pytest_configure(config):
    config.addinivalue_line("markers", "run_last: long; runs after every other test, in its "
                                       "own order (tests/conftest.py)")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.get_closest_marker("run_last") is not None)  # stable
