"""Hidden properties of absmax_quantize (Task 1.1, SPEC §3.1)."""

import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader.kit.checks import assert_all, assert_equal, assert_raises, assert_tensor, ulp32
from grader.kit.observe import call_and_inspect_inputs
from grader.kit.strategies import FLOAT_DTYPES, float_tensors, shapes
from tests.quantization.expect import assert_codes_match, assert_scale_matches

pytestmark = pytest.mark.task("1.1")
points = pytest.mark.points


@st.composite
def tensors_and_dims(draw, **kwargs):
    """A tensor and a dim for it: None, or any valid index, negative ones included."""
    x = draw(float_tensors(**kwargs))
    dim = draw(st.none() | st.integers(-x.dim(), x.dim() - 1))
    return x, dim


def dequantize(q, scale):
    return q.double() * scale.double()


# ------------------------------------------------------------ the contract --
@points(4)
@given(case=tensors_and_dims())
def test_codes_and_scales_match_the_specification(student, reference, case):
    """q and scale equal the specification for every dtype, shape, layout and dim."""
    x, dim = case
    q, scale = student.absmax_quantize(x, dim)
    q_ref, scale_ref = reference.absmax_quantize(x, dim)
    assert_scale_matches(scale, scale_ref, x)
    assert_codes_match(q, q_ref, x, dim)


@points(1)
def test_worked_example_from_the_handout(student):
    """[0.5, 20, -0.0001, -0.01, -0.1] quantizes to [3, 127, 0, 0, -1], scale 20/127."""
    x = torch.tensor([0.5, 20, -0.0001, -0.01, -0.1])
    q, scale = student.absmax_quantize(x)
    assert_equal(q, torch.tensor([3, 127, 0, 0, -1], dtype=torch.int8), "q", x=x)
    assert_equal(scale, torch.tensor(20 / 127, dtype=torch.float32), "scale", x=x)


# -------------------------------------------------------------- properties --
@points(1)
@given(case=tensors_and_dims())
def test_codes_are_int8_within_the_symmetric_range(student, case):
    """q is int8, has x's shape, and never leaves [-127, 127] (no -128)."""
    x, dim = case
    q, _ = student.absmax_quantize(x, dim)
    assert_tensor(q, dtype=torch.int8, shape=x.shape, what="q")
    assert_all(q.abs() <= 127, "q outside [-127, 127]", x=x, q=q)


@points(1)
@given(case=tensors_and_dims())
def test_largest_magnitude_maps_to_plus_or_minus_127(student, case):
    """In every slice with a nonzero element, the largest |x| gets code ±127."""
    x, dim = case
    q, _ = student.absmax_quantize(x, dim)
    assert_tensor(q, dtype=torch.int8, shape=x.shape, what="q")
    x32 = x.float().abs()
    reduce = dict(dim=dim, keepdim=True) if dim is not None else {}
    is_max = (x32 == x32.amax(**reduce)) & (x32 > 0)
    assert_all(~is_max | (q.abs() == 127), "the largest |x| is not coded as ±127", x=x, q=q)


@points(1)
@given(case=tensors_and_dims())
def test_sign_is_preserved(student, case):
    """A code is 0 or has the sign of its value."""
    x, dim = case
    q, _ = student.absmax_quantize(x, dim)
    assert_tensor(q, dtype=torch.int8, shape=x.shape, what="q")
    assert_all((q == 0) | (torch.sign(q) == torch.sign(x.float()).to(torch.int8)),
               "a code has the wrong sign", x=x, q=q)


@points(2)
@given(case=tensors_and_dims())
def test_reconstruction_error_is_at_most_half_a_step(student, case):
    """Round-to-nearest never moves a value by more than half a step: |q*scale - x| <= scale/2."""
    x, dim = case
    q, scale = student.absmax_quantize(x, dim)
    assert_tensor(q, dtype=torch.int8, shape=x.shape, what="q")
    assert_tensor(scale, dtype=torch.float32, what="scale")
    error = (dequantize(q, scale) - x.float().double()).abs()
    # slack: scale itself is rounded (1 ulp, times up to 127 steps) and v is rounded
    bound = scale.double() / 2 + 130 * ulp32(scale) + 4 * ulp32(x.float())
    assert_all(error <= bound, "|q * scale - x| exceeds scale / 2", x=x, q=q, scale=scale)


@points(1)
@given(case=tensors_and_dims())
def test_requantizing_dequantized_values_gives_the_same_codes(student, case):
    """quantize(dequantize(q, scale)) == q: the codes are a fixed point."""
    x, dim = case
    q, scale = student.absmax_quantize(x, dim)
    assert_tensor(q, dtype=torch.int8, shape=x.shape, what="q")
    x_hat = (q.float() * scale.float())
    q_again, _ = student.absmax_quantize(x_hat, dim)
    assert_equal(q_again, q, "codes of the dequantized values", x=x, x_hat=x_hat)


