"""The user-op example of docs/adding-an-op.md, against PyTorch."""
import importlib.util
import pathlib

import pytest
import torch

from conftest import ROOT


def load_example():
    spec = importlib.util.spec_from_file_location("add_rms_norm", ROOT / "examples" / "add_rms_norm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def reference(x, residual, weight, eps):
    h = x + residual
    return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps) * weight, h


@pytest.mark.parametrize("shape", [(3, 64), (2, 5, 100)])
def test_add_rms_norm_matches_pytorch(shape):
    ex = load_example()
    torch.manual_seed(0)
    x, res = torch.randn(shape, requires_grad=True), torch.randn(shape, requires_grad=True)
    w = torch.randn(shape[-1], requires_grad=True)
    y, h = ex.add_rms_norm(x, res, w)
    ref_in = [t.detach().double().requires_grad_() for t in (x, res, w)]
    ry, rh = reference(*ref_in, 1e-6)
    assert torch.allclose(y.double(), ry, rtol=1e-5, atol=1e-5)
    assert torch.allclose(h.double(), rh, rtol=1e-6, atol=1e-6)
    dy, dh = torch.randn(shape), torch.randn(shape)
    torch.autograd.backward([y, h], [dy, dh])
    torch.autograd.backward([ry, rh], [dy.double(), dh.double()])
    for got, ref in zip((x.grad, res.grad, w.grad), (t.grad for t in ref_in)):
        assert torch.allclose(got.double(), ref, rtol=1e-4, atol=1e-5)
