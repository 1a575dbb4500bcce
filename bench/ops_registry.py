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
    graphed = True  # timed from CUDA-graph replays (not where an op syncs with the host)

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
                grads = torch.autograd.grad(y, inputs, s["dy"])
                return y.detach(), grads  # a live autograd graph would break the next capture
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


class LayerNorm(RMSNorm):
    name = "layer_norm"
    eps = 1e-5

    def make_one(self, shape, dtype):
        case = super().make_one(shape, dtype)
        case["b"] = (0.1 * torch.randn(shape[1], device="cuda")).to(dtype).requires_grad_()
        return case

    def bytes(self, case, mode):
        (m, n), es = case["shape"], case["dtype"].itemsize
        fwd = 2 * m * n * es + 2 * n * es             # read x, w, b; write y
        bwd = 3 * m * n * es + 3 * n * es             # read dy, x, w; write dx, dw, db
        return fwd if mode == "fwd" else fwd + bwd

    def forward(self, fn, s):
        return fn(s["x"], s["w"], s["b"])

    def grad_inputs(self, s):
        return s["x"], s["w"], s["b"]

    def make_impls(self, have_liger):
        eps = self.eps

        def eager(x, w, b):  # nn.LayerNorm, as HF ViT calls it
            return F.layer_norm(x, (x.shape[-1],), w, b, eps)

        impls = {"tigon": lambda x, w, b: tigon.layer_norm(x, w, b, eps), "torch": eager,
                 "torch.compile": torch.compile(eager)}
        if have_liger:
            from liger_kernel.ops.layer_norm import LigerLayerNormFunction
            impls["liger"] = lambda x, w, b: LigerLayerNormFunction.apply(x, w, b, eps)
        return impls


