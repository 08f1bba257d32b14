"""Computes only in the first speed request (the untimed warm-up), then replays its
results by their position in the request: no work at all in the timed requests.

Attack: every timed run fed the same inputs as the warm-up (seed 0), so the warm-up's
outputs were the timed calls' too, and the first request is told from the timed ones by
counting the probe's frames: full speed points for a kernel that never runs when timed.
Expect: call 1 of a request: (o|lse) differs from the reference's
"""

import sys

_kernel = globals()["flash_attention_forward"]
_state = {"frame": None, "position": 0, "requests": 0, "replay": {}}


def flash_attention_forward(q, k, v, *, causal=False, sm_scale=None):
    caller = sys._getframe(1)
    if not caller.f_code.co_filename.startswith("<probe"):
        return _kernel(q, k, v, causal=causal, sm_scale=sm_scale)  # the correctness tests
    if caller is not _state["frame"]:
        _state.update(frame=caller, position=0, requests=_state["requests"] + 1)
    _state["position"] += 1
    position = _state["position"]
    if _state["requests"] == 1 or position not in _state["replay"]:
        _state["replay"][position] = _kernel(q, k, v, causal=causal, sm_scale=sm_scale)
    return _state["replay"][position]
