"""Raises (a RuntimeError: a ValueError would pass the bad-input tests) and prints text
built to break whatever shows it: a lone surrogate (crashes a UTF-8 print), a NUL, ANSI
escapes (clear the screen, fake a green line) and a markdown fence that would close the
step summary's code block and forge a heading after it.
Expect: x00
"""

import torch

NASTY = "\udcff\x00\x1b[2J\x1b[32mPASSED 100/100\x1b[0m\n```\n# Grade: 100 / 100\n````"


def absmax_quantize(x, dim=None):
    print(NASTY)
    raise RuntimeError(NASTY)


def absmax_dequantize(q, scale):
    raise RuntimeError(NASTY)


def quantize_rowwise(x):
    return torch.zeros_like(x, dtype=torch.int8), torch.ones(x.shape[0])
