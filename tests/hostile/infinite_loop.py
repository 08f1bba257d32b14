"""Loops forever when called.
Expect: timed out after 20 s|not run again
"""


def absmax_quantize(x, dim=None):
    while True:
        pass
