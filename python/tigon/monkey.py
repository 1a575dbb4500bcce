"""Patch a transformers modeling module before the model is built:

    tigon.apply_to_qwen2_vl()            # or tigon.apply("qwen2_vl", rope=False, ...)
    model = Qwen2VLForConditionalGeneration(config)    # tigon throughout
    tigon.unpatch()                      # the modeling module is as it was

Each entry of MODELS names, for one model type, what to swap in its modeling module
(``transformers.models.<module>.modeling_<module>``): RMSNorm classes with their eps attribute,
offset and casting mode; names bound to ``torch.nn.LayerNorm`` (``"LayerNorm"`` when the module
imported the class, ``"nn.LayerNorm"`` when it writes ``nn.LayerNorm``: then the module's
``nn`` becomes a namespace that gives tigon's LayerNorm and forwards everything else to
``torch.nn``, so ``torch.nn`` itself is never touched); SwiGLU MLP classes; rotary functions;
the causal-LM / conditional-generation classes whose forward gets the fused linear
cross-entropy. A swapped class is a subclass of the original with tigon's forward (see
tigon.patch), so ``isinstance`` checks and weight initialisation are unchanged.

cross_entropy=True gives every model class of the module (through a ``loss_function``
property on its root classes) the tigon version of its transformers loss function, and
swaps a module-level ``CrossEntropyLoss`` name if the module has one."""
from __future__ import annotations

import functools
import importlib
import sys
import types

from torch import nn

from . import _hf
from .patch import PatchReport, TigonModule, _record_set, tigon_class

_LLAMA = {"eps": "variance_epsilon", "offset": 0.0, "casting_mode": "llama"}
_GEMMA = {"eps": "eps", "offset": 1.0, "casting_mode": "gemma"}
_TEXT_ROPE = {"apply_rotary_pos_emb": "rope"}
# apply_multimodal_rotary_pos_emb: transformers < 5 only; absent names are skipped
_VL_ROPE = {"apply_rotary_pos_emb": "rope", "apply_rotary_pos_emb_vision": "rope_vision",
            "apply_multimodal_rotary_pos_emb": "mrope"}

MODELS = {
    "llama": dict(module="llama", rms_norm={"LlamaRMSNorm": _LLAMA}, swiglu=["LlamaMLP"],
                  rope=_TEXT_ROPE, lm=["LlamaForCausalLM"]),
    "mistral": dict(module="mistral", rms_norm={"MistralRMSNorm": _LLAMA}, swiglu=["MistralMLP"],
                    rope=_TEXT_ROPE, lm=["MistralForCausalLM"]),
    "qwen2": dict(module="qwen2", rms_norm={"Qwen2RMSNorm": _LLAMA}, swiglu=["Qwen2MLP"],
                  rope=_TEXT_ROPE, lm=["Qwen2ForCausalLM"]),
    "qwen3": dict(module="qwen3", rms_norm={"Qwen3RMSNorm": _LLAMA}, swiglu=["Qwen3MLP"],    # incl. q_norm/k_norm
                  rope=_TEXT_ROPE, lm=["Qwen3ForCausalLM"]),
    "qwen2_vl": dict(module="qwen2_vl", rms_norm={"Qwen2VLRMSNorm": _LLAMA}, layer_norm=["LayerNorm"],  # vision norms
                     swiglu=["Qwen2MLP"], rope=_VL_ROPE, lm=["Qwen2VLForConditionalGeneration"]),
    "qwen2_5_vl": dict(module="qwen2_5_vl", rms_norm={"Qwen2_5_VLRMSNorm": _LLAMA},     # text and vision
                       swiglu=["Qwen2MLP", "Qwen2_5_VLMLP"], rope=_VL_ROPE, lm=["Qwen2_5_VLForConditionalGeneration"]),
    # GemmaMLP is GELU-tanh gated (GeGLU), not SwiGLU: no swiglu entry
    "gemma": dict(module="gemma", rms_norm={"GemmaRMSNorm": _GEMMA}, rope=_TEXT_ROPE, lm=["GemmaForCausalLM"]),
    "vit": dict(module="vit", layer_norm=["nn.LayerNorm"]),
}

OPTIONS = ("rms_norm", "layer_norm", "rope", "swiglu", "cross_entropy", "fused_linear_cross_entropy")


def module_name(model_type: str) -> str:
    m = MODELS[model_type]["module"]
    return f"transformers.models.{m}.modeling_{m}"


@functools.cache
def _by_module() -> dict:
    return {module_name(t): t for t in MODELS}


def known_classes():
    """(RMSNorm specs, SwiGLU MLP classes, LM classes), by qualified class name."""
    rms, mlps, lms = {}, set(), set()
    for t, entry in MODELS.items():
        mod = module_name(t)
        for cls, spec in entry.get("rms_norm", {}).items():
            rms[f"{mod}.{cls}"] = spec
        mlps.update(f"{mod}.{cls}" for cls in entry.get("swiglu", ()))
        lms.update(f"{mod}.{cls}" for cls in entry.get("lm", ()))
    return rms, mlps, lms


