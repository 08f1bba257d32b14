"""Public tests for assignment 1 (quantization): small examples you can debug.

Run them with `grader test quantization` or `pytest assignments/quantization`.
`student` is your module (quantize.py), imported in this process, so
`pytest --pdb` and breakpoints work. Official grading adds hidden
property-based tests; README.md §8 says what they check.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.kit.checks import assert_all, assert_equal, assert_tensor
from grader.kit.strategies import shapes

points = pytest.mark.points


@st.composite
def small_float32_tensors(draw):
    """float32, 1 or 2 dims, at most 12 elements (printed in full), finite values in +-1000."""
    shape = draw(shapes(min_dims=1, max_dims=2, max_side=4))
    n = 1
    for side in shape:
        n *= side
    values = draw(st.lists(st.floats(-1000, 1000, width=32), min_size=n, max_size=n))
    return torch.tensor(values, dtype=torch.float32).reshape(shape)


def assert_codes(q, expected):
    assert type(q) is torch.Tensor and q.dtype == torch.int8, f"q should be int8, got {q!r}"
    expected = torch.tensor(expected, dtype=torch.int8)
    assert q.shape == expected.shape, f"q should have shape {list(expected.shape)}, got {list(q.shape)}"
    wrong = (q.cpu() != expected).nonzero()
    assert len(wrong) == 0, (f"{len(wrong)} of {q.numel()} codes differ; first at index "
                             f"{wrong[0].tolist()}: got {q.cpu()[tuple(wrong[0])].item()}, "
                             f"expected {expected[tuple(wrong[0])].item()}")


def assert_scale(scale, expected, shape):
    assert type(scale) is torch.Tensor and scale.dtype == torch.float32, \
        f"scale should be float32, got {scale!r}"
    assert tuple(scale.shape) == shape
    assert scale.flatten().tolist() == pytest.approx(expected, rel=1e-6, abs=0)


# ------------------------------------------------- Task 1.1 absmax_quantize --
@points(2)
@pytest.mark.task("1.1")
def test_1_1_worked_example(student):
    """[0.5, 20, -0.0001, -0.01, -0.1] quantizes to [3, 127, 0, 0, -1], scale 20/127."""
    q, scale = student.absmax_quantize(torch.tensor([0.5, 20, -0.0001, -0.01, -0.1]))
    assert_codes(q, [3, 127, 0, 0, -1])
    assert_scale(scale, [20 / 127], shape=())


@points(1)
@pytest.mark.task("1.1")
def test_1_1_all_zero_tensor_gives_zero_codes_and_zero_scale(student):
    """An all-zero tensor gets q = 0 and scale exactly 0, not nan."""
    q, scale = student.absmax_quantize(torch.zeros(2, 3))
    assert_codes(q, [[0, 0, 0], [0, 0, 0]])
    assert_scale(scale, [0.0], shape=())


@points(2)
@pytest.mark.parametrize("dim", [1, -1])
@pytest.mark.task("1.1")
def test_1_1_one_scale_per_row(student, dim):
    """dim=1 (or -1) gives each row its own absmax; scale has shape [M, 1]."""
    x = torch.tensor([[1.0, -2.0, 4.0],
                      [0.5, 0.25, -0.125]])
    q, scale = student.absmax_quantize(x, dim)
    # row 0: 127 * [1, -2, 4] / 4 = [31.75, -63.5, 127];  -63.5 is a tie -> -64
    # row 1: 127 * [0.5, 0.25, -0.125] / 0.5 = [127, 63.5, -31.75];  63.5 -> 64
    assert_codes(q, [[32, -64, 127],
                     [127, 64, -32]])
    assert_scale(scale, [4 / 127, 0.5 / 127], shape=(2, 1))


@points(1)
@pytest.mark.task("1.1")
def test_1_1_one_scale_per_column(student):
    """dim=0 gives each column its own absmax; scale has shape [1, N]."""
    x = torch.tensor([[1.0, -2.0, 4.0],
                      [0.5, 0.25, -0.125]])
    q, scale = student.absmax_quantize(x, dim=0)
    # columns: absmax [1, 2, 4]; 127 * 0.5 / 1 = 63.5 -> 64, 127 * 0.25 / 2 = 15.875 -> 16
    assert_codes(q, [[127, -127, 127],
                     [64, 16, -4]])
    assert_scale(scale, [1 / 127, 2 / 127, 4 / 127], shape=(1, 3))


@points(1)
@pytest.mark.task("1.1")
def test_1_1_exact_ties_round_half_to_even(student):
    """127*x/absmax exactly n + 0.5 rounds to the even neighbour: 2.5 -> 2, 3.5 -> 4."""
    q, _ = student.absmax_quantize(torch.tensor([127.0, 2.5, 3.5, -2.5, -3.5]))
    assert_codes(q, [127, 2, 4, -2, -4])


@points(1)
@pytest.mark.task("1.1")
def test_1_1_nan_raises_value_error_naming_x(student):
    """nan anywhere in x raises ValueError whose message names x."""
    with pytest.raises(ValueError, match=r"\bx\b"):
        student.absmax_quantize(torch.tensor([1.0, float("nan"), 2.0]))


@points(1)
@pytest.mark.task("1.1")
def test_1_1_integer_tensor_raises_value_error(student):
    """An integer tensor cannot be quantized: ValueError."""
    with pytest.raises(ValueError):
        student.absmax_quantize(torch.tensor([1, 2, 3]))


@points(1)
@pytest.mark.task("1.1")
def test_1_1_input_tensor_is_left_unchanged(student):
    """absmax_quantize returns x's codes and never writes to x (a float32 x too)."""
    x = torch.tensor([0.5, 20, -0.0001, -0.01, -0.1])
    original = x.clone()
    q, _ = student.absmax_quantize(x)
    assert_equal(x, original, "x after absmax_quantize(x) must be unchanged")
    assert_codes(q, [3, 127, 0, 0, -1])


