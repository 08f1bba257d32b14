"""Forks up to 1,000 processes that each sleep two seconds (a bounded fork bomb).
Expect: fork refused after [0-9]+ processes|not run again
Needs: root sandbox
"""

import os
import time


def absmax_quantize(x, dim=None):
    for n in range(1000):
        try:
            pid = os.fork()
        except OSError as error:
            raise RuntimeError(f"fork refused after {n} processes: {error}") from None
        if pid == 0:
            time.sleep(2)
            os._exit(0)
    raise RuntimeError("forked 1000 processes: the task limit did not hold")
