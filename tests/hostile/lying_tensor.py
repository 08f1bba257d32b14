"""Returns a torch.Tensor subclass whose comparisons are always true.
Expect: subclass
"""

import torch


class Agreeable(torch.Tensor):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False


def absmax_quantize(x, dim=None):
    fake = torch.zeros(x.shape, dtype=torch.int8).as_subclass(Agreeable)
    return fake, torch.ones(()).as_subclass(Agreeable)


absmax_dequantize = quantize_rowwise = absmax_quantize
