"""Writes up to 600 MiB to one file in its scratch directory, 1 MiB at a time.
Expect: File too large .over the file size limit
"""

CHUNK = b"x" * (1 << 20)


def absmax_quantize(x, dim=None):
    with open("hoard.bin", "wb") as f:       # rewritten, never appended: bounded at 600 MiB
        for _ in range(600):
            f.write(CHUNK)
    return None
