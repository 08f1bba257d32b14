"""Leaves a file in /dev/shm (memory of the whole machine, shared by all its processes,
kept until reboot) and counts what other submissions left there.
Expect: /dev/shm held 0 files of others
Needs: root sandbox
"""

import os

NAME = "llmlab-hostile-dev-shm"


def absmax_quantize(x, dim=None):
    others = [name for name in os.listdir("/dev/shm") if name != NAME]
    with open(f"/dev/shm/{NAME}", "wb") as f:
        f.write(b"x" * (1 << 20))           # bounded: 1 MiB, one file
    raise RuntimeError(f"/dev/shm held {len(others)} files of others; left {NAME} there")
