r"""Skips every call of a speed run but the last, returning the previous result instead.

Attack: only the last output of each timed run (non-causal, causal) was checked, so a
kernel could skip 9 of every 10 timed calls (2 of 3 with 3 calls a run) and be up to
10x too slow for full speed points. The calling probe's frame says which call is the
last: `_ == iterations - 1` (the old probe's loop) or the calls counted against
`len(seeds)` (the new one's).
Expect: call \d of a request: (o|lse) differs from the reference's
"""

import sys

_kernel = globals()["flash_attention_forward"]
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


def flash_attention_forward(q, k, v, *, causal=False, sm_scale=None):
    if _is_last_call() or _state["last"] is None:
        _state["last"] = _kernel(q, k, v, causal=causal, sm_scale=sm_scale)
    return _state["last"]
