"""tigon: fused, autotuned kernels for LLM and vision-language training, compiled from .tile
files at run time. CUDA tensors run JIT-compiled GPU kernels; CPU tensors run the same
kernels in tigon's interpreter.

    import tigon
    y = tigon.rms_norm(x, weight, eps=1e-6)
"""
from . import _library

_library.load()

from ._ops import layer_norm, rms_norm  # noqa: E402
from . import nn  # noqa: E402
from ._cache import cache_dir, clear_cache  # noqa: E402
from ._user import TileError, load  # noqa: E402
from .patch import PatchReport, TigonModule, patch, unpatch  # noqa: E402
from .monkey import *  # noqa: E402,F401,F403  (apply, apply_to_<model_type>)
from . import monkey as _monkey  # noqa: E402

__version__ = "0.1.0"
__all__ = ["rms_norm", "layer_norm", "nn", "cache_dir", "clear_cache", "load", "TileError",
           "patch", "unpatch", "PatchReport", "TigonModule", *_monkey.__all__]