@points(1)
@given(case=tensors_and_dims(dtypes=(torch.float32, torch.float64)), k=st.integers(-20, 20))
def test_scaling_by_a_power_of_two_keeps_the_codes(student, case, k):
    """x and 2^k·x get the same codes, and the scale is multiplied by 2^k exactly."""
    x, dim = case
    q, scale = student.absmax_quantize(x, dim)
    q_scaled, scale_scaled = student.absmax_quantize(x * 2.0**k, dim)
    assert_equal(q_scaled, q, "codes of 2^k * x", x=x, k=k)
    assert_tensor(scale_scaled, dtype=torch.float32, shape=scale.shape, what="scale")
    assert_all(scale_scaled.double() == scale.double() * 2.0**k,
               "scale of 2^k * x is not 2^k * scale", x=x, k=k)


@points(1)
@given(x=float_tensors(shape=shapes(2, 2)), dim=st.sampled_from([0, 1, -1, -2]))
def test_each_slice_is_quantized_as_its_own_tensor(student, x, dim):
    """With dim=d, every slice along d equals the per-tensor quantization of that slice."""
    q, scale = student.absmax_quantize(x, dim)
    assert_tensor(q, dtype=torch.int8, shape=x.shape, what="q")
    for i in range(x.shape[1 - dim % 2]):
        piece = x.select(1 - dim % 2, i)
        q_piece, scale_piece = student.absmax_quantize(piece)
        assert_equal(q.select(1 - dim % 2, i), q_piece,
                     f"codes of slice {i} (dim={dim}) vs that slice alone", x=x)
        assert_equal(scale.flatten()[i], scale_piece, f"scale of slice {i}", x=x)


@points(1)
@given(x=float_tensors(shape=shapes(1, 3)))
def test_negative_dim_means_the_same_as_its_positive_twin(student, x):
    """dim=-1 and dim=ndim-1 give the same result; the scale keeps that dim with size 1."""
    q_neg, scale_neg = student.absmax_quantize(x, -1)
    q_pos, scale_pos = student.absmax_quantize(x, x.dim() - 1)
    expected_shape = (*x.shape[:-1], 1)
    assert_tensor(scale_neg, dtype=torch.float32, shape=expected_shape, what="scale (dim=-1)")
    assert_equal(q_neg, q_pos, "codes with dim=-1 vs dim=ndim-1", x=x)
    assert_equal(scale_neg, scale_pos, "scale with dim=-1 vs dim=ndim-1", x=x)


@points(1)
@given(x=float_tensors())
def test_per_tensor_scale_is_a_0d_float32_tensor(student, x):
    """dim=None gives one scale: a 0-d float32 tensor."""
    _, scale = student.absmax_quantize(x)
    assert_tensor(scale, dtype=torch.float32, shape=(), what="scale (dim=None)")


# -------------------------------------------------------------- edge cases --
@points(2)
@given(shape=shapes(1, 3), dtype=st.sampled_from(FLOAT_DTYPES), zero_slice=st.integers(0, 7))
def test_all_zero_tensors_and_slices_give_zero_codes_and_zero_scale(student, shape, dtype,
                                                                    zero_slice):
    """An all-zero tensor, or slice, gets q = 0 and scale exactly 0 (no nan anywhere)."""
    zeros = torch.zeros(shape, dtype=dtype)
    q, scale = student.absmax_quantize(zeros)
    assert_equal(q, torch.zeros(shape, dtype=torch.int8), "codes of an all-zero tensor")
    assert_equal(scale, torch.tensor(0.0), "scale of an all-zero tensor")

    x = torch.ones(shape, dtype=dtype)
    row = zero_slice % shape[0]
    x[row] = 0
    dim = -1 if len(shape) > 1 else None
    q, scale = student.absmax_quantize(x, dim)
    assert_tensor(q, dtype=torch.int8, shape=shape, what="q")
    assert_all(q[row] == 0, "codes of the all-zero slice", x=x, q=q)
    if dim is not None:
        assert_tensor(scale, dtype=torch.float32, shape=(*shape[:-1], 1), what="scale")
        assert_all(scale[row] == 0, "scale of the all-zero slice (must be exactly 0)",
                   x=x, scale=scale)
        assert_all(torch.isfinite(q.float() * scale), "dequantized values", x=x, scale=scale)


