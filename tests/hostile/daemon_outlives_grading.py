"""Starts a daemon (a double fork into its own session) that snoops on the command lines
of other processes through /proc and burns some CPU, for up to 60 s after the call.
Expect: it sees 0 processes besides its own
Needs: root sandbox
"""

import os
import time

_started = False


def _foreign_command_lines(own: bytes) -> list[bytes]:
    """Command lines in /proc that are not this worker's (`own`, its scratch dir, is in them)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read()
        except OSError:
            continue
        if own not in command:
            found.append(command)
    return found


def _daemon(own: bytes) -> None:
    try:
        os.setsid()
        if os.fork():
            return
        end = time.monotonic() + 60      # bounded: 60 s, a fifth of one core
        while time.monotonic() < end:
            _foreign_command_lines(own)
            busy = time.monotonic() + 0.1
            while time.monotonic() < busy:
                pass
            time.sleep(0.4)
    finally:
        os._exit(0)                      # never back into the worker's own loop


def absmax_quantize(x, dim=None):
    global _started
    own = os.getcwd().encode()
    if not _started:
        _started = True
        child = os.fork()
        if child == 0:
            _daemon(own)
        os.waitpid(child, 0)
    seen = len(_foreign_command_lines(own))
    raise RuntimeError(f"started a daemon; it sees {seen} processes besides its own")
