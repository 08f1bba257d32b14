"""Plain-words descriptions of tensors and of test failures.

Feedback names the property, the smallest failing input hypothesis found (shape,
dtype, layout, the values that matter) and what the student's code did;
never a wall of tensors, never the hidden test's source.
"""

from __future__ import annotations

import re
import textwrap
import traceback
from pathlib import Path, PurePath

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


def plain_failure(error: BaseException, item=None, *, public: bool = True) -> str:
    """The message a student reads for a failed test: `render_failure` of its record."""
    return render_failure(failure_record(error, item, public=public))


# ------------------------------------------------------------ failure records --
# A failure crosses from the pytest child to the report as a record of fields, each
# filled by the grader from something it knows the origin of (the allowlist):
#
#   property  the test's docstring (`property_of`): the grader's words
#   kind      check | raised | crash | not_graded | ungradable | error | not_run
#   check     kind check: the failed check's message as the grader wrote it: a helper's
#             (grader/kit/checks.py) in full, an `assert`'s own message without pytest's
#             introspection of the assertion (that is the test's source), unless public
#   raised    kind raised: {"type", "message"}: the student's exception, data only
#   reason    crash / not_graded / ungradable / not_run: what happened, the grader's words
#   error     kind error: the type of an exception the test's own code raised
#   where     the student's frames, in their own file only
#   example   hypothesis's smallest failing input (the inputs the grader drew)
#   printed   the end of what the student's code printed, data only
#
# `render_failure` is the one place these become text; no text is ever parsed back.
QUOTED = 500       # characters of the student's exception message
PRINTED_LINES = 20
LINE = 300         # characters of one line of the student's prints or of a frame


def failure_record(error: BaseException, item=None, *, public: bool = False) -> dict:
    """The fields of a failed test's message (see above). `public`: the student has the
    test's source, so an `assert`'s introspection and the test's own exceptions are kept."""
    from grader.isolation.errors import GraderFault, NotGraded, StudentCrash

    while getattr(error, "exceptions", None):  # hypothesis's Flaky groups: the first cause
        error = error.exceptions[0]
    record: dict = {"property": property_of(getattr(getattr(item, "function", None),
                                                    "__doc__", None))}
    if isinstance(error, GraderFault):
        record.update(kind="ungradable", reason=str(error))
    elif isinstance(error, NotGraded):
        record.update(kind="not_graded", reason=str(error))
    elif isinstance(error, StudentCrash):   # may end with the student's own import error
        record.update(kind="crash", reason=one_line(str(error), QUOTED))
    elif hasattr(error, "student_traceback"):  # raised in the worker: the student's, any type
        kind, message = type(error).__name__, str(error)
        if kind == "StudentError":   # "Type: message", as the worker said
            kind, _, message = message.partition(": ")
        record.update(kind="raised", raised={"type": one_line(kind, 80),
                                             "message": message[:4 * QUOTED]})
    elif isinstance(error, AssertionError) or _is_pytest_failure(error):
        record.update(kind="check", check=check_message(error, public))
    elif public:
        record.update(kind="raised", raised={"type": type(error).__name__,
                                             "message": str(error)[:4 * QUOTED]})
    else:
        record.update(kind="error", error=type(error).__name__)
    record["where"] = _student_frames(error, _student_file(item))
    record["example"] = _falsifying_example(error)
    printed = str(getattr(error, "student_output", "") or "").strip()
    record["printed"] = [line[:LINE] for line in printed.splitlines()[-PRINTED_LINES:]]
    return record


def check_message(error: BaseException, public: bool) -> str:
    """A failed check's message. pytest rewrites a test module's `assert x == y, msg` to
    raise 'msg\nassert <introspection>\n +  where ...' (msg's own later lines indented
    by two spaces): for a hidden test only msg is kept, the rest shows its source."""
    text = str(getattr(error, "msg", None) or error) if _is_pytest_failure(error) \
        else str(error)
    if not public and _rewritten(error):
        lines = text.split("\n")
        cut = next((i for i, line in enumerate(lines) if line.startswith("assert ")
                    or line == "assert"), len(lines))
        text = "\n".join([*lines[:1], *(line.removeprefix("  ") for line in lines[1:cut])]
                         if cut else [])
    return without_pytest_hints(text)


def _rewritten(error: BaseException) -> bool:
    """Raised from a module pytest's assertion rewriting compiled (a test file)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "@pytest_ar" in tb.tb_frame.f_globals


def _is_pytest_failure(error: BaseException) -> bool:
    """`pytest.fail(...)`: a message the test wrote, like an assertion's."""
    return type(error).__name__ == "Failed" and type(error).__module__.startswith("_pytest")


