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
