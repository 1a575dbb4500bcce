"""Every functional op, forward and backward, against float64 PyTorch references, on odd
shapes and every dtype, on the CPU (the interpreter) and, where present, the GPU."""
import pytest
import torch
import torch.nn.functional as F

import tigon
from conftest import DEVICES

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}


def rel(a, b):
    a, b = a.double(), b.double()
    assert torch.isfinite(a).all(), "non-finite output (unwritten element?)"
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def check_grads(outputs, refs, inputs, ref_inputs, dtype, scale=1.0):
    grads = [torch.randn_like(o) for o in outputs]
    torch.autograd.backward(outputs, grads)
    torch.autograd.backward(refs, [g.double() * scale for g in grads])
    for x, r in zip(inputs, ref_inputs):
        assert rel(x.grad, r.grad) < TOL[dtype], f"gradient of {tuple(x.shape)}"


def leaf(t, dtype=None):
    return t.to(dtype or t.dtype).detach().requires_grad_()


def ref_of(t):
    return t.detach().double().requires_grad_()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
# N > 8192 takes the wide-row backward (dx, then dw and db by column blocks); N >= 8192 in
# 16 bits the forward that loops over rows (layer_norm_fwd_rows)
@pytest.mark.parametrize("n,affine", [(1, "both"), (7, "weight"), (128, "none"), (1000, "both"), (5, "bias"),
                                     (8200, "both"), (12288, "weight"), (9000, "none"), (8300, "bias")])
def test_layer_norm(device, dtype, n, affine):
    torch.manual_seed(n)
    x = leaf(torch.randn(13, n, device=device) * 2 + 0.5, dtype)
    w = leaf(1 + 0.1 * torch.randn(n, device=device), dtype) if affine in ("both", "weight") else None
    b = leaf(0.1 * torch.randn(n, device=device), dtype) if affine in ("both", "bias") else None
    y = tigon.layer_norm(x, w, b, eps=1e-12 if n > 1 else 1e-5)
    rx, rw, rb = ref_of(x), ref_of(w) if w is not None else None, ref_of(b) if b is not None else None
    ry = F.layer_norm(rx, (n,), rw, rb, 1e-12 if n > 1 else 1e-5)
    assert rel(y, ry) < TOL[dtype] or n == 1  # n == 1: y == b exactly, ry too
    inputs = [t for t in (x, w, b) if t is not None]
    check_grads([y], [ry], inputs, [t for t in (rx, rw, rb) if t is not None], dtype) if n > 1 else None


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("affine", ["both", "weight", "bias"])
def test_norms_with_no_rows_give_zero_parameter_gradients(device, affine):
    """No rows: the partial sums are never written by a kernel, so the op must zero them."""
    n = 12
    x = torch.empty(0, n, device=device, requires_grad=True)
    w = torch.randn(n, device=device, requires_grad=True) if affine != "bias" else None
    b = torch.randn(n, device=device, requires_grad=True) if affine != "weight" else None
    params = [t for t in (w, b) if t is not None]
    grads = torch.autograd.grad(tigon.layer_norm(x, w, b).sum(), [x] + params)
    assert grads[0].shape == (0, n) and all(torch.equal(g, torch.zeros(n, device=device)) for g in grads[1:])
    if w is not None:
        gx, gw = torch.autograd.grad(tigon.rms_norm(x, w).sum(), [x, w])
        assert gx.shape == (0, n) and torch.equal(gw, torch.zeros(n, device=device))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


