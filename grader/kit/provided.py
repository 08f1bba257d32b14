"""Provided code, run where it is trusted: the grader's own copy, in the test's process.

An assignment's provided files (kv_cache's model.py, moe's experts.py) sit beside
the student's module in the worker, which imports them, and so can patch them:
whatever the provided code computes *in the worker* is the student's to decide.
A test that needs the provided code runs this copy instead, and reaches the
student's code only through the `student` seam:

    model = provided_module("kv_cache", "model.py")
    net = model.TinyTransformer(model.Config(), student)    # student.KVCache, ... run there
    tokens = model.generate(net, prompt, 8)                  # the loop runs here
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from grader.course import ASSIGNMENTS


def provided_module(assignment: str, filename: str) -> ModuleType:
    """The grader's copy of `filename`, a provided file of `assignment`, imported once under
    a private name that no student module can shadow."""
    path = ASSIGNMENTS[assignment].provided_files()[
        ASSIGNMENTS[assignment].provided.index(filename)]
    name = f"llmlab_provided_{assignment}_{path.stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
    return sys.modules[name]
