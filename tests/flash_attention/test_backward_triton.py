"""Hidden properties of the stretch task: the backward pass as Triton kernels (Task 4.4).

A Triton backward launches kernels during backward() and leaves the matrix
products to them: no torch matmul runs outside a Triton launch. Its gradients
are graded by Task 4.3's tests; these points reward doing it in Triton, so the
gradients checked here are the ones the backward's launches computed: replayed
from what existed before backward() alone, they must come out the same
(grader/kit/kernels.py, the rule the forward's kernel_functions get).
"""

import pytest
import torch

from grader.isolation.proxies import NOT_THE_KERNELS
from grader.kit.kernels import kernel_checked_backward
from grader.kit.observe import triton_launches
from grader.kit.probes import run_probe
from tests.flash_attention.expect import (
    MATMUL_OPS,
    assert_gradients_match,
    forward_and_gradients,
    forward_only,
    make_qkv,
    traced_call,
)
from tests.flash_attention.test_backward_gradients import upstream

pytestmark = pytest.mark.task("4.4")
points = pytest.mark.points


@points(2)
@pytest.mark.parametrize("causal", [False, True])
def test_backward_launches_triton_kernels_and_no_torch_matmul(student, causal):
    """backward() launches Triton kernels, runs no torch matrix product outside them,
    and its gradients are right and computed by its launches."""
    q, k, v = make_qkv((1, 2, 37, 32), 45, torch.float32, seed=4)
    do = upstream(q, 4)
    run_probe(student, forward_and_gradients, q, k, v, do, causal, None)  # GPU: autotune now
    start = triton_launches(student)
    run_probe(student, forward_only, q, k, v, causal)
    forward_launches = triton_launches(student) - start
    start = triton_launches(student)
    run_probe(student, forward_and_gradients, q, k, v, do, causal, None)
    backward_launches = triton_launches(student) - start - forward_launches
    assert backward_launches > 0, "backward() launched no Triton kernel"
    seen = run_probe(student, traced_call, "flash_attention", q, k, v, do, causal)
    matmuls = [op for op in seen["backward_ops"] if op in MATMUL_OPS]
    assert not matmuls, f"backward() ran torch matrix products outside Triton: {matmuls}"
    report = run_probe(student, kernel_checked_backward, "flash_attention", q, k, v, do,
                       {"causal": causal})
    assert report["failure"] is None, f"backward(): {NOT_THE_KERNELS}: {report['failure']}"
    assert_gradients_match(report["grads"], q, k, v, do, causal=causal, sm_scale=None)
