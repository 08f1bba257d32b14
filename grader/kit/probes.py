"""Probes: small trusted driver functions that exercise student objects where they live.

A hidden test often needs more than one call: build an `nn.Linear`, wrap it in
the student's `LoRALinear`, run forward and backward, read the gradients.
Objects and autograd graphs cannot cross the process boundary, so the test
writes that sequence as a *probe*:

    def fresh_layer_output(lora, weight, bias, x, r):
        base = nn.Linear(weight.shape[1], weight.shape[0])
        base.load_state_dict({"weight": weight, "bias": bias})
        return lora.LoRALinear(base, r)(x)

    y = run_probe(student, fresh_layer_output, w, b, x, r=4)

The first argument is the student's module. `run_probe` calls the probe
in-process when `student` is the module itself (public tests run locally) and
ships its source to the worker otherwise; either way the probe is re-created
from its source in a namespace holding only `PROBE_GLOBALS`, so it behaves the
same in both places. Rules, checked here: a module-level function without
decorators, closures or defaults; it may use its arguments, builtins, the
names in PROBE_GLOBALS, functions it defines inside itself and other probes
of its own module (their source is shipped with it); it returns
plain data (tensors, numbers, strings, None, lists/tuples/dicts of them).

A probe runs beside the student's code, which can read it: probes drive the
code and return what it computed; expected values stay in the trusted test.
"""

from __future__ import annotations

import builtins
import dis
import inspect
import textwrap
import types

from grader.isolation.proxies import StudentProxy, call_remote
from grader.isolation.worker_main import define_probe

#: The names a probe may use besides its arguments and builtins
#: (worker_main.probe_namespace builds them, in-process and in the worker alike).
PROBE_GLOBALS = ("torch", "nn", "F", "math", "dist")


def probe_source(probe: types.FunctionType) -> str:
    """The probe's source, after checking the rules in the module docstring, preceded by
    the source of every helper probe it calls (module-level functions of its own module
    that follow the same rules), so one model builder serves several probes."""
    sources: dict[str, str] = {}
    _collect(probe, sources)
    helpers = [text for name, text in sources.items() if name != probe.__name__]
    return "\n\n".join([*helpers, sources[probe.__name__]])


def _collect(probe, sources: dict[str, str]) -> None:
    if not isinstance(probe, types.FunctionType) or probe.__name__ == "<lambda>":
        raise TypeError(f"a probe must be a def'd function, got {probe!r}")
    code = probe.__code__
    if code.co_freevars or probe.__defaults__ or probe.__kwdefaults__:
        raise TypeError(f"probe {probe.__name__} must not close over variables or have defaults")
    source = textwrap.dedent(inspect.getsource(probe))
    if not source.startswith("def "):
        raise TypeError(f"probe {probe.__name__} must be a plain def without decorators")
    sources[probe.__name__] = source
    allowed = set(PROBE_GLOBALS) | set(dir(builtins))
    for name in sorted(_global_names(code) - allowed - set(sources)):
        helper = probe.__globals__.get(name)
        if not (isinstance(helper, types.FunctionType)
                and helper.__module__ == probe.__module__):
            raise TypeError(f"probe {probe.__name__} uses the global {name!r}; pass it as an "
                            f"argument (a probe may use only {', '.join(PROBE_GLOBALS)}, "
                            "builtins and other probes of its module)")
        _collect(helper, sources)


def _global_names(code: types.CodeType) -> set[str]:
    names = {i.argval for i in dis.get_instructions(code)
             if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:  # functions defined inside the probe
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def run_probe(student, probe: types.FunctionType, *args, **kwargs):
    """probe(student_module, *args, **kwargs), in the worker when grading."""
    source = probe_source(probe)
    if not isinstance(student, StudentProxy):
        return _detached(define_probe(source, probe.__name__)(student, *args, **kwargs))
    target = ("probe", student._module, (source, probe.__name__))
    return call_remote(student._worker, target, args, kwargs, seed=student._next_seed())


def _detached(value):
    """What the wire would deliver: plain tensors cut from the graph, plain dicts."""
    import torch

    if isinstance(value, torch.Tensor) and type(value) in (torch.Tensor, torch.nn.Parameter):
        return value.detach()
    if type(value) in (list, tuple):
        return type(value)(_detached(v) for v in value)
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    return value
