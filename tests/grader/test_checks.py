"""The shared assertion helpers can fail, and fail for the right reasons."""

import pytest
import torch

from grader.kit.checks import assert_all, assert_close, assert_equal, assert_raises, assert_tensor
from grader.kit.tolerance import TOLERANCES


class LyingTensor(torch.Tensor):
    def __eq__(self, other):
        return torch.ones_like(torch.Tensor(self), dtype=torch.bool)


@pytest.mark.parametrize("dtype", list(TOLERANCES), ids=str)
def test_assert_close_accepts_within_and_rejects_beyond_the_dtype_tolerance(dtype):
    tol = TOLERANCES[dtype]
    expected = torch.tensor([1.0, -2.0, 4.0], dtype=torch.float64)
    assert_close((expected * (1 + tol.rtol / 2)).to(dtype), expected, "close", dtype=dtype)
    with pytest.raises(AssertionError, match="fails at 1 of 3 positions"):
        far = expected.clone()
        far[1] *= 1 + 4 * tol.rtol + 1e-2
        assert_close(far.to(dtype), expected, "far", dtype=dtype)


def test_assert_close_refuses_a_reference_that_zeros_would_pass():
    tiny = torch.full((3,), 1e-9, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="cannot fail"):
        assert_close(torch.zeros(3), tiny, "tiny")


def test_a_tensor_subclass_with_a_lying_eq_does_not_pass():
    liar = torch.zeros(3).as_subclass(LyingTensor)
    with pytest.raises(AssertionError, match="should be a torch.Tensor"):
        assert_equal(liar, torch.ones(3), "values")


def test_failure_messages_name_the_first_failing_index_and_the_inputs():
    x = torch.tensor([1.0, 2.0, 3.0])
    with pytest.raises(AssertionError) as info:
        assert_all(x < 2.5, "below 2.5", x=x)
    assert "first at index [2]" in str(info.value) and "x[2] = 3.0" in str(info.value)


def test_assert_raises_rejects_the_wrong_exception_and_no_exception():
    with pytest.raises(AssertionError, match="expected ValueError, got TypeError"):
        assert_raises(ValueError, lambda: (_ for _ in ()).throw(TypeError("t")), what="f")
    with pytest.raises(AssertionError, match="nothing was raised"):
        assert_raises(ValueError, lambda: None, what="f")
    with pytest.raises(AssertionError, match="dtype"):
        assert_tensor(torch.zeros(2), dtype=torch.int8)
