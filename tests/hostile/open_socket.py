"""Connects to a server of the grader's machine (127.0.0.1:PORT, filled in by the
test) and lists the network interfaces it could use to reach anything else.
Expect: local: ConnectionRefusedError.*interfaces: .'lo'.
Needs: network namespace
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
    interfaces = sorted(name for _, name in socket.if_nameindex())
    raise RuntimeError(f"local: {local}; interfaces: {interfaces}")
