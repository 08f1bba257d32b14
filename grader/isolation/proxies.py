"""Proxies: the student's module and objects, seen from the trusted process.

`StudentProxy` is what tests see as the `student` fixture when grading:
`student.absmax_quantize(x)` becomes a "call" request to a `WorkerProcess`
(grader/isolation/worker.py), and its reply comes back as plain data. An
object that is not plain data (a class instance, a bound method) stays in the
worker and comes back as a `RemoteObject`, a handle that later requests can
name; `to_wire` and `from_wire` turn one into the other.

A kernel function (the manifest's `kernel_functions`, grader/course.py) is never
called plainly: `kernel_checked` runs it inside a probe that replays its Triton
launches (grader/kit/kernels.py), and a result the launches did not compute fails
the test that asked for it, whichever test that is.
"""

from __future__ import annotations

from grader.isolation.worker import WorkerProcess


class StudentProxy:
    """The student's module, seen from the trusted process."""

    def __init__(self, worker: WorkerProcess, module: str, seed: int = 0,
                 kernels: tuple[str, ...] = ()):
        self._worker, self._module, self._seed = worker, module, seed
        self._kernels = frozenset(kernels)  # functions whose launches must compute their result
        self._calls = 0

    def __getattr__(self, name: str):
        if name.startswith("_"):  # the API is public names; printers probe _repr_pretty_
            raise AttributeError(name)
        return RemoteFunction(self, name)

    def __repr__(self) -> str:
        return f"<student {self._module}>"

    def _next_seed(self) -> int:
        """Each call seeds torch differently, and the same way every grading run."""
        self._calls += 1
        return self._seed + self._calls


class RemoteFunction:
    """A function of the student's module; calling it runs it in the worker."""

    def __init__(self, proxy: StudentProxy, name: str):
        self.proxy, self.name = proxy, name

    def __call__(self, *args, **kwargs):
        proxy = self.proxy
        if self.name in proxy._kernels:
            return kernel_checked(proxy, self.name, args, kwargs)
        target = ("module", proxy._module, self.name)
        return call_remote(proxy._worker, target, args, kwargs, seed=proxy._next_seed())

    def __repr__(self) -> str:
        return f"<student {self.proxy._module}.{self.name}>"


class RemoteObject:
    """A student object that lives in the worker (a class instance, a bound method)."""

    def __init__(self, worker: WorkerProcess, handle: int, type_name: str):
        self._worker, self._handle, self._type_name = worker, handle, type_name

    def __getattr__(self, name: str):
        if name.startswith("_"):  # printers probe _repr_pretty_ and friends: not ours
            raise AttributeError(name)
        return from_wire(self._worker, self._worker.request(
            {"op": "getattr", "target": ("handle", self._handle, name)}))

    def __call__(self, *args, **kwargs):
        return call_remote(self._worker, ("handle", self._handle, None), args, kwargs)

    def __repr__(self) -> str:
        return f"<student {self._type_name}>"


NOT_THE_KERNELS = "the returned values were not computed by the kernel's launches"


def kernel_checked(proxy: StudentProxy, name: str, args, kwargs):
    """A kernel function's call: its result, or AssertionError saying why its Triton launches,
    replayed from its inputs alone, do not compute it (grader/kit/kernels.py)."""
    from grader.kit.kernels import kernel_checked_call
    from grader.kit.probes import run_probe

    reply = run_probe(proxy, kernel_checked_call, name, list(args), kwargs)
    if type(reply) is not dict or set(reply) != {"result", "failure"}:
        raise AssertionError(f"{name}: {NOT_THE_KERNELS} (the check's reply was tampered with)")
    if reply["failure"] is not None:
        raise AssertionError(f"{name}: {NOT_THE_KERNELS}: {reply['failure']}")
    return reply["result"]


def call_remote(worker: WorkerProcess, target: tuple, args, kwargs, seed: int = 0,
                return_args: bool = False):
    """Run `target(*args, **kwargs)` in the worker (targets: grader/isolation/wire.py)."""
    message = {"op": "call", "target": target, "args": list(to_wire(args)),
               "kwargs": to_wire(kwargs), "seed": seed, "return_args": return_args}
    return from_wire(worker, worker.request(message))


def to_wire(value):
    """Arguments on their way to the worker: remote objects become their handles."""
    if isinstance(value, RemoteObject):
        return {"__handle__": value._handle}
    if type(value) in (list, tuple):
        return type(value)(to_wire(v) for v in value)
    if type(value) is dict:
        return {k: to_wire(v) for k, v in value.items()}
    return value


def from_wire(worker: WorkerProcess, value):
    """A reply from the worker: handles become remote objects."""
    if type(value) is dict and "__handle__" in value:
        return RemoteObject(worker, value["__handle__"], value.get("type", "object"))
    if type(value) in (list, tuple):
        return type(value)(from_wire(worker, v) for v in value)
    if type(value) is dict:
        return {k: from_wire(worker, v) for k, v in value.items()}
    return value
