"""A background thread grows to 3.5 GiB (bounded; it lets go after 20 s) while every call
answers within 0.2 s, sooner than the grader's watch on a waiting call (every 0.25 s).
Expect: used more than 3 GiB of memory
Suite: hidden
"""

import threading
import time

import torch

_hoard: list[bytes] = []
_started = False


def _grow() -> None:
    for _ in range(56):                      # 56 x 64 MiB = 3.5 GiB, every page touched
        _hoard.append(b"x" * (64 << 20))
    time.sleep(20)
    _hoard.clear()


def absmax_quantize(x, dim=None):
    global _started
    if not _started:
        _started = True
        threading.Thread(target=_grow, daemon=True).start()
    time.sleep(0.2)
    return torch.zeros_like(x, dtype=torch.int8), torch.ones(())   # wrong, and on time