def one_line(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters: a line break reads '\\n', so text
    a submission shaped can never stand as a line of its own."""
    text = text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more)"


def render_failure(record: dict) -> str:
    """A failure record as the text a student reads, every field under its own label."""
    lines = []
    if record.get("property"):
        lines += textwrap.wrap(f"Property: {record['property']}", WIDTH,
                               subsequent_indent="  ")
    kind = record.get("kind")
    if kind == "check":
        lines.append(record.get("check") or "the property does not hold for this input")
    elif kind == "raised":
        raised = record.get("raised") or {}
        lines.append(f"Your code raised {one_line(str(raised.get('type', '')), 80)}, "
                     f"message (quoted): \"{one_line(str(raised.get('message', '')), QUOTED)}\"")
    elif kind == "crash":
        lines.append(f"Your code did not finish: {record.get('reason', '')}")
    elif kind == "not_graded":
        lines.append(f"Not graded: {record.get('reason', '')}")
    elif kind == "ungradable":
        lines.append(f"UNGRADABLE (not your fault, will be retried): {record.get('reason', '')}")
    elif kind == "error":
        lines.append(f"The test's own code raised {record.get('error', 'an exception')} while "
                     "checking your result (its message would show the hidden test's code)")
    elif kind == "not_run":
        lines.append(str(record.get("reason", "")))
    if record.get("where"):
        lines.append("Where (your code):")
        lines += [f"  {frame}" for frame in record["where"]]
    if record.get("example"):
        lines.append("Smallest failing input:")
        lines += [f"  {line}" for line in record["example"]]
    if record.get("printed"):
        lines.append("Your code printed (the end of it, as is):")
        lines += ["  | " + line for line in record["printed"]]
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
    """Hypothesis's minimal example (its "Falsifying example" note, and the `Draw n:`
    notes of interactive draws), without the `student` and `reference` fixture lines.
    Other notes (hypothesis's explanations) name lines of the test's source: never kept."""
    out = []
    for note in getattr(error, "__notes__", []):
        if note.startswith("Draw ") and ":" in note:
            out.append(note.strip()[:LINE])
        if not note.startswith(("Falsifying example", "Failing test case")):
            continue
        out += [line.strip().rstrip(",")[:LINE] for line in note.splitlines()[1:]
                if line.strip() and not line.strip().startswith(("student=", "reference="))
                and line.strip() != ")"]
    return out


# One frame of a traceback as Python formats it, and the source line after it.
FRAME = re.compile(r'^\s*File "([^"\n]+)", line (\d+), in (\S+)\s*$')
FRAMES_SHOWN = 5


def _student_file(item) -> str | None:
    """The student-owned file of the test's assignment ('quantize.py'), if known."""
    from grader.course import assignment_of_path

    path = getattr(item, "fspath", None)
    assignment = assignment_of_path(Path(str(path))) if path is not None else None
    return assignment.student_file if assignment is not None else None


def _student_frames(error: BaseException, student_file: str | None = None) -> list[str]:
    """The frames of the student's own file, 'quantize.py, line 12, in f: <source line>':
    from the worker's traceback (text the submission could shape, so read strictly:
    only well-formed frames of `student_file`, never a probe's or the grader's), or,
    for code run in this process (local public tests), from the exception itself."""
    remote = str(getattr(error, "student_traceback", "") or "")
    if remote:
        lines, frames = remote.splitlines(), []
        for i, line in enumerate(lines):
            found = FRAME.match(line)
            if found is None or not _is_student_file(found.group(1), student_file):
                continue
            source = lines[i + 1].strip() if i + 1 < len(lines) and \
                not FRAME.match(lines[i + 1]) else ""
            name = PurePath(found.group(1)).name
            frames.append(one_line(f"{name}, line {found.group(2)}, in {found.group(3)}"
                                   + (f": {source}" if source else ""), LINE))
        return frames[-FRAMES_SHOWN:]
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if "/assignments/" in f.filename and "/tests/" not in f.filename]
    return [one_line(f"{PurePath(f.filename).name}, line {f.lineno}, in {f.name}: {f.line}",
                     LINE) for f in frames[-FRAMES_SHOWN:]]


def _is_student_file(path: str, student_file: str | None) -> bool:
    """A worker frame in the student's module (by name: the worker's scratch folder
    differs on every run); without a known assignment, in any assignment's student file."""
    from grader.course import ASSIGNMENTS

    owned = {student_file} if student_file else {a.student_file for a in ASSIGNMENTS.values()}
    return not path.startswith("<") and PurePath(path).name in owned
