"""Replace the modules of a built model with tigon's implementation, in place.

    report = tigon.patch(model)      # every LayerNorm / RMSNorm / SwiGLU MLP / CrossEntropyLoss it knows
    print(report)                    # what was replaced, what looks like a norm but was left alone
    tigon.unpatch()                  # puts everything back

How a module is replaced: the instance keeps its identity and everything it holds; only its
class changes, to a subclass of its own class whose ``forward`` calls tigon's op
(``TigonLayerNorm(nn.LayerNorm)``, ``TigonLlamaRMSNorm(LlamaRMSNorm)``, ...). So the
parameters are the same tensor objects, the configuration (normalized_shape, eps,
elementwise_affine, bias, offset and casting mode), device, dtype, ``state_dict`` keys,
hooks and ``isinstance`` checks (HF's ``_init_weights``, the Trainer's no-weight-decay list of
``nn.LayerNorm``) are all unchanged. A class is replaced only when the module's type is
exactly a known class: a subclass may have changed ``forward``, so it is reported instead.

Rotary embeddings are plain functions called by the attention modules, so they cannot be
swapped on an instance: with ``rope=True`` the rotary functions of the modeling module of
each known transformers model found in the tree are replaced in that module (which affects
every model of that type in the process, until ``unpatch()``). The fused linear
cross-entropy replaces the ``forward`` of the known causal-LM / conditional-generation
instances (an instance attribute, so other instances of the class are untouched)."""
from __future__ import annotations

import types
import weakref
from dataclasses import dataclass, field

import torch
from torch import nn

from . import _hf, _ops

__all__ = ["patch", "unpatch", "PatchReport", "TigonModule"]


# ---- the undo log -------------------------------------------------------------------------

_MISSING = object()
_undo: list = []          # (holder, attr, old value or _MISSING); holder: an object or a weakref to a module


def _record_set(obj, attr: str, value, weak: bool = False) -> bool:
    """obj.attr = value, remembering what was there. Returns False when it already was value."""
    old = obj.__dict__.get(attr, _MISSING) if attr != "__class__" else obj.__class__
    if old is value:
        return False
    _undo.append((weakref.ref(obj) if weak else obj, attr, old))
    if attr == "__class__":
        obj.__class__ = value
    else:
        setattr(obj, attr, value)
    return True


def unpatch() -> int:
    """Undo everything tigon.patch and tigon.apply* changed, newest first: classes and functions
    in the transformers modeling modules are the original objects again, patched instances get
    their own classes, ``forward`` and ``loss_function`` back. Models built while a modeling
    module was patched keep the tigon classes they were built with (they are instances of the
    original classes, and their state_dict is unchanged). Returns the number of changes undone."""
    n = 0
    while _undo:
        holder, attr, old = _undo.pop()
        obj = holder() if isinstance(holder, weakref.ref) else holder
        if obj is None:
            continue
        if attr == "__class__":
            obj.__class__ = old
        elif old is _MISSING:
            try:
                delattr(obj, attr)
            except AttributeError:
                pass
        else:
            setattr(obj, attr, old)
        n += 1
    return n


# ---- tigon subclasses of the known modules ------------------------------------------------

class TigonModule:
    """Marker base of every class tigon swaps in: ``isinstance(m, tigon.TigonModule)``.

    The classes are made at run time, so an instance pickles as "the tigon class of <original
    class> for <kind>" and is rebuilt from that in any process (torch.save(model), deepcopy)."""

    def __reduce_ex__(self, protocol):
        cls = type(self)
        return (_new_tigon, (cls._tigon_base, cls._tigon_kind, getattr(cls, "_tigon_spec", None)),
                self.__getstate__())


def _new_tigon(base, kind, spec):
    cls = tigon_class(base, kind, spec)
    return cls.__new__(cls)


_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _autocast_layer_norm_to_fp32(x: torch.Tensor) -> bool:
    """CUDA autocast runs layer_norm in float32 (its fp32 list); CPU autocast leaves it alone."""
    return x.device.type == "cuda" and torch.is_autocast_enabled("cuda")