def _swap_function(mod, name: str, new, report: PatchReport):
    if not hasattr(mod, name):
        return
    if _hf.is_tigon(getattr(mod, name)) and getattr(mod, name) is not new:
        return
    _record_set(mod, name, new)
    report.functions.append((f"{mod.__name__}.{name}", new._tigon))


def patch_rope_of(mod_name: str):
    """Swap the rotary functions of a known, already imported modeling module; (where, what)."""
    t = _by_module().get(mod_name)
    if t is None or mod_name not in sys.modules:
        return []
    report = PatchReport()
    for name, kind in MODELS[t].get("rope", {}).items():
        _swap_function(sys.modules[mod_name], name, _hf.ROPE[kind], report)
    return report.functions


class _Namespace(types.ModuleType):
    """``torch.nn`` as seen by one modeling module, with some names overridden."""

    def __init__(self, base: types.ModuleType):
        super().__init__(base.__name__, base.__doc__)
        self.__dict__["_tigon_base"] = base

    def __getattr__(self, name):
        return getattr(self.__dict__["_tigon_base"], name)

    def __repr__(self):
        return f"<tigon view of {self.__dict__['_tigon_base']!r}>"


def _swap_class(mod, dotted: str, new, report: PatchReport):
    """mod.<dotted> = new, where dotted is "Name" or "ns.Name" (then ns is viewed, not changed)."""
    holder = mod
    *path, name = dotted.split(".")
    for p in path:
        ns = getattr(holder, p)
        if not isinstance(ns, _Namespace):
            view = _Namespace(ns)
            _record_set(holder, p, view)
            ns = view
        holder = ns
    old = getattr(holder, name)
    if old is new:
        return
    _record_set(holder, name, new)
    report.functions.append((f"{mod.__name__}.{dotted}", f"{new.__module__}.{new.__name__}"))


def apply(model_type: str, *, rms_norm: bool = True, layer_norm: bool = True, rope: bool = True,
          swiglu: bool = True, cross_entropy: bool = True, fused_linear_cross_entropy: bool = True) -> PatchReport:
    """Patch ``transformers.models.<model_type>`` so that models built afterwards use tigon.
    Returns a PatchReport whose ``functions`` lists each name changed in the module;
    ``tigon.unpatch()`` restores them."""
    if model_type not in MODELS:
        raise ValueError(f"tigon.apply: unknown model_type {model_type!r}; known: {', '.join(MODELS)}")
    entry = MODELS[model_type]
    mod = importlib.import_module(module_name(model_type))
    report = PatchReport(model=model_type, call="tigon.apply")
    if rms_norm:
        for name, spec in entry.get("rms_norm", {}).items():
            orig = getattr(mod, name)
            if not issubclass(orig, TigonModule):
                _swap_class(mod, name, tigon_class(orig, "rms_norm", spec), report)
    if layer_norm:
        for dotted in entry.get("layer_norm", ()):
            _swap_class(mod, dotted, tigon_class(nn.LayerNorm, "layer_norm"), report)
    if swiglu:
        for name in entry.get("swiglu", ()):
            orig = getattr(mod, name)
            if not issubclass(orig, TigonModule):
                _swap_class(mod, name, tigon_class(orig, "swiglu"), report)
    if rope:
        for name, kind in entry.get("rope", {}).items():
            _swap_function(mod, name, _hf.ROPE[kind], report)
    if cross_entropy:
        if getattr(mod, "CrossEntropyLoss", None) is nn.CrossEntropyLoss:
            _swap_class(mod, "CrossEntropyLoss", tigon_class(nn.CrossEntropyLoss, "cross_entropy"), report)
        for cls in _root_model_classes(mod):
            if not _hf.is_tigon(getattr(cls.__dict__.get("loss_function"), "fget", None)):
                _record_set(cls, "loss_function", _hf.loss_function_property())
                report.functions.append((f"{mod.__name__}.{cls.__name__}.loss_function", "tigon loss functions"))
    if fused_linear_cross_entropy:
        for name in entry.get("lm", ()):
            cls = getattr(mod, name)
            new = _hf.lce_forward(cls.forward)
            if new is not cls.forward:
                _record_set(cls, "forward", new)
                report.functions.append((f"{mod.__name__}.{name}.forward", new._tigon))
    return report


def _root_model_classes(mod):
    from transformers.modeling_utils import PreTrainedModel
    own = [c for c in vars(mod).values()
           if isinstance(c, type) and issubclass(c, PreTrainedModel) and c.__module__ == mod.__name__]
    return [c for c in own if not any(b in own for b in c.__mro__[1:])]


def _make_apply(model_type: str):
    def apply_to(**options) -> PatchReport:
        return apply(model_type, **options)
    apply_to.__name__ = apply_to.__qualname__ = f"apply_to_{model_type}"
    apply_to.__doc__ = (f"tigon.apply({model_type!r}, **options): patch {module_name(model_type)} before the model "
                        f"is built. Options (all default True): {', '.join(OPTIONS)}.")
    return apply_to


for _t in MODELS:
    globals()[f"apply_to_{_t}"] = _make_apply(_t)
del _t

__all__ = ["MODELS", "apply", *[f"apply_to_{t}" for t in MODELS]]