@points(1)
@pytest.mark.task("1.1")
def test_1_1_dim_out_of_range_raises_value_error(student):
    """dim = 2 on a 2-D tensor raises ValueError (not torch's IndexError)."""
    with pytest.raises(ValueError):
        student.absmax_quantize(torch.ones(2, 3), dim=2)


@points(1)
@pytest.mark.task("1.1")
@settings(max_examples=15)
@given(x=small_float32_tensors())
def test_1_1_codes_stay_within_plus_minus_127_and_reconstruct_within_half_a_step(student, x):
    """For any small float32 x, q is int8 in [-127, 127] and |q * scale - x| <= scale / 2."""
    q, scale = student.absmax_quantize(x)
    assert_tensor(q, dtype=torch.int8, shape=x.shape, what="q")
    assert_all(q.int().abs() <= 127, "q outside [-127, 127]", q=q)
    error = (q.double() * scale.double() - x.double()).abs()
    bound = scale.double() / 2 * (1 + 1e-4)  # slack: scale is rounded to float32
    assert_all(error <= bound, "|q * scale - x| exceeds scale / 2", q=q, scale=scale,
               error=error)


# ----------------------------------------------- Task 1.2 absmax_dequantize --
@points(1)
@pytest.mark.task("1.2")
def test_1_2_dequantize_is_codes_times_scale(student):
    """absmax_dequantize(q, scale) == q.float() * scale, broadcast, float32."""
    q = torch.tensor([[127, -64, 1], [5, 0, -5]], dtype=torch.int8)
    x_hat = student.absmax_dequantize(q, torch.tensor([[0.5], [0.0]]))
    assert x_hat.dtype == torch.float32
    assert x_hat.tolist() == [[63.5, -32.0, 0.5], [0.0, 0.0, 0.0]]
    x_hat = student.absmax_dequantize(q, torch.tensor(0.25))
    assert x_hat.tolist() == [[31.75, -16.0, 0.25], [1.25, 0.0, -1.25]]


@points(1)
@pytest.mark.task("1.2")
def test_1_2_a_float64_scale_still_gives_float32(student):
    """The result is float32 whatever the scale's floating dtype: codes [2, -4] at 0.5."""
    x_hat = student.absmax_dequantize(torch.tensor([2, -4], dtype=torch.int8),
                                      torch.tensor(0.5, dtype=torch.float64))
    assert_equal(x_hat, torch.tensor([1.0, -2.0]), "dequantized values with a float64 scale")


@points(1)
@pytest.mark.task("1.2")
def test_1_2_codes_that_are_not_int8_raise_value_error(student):
    """q must be int8 (an int32 tensor of codes raises ValueError)."""
    with pytest.raises(ValueError):
        student.absmax_dequantize(torch.tensor([1, 2, 3], dtype=torch.int32), torch.tensor(1.0))


# ----------------------------------------- Task 1.3 quantize_rowwise (Triton) --
@points(2)
@pytest.mark.task("1.3")
def test_1_3_small_matrix_equals_per_row_quantization(student, kernel_device):
    """quantize_rowwise(x) == absmax_quantize(x, dim=1) on a 3x5 matrix with a zero row."""
    x = torch.tensor([[1.0, -2.0, 4.0, 0.5, -4.0],
                      [0.0, 0.0, 0.0, 0.0, 0.0],
                      [0.25, -0.125, 0.5, 0.0625, -0.375]], device=kernel_device)
    q, scale = student.quantize_rowwise(x)
    assert_codes(q, [[32, -64, 127, 16, -127],
                     [0, 0, 0, 0, 0],
                     [64, -32, 127, 16, -95]])
    assert_scale(scale, [4 / 127, 0.0, 0.5 / 127], shape=(3, 1))


@points(2)
@pytest.mark.task("1.3")
def test_1_3_transposed_view_uses_its_strides(student, kernel_device):
    """A transposed view (rows not contiguous in memory) is quantized row by row."""
    x = torch.tensor([[2.0, -8.0, 0.25, 3.0],
                      [-1.0, 4.0, -0.75, 3.0],
                      [0.5, 1.0, 1.5, 3.0]], device=kernel_device).t()
    assert x.stride() == (1, 4)
    q, scale = student.quantize_rowwise(x)
    assert_codes(q, [[127, -64, 32],
                     [-127, 64, 16],
                     [21, -64, 127],
                     [127, 127, 127]])
    assert_scale(scale, [2 / 127, 8 / 127, 1.5 / 127, 3 / 127], shape=(4, 1))


@points(2)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16],
                         ids=["fp32", "fp16", "bf16"])
@pytest.mark.task("1.3")
def test_1_3_rows_longer_than_a_tile(student, kernel_device, dtype):
    """Rows of 1000 columns (longer than a typical tile, not a multiple of it) are done fully."""
    j = torch.arange(1000)
    row0 = ((j % 255) - 127) * 0.5         # absmax 63.5, so the codes are (j % 255) - 127
    row1 = (j % 11) * 2.0 - 10.0           # codes (j % 11) - 5 once absmax is 254 ...
    row1[-1] = 254.0                       # ... which only the last column holds
    x = torch.stack([row0, row1]).to(device=kernel_device, dtype=dtype)
    q, scale = student.quantize_rowwise(x)
    expected1 = ((j % 11) - 5).tolist()
    expected1[-1] = 127
    assert_codes(q, [((j % 255) - 127).tolist(), expected1])
    assert_scale(scale, [0.5, 2.0], shape=(2, 1))
