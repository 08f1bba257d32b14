"""Dereferences a NULL pointer when called.
Expect: died from signal SIGSEGV
"""

import ctypes


def absmax_quantize(x, dim=None):
    return ctypes.string_at(0)
