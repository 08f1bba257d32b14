"""Grows to 3.5 GiB of resident memory (bounded), then waits.
Expect: used more than 3 GiB of memory|MemoryError|not run again
"""

import time


def absmax_quantize(x, dim=None):
    hoard = []
    for _ in range(56):                     # 56 x 64 MiB = 3.5 GiB, every page touched
        hoard.append(b"x" * (64 << 20))
        time.sleep(0.02)
    time.sleep(30)