def rope_ref(x, cos, sin, r):
    xr, xp = x[..., :r], x[..., r:]
    return torch.cat((xr * cos + rotate_half(xr) * sin, xp), -1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d,r,batch_cos", [(8, 8, 1), (16, 8, 2), (64, 64, 2)])
def test_rope_strided_gqa_partial(device, dtype, d, r, batch_cos):
    torch.manual_seed(d + r)
    b, s, hq, hk = 2, 5, 4, 2
    # HF layout: view(B, S, H, D).transpose(1, 2), so q and k are not contiguous
    ql = leaf(torch.randn(b, s, hq, d, device=device), dtype)
    kl = leaf(torch.randn(b, s, hk, d, device=device), dtype)
    ang = torch.randn(batch_cos, s, r // 2, device=device)
    cos, sin = torch.cat((ang.cos(), ang.cos()), -1).to(dtype), torch.cat((ang.sin(), ang.sin()), -1).to(dtype)
    qe, ke = tigon.rope(ql.transpose(1, 2), kl.transpose(1, 2), cos, sin)
    rql, rkl = ref_of(ql), ref_of(kl)
    c, sn = cos.double()[:, None], sin.double()[:, None]
    rqe, rke = rope_ref(rql.transpose(1, 2), c, sn, r), rope_ref(rkl.transpose(1, 2), c, sn, r)
    assert rel(qe, rqe) < TOL[dtype] and rel(ke, rke) < TOL[dtype]
    check_grads([qe, ke], [rqe, rke], [ql, kl], [rql, rkl], dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", ["rope", "mrope"])
def test_rope_outputs_keep_the_input_layout(device, op):
    """HF's transposed q (token-major memory) gives a transposed q_embed, as torch's own
    arithmetic would, so attention's transpose back is contiguous; a contiguous q gives a
    contiguous q_embed, and so does a q whose head dim is strided (written in place of a copy
    of it, it would be lost)."""
    torch.manual_seed(4)
    b, s, d = 2, 5, 8
    if op == "rope":
        ang = torch.randn(1, s, d // 2, device=device)
        fn = lambda q, k, c, sn: tigon.rope(q, k, c, sn)
    else:
        ang = torch.randn(3, b, s, d // 2, device=device)
        fn = lambda q, k, c, sn: tigon.mrope(q, k, c, sn, [2, 1, 1])
    cos, sin = torch.cat((ang.cos(), ang.cos()), -1), torch.cat((ang.sin(), ang.sin()), -1)
    for q, k in ((torch.randn(b, s, 4, d, device=device).transpose(1, 2), torch.randn(b, s, 2, d, device=device).transpose(1, 2)),
                 (torch.randn(b, 4, s, d, device=device), torch.randn(b, 2, s, d, device=device))):
        qe, ke = fn(q, k, cos, sin)
        assert qe.stride() == q.stride() and ke.stride() == k.stride()
    # dense but with the head dim strided: the input is copied, the outputs are contiguous
    q, k = torch.randn(b, 4, d, s, device=device).transpose(-1, -2), torch.randn(b, 2, d, s, device=device).transpose(-1, -2)
    qe, ke = fn(q, k, cos, sin)
    qc, kc = fn(q.contiguous(), k.contiguous(), cos, sin)
    assert qe.is_contiguous() and ke.is_contiguous() and torch.equal(qe, qc) and torch.equal(ke, kc)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rope_vision_layout(device, dtype):
    torch.manual_seed(3)
    s, h, d = 9, 3, 16
    q = leaf(torch.randn(s, h, d, device=device), dtype)
    k = leaf(torch.randn(s, h, d, device=device), dtype)
    ang = torch.randn(s, d // 2, device=device)
    cos, sin = torch.cat((ang.cos(), ang.cos()), -1), torch.cat((ang.sin(), ang.sin()), -1)  # f32 tables
    qe, ke = tigon.rope(q, k, cos, sin)
    rq, rk = ref_of(q), ref_of(k)
    rqe = rope_ref(rq, cos.double()[:, None], sin.double()[:, None], d)
    rke = rope_ref(rk, cos.double()[:, None], sin.double()[:, None], d)
    assert rel(qe, rqe) < TOL[dtype] and rel(ke, rke) < TOL[dtype]
    check_grads([qe, ke], [rqe, rke], [q, k], [rq, rk], dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", ["rope", "mrope"])
def test_rope_backward_takes_strided_gradients(device, op):
    """Upstream gradients in HF's transposed layout (as attention hands them back) and with a
    last stride of 2 give the reference gradients (no copy is needed for the first)."""
    torch.manual_seed(5)
    b, s, h, d = 2, 7, 3, 16
    x = leaf(torch.randn(b, s, h, d, device=device)).transpose(1, 2)
    if op == "rope":
        ang = torch.randn(1, s, d // 2, device=device)
        fn, ref = (lambda q, c, sn: tigon.rope(q, q, c, sn)[0]), (lambda q, c, sn: rope_ref(q, c[:, None], sn[:, None], d))
    else:
        ang = torch.randn(3, b, s, d // 2, device=device)
        fn, ref = (lambda q, c, sn: tigon.mrope(q, q, c, sn, [2, 3, 3])[0]), (lambda q, c, sn: mrope_ref(q, c, sn, [2, 3, 3]))
    cos, sin = torch.cat((ang.cos(), ang.cos()), -1), torch.cat((ang.sin(), ang.sin()), -1)
    for dy in (torch.randn(b, s, h, d, device=device).transpose(1, 2), torch.randn(b, h, s, 2 * d, device=device)[..., ::2]):
        (gx,) = torch.autograd.grad(fn(x, cos, sin), x, dy)
        rx = ref_of(x)
        (rgx,) = torch.autograd.grad(ref(rx, cos.double(), sin.double()), rx, dy.double())
        assert rel(gx, rgx) < 1e-5


def mrope_ref(x, cos, sin, section):
    sec = section * 2
    cos = torch.cat([m[i % 3] for i, m in enumerate(cos.split(sec, dim=-1))], dim=-1).unsqueeze(1)
    sin = torch.cat([m[i % 3] for i, m in enumerate(sin.split(sec, dim=-1))], dim=-1).unsqueeze(1)
    return x * cos + rotate_half(x) * sin


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d,section", [(16, [2, 3, 3]), (32, [4, 6, 6])])
def test_mrope(device, dtype, d, section):
    torch.manual_seed(d)
    b, s = 2, 6
    q = leaf(torch.randn(b, s, 4, d, device=device, dtype=dtype)).transpose(1, 2)
    k = leaf(torch.randn(b, s, 2, d, device=device, dtype=dtype)).transpose(1, 2)
    ang = torch.randn(3, b, s, d // 2, device=device)
    cos, sin = torch.cat((ang.cos(), ang.cos()), -1).to(dtype), torch.cat((ang.sin(), ang.sin()), -1).to(dtype)
    qe, ke = tigon.mrope(q, k, cos, sin, section)
    rq, rk = ref_of(q), ref_of(k)
    rqe, rke = mrope_ref(rq, cos.double(), sin.double(), section), mrope_ref(rk, cos.double(), sin.double(), section)
    assert rel(qe, rqe) < TOL[dtype] and rel(ke, rke) < TOL[dtype]
    with pytest.raises(ValueError, match="mrope_section"):
        tigon.mrope(q, k, cos, sin, [1, 2, 3])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 5, 130), (9, 1000)])
def test_swiglu(device, dtype, shape):
    torch.manual_seed(shape[-1])
    a, b = leaf(torch.randn(shape, device=device), dtype), leaf(torch.randn(shape, device=device), dtype)
    c = tigon.swiglu(a, b)
    ra, rb = ref_of(a), ref_of(b)
    rc = F.silu(ra) * rb
    assert rel(c, rc) < TOL[dtype]
    check_grads([c], [rc], [a, b], [ra, rb], dtype)


def ce_ref(logits, target, ignore_index, reduction, ls, z, softcap):
    x = logits if softcap is None else softcap * torch.tanh(logits / softcap)
    rows = F.cross_entropy(x, target, ignore_index=ignore_index, reduction="none", label_smoothing=ls)
    valid = target != ignore_index
    rows = rows + z * torch.logsumexp(x, -1) ** 2 * valid
    if reduction == "none":
        return rows
    return rows.sum() / valid.sum() if reduction == "mean" else rows.sum()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("v", [1000, 1002, 4099])  # rows as chunks of 8 (f32: 4), 2, 1
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ls,z,softcap", [(0.0, 0.0, None), (0.1, 1e-4, 30.0)])
def test_cross_entropy(device, dtype, v, reduction, ls, z, softcap):
    torch.manual_seed(v)
    n = 7
    logits = leaf(torch.randn(n, v, device=device) * 3, dtype)
    target = torch.randint(0, v, (n,), device=device)
    target[2] = -100
    loss = tigon.cross_entropy(logits, target, reduction=reduction, label_smoothing=ls, lse_square_scale=z,
                               softcap=softcap)
    rl = ref_of(logits)
    ref = ce_ref(rl, target, -100, reduction, ls, z, softcap)
    assert rel(loss, ref) < max(TOL[dtype], 1e-5)
    check_grads([loss], [ref], [logits], [rl], dtype)
    assert torch.all(logits.grad[2] == 0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("ls,softcap", [(0.0, None), (0.1, None), (0.0, 30.0)])
def test_cross_entropy_masked_and_shifted_logits(device, dtype, reduction, ls, softcap):
    """-inf logits (a masked or padded vocabulary, in the last partial block too) and rows
    shifted by 1e4 give torch's loss and gradient, not NaN or a rounded lse. (Not the shift
    for reduction="none": its backward starts from the saved lse, one f32, whose rounding at
    1e4 is 1e-3 relative in the gradient.)"""
    torch.manual_seed(1)
    n, v = 5, 4099
    x = torch.randn(n, v, device=device) * 3
    x[0, ::2] = -float("inf")
    x[1, v - 99:] = -float("inf")
    x[2] = -float("inf")
    x[2, 7] = 1.0
    x[3] += 1e4 if softcap is None and reduction != "none" else 0.0
    logits = leaf(x, dtype)
    target = torch.tensor([1, 5, 7, 4, 3], device=device)
    loss = tigon.cross_entropy(logits, target, reduction=reduction, label_smoothing=ls, softcap=softcap)
    rl = ref_of(logits)
    ref = ce_ref(rl, target, -100, reduction, ls, 0.0, softcap)
    if ls == 0.0:
        assert torch.isfinite(loss).all()
        assert rel(loss, ref) < max(TOL[dtype], 1e-5)
        check_grads([loss], [ref], [logits], [rl], dtype)
    else:  # smoothing averages over every logit: -inf ones make the loss inf, as in torch
        assert torch.equal(torch.isinf(loss), torch.isinf(ref))


@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_errors_and_in_place(device):
    logits = torch.randn(4, 50, device=device, requires_grad=True)
    bad = torch.tensor([1, 2, 50, 3], device=device)
    with torch.no_grad(), pytest.raises(ValueError, match="outside \\[0, 50\\)"):
        tigon.cross_entropy(logits, bad)  # no gradient: the forward checks
    loss = tigon.cross_entropy(logits, bad)  # the gradient fused: the backward checks
    assert torch.isnan(loss)
    with pytest.raises(ValueError, match="outside \\[0, 50\\)"):
        loss.backward()
    with pytest.raises(ValueError, match="reduction"):
        tigon.cross_entropy(logits, torch.tensor([1, 2, 3, 4], device=device), reduction="avg")
    # the gradient written over the logits: same loss, same gradient, logits overwritten
    x = torch.randn(4, 50, device=device)
    t = torch.tensor([1, 2, 3, 4], device=device)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    la, lb = tigon.cross_entropy(a, t), tigon.cross_entropy(b, t, grad_in_logits=True)
    la.backward()
    lb.backward()
    assert torch.allclose(la, lb) and torch.allclose(a.grad, b.grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("upstream", [1.0, 3.0, 0.25])
@pytest.mark.parametrize("ignore_index,in_logits", [(-100, False), (0, True)])
@pytest.mark.parametrize("ls,z,softcap", [(0.0, 0.0, None), (0.1, 1e-4, 30.0)])
def test_cross_entropy_upstream_gradient(device, reduction, upstream, ignore_index, in_logits, ls, z, softcap):
    """The loss comes reduced from the op (0-dim) and the gradient the forward computed is scaled
    in place by the upstream gradient in the backward (no pass when it is 1)."""
    torch.manual_seed(5)
    n, v = 9, 300
    x = torch.randn(n, v, device=device) * 3
    target = torch.randint(1, v, (n,), device=device)
    target[[2, 6]] = ignore_index  # with ignore_index 0, rows past the end must not count as ignored
    logits = x.clone().requires_grad_()
    loss = tigon.cross_entropy(logits, target, ignore_index=ignore_index, reduction=reduction, label_smoothing=ls,
                               lse_square_scale=z, softcap=softcap, grad_in_logits=in_logits)
    assert loss.shape == () and loss.dtype == torch.float32
    (loss * upstream).backward()
    rl = ref_of(x)
    ref = ce_ref(rl, target, ignore_index, reduction, ls, z, softcap)
    (ref * upstream).backward()
    assert rel(loss, ref) < 1e-5
    assert rel(logits.grad, rl.grad) < 1e-5
    assert torch.all(logits.grad[[2, 6]] == 0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_every_target_ignored(device, reduction):
    """As torch: "mean" over no row is NaN, "sum" is 0; the gradient is 0 either way."""
    x = torch.randn(5, 40, device=device)
    target = torch.full((5,), -100, device=device)
    logits, ref_logits = x.clone().requires_grad_(), x.clone().requires_grad_()
    loss = tigon.cross_entropy(logits, target, reduction=reduction)
    ref = F.cross_entropy(ref_logits, target, reduction=reduction)
    (loss * 2).backward()
    (ref * 2).backward()
    assert torch.equal(loss.isnan(), ref.isnan()) and (reduction == "mean") == bool(loss.isnan())
    assert reduction == "mean" or loss.item() == 0
    assert torch.equal(logits.grad, torch.zeros_like(x)) and torch.equal(ref_logits.grad, torch.zeros_like(x))


@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_loss_is_deterministic(device):
    x = torch.randn(300, 50, device=device)
    t = torch.randint(0, 50, (300,), device=device)
    for reduction in ("mean", "sum"):
        a = tigon.cross_entropy(x, t, reduction=reduction)
        assert torch.equal(a, tigon.cross_entropy(x, t, reduction=reduction))
        assert rel(a, F.cross_entropy(x.double(), t, reduction=reduction)) < 1e-6


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_bad_target_names_the_count(device, reduction):
    logits = torch.randn(5, 30, device=device, requires_grad=True)
    t = torch.tensor([1, 30, 2, -7, -100], device=device)
    message = "2 target\\(s\\) outside \\[0, 30\\) that are not ignore_index \\(-100\\)"
    with pytest.raises(ValueError, match=message):  # in the forward ("none") or the backward
        tigon.cross_entropy(logits, t, reduction=reduction).sum().backward()
    assert logits.grad is None
    with torch.no_grad(), pytest.raises(ValueError, match=message):
        tigon.cross_entropy(logits, t, reduction=reduction)


SECOND_BACKWARD = "second backward through the same loss \\(retain_graph=True\\)"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_second_backward_raises(device, reduction):
    """The gradient computed in the forward is handed out by the first backward: a second one
    through the same graph raises a clear error and leaves the first result alone."""
    logits = torch.randn(4, 20, device=device, requires_grad=True)
    t = torch.tensor([1, 2, 3, 4], device=device)
    loss = tigon.cross_entropy(logits, t, reduction=reduction)
    (g1,) = torch.autograd.grad(loss * 2, logits, retain_graph=True)
    first = g1.clone()
    with pytest.raises(RuntimeError, match=SECOND_BACKWARD) as e:
        torch.autograd.grad(loss * 3, logits)
    assert 'reduction="none"' in str(e.value)
    assert torch.equal(g1, first)
    ref = ref_of(logits)
    assert rel(g1, torch.autograd.grad(F.cross_entropy(ref, t, reduction=reduction) * 2, ref)[0]) < 1e-5
    # "none" recomputes the gradient in its backward: any number of backward passes
    loss = tigon.cross_entropy(logits, t, reduction="none").sum()
    loss.backward(retain_graph=True)
    g = logits.grad.clone()
    loss.backward()
    assert torch.allclose(logits.grad, 2 * g)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_bias,accum", [(False, None), (True, None), (True, torch.float32)])
def test_fused_linear_cross_entropy(device, dtype, reduction, with_bias, accum):
    torch.manual_seed(1)
    bt, h, v = 37, 16, 301
    x = leaf(torch.randn(bt, h, device=device), dtype)
    w = leaf(torch.randn(v, h, device=device) * 0.3, dtype)
    b = leaf(torch.randn(v, device=device) * 0.1, dtype) if with_bias else None
    target = torch.randint(0, v, (bt,), device=device)
    target[::5] = -100
    loss = tigon.fused_linear_cross_entropy(x, w, target, b, reduction=reduction, chunk_rows=8, accum_dtype=accum)
    rx, rw, rb = ref_of(x), ref_of(w), ref_of(b) if with_bias else None
    ref = F.cross_entropy(rx @ rw.T + (rb if with_bias else 0), target, reduction=reduction)
    assert rel(loss, ref) < TOL[dtype]
    check_grads([loss], [ref], [t for t in (x, w, b) if t is not None], [t for t in (rx, rw, rb) if t is not None],
                dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_fused_linear_cross_entropy_loss_only(device):
    x, w = torch.randn(10, 8, device=device), torch.randn(20, 8, device=device)
    t = torch.randint(0, 20, (10,), device=device)
    with torch.no_grad():
        loss = tigon.fused_linear_cross_entropy(x, w, t)
    assert rel(loss, F.cross_entropy(x.double() @ w.double().T, t)) < 1e-5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_fused_linear_cross_entropy_bad_target(device, reduction):
    """Bad targets are counted over every chunk and raise once, after the last."""
    x = torch.randn(6, 8, device=device, requires_grad=True)
    w = torch.randn(50, 8, device=device, requires_grad=True)
    t = torch.tensor([1, -5, 3, 4, 5, 50], device=device)  # in the first and the last chunk of 2 rows
    with pytest.raises(ValueError, match="2 target\\(s\\) outside \\[0, 50\\)"):  # forward or backward
        tigon.fused_linear_cross_entropy(x, w, t, reduction=reduction, chunk_rows=2).sum().backward()
    assert x.grad is None and w.grad is None
    with torch.no_grad(), pytest.raises(ValueError, match="2 target\\(s\\) outside \\[0, 50\\)"):
        tigon.fused_linear_cross_entropy(x, w, t, reduction=reduction, chunk_rows=2)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("upstream", [1.0, 3.0, 0.25])
@pytest.mark.parametrize("with_bias", [False, True])
def test_fused_linear_cross_entropy_upstream_gradient(device, reduction, upstream, with_bias):
    torch.manual_seed(3)
    bt, h, v = 21, 12, 70
    x = leaf(torch.randn(bt, h, device=device))
    w = leaf(torch.randn(v, h, device=device) * 0.3)
    b = leaf(torch.randn(v, device=device) * 0.1) if with_bias else None
    target = torch.randint(0, v, (bt,), device=device)
    target[::4] = -100
    loss = tigon.fused_linear_cross_entropy(x, w, target, b, reduction=reduction, chunk_rows=8, label_smoothing=0.1)
    assert loss.shape == ()
    (loss * upstream).backward()
    rx, rw, rb = ref_of(x), ref_of(w), ref_of(b) if with_bias else None
    ref = F.cross_entropy(rx @ rw.T + (rb if with_bias else 0), target, reduction=reduction, label_smoothing=0.1)
    (ref * upstream).backward()
    assert rel(loss, ref) < 1e-5
    for t, r in zip((x, w, b), (rx, rw, rb)):
        if t is not None:
            assert rel(t.grad, r.grad) < 1e-5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fused_linear_cross_entropy_every_target_ignored(device, reduction):
    x = leaf(torch.randn(6, 8, device=device))
    w = leaf(torch.randn(30, 8, device=device))
    target = torch.full((6,), -100, device=device)
    loss = tigon.fused_linear_cross_entropy(x, w, target, reduction=reduction, chunk_rows=4)
    loss.backward()
    ref = F.cross_entropy(x.detach() @ w.detach().T, target, reduction=reduction)
    assert torch.equal(loss.isnan(), ref.isnan()) and (reduction == "mean") == bool(loss.isnan())
    assert torch.equal(x.grad, torch.zeros_like(x)) and torch.equal(w.grad, torch.zeros_like(w))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fused_linear_cross_entropy_no_rows(device, reduction):
    """No rows, no chunk: dW and db (set by the first chunk, not zero-filled) must still be 0."""
    torch.empty(4096, device=device).fill_(7.0)  # leave garbage for the caching allocator to hand out
    x = leaf(torch.randn(0, 8, device=device))
    w, b = leaf(torch.randn(30, 8, device=device)), leaf(torch.randn(30, device=device))
    loss = tigon.fused_linear_cross_entropy(x, w, torch.zeros(0, dtype=torch.long, device=device), b, reduction=reduction)
    loss.backward()
    assert (reduction == "mean") == bool(loss.isnan()) and x.grad.shape == (0, 8)
    assert torch.equal(w.grad, torch.zeros_like(w)) and torch.equal(b.grad, torch.zeros_like(b))


@pytest.mark.parametrize("device", DEVICES)
def test_fused_linear_cross_entropy_second_backward_raises(device):
    x = leaf(torch.randn(6, 8, device=device))
    w = leaf(torch.randn(30, 8, device=device))
    target = torch.randint(0, 30, (6,), device=device)
    loss = tigon.fused_linear_cross_entropy(x, w, target)
    loss.backward(retain_graph=True)
    gx, gw = x.grad.clone(), w.grad.clone()
    with pytest.raises(RuntimeError, match=SECOND_BACKWARD):
        loss.backward()
    assert torch.equal(x.grad, gx) and torch.equal(w.grad, gw)


def test_torch_compile_fullgraph_every_op():
    """A small model that uses every op traces with no graph break (CPU, aot_eager)."""
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = tigon.nn.RMSNorm(16)
            self.ln = tigon.nn.LayerNorm(16)
            self.mlp = tigon.nn.SwiGLUMLP(hidden_size=16, intermediate_size=24)
            self.head = torch.nn.Linear(16, 40, bias=False)

        def forward(self, x, cos, sin, cos3, sin3, target):
            h = self.ln(self.norm(x))
            q = h.view(2, 3, 2, 8).transpose(1, 2)
            q, k = tigon.rope(q, q, cos, sin)
            q, k = tigon.mrope(q, k, cos3, sin3, [1, 1, 2])
            h = h + self.mlp(q.transpose(1, 2).reshape(6, 16))
            return (tigon.cross_entropy(self.head(h), target) +
                    tigon.fused_linear_cross_entropy(h, self.head.weight, target))

    torch.manual_seed(0)
    m = Tiny()
    args = (torch.randn(6, 16, requires_grad=True), torch.randn(1, 3, 8), torch.randn(1, 3, 8),
            torch.randn(3, 2, 3, 8), torch.randn(3, 2, 3, 8), torch.randint(0, 40, (6,)))
    eager = m(*args)
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")(*args)
    compiled.backward()
    assert torch.allclose(eager, compiled, rtol=1e-5, atol=1e-6)
    assert args[0].grad is not None and torch.isfinite(args[0].grad).all()


def test_torch_compile_losses_with_an_upstream_gradient():
    """Under torch.compile the backward scales the forward's gradients out of place (grad * g),
    and the traced loss is 0-dim: the same loss and gradients as eager, for g != 1."""
    def f(logits, x, w, t):
        return (tigon.cross_entropy(logits, t, reduction="sum") * 0.5 +
                tigon.fused_linear_cross_entropy(x, w, t, label_smoothing=0.1) * 3.0)

    torch.manual_seed(4)
    base = (torch.randn(6, 40), torch.randn(6, 16), torch.randn(40, 16) * 0.3)
    t = torch.randint(0, 40, (6,))
    t[1] = -100
    eager = [a.clone().requires_grad_() for a in base]
    compiled = [a.clone().requires_grad_() for a in base]
    le = f(*eager, t)
    lc = torch.compile(f, fullgraph=True, backend="aot_eager")(*compiled, t)
    assert lc.shape == () and torch.allclose(le, lc, rtol=1e-5, atol=1e-6)
    le.backward()
    lc.backward()
    for a, b in zip(eager, compiled):
        assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-6)
