"""Every functional op against bad and unusual inputs: a wrong dtype or shape is an error that
names the argument; tensors on two devices are refused; 0-size inputs give empty outputs;
non-contiguous inputs give the contiguous result; NaN and Inf propagate as in PyTorch."""
import pytest
import torch
import torch.nn.functional as F

import tigon
from conftest import DEVICES


def rope_args(device, *, s=5, d=8):
    q, k = torch.randn(2, 4, s, d, device=device), torch.randn(2, 2, s, d, device=device)
    cos, sin = torch.randn(1, s, d, device=device), torch.randn(1, s, d, device=device)
    return q, k, cos, sin


def mrope_args(device, *, s=5, d=8):
    q, k = torch.randn(2, 4, s, d, device=device), torch.randn(2, 2, s, d, device=device)
    cos, sin = torch.randn(3, 1, s, d, device=device), torch.randn(3, 1, s, d, device=device)
    return q, k, cos, sin


# op name -> (call on good inputs of n rows, the same with the first tensor's last dim cut)
def calls(device, n=6, h=16):
    x = torch.randn(n, h, device=device)
    w, b = torch.randn(h, device=device), torch.randn(h, device=device)
    t = torch.randint(0, h, (n,), device=device)
    lw = torch.randn(24, h, device=device)
    gate = torch.randn(n, h, device=device)
    return {
        "rms_norm": lambda x=x: tigon.rms_norm(x, w),
        "layer_norm": lambda x=x: tigon.layer_norm(x, w, b),
        "swiglu": lambda x=x: tigon.swiglu(x, gate),
        "cross_entropy": lambda x=x: tigon.cross_entropy(x, t, reduction="none"),
        "fused_linear_cross_entropy": lambda x=x: tigon.fused_linear_cross_entropy(x, lw, t % 24, reduction="none"),
    }


ROWWISE = ["rms_norm", "layer_norm", "swiglu", "cross_entropy", "fused_linear_cross_entropy"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", ROWWISE)
def test_wrong_dtype_names_the_argument(device, op):
    call = calls(device)[op]
    x = torch.randn(6, 16, device=device)
    for bad in (x.double(), x.long()):
        with pytest.raises((TypeError, ValueError, RuntimeError)) as e:
            call(bad)
        msg = str(e.value)
        assert op in msg or "tigon" in msg, msg
        assert any(name in msg for name in ("x ", "x:", "a ", "a:", "logits", "must be", "dtype")), msg


@pytest.mark.parametrize("device", DEVICES)
def test_mismatched_shapes_name_the_argument(device):
    x = torch.randn(6, 16, device=device)
    t = torch.randint(0, 16, (6,), device=device)
    cases = [
        (lambda: tigon.rms_norm(x, torch.ones(15, device=device)), "weight"),
        (lambda: tigon.layer_norm(x, torch.ones(16, device=device), torch.ones(15, device=device)), "bias"),
        (lambda: tigon.swiglu(x, torch.randn(6, 15, device=device)), "b"),
        (lambda: tigon.cross_entropy(x, t[:5]), "target"),
        (lambda: tigon.fused_linear_cross_entropy(x, torch.randn(24, 15, device=device), t), "weight"),
        (lambda: tigon.fused_linear_cross_entropy(x, torch.randn(24, 16, device=device), t[:5]), "target"),
        (lambda: tigon.rope(*rope_args(device)[:2], *rope_args(device, s=4)[2:]), "cos"),
        (lambda: tigon.mrope(*mrope_args(device), [2, 1, 2]), "mrope_section"),
        # q and k go through one launch: they share batch, positions, head dim and dtype
        (lambda: tigon.rope(rope_args(device)[0], rope_args(device, s=4)[1], *rope_args(device)[2:]), "positions"),
        (lambda: tigon.rope(rope_args(device)[0], rope_args(device)[1].half(), *rope_args(device)[2:]), "same dtype"),
        (lambda: tigon.rope(rope_args(device)[0][:, :0], *rope_args(device)[1:]), "one head"),
        (lambda: tigon.mrope(mrope_args(device)[0], mrope_args(device, d=4)[1], *mrope_args(device)[2:], [2, 1, 1]),
         "head dim"),
    ]
    for call, name in cases:
        with pytest.raises((ValueError, RuntimeError)) as e:
            call()
        assert name in str(e.value), str(e.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for a second device")
@pytest.mark.parametrize("op", ["rms_norm", "layer_norm", "swiglu", "cross_entropy", "fused_linear_cross_entropy",
                                "rope"])
def test_two_devices_are_refused(op):
    x = torch.randn(6, 16, device="cuda")
    w, t = torch.randn(16), torch.randint(0, 16, (6,))
    call = {"rms_norm": lambda: tigon.rms_norm(x, w),
            "layer_norm": lambda: tigon.layer_norm(x, w, None),
            "swiglu": lambda: tigon.swiglu(x, torch.randn(6, 16)),
            "cross_entropy": lambda: tigon.cross_entropy(x, t),
            "fused_linear_cross_entropy": lambda: tigon.fused_linear_cross_entropy(x, torch.randn(24, 16), t),
            "rope": lambda: tigon.rope(*rope_args("cuda")[:2], *rope_args("cpu")[2:])}[op]
    with pytest.raises((ValueError, RuntimeError)) as e:
        call()
    assert "cpu" in str(e.value).lower() and "cuda" in str(e.value).lower(), str(e.value)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", ROWWISE)
def test_zero_rows_give_empty_outputs(device, op):
    out = calls(device, n=0)[op]()
    assert out.shape[0] == 0


@pytest.mark.parametrize("device", DEVICES)
def test_zero_rows_rope(device):
    q, k = tigon.rope(*rope_args(device, s=0))
    assert q.shape == (2, 4, 0, 8) and k.shape == (2, 2, 0, 8)
    q, k = tigon.mrope(*mrope_args(device, s=0), [2, 1, 1])
    assert q.shape == (2, 4, 0, 8)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", ROWWISE)
def test_non_contiguous_inputs_give_the_contiguous_result(device, op):
    base = torch.randn(16, 12, device=device)
    strided = base.t()                       # (12, 16), last dim strided
    sliced = torch.randn(6, 32, device=device)[:, ::2]
    call = calls(device, n=12)[op]
    assert torch.equal(call(strided), call(strided.contiguous()))
    call6 = calls(device, n=6)[op]
    assert torch.equal(call6(sliced), call6(sliced.contiguous()))


@pytest.mark.parametrize("device", DEVICES)
def test_nan_and_inf_propagate_like_torch(device):
    x = torch.randn(4, 16, device=device)
    x[1, 3], x[2, 5] = float("nan"), float("inf")
    w, b = torch.randn(16, device=device), torch.randn(16, device=device)
    pairs = [
        (tigon.rms_norm(x, w, eps=1e-6), F.rms_norm(x, (16,), w, eps=1e-6)),
        (tigon.layer_norm(x, w, b), F.layer_norm(x, (16,), w, b)),
        (tigon.swiglu(x, x), F.silu(x) * x),
        (tigon.cross_entropy(x, torch.tensor([0, 1, 2, 3], device=device), reduction="none"),
         F.cross_entropy(x, torch.tensor([0, 1, 2, 3], device=device), reduction="none")),
    ]
    for got, ref in pairs:
        assert torch.equal(got.isnan(), ref.isnan()), (got, ref)
        assert torch.equal(got.isinf(), ref.isinf()), (got, ref)
        fin = ref.isfinite()
        assert torch.allclose(got[fin], ref[fin], rtol=1e-4, atol=1e-5)
