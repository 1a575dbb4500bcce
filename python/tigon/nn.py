"""Modules that replace their PyTorch / Hugging Face counterparts, with the same constructor
arguments, attributes and state_dict keys, so checkpoints load unchanged."""
import torch
from torch import nn

from . import _ops


class RMSNorm(nn.Module):
    """RMSNorm with HF Llama's interface: ``weight`` and ``variance_epsilon``.

    offset=1.0 with casting_mode="gemma" reproduces Gemma's RMSNorm (whose weight is stored
    as ``w`` with ``1 + w`` applied)."""

    def __init__(self, hidden_size: int, eps: float = 1e-6, offset: float = 0.0, casting_mode: str = "llama",
                 device=None, dtype=None, elementwise_affine: bool = True):
        super().__init__()
        self.hidden_size = hidden_size
        self.variance_epsilon = eps
        self.offset = offset
        self.casting_mode = casting_mode
        init = torch.zeros if offset else torch.ones
        if elementwise_affine:
            self.weight = nn.Parameter(init(hidden_size, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return _ops.rms_norm(hidden_states, self.weight, self.variance_epsilon, self.offset, self.casting_mode)

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, eps={self.variance_epsilon}, offset={self.offset}, casting_mode={self.casting_mode}"


class LayerNorm(nn.LayerNorm):
    """torch.nn.LayerNorm (a subclass, so code that checks for it, such as weight-decay
    exemptions, still finds it) over the last dimension, with tigon's kernels."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None):
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if len(shape) != 1:
            raise ValueError(f"tigon.nn.LayerNorm normalizes the last dimension only; got normalized_shape={shape}")
        super().__init__(shape, eps, elementwise_affine, bias, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ops.layer_norm(x, self.weight, self.bias, self.eps)


class SwiGLUMLP(nn.Module):
    """HF LlamaMLP with the fused SwiGLU: ``down_proj(silu(gate_proj(x)) * up_proj(x))``, the same
    ``gate_proj``/``up_proj``/``down_proj`` parameters. Built from a config with
    ``hidden_size``, ``intermediate_size`` and (optionally) ``mlp_bias``, or from sizes."""

    def __init__(self, config=None, hidden_size: int | None = None, intermediate_size: int | None = None,
                 bias: bool | None = None):
        super().__init__()
        self.hidden_size = hidden_size if hidden_size is not None else config.hidden_size
        self.intermediate_size = intermediate_size if intermediate_size is not None else config.intermediate_size
        bias = bias if bias is not None else bool(getattr(config, "mlp_bias", False))
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=bias)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=bias)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(_ops.swiglu(self.gate_proj(x), self.up_proj(x)))


class CrossEntropyLoss(nn.Module):
    """torch.nn.CrossEntropyLoss (class-index targets) with tigon's kernel, plus z-loss and
    softcap. Logits of shape (..., V) are flattened with their targets."""

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0,
                 lse_square_scale: float = 0.0, softcap: float | None = None):
        super().__init__()
        if weight is not None:
            raise ValueError("tigon.nn.CrossEntropyLoss: per-class weights are not supported")
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing
        self.lse_square_scale, self.softcap = lse_square_scale, softcap

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = _ops.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), self.ignore_index,
                                  self.reduction, self.label_smoothing, self.lse_square_scale, self.softcap)
        return loss.view(target.shape) if self.reduction == "none" else loss


class FusedLinearCrossEntropyLoss(nn.Module):
    """The loss of ``cross_entropy(x @ weight.T + bias, target)`` without the logits: call it
    with the hidden states, the LM head's weight (and bias) and the targets."""

    def __init__(self, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0,
                 lse_square_scale: float = 0.0, softcap: float | None = None, accum_dtype=None):
        super().__init__()
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing
        self.lse_square_scale, self.softcap, self.accum_dtype = lse_square_scale, softcap, accum_dtype

    def forward(self, x: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, bias=None) -> torch.Tensor:
        return _ops.fused_linear_cross_entropy(x, weight, target, bias, self.ignore_index, self.reduction,
                                               self.label_smoothing, self.lse_square_scale, self.softcap,
                                               self.accum_dtype)
