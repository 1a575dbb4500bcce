"""torch.autograd.gradcheck of every op on tiny shapes. tigon's kernels compute in float32
(there is no float64 dtype in the language), so the check runs in float32 with finite-
difference tolerances to match; the float64 comparisons are in test_ops.py."""
import torch

import tigon

OPTS = dict(eps=1e-2, atol=2e-3, rtol=2e-2)


def inputs(*shapes):
    torch.manual_seed(0)
    return [torch.randn(s, dtype=torch.float32, requires_grad=True) for s in shapes]


def test_gradcheck_norms():
    x, w, b = inputs((3, 8), (8,), (8,))
    assert torch.autograd.gradcheck(lambda x, w: tigon.rms_norm(x, w), (x, w), **OPTS)
    assert torch.autograd.gradcheck(lambda x, w, b: tigon.layer_norm(x, w, b), (x, w, b), **OPTS)


def test_gradcheck_rope_and_swiglu():
    q, k = inputs((1, 2, 3, 8), (1, 1, 3, 8))
    cos, sin = torch.randn(1, 3, 8), torch.randn(1, 3, 8)
    assert torch.autograd.gradcheck(lambda q, k: tigon.rope(q, k, cos, sin), (q, k), **OPTS)
    cos3, sin3 = torch.randn(3, 1, 3, 8), torch.randn(3, 1, 3, 8)
    assert torch.autograd.gradcheck(lambda q, k: tigon.mrope(q, k, cos3, sin3, [1, 1, 2]), (q, k), **OPTS)
    a, b = inputs((2, 6), (2, 6))
    assert torch.autograd.gradcheck(tigon.swiglu, (a, b), **OPTS)


def test_gradgradcheck_rope():
    """RoPE's backward is the op itself (the other rotation), so it is differentiable again:
    the second derivative through either embedding matches finite differences."""
    q, k = inputs((1, 2, 3, 8), (1, 1, 3, 8))
    cos, sin = torch.randn(1, 3, 8), torch.randn(1, 3, 8)
    assert torch.autograd.gradgradcheck(lambda q, k: tigon.rope(q, k, cos, sin), (q, k), **OPTS)
    cos3, sin3 = torch.randn(3, 1, 3, 8), torch.randn(3, 1, 3, 8)
    assert torch.autograd.gradgradcheck(lambda q, k: tigon.mrope(q, k, cos3, sin3, [1, 1, 2]), (q, k), **OPTS)


def numerical_grads(f, inputs, eps=OPTS["eps"]):
    """Central differences of the scalar f(*inputs), one input element at a time."""
    grads = []
    with torch.no_grad():
        for x in inputs:
            g, flat = torch.zeros_like(x), x.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + eps
                hi = f(*inputs).item()
                flat[i] = old - eps
                lo = f(*inputs).item()
                flat[i] = old
                g.view(-1)[i] = (hi - lo) / (2 * eps)
            grads.append(g)
    return grads


def check_fused_loss(f, inputs, upstream=0.5):
    """For "mean" and "sum" the forward computes the gradient, which serves one backward only;
    gradcheck runs two through one graph (a second raises RuntimeError by design), so these are
    checked with one backward against central differences, with gradcheck's tolerances."""
    grads = torch.autograd.grad(f(*inputs) * upstream, inputs)
    for g, n in zip(grads, numerical_grads(f, inputs)):
        assert torch.allclose(g, n * upstream, atol=OPTS["atol"], rtol=OPTS["rtol"]), (g, n * upstream)


def test_gradcheck_losses():
    logits, = inputs((4, 10))
    target = torch.tensor([1, -100, 3, 9])
    for reduction in ("mean", "sum", "none"):
        def f(z):
            return tigon.cross_entropy(z, target, reduction=reduction, label_smoothing=0.1)
        if reduction == "none":
            assert torch.autograd.gradcheck(f, (logits,), **OPTS)
        else:
            check_fused_loss(f, [logits])
    x, w, b = inputs((4, 6), (10, 6), (10,))
    for reduction in ("mean", "none"):
        def f(x, w, b):
            return tigon.fused_linear_cross_entropy(x, w, target, b, reduction=reduction)
        if reduction == "none":
            assert torch.autograd.gradcheck(f, (x, w, b), **OPTS)
        else:
            check_fused_loss(f, [x, w, b])
