"""What a student function did besides returning: kernel launches, changed inputs.

Two questions a test may ask of the student's code, answered the same way in
process and across the process boundary (grader/isolation/proxies.py):

    launches = triton_launches(student)             # did it launch a kernel?
    result, inputs = call_and_inspect_inputs(student, "absmax_quantize", x)
    assert_equal(inputs[0], x, "absmax_quantize must not modify its input")
"""

from __future__ import annotations

from grader.isolation.errors import StudentCrash
from grader.isolation.proxies import StudentProxy, call_remote


def triton_launches(student) -> int:
    """How many Triton kernel launches the student's code has made so far (worker only)."""
    if not isinstance(student, StudentProxy):
        raise TypeError("launches are counted in the worker: use a hidden (isolated) test")
    stats = student._worker.request({"op": "stats"})
    return int(stats["triton_launches"])


def call_and_inspect_inputs(student, name: str, *args):
    """Call student.<name>(*args); return (result, args as they are after the call).

    In-process the arguments are the caller's own objects; across the process
    boundary the worker sends back its copies, so in-place changes show either way.
    """
    if not isinstance(student, StudentProxy):
        return getattr(student, name)(*args), args
    reply = call_remote(student._worker, ("module", student._module, name), args, {},
                        seed=student._next_seed(), return_args=True)
    if type(reply) is not dict or set(reply) != {"result", "args"}:
        raise StudentCrash("the worker sent a malformed reply")
    return reply["result"], tuple(reply["args"])
