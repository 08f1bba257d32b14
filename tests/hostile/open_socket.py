"""Connects to a server on the grader's machine (127.0.0.1:PORT, filled in by the
test) and to an address on the internet, and reports what it reached.
Expect: local: ConnectionRefusedError
Needs: root sandbox
"""

import socket

PORT = 0  # the catalogue test writes its listener's port here


def _connect(address):
    try:
        with socket.create_connection(address, timeout=2):
            return "connected"
    except OSError as error:
        return f"{type(error).__name__}: {error}"


def absmax_quantize(x, dim=None):
    local = _connect(("127.0.0.1", PORT))
    internet = _connect(("1.1.1.1", 53))
    raise RuntimeError(f"local: {local}; internet: {internet}")
