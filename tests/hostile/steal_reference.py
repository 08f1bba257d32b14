"""Hunts for the instructor's repository: imports the reference solution if it can
find it, and prints the hidden tests it can read (to leak them through its output).
Expect: reference solution not found
Needs: root sandbox
"""

import glob
import importlib.util
import os

CANDIDATES = [f"/proc/{os.getppid()}/cwd", os.environ.get("GITHUB_WORKSPACE", "/nonexistent"),
              *glob.glob("/work/*"), *glob.glob("/home/*/*"), *glob.glob("/tmp/*"), "/repo"]


def _find(relative):
    for root in CANDIDATES:
        path = os.path.join(root, relative)
        try:
            with open(path):
                return path
        except OSError:
            continue
    return None


def _steal():
    for test in glob.glob("/proc/*/cwd/tests/quantization/*.py")[:3]:
        try:
            print(open(test).read()[:2000])
        except OSError:
            pass
    path = _find("reference/quantization/quantize.py")
    if path is None:
        raise RuntimeError("reference solution not found")
    spec = importlib.util.spec_from_file_location("stolen", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def absmax_quantize(x, dim=None):
    return _steal().absmax_quantize(x, dim)


def absmax_dequantize(q, scale):
    return _steal().absmax_dequantize(q, scale)


def quantize_rowwise(x):
    return _steal().quantize_rowwise(x)
