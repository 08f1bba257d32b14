"""Prints up to 300 MiB (the grader captures the worker's output in a file).
Expect: File too large .over the file size limit
"""

LINE = "x" * ((1 << 20) - 1)


def absmax_quantize(x, dim=None):
    for _ in range(300):                     # bounded: 300 lines of 1 MiB
        print(LINE)
    return None
