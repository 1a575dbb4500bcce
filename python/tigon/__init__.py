"""tigon: fused, autotuned kernels for LLM and vision-language training, compiled from .tile
files at run time. CUDA tensors run JIT-compiled GPU kernels; CPU tensors run the same
kernels in tigon's interpreter.

    import tigon
    y = tigon.rms_norm(x, weight, eps=1e-6)
"""
from . import _library

_library.load()

from ._ops import (cross_entropy, fused_linear_cross_entropy, layer_norm, mrope, rms_norm, rope,  # noqa: E402
                   swiglu)
from . import nn  # noqa: E402
from ._cache import cache_dir, clear_cache  # noqa: E402
from ._user import TileError, load  # noqa: E402
from .patch import PatchReport, TigonModule, patch, unpatch  # noqa: E402
from .monkey import *  # noqa: E402,F401,F403  (apply, apply_to_<model_type>)
from . import monkey as _monkey  # noqa: E402

__version__ = "0.1.0"
__all__ = ["rms_norm", "layer_norm", "rope", "mrope", "swiglu", "cross_entropy", "fused_linear_cross_entropy", "nn", "cache_dir", "clear_cache", "load", "TileError",
           "patch", "unpatch", "PatchReport", "TigonModule", *_monkey.__all__]