def _layer_norm_forward(self, x):
    w, b = self.weight, self.bias
    if len(self.normalized_shape) != 1 or x.dtype not in _KERNEL_DTYPES:
        return type(self)._tigon_base.forward(self, x)   # 2-D shapes: refused by patch(), apply()'s meet it
    if _autocast_layer_norm_to_fp32(x):      # what autocast would do to torch's layer_norm
        x = x.float()
        w = w.float() if w is not None else None
        b = b.float() if b is not None else None
    elif (w is not None and w.dtype != x.dtype) or (b is not None and b.dtype != x.dtype):
        return type(self)._tigon_base.forward(self, x)   # torch's mixed-dtype kernel, exactly
    return _ops.layer_norm(x, w, b, self.eps)


def _torch_rms_norm_forward(self, x):
    # torch.nn.RMSNorm: F.rms_norm computes in float32 and rounds once at the end ("none");
    # mixed dtypes and autocast are left to torch
    w = self.weight
    if (len(self.normalized_shape) != 1 or x.dtype not in _KERNEL_DTYPES or (w is not None and w.dtype != x.dtype)
            or torch.is_autocast_enabled(x.device.type)):
        return type(self)._tigon_base.forward(self, x)
    eps = self.eps if self.eps is not None else torch.finfo(x.dtype).eps
    return _ops.rms_norm(x, w, eps, 0.0, "none")


def _hf_rms_norm_forward(self, x):
    spec = type(self)._tigon_spec
    eps = getattr(self, spec["eps"])
    w = self.weight
    offset, mode = spec["offset"], spec["casting_mode"]
    if x.dtype not in _KERNEL_DTYPES:
        return type(self)._tigon_base.forward(self, x)
    if w is None or w.dtype == x.dtype:
        return _ops.rms_norm(x, w, eps, offset, mode)
    # The weight in another dtype (fp32 master weights under autocast): tigon's kernels take
    # one dtype, so compute exactly what HF computes around them.
    if mode == "llama":   # weight * (x * rstd).to(x.dtype), promoted like HF's multiply
        return w * _ops.rms_norm(x, None, eps, 0.0, "llama") if offset == 0.0 else \
            (offset + w) * _ops.rms_norm(x, None, eps, 0.0, "llama")
    # gemma / none: everything in float32, rounded to x's dtype at the end
    return _ops.rms_norm(x.float(), w.float(), eps, offset, mode).to(x.dtype)


def _swiglu_forward(self, x):
    act = getattr(self, "act_fn", None)
    if type(act).__name__ not in _SILU:
        return type(self)._tigon_base.forward(self, x)
    return self.down_proj(_ops_swiglu(self.gate_proj(x), self.up_proj(x)))


_SILU = ("SiLU", "SiLUActivation")


def _ops_swiglu(a, b):
    import tigon
    return tigon.swiglu(a, b)


def _cross_entropy_forward(self, input, target):
    import tigon
    if (self.weight is not None or not input.is_floating_point() or target.is_floating_point()
            or input.dim() < 2 or self.reduction not in ("mean", "sum", "none")):
        return type(self)._tigon_base.forward(self, input, target)   # class weights, probabilities: torch
    if input.dim() > 2:   # (N, C, d1, ...) -> rows of C
        n_classes = input.shape[1]
        rows = input.movedim(1, -1).reshape(-1, n_classes)
        loss = tigon.cross_entropy(rows, target.reshape(-1), ignore_index=self.ignore_index,
                                   reduction=self.reduction, label_smoothing=self.label_smoothing)
        return loss.reshape(target.shape) if self.reduction == "none" else loss
    return tigon.cross_entropy(input, target, ignore_index=self.ignore_index, reduction=self.reduction,
                               label_smoothing=self.label_smoothing)


_classes: dict = {}    # (original class, kind) -> tigon subclass


