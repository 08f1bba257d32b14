"""Did a Triton kernel do the work? Launches recorded, then replayed on new inputs.

Counting launches (grader/kit/observe.py) cannot tell a kernel that computes the
answer from a one-element kernel launched beside torch (or numpy) code that
does. `replayed_launches` asks more. It records every launch a call makes (the
kernel, its arguments, grid and options), writes new values into the call's
input tensors, and runs the recorded launches again, in order, with none of the
student's Python in between. Whatever the outputs then hold was computed by the
kernels alone, from the new inputs: the test compares it with its own
expectation for those inputs.

    report = run_probe(student, replayed_launches, "quantize_rowwise", [x], {}, [x_new])
    assert_kernels_read_and_wrote(report, ["x"], ["q", "scale"], "quantize_rowwise")
    assert_equal(report["replayed"][0], expected_codes(x_new), ...)

What replay cannot see: torch work between two launches is not repeated (so a
pipeline that needs it fails the check); it runs through Triton's launcher as the
worker has it (a submission may have patched it); and under TRITON_INTERPRET=1 a
kernel's body is Python, which could call anything.
"""

from __future__ import annotations

import torch  # probes name torch as a global: worker_main.probe_namespace provides it


def tensors_in(value):
    """Probe helper: the tensors in value (a tensor, or lists/tuples/dicts of them), in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tensors_in(item)]
    return []


def replayed_launches(module, function, args, kwargs, new_values):
    """Probe: module.<function>(*args, **kwargs) recording its Triton launches (the second
    of two calls: the first may autotune); then write new_values into args' tensors (in
    place, one per argument tensor, None to keep one) and run the recorded launches again.

    Returns "launches" (how many the call made), "result" (what it returned),
    "replayed" (the returned tensors as the replayed launches left them), and
    "inputs_launched" / "outputs_launched": per argument tensor and per returned tensor,
    whether its storage was an argument of one of the launches.
    """
    from triton.runtime import interpreter, jit

    launches = []
    classes = (jit.JITFunction, interpreter.InterpretedFunction)
    originals = {cls: cls.run for cls in classes}

    def recording(original):
        def run(self, *launch_args, **launch_kwargs):
            if not launch_kwargs.get("warmup", False):
                launches.append((original, self, launch_args, launch_kwargs))
            return original(self, *launch_args, **launch_kwargs)
        return run

    getattr(module, function)(*args, **kwargs)  # a first call may autotune: record the next
    for cls in classes:
        cls.run = recording(originals[cls])
    try:
        result = getattr(module, function)(*args, **kwargs)
    finally:
        for cls, original in originals.items():
            cls.run = original
    launched = {t.untyped_storage().data_ptr()
                for _, _, launch_args, launch_kwargs in launches
                for t in tensors_in([list(launch_args), launch_kwargs])}
    inputs, outputs = tensors_in(list(args)), tensors_in(result)
    report = {"launches": len(launches), "result": [t.clone() for t in outputs],
              "inputs_launched": [t.untyped_storage().data_ptr() in launched for t in inputs],
              "outputs_launched": [t.untyped_storage().data_ptr() in launched for t in outputs]}
    with torch.no_grad():
        for tensor, new in zip(inputs, new_values, strict=True):
            if new is not None:
                tensor.copy_(new)
        for original, kernel, launch_args, launch_kwargs in launches:
            original(kernel, *launch_args, **launch_kwargs)
    report["replayed"] = [t.clone() for t in outputs]
    return report


def assert_kernels_read_and_wrote(report: dict, inputs: list[str], outputs: list[str],
                                  function: str) -> None:
    """The call launched kernels, each named input tensor was an argument of one (not a copy
    of it), and so was each named output's storage (the kernels wrote it, not torch after
    them). `inputs` and `outputs` name the first argument and returned tensors, in order."""
    assert report["launches"] > 0, f"{function} launched no Triton kernel"
    for name, passed in zip(inputs, report["inputs_launched"], strict=False):
        assert passed, (f"{function}: {name} is not an argument of any kernel launch; the "
                        f"kernel must read {name} itself (not a torch copy or function of it)")
    for name, passed in zip(outputs, report["outputs_launched"], strict=False):
        assert passed, (f"{function}: {name}'s storage is not an argument of any kernel launch; "
                        f"the kernel must write {name} itself")


# ------------------------------------------------ the rule: kernel tasks pay for kernels --
# An assignment's manifest names its kernel functions (`kernel_functions`, grader/course.py);
# every call of one that a test makes through the `student` proxy runs inside
# `kernel_checked_call` (grader/isolation/proxies.py), so every numeric test of a kernel task
# also establishes that the launches computed what it checks. The call's launches are
# recorded, then run again, in order, from the call's inputs as they were before it, after
# every other buffer the launches were handed has been reset: to what it held when first
# handed to a launch if that was one repeated value (zeros for an atomic accumulation) or a
# whole-storage copy or cast of an input (x.contiguous(), q.float()), and to garbage
# otherwise (NaN for floats, the most negative integer in the returned integer tensors).
# Each returned tensor must live in memory a launch was handed, and the replay must leave
# exactly the values the call returned. So torch may check, allocate, zero and copy inputs;
# any value that torch computed and a kernel then read (an answer copied by a kernel, a
# maximum taken between two launches) or torch changed after the last launch (a cast, a
# clone, an in-place fix) is not the kernels'. The limits of the replay above hold here too.

def storage_bytes(tensor):
    """Probe helper: the whole memory (untyped storage) under `tensor`, as uint8."""
    storage = tensor.untyped_storage()
    return torch.empty(0, dtype=torch.uint8, device=storage.device).set_(storage)


def launch_memory(value):
    """Probe helper: the tensors a launch argument hands a kernel (a tensor descriptor's base
    counts), and how many other objects with a data_ptr it hands (memory no replay resets)."""
    if isinstance(value, torch.Tensor):
        return [value], 0
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        found, foreign = [], 0
        for item in value:
            tensors, others = launch_memory(item)
            found, foreign = found + tensors, foreign + others
        return found, foreign
    base = getattr(value, "base", None)
    if isinstance(base, torch.Tensor):
        return [base], 0
    return [], int(hasattr(value, "data_ptr"))


def rebuilt_as_handed(tensor, before):
    """Probe helper: does a buffer hold, when first handed to a launch, what a replay may
    restore: one repeated value over its whole storage, or (covering its whole storage) a
    copy or cast of one of the inputs `before` the call, in their logical order?"""
    storage = tensor.untyped_storage()
    size = tensor.element_size()
    if storage.nbytes() == 0 or storage.nbytes() % size:
        return False
    whole = torch.empty(0, dtype=tensor.dtype, device=storage.device).set_(storage)
    if bool((whole == whole[0]).all()):
        return True
    if tensor.numel() * size != storage.nbytes():
        return False
    flat = tensor.reshape(-1)
    return any(b.numel() == flat.numel() and torch.equal(flat, b.reshape(-1).to(flat.dtype))
               for b in before)


def recorded_launches(call, inputs, before):
    """Probe helper: call(), recording every Triton launch it makes (not the autotuner's
    timing runs) and, for each storage other than the inputs' when a launch is first handed
    it, that tensor and the bytes a replay restores (None: garbage).
    Returns (what call returned, {"launches", "first", "foreign"})."""
    from triton.runtime import autotuner, interpreter, jit

    state = {"launches": [], "first": {}, "foreign": 0, "tuning": 0}
    own = {t.untyped_storage().data_ptr() for t in inputs}
    classes = (jit.JITFunction, interpreter.InterpretedFunction)
    originals = {cls: cls.run for cls in classes}
    bench = autotuner.Autotuner._bench

    def note(launch_args):
        tensors, foreign = launch_memory(launch_args)
        state["foreign"] += foreign
        for tensor in tensors:
            key = tensor.untyped_storage().data_ptr()
            if key not in own and key not in state["first"]:
                kept = rebuilt_as_handed(tensor, before)
                state["first"][key] = (tensor, storage_bytes(tensor).clone() if kept else None)

    def recording(original):
        def run(self, *args, **kwargs):
            if not kwargs.get("warmup", False) and not state["tuning"]:
                state["launches"].append((original, self, args, kwargs))
                note([list(args), kwargs])
            return original(self, *args, **kwargs)
        return run

    def benchmarking(self, *args, **kwargs):  # a first call's autotuning: not the answer's
        state["tuning"] += 1
        try:
            return bench(self, *args, **kwargs)
        finally:
            state["tuning"] -= 1

    for cls in classes:
        cls.run = recording(originals[cls])
    autotuner.Autotuner._bench = benchmarking
    try:
        result = call()
    finally:
        for cls, original in originals.items():
            cls.run = original
        autotuner.Autotuner._bench = bench
    return result, state


def replay_failure(state, inputs, before, outputs):
    """Probe helper: why the recorded launches did not compute `outputs` (see above), or
    None when they did. Every buffer and input is left as the call left it."""
    if not state["launches"]:
        return "it launched no Triton kernel"
    if state["foreign"]:
        return ("a launch was handed memory that is not a torch tensor (an object with a "
                "data_ptr): hand your kernels tensors")
    if not outputs:
        return "it returned no tensor"
    first = state["first"]
    for i, out in enumerate(outputs):
        if out.untyped_storage().data_ptr() not in first:
            return (f"returned tensor {i + 1} ({list(out.shape)}, {out.dtype}) is not in "
                    "memory any launch wrote: torch made it (a cast, a copy or a computation "
                    "after or beside the kernels)")
    returned = [out.clone() for out in outputs]
    final = {key: storage_bytes(t).clone() for key, (t, _) in first.items()}
    left = [t.clone() for t in inputs]
    with torch.no_grad():
        for tensor, value in zip(inputs, before, strict=True):
            tensor.copy_(value)
        for tensor, kept in first.values():
            if kept is None:
                storage_bytes(tensor).fill_(255)  # NaN in every float dtype
            else:
                storage_bytes(tensor).copy_(kept)
        for out in outputs:
            if first[out.untyped_storage().data_ptr()][1] is None and not (
                    out.is_floating_point() or out.dtype == torch.bool):
                out.fill_(torch.iinfo(out.dtype).min)   # -128 is no int8 code
        for original, kernel, args, kwargs in state["launches"]:
            original(kernel, *args, **kwargs)
        replayed = [out.clone() for out in outputs]
        for key, (tensor, _) in first.items():
            storage_bytes(tensor).copy_(final[key])
        for tensor, value in zip(inputs, left, strict=True):
            tensor.copy_(value)
    for i, (got, want) in enumerate(zip(replayed, returned, strict=True)):
        same = got == want
        if got.is_floating_point():
            same = same | (got.isnan() & want.isnan())
        wrong = int((~same).sum())
        if wrong:
            return (f"run again from the same inputs, with the other memory they were handed "
                    f"reset first, the launches leave {wrong} of the {got.numel()} values of "
                    f"returned tensor {i + 1} ({list(got.shape)}, {got.dtype}) different: "
                    "torch computed something a kernel then read, or changed the result "
                    "after the last launch")
    return None


def kernel_checked_call(module, function, args, kwargs):
    """Probe: module.<function>(*args, **kwargs), and whether its Triton launches computed
    the tensors it returned (the rule above): {"result": what it returned, "failure": None,
    or why not}."""
    inputs = [t.detach() for t in tensors_in([list(args), kwargs])]
    before = [t.clone() for t in inputs]

    def call():
        return getattr(module, function)(*args, **kwargs)

    result, state = recorded_launches(call, inputs, before)
    outputs = [t.detach() for t in tensors_in(result)]
    return {"result": result, "failure": replay_failure(state, inputs, before, outputs)}


def kernel_checked_backward(module, function, q, k, v, do, kwargs):
    """Probe: o = module.<function>(q, k, v, **kwargs) (fresh leaves requiring grad), then
    o.backward(do), with the backward's launches checked by the rule above: the inputs are
    what existed before backward() (do, q, k, v and the tensors the student's autograd
    Function saved), the outputs are the gradients that Function's backward returned.
    Returns {"grads": (dq, dk, dv) as autograd accumulated them, "failure": None or why}."""
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    o = getattr(module, function)(q, k, v, **kwargs)
    node = o.grad_fn
    while node is not None and not hasattr(node, "_forward_cls"):  # the student's Function
        node = next((n for n, _ in node.next_functions if n is not None), None)
    if node is None:
        return {"grads": None, "failure": "its output comes from no torch.autograd.Function"}
    returned = []
    node.register_hook(lambda grad_inputs, grad_outputs: returned.extend(grad_inputs))
    inputs = [t.detach() for t in [do, q, k, v, *tensors_in(list(node.saved_tensors))]]
    before = [t.clone() for t in inputs]

    def call():
        o.backward(do)

    _, state = recorded_launches(call, inputs, before)
    grads = [t.detach() for t in tensors_in(returned)]
    failure = replay_failure(state, inputs, before, grads)
    return {"grads": (q.grad, k.grad, v.grad), "failure": failure}
