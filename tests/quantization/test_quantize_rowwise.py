"""Hidden properties of the Triton kernel quantize_rowwise (Task 1.3, SPEC §3.1).

On CPU-only machines the kernel runs in Triton's interpreter: shapes stay small
except the few tests that need rows longer than any sensible tile. Big shapes
are behind the `gpu` marker.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader.kit.checks import assert_raises, assert_tensor
from grader.kit.kernels import assert_kernels_read_and_wrote, replayed_launches
from grader.kit.probes import run_probe
from grader.kit.strategies import KERNEL_DEVICE, float_tensors, matrices, matrix_shapes
from tests.quantization.expect import assert_codes_match, assert_scale_matches

pytestmark = pytest.mark.task("1.3")
points = pytest.mark.points
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
ON_DEVICE = dict(device=KERNEL_DEVICE)  # CUDA tensors on a GPU machine, else CPU (interpreter)


def assert_matches_rowwise_reference(student, reference, x):
    q, scale = student.quantize_rowwise(x)
    assert_tensor(q, device=x.device, what="q")
    assert_tensor(scale, device=x.device, what="scale")
    q_ref, scale_ref = reference.absmax_quantize(x, dim=1)
    assert_scale_matches(scale, scale_ref, x)
    assert_codes_match(q, q_ref, x, dim=1)


@points(3)
@given(x=matrices(dtypes=KERNEL_DTYPES, **ON_DEVICE))
def test_kernel_equals_per_row_absmax_quantize(student, reference, x):
    """quantize_rowwise(x) == absmax_quantize(x, dim=1) for any small matrix and layout."""
    assert_matches_rowwise_reference(student, reference, x)


@points(2)
@given(x=float_tensors(dtypes=KERNEL_DTYPES, layouts=("contiguous", "transposed"),
                       shape=matrix_shapes(max_rows=3, max_cols=5000, min_cols=65), **ON_DEVICE))
def test_rows_longer_than_a_tile_and_not_a_multiple_of_it(student, reference, x):
    """Rows of 65..5000 columns (tails, several column tiles) are quantized completely."""
    assert_matches_rowwise_reference(student, reference, x)


@points(1)
@pytest.mark.parametrize("n_cols", [1, 127, 128, 129, 1023, 1025, 4097, 8193, 16385])
def test_column_counts_around_powers_of_two(student, reference, n_cols):
    """N = 2^k - 1, 2^k, 2^k + 1: the places where tile loops lose a column."""
    x = torch.randn(3, n_cols, generator=torch.Generator().manual_seed(n_cols)) * 10
    x[1, -1] = 1000.0  # the last column holds the row's maximum
    x = x.to(KERNEL_DEVICE)
    assert_matches_rowwise_reference(student, reference, x)


@points(1)
def test_few_long_rows_each_use_the_absmax_of_the_whole_row(student, reference):
    """Three rows of 40000 columns, too few rows to fill a GPU: a kernel may split each row
    across programs, but every part must use the whole row's absmax (here in the last
    column, in the first, or nowhere: a zero row), contiguous or transposed."""
    x = torch.randn(3, 40_000, generator=torch.Generator().manual_seed(4)) * 10
    x[0, -1], x[1, 0], x[2] = 1000.0, -1000.0, 0.0
    x = x.to(KERNEL_DEVICE)
    assert_matches_rowwise_reference(student, reference, x)
    assert_matches_rowwise_reference(student, reference, x.half().t().contiguous().t())


@points(2)
@given(x=matrices(dtypes=KERNEL_DTYPES, max_rows=5, max_cols=12, **ON_DEVICE),
       start=st.integers(0, 3), step=st.integers(1, 3))
def test_row_and_column_strides_are_respected(student, reference, x, start, step):
    """A column slice x[:, a::s] of a wider matrix: row stride != N, column stride != 1."""
    wide = torch.zeros(x.shape[0], start + step * x.shape[1], dtype=x.dtype, device=x.device)
    wide[:, start::step] = x
    view = wide[:, start::step]
    assert_matches_rowwise_reference(student, reference, view)


@points(1)
@given(shape=matrix_shapes(max_rows=6, max_cols=9), zero_row=st.integers(0, 5),
       dtype=st.sampled_from(KERNEL_DTYPES))
def test_all_zero_rows_give_zero_codes_and_zero_scale(student, reference, shape, zero_row,
                                                      dtype):
    """A row of zeros gets q = 0 and scale exactly 0, other rows are unaffected."""
    x = torch.randn(shape).to(dtype)
    x[zero_row % shape[0]] = 0
    x = x.to(KERNEL_DEVICE)
    assert_matches_rowwise_reference(student, reference, x)


@points(1)
@given(mantissas=st.lists(st.integers(1024, 2047), min_size=1, max_size=5),
       e=st.integers(-14, 4), n_cols=st.integers(3, 40))
def test_half_of_the_absmax_is_a_tie_rounded_to_64(student, reference, mantissas, e, n_cols):
    """Rows [a, ±a/2, ...] have v = 63.5 exactly: the kernel rounds it to ±64 (even),
    for any a, so it must divide as IEEE does, not multiply by a rounded 127/a."""
    a = torch.tensor(mantissas, dtype=torch.float32) * 2.0**e
    x = torch.zeros(len(mantissas), n_cols)
    x[:, 0], x[:, 1::2], x[:, 2::2] = a, (a / 2)[:, None], (-a / 2)[:, None]
    for dtype in KERNEL_DTYPES:  # 11-bit mantissas and small exponents: exact in fp16 too
        assert_matches_rowwise_reference(student, reference, x.to(KERNEL_DEVICE, dtype))


@points(1)
@given(halves=st.lists(st.integers(-127, 126), min_size=1, max_size=30), e=st.integers(-8, 0))
def test_exact_ties_round_half_to_even(student, reference, halves, e):
    """A row [127·s, (n + 0.5)·s, ...] has exact ties v = n + 0.5: each goes to the even n."""
    step = 2.0**e
    row = torch.tensor([127.0] + [n + 0.5 for n in halves]) * step
    for dtype in KERNEL_DTYPES:
        assert_matches_rowwise_reference(student, reference, row[None, :].to(KERNEL_DEVICE, dtype))


@points(1)
@given(x=matrices(dtypes=KERNEL_DTYPES, max_rows=4, max_cols=6, **ON_DEVICE))
def test_output_shapes_dtypes_and_layout(student, x):
    """q is int8 [M, N]; scale is float32 [M, 1]."""
    q, scale = student.quantize_rowwise(x)
    assert_tensor(q, dtype=torch.int8, shape=x.shape, what="q")
    assert_tensor(scale, dtype=torch.float32, shape=(x.shape[0], 1), what="scale")


@points(1)
def test_the_triton_kernel_computes_q_and_scale_from_x(student, reference):
    """quantize_rowwise's Triton kernel reads x and writes q and scale: its launches, run
    again without your Python on other values written into x, leave their codes and scales."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 7, generator=g).to(KERNEL_DEVICE)
    x_new = (torch.randn(4, 7, generator=g) * 5).to(KERNEL_DEVICE)
    report = run_probe(student, replayed_launches, "quantize_rowwise", [x], {}, [x_new])
    assert_kernels_read_and_wrote(report, ["x"], ["q", "scale"], "quantize_rowwise")
    q, scale = report["replayed"]
    q_ref, scale_ref = reference.absmax_quantize(x_new, dim=1)
    what = "{} left by the kernel launches replayed on a new x"
    assert_scale_matches(scale, scale_ref, x_new, what=what.format("scale"))
    assert_codes_match(q, q_ref, x_new, dim=1, what=what.format("q"))


