"""The functional ops: torch.ops.tigon.* with autograd and fake (meta) implementations, so
they train and trace under torch.compile(fullgraph=True) without graph breaks."""
import torch

try:
    from torch.distributed.tensor import DTensor as _DTensor
except ImportError:  # torch built without distributed
    _DTensor = ()

_CASTING_MODES = ("llama", "gemma", "none")


# ---- RMSNorm ------------------------------------------------------------------------------

@torch.library.register_fake("tigon::rms_norm_fwd")
def _rms_norm_fwd_fake(x, weight, eps, offset, casting_mode):
    return x.new_empty(x.shape), x.new_empty(x.shape[:-1], dtype=torch.float32)


@torch.library.register_fake("tigon::rms_norm_bwd")
def _rms_norm_bwd_fake(dy, x, weight, rstd, offset, dx_in_dy):
    dw = weight.new_empty(weight.shape) if weight is not None else x.new_empty(0)
    return x.new_empty(x.shape), dw


def _local_only(op: str, **tensors):
    """tigon's kernels take local tensors: a DTensor (tensor parallelism) is refused here, before
    torch's DTensor dispatch fails deep inside with no hint (docs/distributed.md)."""
    for name, t in tensors.items():
        if isinstance(t, _DTensor):
            raise TypeError(f"{op}: {name} is a DTensor (placements {tuple(t.placements)}); tigon's kernels take "
                            "local tensors. Call the op on .to_local() shards that hold whole rows (for norms, "
                            "Shard(d) with d before the last dimension), or leave this module unpatched: "
                            "see docs/distributed.md")


# autograd of rms_norm_fwd and layer_norm_fwd: in C++ (ops/autograd.cpp), for host time


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
    _local_only("rms_norm", x=x, weight=weight)
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


def layer_norm(x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
               eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over the last dimension, as ``torch.nn.functional.layer_norm(x, (N,), weight,
    bias, eps)``; weight and bias are optional."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"layer_norm: x must be a tensor, got {type(x).__name__}")
    _local_only("layer_norm", x=x, weight=weight, bias=bias)
    return torch.ops.tigon.layer_norm_fwd(x, weight, bias, float(eps))[0]


@torch.library.register_fake("tigon::scale_unless_one_")
def _scale_unless_one_fake(tensors, g):
    return None


# ---- RoPE and M-RoPE ----------------------------------------------------------------------
# autograd of rope and mrope: in C++ (ops/autograd.cpp), as the norms'

@torch.library.register_fake("tigon::rope")
def _rope_fake(q, k, cos, sin, backward):
    return q.new_empty(q.shape), k.new_empty(k.shape)


@torch.library.register_fake("tigon::mrope")
def _mrope_fake(q, k, cos, sin, section, backward):
    return q.new_empty(q.shape), k.new_empty(k.shape)


def rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Rotary embedding, HF rotate-half (``apply_rotary_pos_emb`` with unsqueeze_dim=1):
    q (B, Hq, S, D) and k (B, Hk, S, D) (any strides but the last), cos/sin (B or 1, S, R); the
    first R <= D channels rotate. For vision towers: q/k (S, H, D) with cos/sin (S, R).
    q and k share batch, positions, head dim and dtype (one kernel launch rotates both).
    Returns (q_embed, k_embed), each with its input's strides (HF's transposed q gives a
    transposed q_embed, as torch's arithmetic would)."""
    _local_only("rope", q=q, k=k, cos=cos, sin=sin)
    return torch.ops.tigon.rope(q, k, cos, sin, False)


def mrope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mrope_section):
    """Qwen2-VL multimodal rotary embedding (``apply_multimodal_rotary_pos_emb``): q/k
    (B, H, S, D), cos/sin (3, B or 1, S, D), mrope_section [t, h, w] summing to D/2. q and k
    share batch, positions, head dim and dtype. Returns (q_embed, k_embed), each with its
    input's strides."""
    _local_only("mrope", q=q, k=k, cos=cos, sin=sin)
    section = [int(s) for s in mrope_section]
    if len(section) != 3 or sum(section) * 2 != q.shape[-1]:
        raise ValueError(f"mrope: mrope_section must be 3 sizes summing to D/2 = {q.shape[-1] // 2}, got {list(mrope_section)}")
    return torch.ops.tigon.mrope(q, k, cos, sin, section, False)


# ---- SwiGLU -------------------------------------------------------------------------------

# autograd of swiglu_fwd: in C++ (ops/autograd.cpp), as the norms'
@torch.library.register_fake("tigon::swiglu_fwd")
def _swiglu_fwd_fake(a, b):
    return a.new_empty(a.shape)


@torch.library.register_fake("tigon::swiglu_bwd")
def _swiglu_bwd_fake(dc, a, b):
    return a.new_empty(a.shape), a.new_empty(a.shape)


