"""The functional ops: torch.ops.tigon.* with autograd and fake (meta) implementations, so
they train and trace under torch.compile(fullgraph=True) without graph breaks."""
import torch

_CASTING_MODES = ("llama", "gemma", "none")


# ---- RMSNorm ------------------------------------------------------------------------------

@torch.library.register_fake("tigon::rms_norm_fwd")
def _rms_norm_fwd_fake(x, weight, eps, offset, casting_mode):
    return x.new_empty(x.shape), x.new_empty(x.shape[:-1], dtype=torch.float32)


@torch.library.register_fake("tigon::rms_norm_bwd")
def _rms_norm_bwd_fake(dy, x, weight, rstd, offset, dx_in_dy):
    dw = weight.new_empty(weight.shape) if weight is not None else x.new_empty(0)
    return x.new_empty(x.shape), dw


def _rms_norm_setup(ctx, inputs, output):
    x, weight, _eps, offset, _mode = inputs
    ctx.save_for_backward(x, weight, output[1])
    ctx.offset = offset


def _rms_norm_backward(ctx, dy, _drstd):
    x, weight, rstd = ctx.saved_tensors
    dx, dw = torch.ops.tigon.rms_norm_bwd(dy.contiguous(), x, weight, rstd, ctx.offset, False)
    return dx, (dw if weight is not None else None), None, None, None


torch.library.register_autograd("tigon::rms_norm_fwd", _rms_norm_backward, setup_context=_rms_norm_setup)


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6, offset: float = 0.0,
             casting_mode: str = "llama") -> torch.Tensor:
    """RMSNorm over the last dimension: ``x * rsqrt(mean(x^2) + eps) * (offset + weight)``.

    casting_mode: ``"llama"`` (x * rstd rounded to x's dtype before the weight, as HF Llama),
    ``"gemma"`` (everything in float32, as HF Gemma, usually with offset=1.0) or ``"none"``
    (float32 throughout, like gemma). weight=None means no weight (all ones)."""
    if casting_mode not in _CASTING_MODES:
        raise ValueError(f"rms_norm: casting_mode must be one of {_CASTING_MODES}, got {casting_mode!r}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"rms_norm: x must be a tensor, got {type(x).__name__}")
    return torch.ops.tigon.rms_norm_fwd(x, weight, float(eps), float(offset), casting_mode)[0]


# ---- LayerNorm ----------------------------------------------------------------------------

@torch.library.register_fake("tigon::layer_norm_fwd")
def _layer_norm_fwd_fake(x, weight, bias, eps):
    stats = x.shape[:-1]
    return x.new_empty(x.shape), x.new_empty(stats, dtype=torch.float32), x.new_empty(stats, dtype=torch.float32)


@torch.library.register_fake("tigon::layer_norm_bwd")
def _layer_norm_bwd_fake(dy, x, weight, has_bias, mean, rstd):
    n = x.shape[-1]
    dw = weight.new_empty(weight.shape) if weight is not None else x.new_empty(0)
    db = (weight if weight is not None else x).new_empty(n if has_bias else 0)
    return x.new_empty(x.shape), dw, db


def _layer_norm_setup(ctx, inputs, output):
    x, weight, bias, _eps = inputs
    ctx.save_for_backward(x, weight, output[1], output[2])
    ctx.has_bias = bias is not None
    ctx.bias_dtype = bias.dtype if bias is not None else None


def _layer_norm_backward(ctx, dy, _dmean, _drstd):
    x, weight, mean, rstd = ctx.saved_tensors
    dx, dw, db = torch.ops.tigon.layer_norm_bwd(dy.contiguous(), x, weight, ctx.has_bias, mean, rstd)
    return (dx, dw if weight is not None else None,
            db.to(ctx.bias_dtype) if ctx.has_bias else None, None)


torch.library.register_autograd("tigon::layer_norm_fwd", _layer_norm_backward, setup_context=_layer_norm_setup)


def layer_norm(x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
               eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over the last dimension, as ``torch.nn.functional.layer_norm(x, (N,), weight,
    bias, eps)``; weight and bias are optional."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"layer_norm: x must be a tensor, got {type(x).__name__}")
    return torch.ops.tigon.layer_norm_fwd(x, weight, bias, float(eps))[0]
