"""Probes: trusted driver functions run beside the student's code, in-process
or in the worker, with the same result either way."""

import math
import textwrap
import types

import pytest
import torch
from torch import nn

from grader.isolation.proxies import StudentProxy
from grader.isolation.worker import WorkerConfig, WorkerProcess
from grader.kit.probes import run_probe

STUDENT_SOURCE = """
    import torch
    from torch import nn

    class Scale(nn.Module):
        def __init__(self, base: nn.Linear, factor: float):
            super().__init__()
            self.base, self.factor = base, factor
            self.gain = nn.Parameter(torch.ones(()))

        def forward(self, x):
            if self.factor <= 0:
                raise ValueError("factor must be positive")
            return self.base(x) * self.factor * self.gain
"""


def scaled_output_and_grads(module, weight, x, factor):
    base = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    base.load_state_dict({"weight": weight})
    layer = module.Scale(base, factor)
    y = layer(x)
    y.sum().backward()
    return {"y": y, "gain": layer.gain, "gain_grad": layer.gain.grad,
            "state": layer.state_dict(), "norm": math.sqrt(float((y * y).sum().detach()))}


@pytest.fixture(params=["in-process", "worker"])
def student(request, tmp_path):
    path = tmp_path / "student_module.py"
    path.write_text(textwrap.dedent(STUDENT_SOURCE))
    if request.param == "in-process":
        module = types.ModuleType("student_module")
        exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
        yield module
        return
    worker = WorkerProcess(WorkerConfig(scratch_files={"student_module.py": path},
                                        module="student_module"))
    yield StudentProxy(worker, "student_module")
    worker.stop()


def test_a_probe_returns_plain_data_the_same_way_in_both_places(student):
    weight, x = torch.randn(3, 4), torch.randn(5, 4)
    out = run_probe(student, scaled_output_and_grads, weight, x, factor=2.0)
    assert type(out["y"]) is torch.Tensor and type(out["gain"]) is torch.Tensor
    torch.testing.assert_close(out["y"], 2 * x @ weight.T)
    torch.testing.assert_close(out["gain_grad"], (2 * x @ weight.T).sum())
    assert sorted(out["state"]) == ["base.weight", "gain"]


def test_a_student_exception_inside_a_probe_keeps_its_type(student):
    with pytest.raises(ValueError, match="factor must be positive"):
        run_probe(student, scaled_output_and_grads, torch.ones(1, 1), torch.ones(1, 1), -1.0)


LIMIT = 3


def uses_a_test_global(module):
    return LIMIT


def test_a_probe_may_not_use_the_test_modules_globals(student):
    with pytest.raises(TypeError, match="'LIMIT'"):
        run_probe(student, uses_a_test_global)


def test_a_probe_may_not_close_over_variables(student):
    limit = 3

    def closure(module):
        return limit

    with pytest.raises(TypeError, match="close over"):
        run_probe(student, closure)


def doubled(module, x):
    return 2 * x


def uses_a_helper_probe(module, x):
    return doubled(module, x) + 1


def test_a_probe_may_call_another_probe_of_its_module(student):
    assert run_probe(student, uses_a_helper_probe, torch.ones(2)).tolist() == [3.0, 3.0]
