"""tigon.rms_norm and tigon.nn.RMSNorm on CPU tensors (the interpreter) against float64."""
import pytest
import torch

import tigon
from conftest import DEVICES

TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def reference(x, w, eps, offset):
    x = x.double()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (offset + w.double())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 5, 128), (17, 1000)])
@pytest.mark.parametrize("mode,offset", [("llama", 0.0), ("gemma", 1.0), ("none", 0.0)])
def test_forward_and_backward(device, dtype, shape, mode, offset):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=dtype, device=device, requires_grad=True)
    w = ((0.0 if offset else 1.0) + 0.1 * torch.randn(shape[-1], device=device)).to(dtype).requires_grad_()
    y = tigon.rms_norm(x, w, eps=1e-6, offset=offset, casting_mode=mode)
    assert y.shape == x.shape and y.dtype == dtype
    x64 = x.detach().double().requires_grad_()
    w64 = w.detach().double().requires_grad_()
    ref = reference(x64, w64, 1e-6, offset)
    assert rel(y, ref) < TOL[dtype]
    dy = torch.randn(shape, dtype=dtype, device=device)
    y.backward(dy)
    ref.backward(dy.double())
    scale = (dy.double() * (offset + w64.detach()) * torch.rsqrt(x64.detach().pow(2).mean(-1, keepdim=True) + 1e-6)).norm()
    assert ((x.grad.double() - x64.grad).norm() / max(x64.grad.norm(), scale)).item() < TOL[dtype]
    assert rel(w.grad, w64.grad) < TOL[dtype]


def test_no_weight_and_empty_input():
    x = torch.randn(4, 16, requires_grad=True)
    y = tigon.rms_norm(x, None)
    assert rel(y, reference(x, torch.ones(16), 1e-6, 0.0)) < 1e-5
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    e = torch.empty(0, 16)
    assert tigon.rms_norm(e, torch.ones(16)).shape == (0, 16)


def test_non_contiguous_input():
    x = torch.randn(8, 32).t()  # last dim strided: copied
    w = torch.randn(8)
    assert rel(tigon.rms_norm(x, w), reference(x, w, 1e-6, 0.0)) < 1e-5


def test_bad_inputs_are_clear_errors():
    x = torch.randn(4, 16)
    with pytest.raises(ValueError, match="weight must have shape \\[16\\]"):
        tigon.rms_norm(x, torch.ones(15))
    with pytest.raises(TypeError, match="x must be float32, float16 or bfloat16"):
        tigon.rms_norm(x.long(), torch.ones(16))
    with pytest.raises(ValueError, match="casting_mode"):
        tigon.rms_norm(x, torch.ones(16), casting_mode="llama3")


def test_module_matches_hf_interface_and_state_dict():
    m = tigon.nn.RMSNorm(32, eps=1e-5)
    assert list(m.state_dict().keys()) == ["weight"]
    assert m.variance_epsilon == 1e-5
    x = torch.randn(2, 3, 32)
    assert rel(m(x), reference(x, m.weight.detach(), 1e-5, 0.0)) < 1e-5


def test_torch_compile_fullgraph():
    m = tigon.nn.RMSNorm(64)
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    x = torch.randn(3, 64, requires_grad=True)
    y = compiled(x)
    y.sum().backward()
    assert rel(y, m(x)) < 1e-6
    assert x.grad is not None
