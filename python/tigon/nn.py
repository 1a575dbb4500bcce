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


class LayerNorm(nn.Module):
    """torch.nn.LayerNorm over the last dimension, with the same arguments and state_dict."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if len(shape) != 1:
            raise ValueError(f"tigon.nn.LayerNorm normalizes the last dimension only; got normalized_shape={shape}")
        self.normalized_shape = shape
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(shape, device=device, dtype=dtype))
            self.bias = nn.Parameter(torch.zeros(shape, device=device, dtype=dtype)) if bias else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ops.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