@points(1)
@given(value=st.floats(-1e30, 1e30, allow_nan=False).filter(lambda v: v == 0 or abs(v) > 1e-30))
def test_a_single_element_gets_code_plus_or_minus_127(student, value):
    """A one-element tensor gets code ±127 (0 for zero) and scale |x| / 127."""
    x = torch.tensor([value], dtype=torch.float32)
    q, scale = student.absmax_quantize(x)
    expected = 0 if value == 0 else (127 if x.item() > 0 else -127)
    assert_equal(q, torch.tensor([expected], dtype=torch.int8), "code of one element", x=x)
    assert_all((scale.double() - x.abs().double() / 127).abs() <= ulp32(scale),
               "scale of one element should be |x| / 127", x=x, scale=scale)


@points(2)
@given(n=st.integers(-126, 126), e=st.integers(-60, 60), neighbours=st.integers(1, 5))
def test_exact_ties_round_half_to_even(student, n, e, neighbours):
    """Where 127·x/absmax is exactly n + 0.5, the code is the even neighbour."""
    step = 2.0**e
    values = [127 * step] + [(n + 0.5) * step] * neighbours + [-(n + 0.5) * step]
    x = torch.tensor(values, dtype=torch.float32)
    q, _ = student.absmax_quantize(x)
    even = n if n % 2 == 0 else n + 1
    expected = [127] + [even] * neighbours + [-even]
    assert_equal(q, torch.tensor(expected, dtype=torch.int8), "codes of exact ties", x=x)


@points(1)
@given(mantissas=st.lists(st.integers(1024, 2047), min_size=1, max_size=6),
       e=st.integers(-30, 30))
def test_half_of_the_absmax_is_a_tie_rounded_to_64(student, mantissas, e):
    """x = ±absmax/2 gives v = 63.5 exactly in float32, so the code is ±64 (even),
    whatever absmax is (not only absmax = 127·2^k, where 127/absmax is exact)."""
    for m in mantissas:
        a = m * 2.0**e  # 11-bit mantissa: 127·a/2 is exact in float32
        x = torch.tensor([a, a / 2, -a / 2], dtype=torch.float32)
        q, _ = student.absmax_quantize(x)
        assert_equal(q, torch.tensor([127, 64, -64], dtype=torch.int8), "codes of ±absmax/2",
                     x=x)


@points(1)
@given(x=float_tensors())
def test_input_is_not_modified(student, x):
    """absmax_quantize leaves its input unchanged."""
    _, (x_after,) = call_and_inspect_inputs(student, "absmax_quantize", x.clone())
    assert_equal(x_after, x, "x after the call", x=x)


# ------------------------------------------------------------- bad inputs --
BAD_VALUES = [float("nan"), float("inf"), float("-inf")]


@points(1)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("bad", BAD_VALUES, ids=["nan", "inf", "-inf"])
def test_non_finite_input_raises_value_error(student, dtype, bad):
    """nan or ±inf anywhere in x raises ValueError naming x."""
    x = torch.tensor([1.0, bad, 2.0], dtype=dtype)
    error = assert_raises(ValueError, student.absmax_quantize, x, what=f"x containing {bad}")
    assert re.search(r"\bx\b", str(error)), f"the message should name the argument x: {error}"


@points(1)
def test_float64_values_beyond_float32_range_raise_value_error(student):
    """fp64 values that are not finite in float32 (1e300) raise ValueError."""
    x = torch.tensor([1.0, 1e300], dtype=torch.float64)
    assert_raises(ValueError, student.absmax_quantize, x, what="fp64 x with 1e300")


@points(1)
@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 4)], ids=str)
def test_empty_input_raises_value_error(student, shape):
    """An empty tensor raises ValueError."""
    x = torch.zeros(shape)
    assert_raises(ValueError, student.absmax_quantize, x, what=f"empty x of shape {shape}")


@points(1)
@pytest.mark.parametrize("dtype", [torch.int32, torch.int8, torch.int64, torch.bool],
                         ids=lambda d: str(d).replace("torch.", ""))
def test_non_floating_input_raises_value_error(student, dtype):
    """An integer or boolean tensor raises ValueError."""
    x = torch.ones(3, dtype=dtype)
    assert_raises(ValueError, student.absmax_quantize, x, what=f"{dtype} x")


@points(1)
@pytest.mark.parametrize("dim", [2, -3, 7])
def test_dim_out_of_range_raises_value_error(student, dim):
    """A dim outside [-ndim, ndim) raises ValueError naming dim."""
    x = torch.ones(2, 3)
    error = assert_raises(ValueError, student.absmax_quantize, x, dim, what=f"dim={dim}")
    assert re.search(r"\bdim\b", str(error)), f"the message should name dim: {error}"
