"""Process set-up shared by every test run: Triton's mode and hypothesis profiles.

Imported before anything imports triton (TRITON_INTERPRET is read at import).

Profiles (choose with --hypothesis-profile NAME or HYPOTHESIS_PROFILE):
    dev      local runs: few examples, random but replayable from .hypothesis/
    ci       the repository's own CI: derandomized, as many examples as grading
    grading  official grades: derandomized (same inputs every run), no deadline,
             no example database, one bug reported per test
The grader asks for `grading`; otherwise `ci` when CI is set, else `dev`.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis.vendor import pretty


def _configure_triton() -> None:
    """Kernels run on the GPU when there is one, else in Triton's interpreter."""
    if "TRITON_INTERPRET" in os.environ:
        return
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


_configure_triton()

GRADING_EXAMPLES = 40
_common = dict(
    deadline=None,
    print_blob=False,
    # `student` is function-scoped on purpose: one proxy per test, reused by its examples.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
settings.register_profile("dev", max_examples=20, **_common)
settings.register_profile("ci", max_examples=GRADING_EXAMPLES, derandomize=True,
                          database=None, **_common)
settings.register_profile(
    "grading", max_examples=GRADING_EXAMPLES, derandomize=True, database=None,
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink], **_common)

_default = "ci" if os.environ.get("CI") else "dev"  # the grader names "grading" itself
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))


def _pretty_tensor(tensor, printer, cycle) -> None:
    """Falsifying examples print tensors in a few words, not as a wall of numbers."""
    from grader.kit.describe import describe_tensor

    printer.text(describe_tensor(tensor))


pretty.for_type_by_name("torch", "Tensor", _pretty_tensor)
pretty.for_type_by_name("torch.nn.parameter", "Parameter", _pretty_tensor)
