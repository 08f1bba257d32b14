"""Assertions that explain themselves, shared by every assignment's tests.

Each helper checks exact types first (a tensor subclass or an object with a
lying __eq__ does not pass), then the property, and on failure names the
property, the first place it fails and the inputs in plain words.
"""

from __future__ import annotations

import torch

from grader.kit.describe import describe_tensor, describe_value
from grader.kit.tolerance import Tolerance, tolerance


def assert_tensor(value, *, dtype=None, shape=None, device=None, what="result") -> None:
    """`value` is a plain torch.Tensor with the given dtype, shape and device."""
    if type(value) is not torch.Tensor:
        raise AssertionError(f"{what} should be a torch.Tensor, got {type(value).__name__}")
    if dtype is not None and value.dtype != dtype:
        raise AssertionError(f"{what} should have dtype {dtype}, got {value.dtype}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise AssertionError(f"{what} should have shape {list(shape)}, got {list(value.shape)}")
    if device is not None and value.device.type != torch.device(device).type:
        raise AssertionError(f"{what} should be on {device}, got {value.device}")


def assert_all(condition: torch.Tensor, message: str, **context) -> None:
    """Every element of `condition` holds; else say where and show `context`."""
    assert_tensor(condition, dtype=torch.bool, what="condition")
    if bool(condition.all()):
        return
    bad = (~condition).nonzero()
    index = tuple(bad[0].tolist())
    lines = [f"{message}: fails at {len(bad)} of {condition.numel()} positions, "
             f"first at index {list(index)}"]
    for name, value in context.items():
        lines.append(f"  {name}: {describe_value(value)}")
        if isinstance(value, torch.Tensor) and value.shape == condition.shape and index:
            lines.append(f"    {name}{list(index)} = {_item(value[index])}")
    raise AssertionError("\n".join(lines))


def assert_equal(got, expected, message: str, **context) -> None:
    """Exactly equal tensors: same type, dtype, shape and values."""
    assert_tensor(got, dtype=expected.dtype, shape=expected.shape, what=message.split(":")[0])
    same = (got == expected) | (torch.isnan(got) & torch.isnan(expected)) \
        if got.is_floating_point() else got == expected
    assert_all(same, message, got=got, expected=expected, **context)


def assert_close(got, expected, message: str, *, tol: Tolerance | None = None, dtype=None,
                 magnitude=None, atol_scale: float = 1.0, may_vanish: bool = False,
                 **context) -> None:
    """Elementwise |got - expected| <= atol * atol_scale + rtol * magnitude, in float64.

    tol:        the tolerance (default: that of `dtype`, else of got's dtype).
    magnitude:  what rtol is relative to (default |expected|), e.g. the sum of the
                |terms| of a dot product, which bounds its rounding error better.
    atol_scale: scales atol, e.g. by max|v| for outputs that are averages of v's rows.
    may_vanish: the expected value may be ~0 everywhere (e.g. a gradient that is zero
                analytically); otherwise such a comparison, which an all-zeros answer
                would pass, is refused as a test bug.
    """
    tol = tol or tolerance(dtype or got.dtype)
    assert_tensor(got, shape=expected.shape, what=message.split(":")[0])
    exp = expected.double().cpu()
    atol = tol.atol * atol_scale
    if (not may_vanish and magnitude is None and exp.numel()
            and bool((exp.abs() <= atol).all()) and bool((exp != 0).any())):
        raise RuntimeError("test bug: reference below atol everywhere; the check cannot fail")
    scale = exp.abs() if magnitude is None else torch.as_tensor(magnitude).double().cpu()
    close = (got.double().cpu() - exp).abs() <= atol + tol.rtol * scale
    close |= torch.isinf(exp) & (got.double().cpu() == exp)
    assert_all(close, f"{message} (rtol {tol.rtol:g}, atol {atol:.3g})",
               got=got, expected=expected, **context)


def assert_raises(exceptions, function, *args, what: str, **kwargs) -> BaseException:
    """`function(*args, **kwargs)` raises one of `exceptions` (not another error, not nothing)."""
    from grader.isolation.errors import GraderFault

    try:
        function(*args, **kwargs)
    except exceptions as error:
        return error
    except GraderFault:
        raise
    except Exception as error:
        names = "/".join(e.__name__ for e in _as_tuple(exceptions))
        raise AssertionError(
            f"{what}: expected {names}, got {type(error).__name__}: {error}") from None
    names = "/".join(e.__name__ for e in _as_tuple(exceptions))
    raise AssertionError(f"{what}: expected {names}, but nothing was raised")


def ulp32(x: torch.Tensor) -> torch.Tensor:
    """The float32 spacing at |x| (float64 tensor)."""
    x32 = x.to(torch.float32).abs()
    return (torch.nextafter(x32, torch.full_like(x32, float("inf"))) - x32).double()


def _as_tuple(exceptions):
    return exceptions if isinstance(exceptions, tuple) else (exceptions,)


def _item(value):
    return value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value


__all__ = ["assert_all", "assert_close", "assert_equal", "assert_raises", "assert_tensor",
           "describe_tensor", "ulp32"]