@points(1)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")],
                         ids=["nan", "inf", "-inf"])
def test_non_finite_input_raises_value_error(student, bad):
    """nan or ±inf anywhere in x raises ValueError."""
    x = torch.ones(3, 40, device=KERNEL_DEVICE)
    x[2, 37] = bad
    assert_raises(ValueError, student.quantize_rowwise, x, what=f"x containing {bad}")


@points(1)
@pytest.mark.parametrize("case", ["fp64", "int32", "1-D", "3-D", "0 rows", "0 columns"])
def test_unsupported_input_raises_value_error(student, case):
    """fp64 or integer dtypes, ranks other than 2 and empty inputs raise ValueError."""
    x = {"fp64": torch.ones(2, 3, dtype=torch.float64),
         "int32": torch.ones(2, 3, dtype=torch.int32),
         "1-D": torch.ones(5), "3-D": torch.ones(2, 3, 4),
         "0 rows": torch.ones(0, 3), "0 columns": torch.ones(3, 0)}[case].to(KERNEL_DEVICE)
    assert_raises(ValueError, student.quantize_rowwise, x, what=f"x: {case}")


# ------------------------------------------------------------------ GPU only --
@pytest.mark.gpu
@points(0)
@pytest.mark.parametrize("shape", [(4096, 4096), (1000, 12289), (65536, 64), (3, 100_000)],
                         ids=str)
@pytest.mark.parametrize("dtype", KERNEL_DTYPES, ids=lambda d: str(d).replace("torch.", ""))
def test_large_matrices_on_the_gpu(student, reference, shape, dtype):
    """On a GPU, large and odd shapes (and transposed views) match the reference."""
    g = torch.Generator(device="cuda").manual_seed(0)
    x = (torch.randn(shape, device="cuda", generator=g) * 5).to(dtype)
    assert_matches_rowwise_reference(student, reference, x)
    assert_matches_rowwise_reference(student, reference, x.t().contiguous().t())