def tigon_class(cls: type, kind: str, spec: dict | None = None) -> type:
    """The tigon subclass of cls for kind ("layer_norm", "torch_rms_norm", "rms_norm",
    "swiglu", "cross_entropy"): same __init__, attributes and name pattern ("LayerNorm" stays
    in the name for HF's name-based init), forward by tigon. Made once per class."""
    key = (cls, kind)
    if key not in _classes:
        forward = {"layer_norm": _layer_norm_forward, "torch_rms_norm": _torch_rms_norm_forward,
                   "rms_norm": _hf_rms_norm_forward, "swiglu": _swiglu_forward,
                   "cross_entropy": _cross_entropy_forward}[kind]
        ns = {"forward": forward, "__module__": __name__, "_tigon_kind": kind, "_tigon_base": cls,
              "__doc__": f"{cls.__module__}.{cls.__qualname__} with tigon's forward ({kind})."}
        if spec is not None:
            ns["_tigon_spec"] = dict(spec)
            ns["extra_repr"] = _spec_repr(cls, spec)
        sub = type("Tigon" + cls.__name__, (cls, TigonModule), ns)
        sub.__qualname__ = sub.__name__
        _classes[key] = sub
    return _classes[key]


def _spec_repr(cls, spec):
    base = getattr(cls, "extra_repr", None)

    def extra_repr(self):
        text = base(self) if base is not None else ""
        return f"{text}, offset={spec['offset']}, casting_mode={spec['casting_mode']}".lstrip(", ")
    return extra_repr


# ---- what is known ------------------------------------------------------------------------

def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _known_hf():
    """(rms norm specs, swiglu MLP classes, causal-LM classes), by qualified class name, from
    the per-model table in tigon.monkey."""
    from . import monkey
    return monkey.known_classes()


_NORM_WORDS = ("norm",)


def _looks_like_norm(m: nn.Module) -> bool:
    if isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LocalResponseNorm,
                      nn.LayerNorm, nn.RMSNorm)):
        return True
    return any(w in type(m).__name__.lower() for w in _NORM_WORDS)


# ---- the report ---------------------------------------------------------------------------

@dataclass
class PatchReport:
    """What tigon.patch did. ``replaced``: (module path, original class, tigon class);
    ``functions``: (a name in a module or class, what it is now); ``forwards``: (path, what); ``unknown``: (path,
    class, why it was left untouched) for modules that look like norms (or are known classes
    in a configuration tigon does not take) but were not replaced."""
    model: str = ""
    call: str = "tigon.patch"
    replaced: list = field(default_factory=list)
    functions: list = field(default_factory=list)
    forwards: list = field(default_factory=list)
    unknown: list = field(default_factory=list)

    def replaced_paths(self) -> list:
        return [p for p, _, _ in self.replaced]

    def __len__(self):
        return len(self.replaced) + len(self.functions) + len(self.forwards)

    def __str__(self):
        lines = [f"{self.call}({self.model}): {len(self.replaced)} modules replaced, "
                 f"{len(self.functions)} names swapped, {len(self.forwards)} forwards, "
                 f"{len(self.unknown)} left untouched"]
        for path, old, new in self.replaced:
            lines.append(f"  replaced   {path or '<root>'}: {old} -> {new}")
        for where, what in self.functions:
            lines.append(f"  swapped    {where} -> {what}")
        for path, what in self.forwards:
            lines.append(f"  forward    {path or '<root>'}: {what}")
        for path, cls, why in self.unknown:
            lines.append(f"  untouched  {path or '<root>'}: {cls} ({why})")
        return "\n".join(lines)

    __repr__ = __str__


# ---- patch --------------------------------------------------------------------------------

