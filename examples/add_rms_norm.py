"""A user-defined fused op, end to end: the .tile kernels beside this file, wrapped in a
torch.autograd.Function. docs/adding-an-op.md walks through it; tests/python/test_examples.py
checks it against PyTorch."""
import pathlib

import torch

import tigon

_kernels = tigon.load(pathlib.Path(__file__).with_name("add_rms_norm.tile"))


class AddRMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, residual, weight, eps):
        n = x.shape[-1]
        x2, r2 = x.reshape(-1, n).contiguous(), residual.reshape(-1, n).contiguous()
        h, y = torch.empty_like(x2), torch.empty_like(x2)
        rstd = torch.empty(x2.shape[0], device=x.device, dtype=torch.float32)
        _kernels.add_rms_norm_fwd(x2, r2, weight.contiguous(), eps, h, y, rstd)
        ctx.save_for_backward(h, weight, rstd)
        return y.view(x.shape), h.view(x.shape)

    @staticmethod
    def backward(ctx, dy, dh_out):
        h, weight, rstd = ctx.saved_tensors
        n = h.shape[-1]
        dy2 = dy.reshape(-1, n).contiguous()
        dh_out2 = (dh_out if dh_out is not None else torch.zeros_like(dy)).reshape(-1, n).contiguous()
        dh = torch.empty_like(h)
        dw = torch.zeros(n, device=h.device, dtype=torch.float32)
        _kernels.add_rms_norm_bwd(dy2, dh_out2, h, weight.contiguous(), rstd, dh, dw)
        dh = dh.view(dy.shape)
        return dh, dh, dw.to(weight.dtype), None


def add_rms_norm(x, residual, weight, eps=1e-6):
    """Returns (rms_norm(x + residual) * weight, x + residual)."""
    return AddRMSNorm.apply(x, residual, weight, eps)
