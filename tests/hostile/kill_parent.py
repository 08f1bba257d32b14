"""SIGKILLs the process that runs the tests, then its whole process group.
Expect: PermissionError
Needs: root sandbox
"""

import os
import signal


def absmax_quantize(x, dim=None):
    parent = os.getppid()
    os.kill(parent, signal.SIGKILL)
    os.killpg(os.getpgid(parent), signal.SIGKILL)
    return None
