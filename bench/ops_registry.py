"""The ops the benchmark runs: for each, its shapes, the fewest bytes it must move, and its
implementations (tigon and the peers), all called the same way."""
import itertools
import math

import torch
import torch.nn.functional as F

import tigon

L2_BYTES = 60 << 20


class Op:
    """Inputs are made in several copies when one set would fit in the L2 cache, and each timed
    call takes the next, so small shapes are measured from memory, not from the cache."""
    name = ""
    dtypes = (torch.bfloat16,)
    modes = ("fwd", "fwd+bwd")
    shapes = ()

    def make_one(self, shape, dtype):
        raise NotImplementedError

    def make(self, shape, dtype):
        first = self.make_one(shape, dtype)
        size = sum(t.numel() * t.element_size() for t in first.values() if isinstance(t, torch.Tensor))
        sets = [first] + [self.make_one(shape, dtype) for _ in range(min(15, math.ceil(4 * L2_BYTES / size) - 1))]
        return dict(shape=shape, dtype=dtype, sets=sets)

    def runner(self, fn, case, mode):
        sets = itertools.cycle(case["sets"])
        if mode == "fwd":
            def run():
                with torch.no_grad():
                    return self.forward(fn, next(sets))
        else:
            def run():
                s = next(sets)
                y = self.forward(fn, s)
                inputs = [t for t in self.grad_inputs(s)]
                return y, torch.autograd.grad(y, inputs, s["dy"])
        return run

    def impls(self, have_liger):
        """The implementations, made once (torch.compile caches its graphs on the function)."""
        if not hasattr(self, "_impls"):
            self._impls = self.make_impls(have_liger)
        return self._impls

    def agrees(self, out, ref, dtype):
        tol = 2e-2 if dtype in (torch.bfloat16, torch.float16) else 1e-4
        outs = out if isinstance(out, tuple) else (out,)
        refs = ref if isinstance(ref, tuple) else (ref,)
        flat = lambda xs: [t for x in xs for t in (x if isinstance(x, (tuple, list)) else (x,))]
        for o, r in zip(flat(outs), flat(refs)):
            o, r = o.double(), r.double()
            if ((o - r).norm() / r.norm().clamp_min(1e-30)).item() > tol:
                return False
        return True


class RMSNorm(Op):
    name = "rms_norm"
    dtypes = (torch.bfloat16, torch.float32)
    shapes = tuple((16384, n) for n in (128, 1024, 2048, 4096, 8192, 16384))
    eps = 1e-6

    def label(self, shape):
        return f"{shape[0]}x{shape[1]}"

    def make_one(self, shape, dtype):
        m, n = shape
        return dict(x=torch.randn(m, n, device="cuda", dtype=dtype, requires_grad=True),
                    w=(1 + 0.1 * torch.randn(n, device="cuda")).to(dtype).requires_grad_(),
                    dy=torch.randn(m, n, device="cuda", dtype=dtype))

    def bytes(self, case, mode):
        (m, n), es = case["shape"], case["dtype"].itemsize
        fwd = 2 * m * n * es + n * es                 # read x and w, write y
        bwd = 3 * m * n * es + 2 * n * es             # read dy, x, w; write dx, dw
        return fwd if mode == "fwd" else fwd + bwd

    def forward(self, fn, s):
        return fn(s["x"], s["w"])

    def grad_inputs(self, s):
        return s["x"], s["w"]

    def make_impls(self, have_liger):
        eps = self.eps

        def hf(x, w):  # transformers' LlamaRMSNorm.forward
            h = x.to(torch.float32)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
            return w * h.to(x.dtype)

        impls = {"tigon": lambda x, w: tigon.rms_norm(x, w, eps),
                 "torch": hf,
                 "torch.compile": torch.compile(hf),
                 "F.rms_norm": lambda x, w: F.rms_norm(x, (x.shape[-1],), w, eps)}
        if have_liger:
            from liger_kernel.ops.rms_norm import LigerRMSNormFunction
            impls["liger"] = lambda x, w: LigerRMSNormFunction.apply(x, w, eps)
        return impls


OPS = {op.name: op for op in (RMSNorm(),)}
