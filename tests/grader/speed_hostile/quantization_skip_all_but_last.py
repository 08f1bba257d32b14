r"""Skips every call of a speed run but the last, returning the previous result instead.

Attack: only the last output of a timed run was checked, so a kernel could skip 19 of
every 20 timed calls (2 of 3 in smoke mode) and be up to 20x too slow for full speed
points. The calling probe's frame says which call is the last: `_ == iterations - 1`
(the old probe's loop) or the calls counted against `len(seeds)` (the new one's).
Expect: call \d of a request: the codes differ from the reference's
"""

import sys

_kernel = globals()["quantize_rowwise"]
_state = {"frame": None, "calls": 0, "last": None}


def _is_last_call() -> bool:
    caller = sys._getframe(2)
    if not caller.f_code.co_filename.startswith("<probe"):
        return True  # the correctness tests: always computed
    if caller is not _state["frame"]:
        _state.update(frame=caller, calls=0)
    _state["calls"] += 1
    names = caller.f_locals
    if "iterations" in names:
        return names.get("_") == names["iterations"] - 1
    return _state["calls"] == len(names.get("seeds", ()))


def quantize_rowwise(x):
    if _is_last_call() or _state["last"] is None:
        _state["last"] = _kernel(x)
    return _state["last"]
