"""Kills its own process with exit status 0 when called.
Expect: the worker exited with code 0
"""

import os


def absmax_quantize(x, dim=None):
    os._exit(0)
