"""The kernel rule (grader/kit/kernels.py): a kernel function's launches, replayed from its
inputs alone, must leave what it returned; the manifest names those functions."""

import types

import pytest
import torch
import triton
import triton.language as tl

from grader.course import load_manifest
from grader.kit.kernels import kernel_checked_call
from grader.kit.probes import run_probe


@triton.jit
def _double(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(y_ptr + offsets, 2 * tl.load(x_ptr + offsets, mask=mask), mask=mask)


def doubled(x):
    y = torch.empty(x.shape, dtype=x.dtype)
    _double[(1,)](x.contiguous(), y, x.numel(), BLOCK=64)
    return y


def doubled_then_cast(x):
    return doubled(x).to(torch.float64)


def copied_from_torch(x):
    return doubled(torch_half(x) * 2)


def torch_half(x):
    return (x * 1.0).clone()


STUDENT = types.SimpleNamespace(doubled=doubled, doubled_then_cast=doubled_then_cast,
                                copied_from_torch=copied_from_torch)


def test_a_kernel_that_computes_its_result_passes():
    """y = 2x written by the kernel from x itself (a contiguous copy of x allowed)."""
    x = torch.randn(3, 5).t()
    reply = run_probe(STUDENT, kernel_checked_call, "doubled", [x], {})
    assert reply["failure"] is None and torch.equal(reply["result"], 2 * x)


@pytest.mark.parametrize("function, why", [
    ("doubled_then_cast", "not in memory any launch wrote"),
    ("copied_from_torch", "leave 15 of the 15 values"),
])
def test_torch_work_before_or_after_the_kernel_fails(function, why):
    """A cast after the last launch, or a torch result a kernel reads, is not the kernels'."""
    x = torch.randn(3, 5)
    reply = run_probe(STUDENT, kernel_checked_call, function, [x], {})
    assert why in (reply["failure"] or "")


def test_a_kernel_function_must_be_implemented_by_a_task(tmp_path):
    """`kernel_functions` names functions of the tasks' `implements`."""
    manifest = tmp_path / "demo" / "assignment.toml"
    manifest.parent.mkdir()
    manifest.write_text('number = 9\ntitle = "t"\nstudent_file = "d.py"\ncall_timeout_s = 5\n'
                        'kernel_functions = ["g"]\n[[tasks]]\nid = "9.1"\ntitle = "f"\n'
                        'implements = ["f"]\n')
    with pytest.raises(ValueError, match="kernel function 'g'"):
        load_manifest(manifest)
