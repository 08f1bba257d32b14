"""flash_attention_forward computes attention with torch in float64 (scores, softmax, the
full Tq×Tk matrix), then launches a kernel over every row that reads q, k and v and copies
torch's o and lse into the outputs (adding 0·q): the launches write all of o and lse and
compute none of it.
Target: flash_attention
Suite: hidden
Tasks: 4.1 4.2
Attacks: /test_(?!unsupported|inputs_are)
Expect: not computed by the kernel's launches
"""

import math

import torch
import triton
import triton.language as tl

HEAD_DIMS = (16, 32, 64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@triton.jit
def _copy_rows(q_ptr, k_ptr, v_ptr, to_ptr, tl_ptr, o_ptr, lse_ptr, D: tl.constexpr):
    row = tl.program_id(0)  # rows of contiguous [B*H*Tq, D] buffers
    dims = tl.arange(0, D)
    zero = 0.0 * tl.load(q_ptr + row * D + dims).to(tl.float32)
    zero += 0.0 * tl.load(k_ptr).to(tl.float32) + 0.0 * tl.load(v_ptr).to(tl.float32)
    o = tl.load(to_ptr + row * D + dims) + zero
    tl.store(o_ptr + row * D + dims, o.to(o_ptr.dtype.element_ty))
    tl.store(lse_ptr + row, tl.load(tl_ptr + row))


def _check(q, k, v, sm_scale):
    for t in (q, k, v):
        if t.dim() != 4 or t.dtype not in DTYPES:
            raise ValueError("q, k, v must be 4-D fp16/bf16/fp32")
    if k.dtype != q.dtype or v.dtype != q.dtype or k.shape != v.shape:
        raise ValueError("q, k, v do not fit")
    if k.shape[:2] != q.shape[:2] or k.shape[3] != q.shape[3] or q.shape[3] not in HEAD_DIMS:
        raise ValueError("q, k, v do not fit")
    if min(q.shape[2], k.shape[2]) < 1:
        raise ValueError("empty")
    return 1 / math.sqrt(q.shape[3]) if sm_scale is None else sm_scale


def flash_attention_forward(q, k, v, *, causal=False, sm_scale=None):
    scale = _check(q, k, v, sm_scale)
    s = (q.double() @ k.double().transpose(-1, -2)) * scale
    if causal:
        i = torch.arange(q.shape[2], device=q.device)[:, None]
        j = torch.arange(k.shape[2], device=q.device)[None, :]
        s = s.masked_fill(j > i + (k.shape[2] - q.shape[2]), float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - torch.where(torch.isinf(lse), 0.0, lse)[..., None])
    torch_o, torch_lse = (p @ v.double()).float().contiguous(), lse.float().contiguous()
    o = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    out_lse = torch.empty(q.shape[:3], dtype=torch.float32, device=q.device)
    rows = q.shape[0] * q.shape[1] * q.shape[2]
    _copy_rows[(rows,)](q.contiguous(), k, v, torch_o, torch_lse, o, out_lse, D=q.shape[3])
    return o, out_lse


def flash_attention(q, k, v, *, causal=False, sm_scale=None):
    raise NotImplementedError("Task 4.3")
