"""Hidden properties of absmax_dequantize (Task 1.2, SPEC §3.1)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader.kit.checks import assert_equal, assert_raises
from grader.kit.strategies import float_tensors, shapes

pytestmark = pytest.mark.task("1.2")
points = pytest.mark.points


@st.composite
def codes_and_scales(draw):
    """int8 codes of a drawn shape and a float scale that broadcasts to them."""
    shape = draw(shapes(1, 3))
    seed = draw(st.integers(0, 2**16))
    q = torch.randint(-127, 128, shape, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.int8)
    keep = draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    scale_shape = tuple(s if k else 1 for s, k in zip(shape, keep, strict=True))
    if draw(st.booleans()):
        scale_shape = ()
    scale = draw(float_tensors(dtypes=(torch.float32, torch.float64), shape=scale_shape,
                               max_spread=8)).abs()
    return q, scale


@points(2)
@given(case=codes_and_scales())
def test_dequantized_values_are_codes_times_scale_in_float32(student, case):
    """absmax_dequantize(q, scale) == q.float() * scale, broadcast, float32."""
    q, scale = case
    got = student.absmax_dequantize(q, scale)
    expected = q.to(torch.float32) * scale.to(torch.float32)
    assert_equal(got, expected, "dequantized values", q=q, scale=scale)


@points(1)
def test_zero_scale_gives_zeros(student):
    """A zero scale (an all-zero slice) dequantizes to exact zeros, not nan."""
    q = torch.zeros(2, 3, dtype=torch.int8)
    scale = torch.tensor([[0.0], [0.5]])
    got = student.absmax_dequantize(q, scale)
    assert_equal(got, torch.zeros(2, 3), "dequantized zeros", q=q, scale=scale)


@points(1)
@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8, torch.float32],
                         ids=lambda d: str(d).replace("torch.", ""))
def test_codes_that_are_not_int8_raise_value_error(student, dtype):
    """q must be int8."""
    q = torch.ones(2, 3, dtype=dtype)
    assert_raises(ValueError, student.absmax_dequantize, q, torch.tensor(1.0),
                  what=f"q of dtype {dtype}")


@points(1)
@pytest.mark.parametrize("scale_shape", [(3, 1), (2, 2), (4,), (2, 3, 1)], ids=str)
def test_scale_that_does_not_broadcast_to_q_raises_value_error(student, scale_shape):
    """A scale whose shape does not broadcast to q's shape [2, 3] raises ValueError."""
    q = torch.ones(2, 3, dtype=torch.int8)
    assert_raises(ValueError, student.absmax_dequantize, q, torch.ones(scale_shape),
                  what=f"scale of shape {list(scale_shape)} for q of shape [2, 3]")
