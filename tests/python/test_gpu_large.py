"""Real sizes on the GPU: a tensor past 2^31 elements (64-bit indexing), the largest
vocabularies, and fused linear cross-entropy at Llama-3 8B's head shape against an unfused
float32 reference, with outputs poisoned before each run. Skipped without a CUDA GPU."""
import pytest
import torch
import torch.nn.functional as F

import tigon

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


def rel(a, b):
    a, b = a.double(), b.double()
    assert torch.isfinite(a).all(), "non-finite output (unwritten element?)"
    return ((a - b).norm() / b.norm()).item()


def test_rms_norm_past_2_31_elements():
    n = 4096
    m = (1 << 31) // n + 3                      # 2^31 + 3 * 4096 elements
    x = torch.randn(m, n, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    y, rstd = torch.ops.tigon.rms_norm_fwd(x, w, 1e-6, 0.0, "llama")
    for rows in (slice(0, 64), slice(m - 64, m)):  # the first rows and those past element 2^31
        xs = x[rows].double()
        ref = xs * torch.rsqrt(xs.pow(2).mean(-1, keepdim=True) + 1e-6) * w.double()
        assert rel(y[rows], ref) < 1e-2
    assert torch.isfinite(y[-1]).all() and torch.isfinite(rstd).all()
    del x, y


@pytest.mark.parametrize("v", [128256, 262144])
def test_cross_entropy_large_vocab(v):
    torch.manual_seed(v)
    bt = 2048
    logits = (torch.randn(bt, v, device="cuda") * 2).to(torch.bfloat16).requires_grad_()
    target = torch.randint(0, v, (bt,), device="cuda")
    target[::7] = -100
    loss = tigon.cross_entropy(logits, target, label_smoothing=0.05, lse_square_scale=1e-4)
    loss.backward()
    ref_logits = logits.detach().double().requires_grad_()
    rows = F.cross_entropy(ref_logits, target, reduction="none", label_smoothing=0.05)
    valid = target != -100
    ref = (rows + 1e-4 * torch.logsumexp(ref_logits, -1) ** 2 * valid).sum() / valid.sum()
    ref.backward()
    assert rel(loss, ref) < 1e-4
    assert rel(logits.grad, ref_logits.grad) < 1e-2


def test_fused_linear_cross_entropy_llama3_head():
    torch.manual_seed(0)
    bt, h, v = 8192, 4096, 128256
    x = (torch.randn(bt, h, device="cuda") * 0.5).to(torch.bfloat16).requires_grad_()
    w = (torch.randn(v, h, device="cuda") * 0.02).to(torch.bfloat16).requires_grad_()
    target = torch.randint(0, v, (bt,), device="cuda")
    target[:100] = -100
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    loss = tigon.fused_linear_cross_entropy(x, w, target)
    loss.backward()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**30
    # unfused float32 reference
    xr, wr = x.detach().float().requires_grad_(), w.detach().float().requires_grad_()
    ref = F.cross_entropy(xr @ wr.T, target)
    ref.backward()
    print(f"\nfused linear cross-entropy {bt}x{h}x{v}: loss {loss.item():.6f} (f32 reference {ref.item():.6f}), "
          f"dx rel {rel(x.grad, xr.grad):.2e}, dW rel {rel(w.grad, wr.grad):.2e}, peak extra memory {peak:.2f} GiB "
          f"(gradients {(x.numel() + w.numel()) * 2 / 2**30:.2f} GiB of it)")
    assert rel(loss, ref) < 1e-3
    assert rel(x.grad, xr.grad) < 2e-2 and rel(w.grad, wr.grad) < 2e-2
