"""Peer check: the course's reference LoRALinear computes what peft's LoRA layer computes.

Worth 0 points, and it checks the *reference*, not the submission: it runs when
the suite runs on reference/ (the instructor repository, `grader grade
--reference`, CI) and is skipped when grading a submission, so neither a
missing optional package (peft, in [dev]) nor peft's import time ever touches a
student's score or run. Given the same base Linear, A, B, alpha and r, outputs,
delta weights and merged weights agree with peft's `lora.Linear`.
"""

import pytest
import torch
from torch import nn

from grader.kit.checks import assert_close, assert_equal
from tests.lora.cases import dyadic

pytestmark = pytest.mark.task("2.1")
points = pytest.mark.points


@pytest.fixture
def peft(request):
    if not request.config.llmlab.use_reference:
        pytest.skip("peer check of the course's reference against peft; not run on submissions")
    return pytest.importorskip("peft", reason="peft is not installed (pip install -e '.[dev]')")


def peft_and_reference(peft, reference, r, alpha, dtype, bias, seed):
    d_in, d_out = 7, 5
    weight, A, B = (dyadic(s, seed + i, dtype) for i, s in
                    enumerate([(d_out, d_in), (r, d_in), (d_out, r)]))
    base = nn.Linear(d_in, d_out, bias=bias, dtype=dtype)
    with torch.no_grad():
        base.weight.copy_(weight)
        if bias:
            base.bias.copy_(dyadic((d_out,), seed + 3, dtype))
    model = nn.ModuleDict({"proj": nn.Linear(d_in, d_out, bias=bias, dtype=dtype)})
    model.proj.load_state_dict(base.state_dict())
    config = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=["proj"], lora_dropout=0.0)
    theirs = peft.inject_adapter_in_model(config, model).proj
    ours = reference.LoRALinear(base, r, alpha)
    with torch.no_grad():
        theirs.lora_A["default"].weight.copy_(A)
        theirs.lora_B["default"].weight.copy_(B)
        ours.lora_A.copy_(A)
        ours.lora_B.copy_(B)
    return theirs, ours, dyadic((2, 3, d_in), seed + 4, dtype)


CONFIGS = [(1, 1, torch.float32, True), (4, 8, torch.float32, False),
           (3, 16, torch.float64, True), (2, 6, torch.bfloat16, True),
           (8, 32, torch.float16, True)]


@points(0)
def test_reference_lora_linear_equals_peft(peft, reference):
    """The reference LoRALinear equals peft's LoRA layer: forward, delta weight, merge."""
    for r, alpha, dtype, bias in CONFIGS:
        theirs, ours, x = peft_and_reference(peft, reference, r, alpha, dtype, bias, seed=3)
        case = dict(r=r, alpha=alpha, dtype=dtype, bias=bias)
        with torch.no_grad():
            assert_close(ours(x), theirs(x).double(), "forward vs peft", case=case)
            assert_close(ours.delta_weight(), theirs.get_delta_weight("default").double(),
                         "delta_weight vs peft", case=case)
            theirs.merge()
            ours.merge()
            assert_equal(ours.base.weight.detach(), theirs.base_layer.weight.detach(),
                         "merged weight vs peft", case=case)
            assert_close(ours(x), theirs(x).double(), "merged forward vs peft", case=case)