def patch(model: nn.Module, *, rms_norm: bool = True, layer_norm: bool = True, rope: bool = True,
          swiglu: bool = True, cross_entropy: bool = True, fused_linear_cross_entropy: bool = True) -> PatchReport:
    """Swap tigon's implementation into every module of ``model`` (recursively) that it knows:

    - layer_norm: ``torch.nn.LayerNorm`` over the last dimension;
    - rms_norm: ``torch.nn.RMSNorm`` and the HF RMSNorm classes of the models in
      ``tigon.monkey.MODELS`` (Llama, Mistral, Qwen2, Qwen3 with its per-head q_norm/k_norm,
      Qwen2-VL, Qwen2.5-VL incl. the vision tower, Gemma with offset 1 and gemma casting);
    - swiglu: the HF gated MLPs of those models whose activation is SiLU;
    - cross_entropy: ``torch.nn.CrossEntropyLoss`` modules, and the ``loss_function`` of HF
      models (causal LM, masked LM, sequence / image / token classification);
    - rope: the rotary functions of the modeling module of each known HF model in the tree
      (module-global, see the module docstring);
    - fused_linear_cross_entropy: the ``forward`` of known HF causal-LM / conditional-generation
      models: in training with labels the loss comes from ``lm_head``'s weight and the hidden
      states without the logits (``outputs.logits`` is None then; ``skip_logits=False`` or eval
      mode gives the original forward).

    Parameters stay the same tensor objects; configuration, device, dtype, ``state_dict`` keys
    and hooks are unchanged. Modules that look like norms but are not known are left alone
    and named in the report. Returns a PatchReport; ``tigon.unpatch()`` undoes it."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"tigon.patch: model must be a torch.nn.Module, got {type(model).__name__}")
    rms_specs, mlps, lms = _known_hf()
    report = PatchReport(model=type(model).__name__)
    seen: set = set()
    modeling_modules: dict = {}
    for path, m in model.named_modules(remove_duplicate=False):
        cls = type(m)
        if id(m) in seen:
            continue
        seen.add(id(m))
        modeling_modules.setdefault(cls.__module__, None)
        if isinstance(m, TigonModule):
            continue
        kind, spec, why = _classify(m, rms_specs, mlps, rms_norm, layer_norm, swiglu, cross_entropy)
        if kind is not None and "forward" in m.__dict__:
            kind, why = None, "its forward is overridden on the instance (accelerate hook?)"
        if kind is not None:
            new = tigon_class(cls, kind, spec)
            _record_set(m, "__class__", new, weak=True)
            report.replaced.append((path, _qualified(cls), new.__name__))
        elif why:
            report.unknown.append((path, _qualified(cls), why))
        elif _looks_like_norm(m):
            report.unknown.append((path, _qualified(cls), "looks like a norm; not a class tigon knows"))
    # HF models: the loss function, the causal-LM forward
    for path, m in model.named_modules():
        if cross_entropy and _hf.is_pretrained(m):
            what = _hf.patch_loss_function(m, _record_set)
            if what:
                report.forwards.append((path, what))
        if (fused_linear_cross_entropy and _qualified(type(m)) in lms and "forward" not in m.__dict__
                and not _hf.is_tigon(type(m).forward)):     # not already by tigon.apply
            _record_set(m, "forward", types.MethodType(_hf.lce_forward(type(m).forward), m), weak=True)
            report.forwards.append((path, "forward: fused linear cross-entropy when training with labels"))
    if rope:
        from . import monkey
        for mod_name in modeling_modules:
            for where, what in monkey.patch_rope_of(mod_name):
                report.functions.append((where, what))
    return report


def _classify(m, rms_specs, mlps, rms_norm, layer_norm, swiglu, cross_entropy):
    """(kind, spec, why-not): kind None when the module is not replaced; why-not says why a
    known class was refused."""
    cls = type(m)
    if cls is nn.LayerNorm and layer_norm:
        if len(m.normalized_shape) != 1:
            return None, None, f"normalized_shape={tuple(m.normalized_shape)}: tigon normalizes the last dimension only"
        return "layer_norm", None, None
    if cls is nn.RMSNorm and rms_norm:
        if len(m.normalized_shape) != 1:
            return None, None, f"normalized_shape={tuple(m.normalized_shape)}: tigon normalizes the last dimension only"
        return "torch_rms_norm", None, None
    name = _qualified(cls)
    if name in rms_specs and rms_norm:
        spec = rms_specs[name]
        w = getattr(m, "weight", None)
        if not hasattr(m, spec["eps"]) or (w is not None and w.dim() != 1):
            return None, None, "known RMSNorm class in an unexpected configuration"
        return "rms_norm", spec, None
    if name in mlps and swiglu:
        if type(getattr(m, "act_fn", None)).__name__ not in _SILU:
            return None, None, f"gated MLP with {type(getattr(m, 'act_fn', None)).__name__}, not SiLU: not SwiGLU"
        if not all(isinstance(getattr(m, p, None), nn.Module) for p in ("gate_proj", "up_proj", "down_proj")):
            return None, None, "known MLP class without gate/up/down projection modules"
        return "swiglu", None, None
    if cls is nn.CrossEntropyLoss and cross_entropy:
        if m.weight is not None:
            return None, None, "CrossEntropyLoss with class weights: tigon.cross_entropy takes none"
        return "cross_entropy", None, None
    return None, None, None