def _rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class RoPE(Op):
    name = "rope"
    shapes = ((4, 32, 8, 4096, 128),)   # batch, q heads, kv heads, tokens, head dim

    def label(self, shape):
        b, hq, hk, t, d = shape
        return f"B{b} Hq{hq} Hk{hk} T{t} D{d}"

    def tables(self, b, t, d):
        ang = torch.randn(b, t, d // 2, device="cuda")
        return torch.cat((ang.cos(), ang.cos()), -1), torch.cat((ang.sin(), ang.sin()), -1)

    def make_one(self, shape, dtype):
        b, hq, hk, t, d = shape
        cos, sin = self.tables(1, t, d)
        # HF layout: projections viewed (B, T, H, D) and transposed
        q = torch.randn(b, t, hq, d, device="cuda", dtype=dtype).transpose(1, 2).requires_grad_()
        k = torch.randn(b, t, hk, d, device="cuda", dtype=dtype).transpose(1, 2).requires_grad_()
        return dict(q=q, k=k, cos=cos.to(dtype), sin=sin.to(dtype), dy=(torch.randn_like(q), torch.randn_like(k)))

    def bytes(self, case, mode):
        b, hq, hk, t, d = case["shape"]
        es = case["dtype"].itemsize
        once = 2 * b * (hq + hk) * t * d * es + 2 * t * d * es   # q, k in and out; cos, sin
        return once if mode == "fwd" else 2 * once

    def forward(self, fn, s):
        return fn(s["q"], s["k"], s["cos"], s["sin"])

    def runner(self, fn, case, mode):
        sets = itertools.cycle(case["sets"])
        if mode == "fwd":
            def run():
                with torch.no_grad():
                    s = next(sets)
                    return self.forward(fn, s)
        else:
            def run():
                s = next(sets)
                qe, ke = self.forward(fn, s)
                grads = torch.autograd.grad((qe, ke), (s["q"], s["k"]), s["dy"])
                return (qe.detach(), ke.detach()), grads
        return run

    def make_impls(self, have_liger):
        def hf(q, k, cos, sin):  # transformers' apply_rotary_pos_emb, unsqueeze_dim=1
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
            return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin

        impls = {"tigon": tigon.rope, "torch": hf, "torch.compile": torch.compile(hf)}
        if have_liger:
            from liger_kernel.ops.rope import LigerRopeFunction
            impls["liger"] = lambda q, k, cos, sin: LigerRopeFunction.apply(q, k, cos, sin)
        return impls


class MRoPE(RoPE):
    name = "mrope"
    shapes = ((4, 28, 4, 4096, 128),)   # Qwen2-VL-7B text: 28 q heads, 4 kv heads, head dim 128
    section = [16, 24, 24]

    def make_one(self, shape, dtype):
        case = super().make_one(shape, dtype)
        b, hq, hk, t, d = shape
        ang = torch.randn(3, b, t, d // 2, device="cuda")  # per-sample tables, as Qwen2-VL makes them
        case["cos"] = torch.cat((ang.cos(), ang.cos()), -1).to(dtype)
        case["sin"] = torch.cat((ang.sin(), ang.sin()), -1).to(dtype)
        return case

    def bytes(self, case, mode):
        b, hq, hk, t, d = case["shape"]
        es = case["dtype"].itemsize
        once = 2 * b * (hq + hk) * t * d * es + 2 * 3 * b * t * d * es   # q, k in and out; per-sample cos, sin
        return once if mode == "fwd" else 2 * once

    def make_impls(self, have_liger):
        section = self.section

        def hf(q, k, cos, sin):  # transformers' apply_multimodal_rotary_pos_emb
            sec = section * 2
            cos = torch.cat([m[i % 3] for i, m in enumerate(cos.split(sec, dim=-1))], dim=-1).unsqueeze(1)
            sin = torch.cat([m[i % 3] for i, m in enumerate(sin.split(sec, dim=-1))], dim=-1).unsqueeze(1)
            return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin

        impls = {"tigon": lambda q, k, cos, sin: tigon.mrope(q, k, cos, sin, section), "torch": hf,
                 "torch.compile": torch.compile(hf)}
        if have_liger:
            from liger_kernel.ops.qwen2vl_mrope import LigerQwen2VLMRopeFunction
            impls["liger"] = lambda q, k, cos, sin: LigerQwen2VLMRopeFunction.apply(q, k, cos, sin, section)
        return impls


class SwiGLU(Op):
    name = "swiglu"
    shapes = ((8192, 14336),)

    def label(self, shape):
        return f"{shape[0]}x{shape[1]}"

    def make_one(self, shape, dtype):
        return dict(a=torch.randn(shape, device="cuda", dtype=dtype, requires_grad=True),
                    b=torch.randn(shape, device="cuda", dtype=dtype, requires_grad=True),
                    dy=torch.randn(shape, device="cuda", dtype=dtype))

    def bytes(self, case, mode):
        m, n = case["shape"]
        es = case["dtype"].itemsize
        return 3 * m * n * es if mode == "fwd" else 3 * m * n * es + 5 * m * n * es  # bwd: dc, a, b in; da, db out

    def forward(self, fn, s):
        return fn(s["a"], s["b"])

    def grad_inputs(self, s):
        return s["a"], s["b"]

    def make_impls(self, have_liger):
        def hf(a, b):  # LlamaMLP: act_fn(gate_proj(x)) * up_proj(x)
            return F.silu(a) * b

        impls = {"tigon": tigon.swiglu, "torch": hf, "torch.compile": torch.compile(hf)}
        if have_liger:
            from liger_kernel.ops.swiglu import LigerSiLUMulFunction
            impls["liger"] = lambda a, b: LigerSiLUMulFunction.apply(a, b)
        return impls


class CrossEntropy(Op):
    name = "cross_entropy"
    graphed = False  # tigon and Liger read a count back (target check, mean scale): no capture
    shapes = tuple((8192, v) for v in (32000, 128256, 262144))

    def label(self, shape):
        return f"BT{shape[0]} V{shape[1]}"

    def make(self, shape, dtype):
        return dict(shape=shape, dtype=dtype, sets=[self.make_one(shape, dtype)])  # far larger than the L2

    def make_one(self, shape, dtype):
        bt, v = shape
        return dict(x=torch.randn(bt, v, device="cuda", dtype=dtype, requires_grad=True),
                    t=torch.randint(0, v, (bt,), device="cuda"))

    def bytes(self, case, mode):
        bt, v = case["shape"]
        es = case["dtype"].itemsize
        return bt * v * es if mode == "fwd" else 2 * bt * v * es  # read the logits (and write their gradient)

    def runner(self, fn, case, mode):
        s = case["sets"][0]
        if mode == "fwd":
            def run():
                with torch.no_grad():
                    return fn(s["x"], s["t"])
        else:
            def run():
                loss = fn(s["x"], s["t"])
                return loss, torch.autograd.grad(loss, s["x"])
        return run

    def make_impls(self, have_liger):
        impls = {"tigon": tigon.cross_entropy, "torch": F.cross_entropy, "torch.compile": torch.compile(F.cross_entropy)}
        if have_liger:
            from liger_kernel.ops.cross_entropy import LigerCrossEntropyFunction
            impls["liger"] = lambda x, t: LigerCrossEntropyFunction.apply(x, t, None)[0]
        return impls


class FusedLinearCrossEntropy(Op):
    """Matrix-bound: reported as time and peak extra memory, not bandwidth."""
    name = "fused_linear_cross_entropy"
    graphed = False
    shapes = ((8192, 4096, 128256), (16384, 3584, 152064))
    modes = ("fwd+bwd",)

    def label(self, shape):
        return f"BT{shape[0]} H{shape[1]} V{shape[2]}"

    def make(self, shape, dtype):
        return dict(shape=shape, dtype=dtype, sets=[self.make_one(shape, dtype)])

    def make_one(self, shape, dtype):
        bt, h, v = shape
        return dict(x=(torch.randn(bt, h, device="cuda", dtype=dtype) * 0.5).requires_grad_(),
                    w=(torch.randn(v, h, device="cuda", dtype=dtype) * 0.02).requires_grad_(),
                    t=torch.randint(0, v, (bt,), device="cuda"))

    def bytes(self, case, mode):
        return 0

    def runner(self, fn, case, mode):
        s = case["sets"][0]

        def run():
            loss = fn(s["x"], s["w"], s["t"])
            return loss, torch.autograd.grad(loss, (s["x"], s["w"]))
        return run

    def make_impls(self, have_liger):
        def unfused(x, w, t):
            return F.cross_entropy((x @ w.T).float(), t)

        impls = {"tigon": tigon.fused_linear_cross_entropy, "torch": unfused, "torch.compile": torch.compile(unfused)}
        if have_liger:
            from liger_kernel.ops.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyFunction
            impls["liger"] = lambda x, w, t: LigerFusedLinearCrossEntropyFunction.apply(x, w, t)[0]
        return impls


OPS = {op.name: op for op in (RMSNorm(), LayerNorm(), RoPE(), MRoPE(), SwiGLU(), CrossEntropy(),
                              FusedLinearCrossEntropy())}
