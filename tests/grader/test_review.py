"""grader/pipeline/review.py: constructs a person should look at are flagged, honest
solutions are not."""

import pytest

from grader.course import ASSIGNMENTS, REPO
from grader.pipeline.review import review_flags


@pytest.mark.parametrize("source, flag", [
    ("exec('x = 1')", "line 1: calls exec()"),
    ("import ctypes", "line 1: imports ctypes"),
    ("import os\nos.setsid()", "line 2: calls setsid() (processes or signals)"),
    ("import sys\nsys.modules['torch'] = None", "line 2: changes sys.modules['torch']"),
    ("import builtins\nbuiltins.print = len", "line 2: changes builtins.print"),
    ("import torch\ntorch.allclose = lambda *a: True", "line 2: changes torch.allclose"),
    ("import torch.distributed as dist\ndist.all_reduce = id", "line 2: changes dist.all_reduce"),
    ("import model\nmodel.generate = None", "line 2: changes model.generate"),
    ("text = open('/proc/self/cmdline').read()", "line 1: mentions /proc"),
])
def test_a_suspicious_construct_is_flagged_with_its_line(source, flag):
    assert flag in review_flags(source, provided_modules=("model",))


@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_the_reference_and_every_wrong_solution_raise_no_flag(name):
    """Flags are for attacks: honest code, right or wrong, must not drown them."""
    provided = tuple(p.rsplit(".", 1)[0] for p in ASSIGNMENTS[name].provided)
    files = [ASSIGNMENTS[name].reference_path(), *(REPO / "tests/mutants" / name).glob("*.py")]
    for path in files:
        assert review_flags(path.read_text(), provided) == [], path.name


def test_a_file_that_does_not_parse_says_so():
    assert review_flags("def (:")[0].startswith("does not parse")
