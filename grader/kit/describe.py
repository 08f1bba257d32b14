"""Plain-words descriptions of tensors and of test failures.

Feedback names the property, the smallest failing input hypothesis found (shape,
dtype, layout, the values that matter) and what the student's code did;
never a wall of tensors, never the hidden test's source.
"""

from __future__ import annotations

import re
import textwrap
import traceback

SMALL = 12  # tensors with at most this many elements are printed in full
WIDTH = 100  # a property line longer than this is wrapped, never cut


def describe_tensor(tensor) -> str:
    """E.g. 'float32[2, 3] (transposed view) = [[0.5, 20.0, -0.1], [...]]'."""
    import torch

    shape = "[" + ", ".join(map(str, tensor.shape)) + "]"
    dtype = str(tensor.dtype).replace("torch.", "")
    notes = []
    if tensor.device.type != "cpu":
        notes.append(str(tensor.device))
    if not tensor.is_contiguous() and tensor.numel() > 1:
        if tensor.dim() == 2 and tensor.t().is_contiguous():
            notes.append("transposed view")
        else:
            notes.append(f"non-contiguous, strides {tuple(tensor.stride())}")
    head = f"{dtype}{shape}" + (f" ({', '.join(notes)})" if notes else "")
    values = tensor.detach().cpu()
    if values.numel() <= SMALL:
        return f"{head} = {_fmt(values.tolist())}"
    if values.is_floating_point() or values.is_complex():
        flat = values.double().flatten()
        finite = flat[torch.isfinite(flat)]
        summary = f"min {finite.min().item():.4g}, max {finite.max().item():.4g}" \
            if finite.numel() else "no finite values"
        extras = int((~torch.isfinite(flat)).sum())
        zeros = int((flat == 0).sum())
        if extras:
            summary += f", {extras} non-finite"
        if zeros:
            summary += f", {zeros} zeros"
        return f"{head}, {summary}"
    if values.dtype == torch.bool:
        return f"{head}, {int(values.sum())} true"
    return f"{head}, min {values.min().item()}, max {values.max().item()}"


def _fmt(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def describe_value(value) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        return describe_tensor(value)
    if isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value):
        inner = ", ".join(describe_value(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def plain_failure(error: BaseException, item=None) -> str:
    """The message a student reads for a failed test."""
    from grader.isolation.errors import GraderFault, NotGraded, StudentCrash

    while getattr(error, "exceptions", None):  # hypothesis's Flaky groups: the first cause
        error = error.exceptions[0]
    lines = []
    summary = property_of(getattr(getattr(item, "function", None), "__doc__", None))
    if summary:
        lines += textwrap.wrap(f"Property: {summary}", WIDTH, subsequent_indent="  ")
    if isinstance(error, GraderFault):
        lines.append(f"UNGRADABLE (not your fault, will be retried): {error}")
    elif isinstance(error, NotGraded):
        lines.append(f"Not graded: {error}")
    elif isinstance(error, StudentCrash):
        lines.append(f"Your code did not finish: {error}")
    elif isinstance(error, AssertionError):
        lines.append(without_pytest_hints(str(error)) or "assertion failed")
    else:
        lines.append(f"Your code raised {type(error).__name__}: "
                     f"{without_pytest_hints(str(error))}".rstrip())
        where = _student_frames(error)
        if where:
            lines.append(where)
    lines += _falsifying_example(error)
    printed = getattr(error, "student_output", "").strip()
    if printed:
        lines.append("Your code printed (the end of it, as is):")
        lines += ["  | " + line for line in printed.splitlines()[-20:]]
    return "\n".join(lines)


def property_of(doc: str | None) -> str:
    """A test docstring's first paragraph on one line: the property, never cut mid-sentence."""
    paragraph = (doc or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split())


# pytest's advice for its own command line, meaningless in the grader's output.
PYTEST_HINT = re.compile(r"use -v to get (more|the full) diff|use '?-vv'? to show"
                         r"|^\.\.\.full output truncated", re.IGNORECASE)


def without_pytest_hints(text: str) -> str:
    """An assertion message without pytest's hints ("Use -v to get more diff", "...Full
    output truncated, use '-vv' to show") and without its "Full diff:" block."""
    out: list[str] = []
    diff_indent = None  # inside a "Full diff:" block: the indentation of its heading
    for line in text.strip().splitlines():
        indent = len(line) - len(line.lstrip())
        if diff_indent is not None:
            if not line.strip() or indent > diff_indent or line.lstrip()[:1] in "+-?":
                continue
            diff_indent = None
        if line.strip().startswith("Full diff:"):
            diff_indent = indent
            continue
        if PYTEST_HINT.search(line.strip()):
            continue
        out.append(line.rstrip())
    while out and not out[-1]:
        out.pop()
    return "\n".join(line for i, line in enumerate(out)
                     if line or (i and out[i - 1]))  # no runs of blank lines


def _falsifying_example(error: BaseException) -> list[str]:
    """Hypothesis's minimal example, without the `student` fixture line."""
    out = []
    for note in getattr(error, "__notes__", []):
        if not note.startswith(("Falsifying example", "Failing test case")):
            continue
        body = [line for line in note.splitlines()[1:]
                if line.strip() and not line.strip().startswith(("student=", "reference="))
                and line.strip() != ")"]
        out.append("Smallest failing input:")
        out += ["  " + line.strip().rstrip(",") for line in body]
    return out


def _student_frames(error: BaseException) -> str:
    remote = getattr(error, "student_traceback", "")
    if remote:
        lines = remote.strip().splitlines()
        starts = [i for i, line in enumerate(lines)
                  if line.lstrip().startswith('File "') and "_worker_main.py" not in line]
        tail = lines[starts[0]:] if starts else lines[-1:]
        text = "\n".join(tail[-10:])
        return "Where (your code):\n" + re.sub(r"/\S*/llmlab-worker-[^/]+/", "", text)
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if "/assignments/" in f.filename and "/tests/" not in f.filename]
    if not frames:
        return ""
    last = frames[-1]
    return f"Where (your code): {last.filename}:{last.lineno}: {last.line}"