def swiglu(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``silu(a) * b`` in float32 with one rounding (the gated MLP of Llama, Mistral, Qwen)."""
    _local_only("swiglu", a=a, b=b)
    return torch.ops.tigon.swiglu_fwd(a, b)


# ---- cross-entropy ------------------------------------------------------------------------

_REDUCTIONS = ("mean", "sum", "none")


def _loss_shape(n, reduction):
    """The loss the ops return: one value per row for "none", a 0-dim tensor for "mean" and "sum"."""
    return (n,) if reduction == "none" else ()


# autograd of cross_entropy_fwd and fused_linear_cross_entropy_fwd: in C++ (ops/autograd.cpp),
# as the norms'; its backward scales the gradients the forward computed, in place

@torch.library.register_fake("tigon::cross_entropy_fwd")
def _ce_fwd_fake(logits, target, ignore_index, label_smoothing, lse_square_scale, softcap, with_grad, grad_in_logits,
                 reduction, check_targets):
    n = logits.shape[0]
    grad = logits.new_empty(logits.shape if with_grad else (0,))
    loss = logits.new_empty(_loss_shape(n, reduction), dtype=torch.float32)
    return loss, logits.new_empty(n, dtype=torch.float32), grad, _error_fake(target)


def _error_fake(target):
    return target.new_empty(1, dtype=torch.int32)


@torch.library.register_fake("tigon::raise_on_bad_target")
def _raise_on_bad_target_fake(error, num_classes, ignore_index):
    return None


def _defer_target_check(with_grad):
    """Whether a loss forward leaves its bad-target check to the backward: with a fused
    gradient, in eager mode. The check reads a counter back from the GPU; in the backward it
    comes after the backward's kernels are launched, so a training step's forward never waits
    for the GPU. Without gradients (or traced), the forward checks."""
    return with_grad and not torch.compiler.is_compiling()


@torch.library.register_fake("tigon::cross_entropy_bwd")
def _ce_bwd_fake(logits, target, lse, grad_rows, ignore_index, label_smoothing, lse_square_scale, softcap,
                 grad_in_logits):
    return logits.new_empty(logits.shape)


def _loss_options(ignore_index, reduction, label_smoothing, lse_square_scale, softcap, op):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if softcap is not None and softcap <= 0:
        raise ValueError(f"{op}: softcap must be positive (or None), got {softcap}")
    return int(ignore_index), float(label_smoothing), float(lse_square_scale), float(softcap or 0.0)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0, lse_square_scale: float = 0.0, softcap: float | None = None,
                  grad_in_logits: bool = False) -> torch.Tensor:
    """``torch.nn.functional.cross_entropy`` over logits (N, V) and targets (N,), plus z-loss
    (``lse_square_scale * lse^2``) and Gemma-2 logit softcapping. The gradient is computed in
    the same pass as the loss for "mean" and "sum" (so these support one backward per call:
    a second through the same graph, with retain_graph=True, raises RuntimeError);
    ``grad_in_logits=True`` writes it over the logits (saves memory; the logits are lost). A
    target outside [0, V) that is not ignore_index raises ValueError: in the forward, or, when
    the forward computes the gradient ("mean"/"sum" with grad, eager), in the backward, so the
    forward never waits for the GPU (its loss is NaN then, and a forward whose backward never
    runs reports nothing else)."""
    _local_only("cross_entropy", logits=logits, target=target)
    opts = _loss_options(ignore_index, reduction, label_smoothing, lse_square_scale, softcap, "cross_entropy")
    with_grad = reduction != "none" and torch.is_grad_enabled() and logits.requires_grad
    loss, _lse, _grad, _error = torch.ops.tigon.cross_entropy_fwd(logits, target, *opts, with_grad,
                                                                  grad_in_logits and with_grad, reduction,
                                                                  not _defer_target_check(with_grad))
    return loss


# ---- fused linear cross-entropy -----------------------------------------------------------

@torch.library.register_fake("tigon::fused_linear_cross_entropy_fwd")
def _flce_fwd_fake(x, weight, target, bias, ignore_index, ls, z, softcap, with_grad, reduction, accum_f32, chunk_rows,
                   check_targets):
    n = x.shape[0]
    none = x.new_empty(0)
    return [x.new_empty(_loss_shape(n, reduction), dtype=torch.float32), x.new_empty(n, dtype=torch.float32),
            x.new_empty(x.shape) if with_grad else none, weight.new_empty(weight.shape) if with_grad else none,
            bias.new_empty(bias.shape) if with_grad and bias is not None else none, _error_fake(target)]


@torch.library.register_fake("tigon::fused_linear_cross_entropy_bwd")
def _flce_bwd_fake(x, weight, target, bias, lse, grad_rows, ignore_index, ls, z, softcap, accum_f32, chunk_rows):
    return [x.new_empty(x.shape), weight.new_empty(weight.shape),
            bias.new_empty(bias.shape) if bias is not None else x.new_empty(0)]


def fused_linear_cross_entropy(x: torch.Tensor, weight: torch.Tensor, target: torch.Tensor,
                               bias: torch.Tensor | None = None, ignore_index: int = -100, reduction: str = "mean",
                               label_smoothing: float = 0.0, lse_square_scale: float = 0.0,
                               softcap: float | None = None, accum_dtype: torch.dtype | None = None,
                               chunk_rows: int = 0) -> torch.Tensor:
    """``cross_entropy(x @ weight.T + bias, target)`` without ever holding the (N, V) logits:
    rows go through in chunks (``chunk_rows``, 0: about 256 MiB of logits at a time). x is
    (N, H) or (..., H) with target of the matching leading shape. ``accum_dtype=torch.float32``
    accumulates dW in float32. For "mean" and "sum" the gradients are computed with the loss
    (one backward per call: a second through the same graph raises RuntimeError). Bad targets
    raise ValueError as in ``cross_entropy``."""
    _local_only("fused_linear_cross_entropy", x=x, weight=weight, target=target, bias=bias)
    opts = _loss_options(ignore_index, reduction, label_smoothing, lse_square_scale, softcap,
                         "fused_linear_cross_entropy")
    x2, t2 = x.reshape(-1, x.shape[-1]), target.reshape(-1)
    needs = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or
                                         (bias is not None and bias.requires_grad))
    with_grad = reduction != "none" and needs
    loss, _lse, _dx, _dw, _db, _error = torch.ops.tigon.fused_linear_cross_entropy_fwd(
        x2, weight, t2, bias, *opts, with_grad, reduction, accum_dtype == torch.float32, int(chunk_rows),
        not _defer_target_check(with_grad))
    return loss.view(target.shape) if reduction == "none" else loss
