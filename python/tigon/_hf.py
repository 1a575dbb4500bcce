"""The Hugging Face transformers side of patching: tigon versions of the rotary functions, of
the loss functions in ``transformers.loss.loss_utils`` and of the causal-LM forward. Written
against transformers 5.17; nothing here imports transformers until it is called."""
from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import typing

import torch
from torch import nn


def _tigon():
    import tigon
    return tigon


def _tag(fn, name):
    fn._tigon = name
    return fn


def is_tigon(obj) -> bool:
    return getattr(obj, "_tigon", None) is not None


def is_pretrained(m) -> bool:
    tf = sys.modules.get("transformers.modeling_utils")
    return tf is not None and isinstance(m, tf.PreTrainedModel)


# ---- rotary functions (same signatures as the transformers functions they replace) --------

def apply_rotary_pos_emb(q, k, cos, sin, position_ids=None, unsqueeze_dim=1):
    """transformers' ``apply_rotary_pos_emb`` by ``tigon.rope``: q (B, Hq, S, D), k (B, Hk, S, D),
    cos/sin (B or 1, S, R <= D); unsqueeze_dim=2 takes the (B, S, H, D) layout."""
    if unsqueeze_dim == 2:
        q_embed, k_embed = _tigon().rope(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
        return q_embed.transpose(1, 2).contiguous(), k_embed.transpose(1, 2).contiguous()   # as HF's result
    if unsqueeze_dim != 1:
        raise ValueError(f"tigon apply_rotary_pos_emb: unsqueeze_dim must be 1 or 2, got {unsqueeze_dim}")
    return _tigon().rope(q, k, cos, sin)


def apply_rotary_pos_emb_vision(q, k, cos, sin):
    """Qwen2-VL / Qwen2.5-VL vision rotary by ``tigon.rope``: q/k (S, H, D), cos/sin (S, D)."""
    return _tigon().rope(q, k, cos, sin)


def apply_multimodal_rotary_pos_emb(q, k, cos, sin, mrope_section, unsqueeze_dim=1):
    """Qwen2-VL's multimodal rotary (transformers < 5, where cos/sin are (3, B, S, D)) by
    ``tigon.mrope``. transformers 5.17 has no such function: it recomposes the sections in
    the rotary embedding module and calls ``apply_rotary_pos_emb``."""
    if unsqueeze_dim != 1:
        raise ValueError(f"tigon apply_multimodal_rotary_pos_emb: unsqueeze_dim must be 1, got {unsqueeze_dim}")
    return _tigon().mrope(q, k, cos, sin, mrope_section)


ROPE = {"rope": _tag(apply_rotary_pos_emb, "tigon.rope"),
        "rope_vision": _tag(apply_rotary_pos_emb_vision, "tigon.rope (vision layout)"),
        "mrope": _tag(apply_multimodal_rotary_pos_emb, "tigon.mrope")}


# ---- loss functions -----------------------------------------------------------------------

def fixed_cross_entropy(source, target, num_items_in_batch=None, ignore_index: int = -100, **kwargs):
    """transformers.loss.loss_utils.fixed_cross_entropy by tigon.cross_entropy: mean over the
    counted targets, or sum / num_items_in_batch (gradient accumulation) when it is given."""
    reduction = "sum" if num_items_in_batch is not None else "mean"
    loss = _tigon().cross_entropy(source, target, ignore_index=ignore_index, reduction=reduction)
    if reduction == "sum":
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        loss = loss / num_items_in_batch
    return loss


def _shift(labels, shift_labels, ignore_index):
    if shift_labels is None:
        labels = nn.functional.pad(labels, (0, 1), value=ignore_index)
        shift_labels = labels[..., 1:]
    return shift_labels.reshape(-1)


def causal_lm_loss(logits, labels, vocab_size: int, num_items_in_batch=None, ignore_index: int = -100,
                   shift_labels=None, **kwargs):
    # no float() copy of the logits: tigon's cross-entropy computes in float32 from any dtype
    target = _shift(labels, shift_labels, ignore_index).to(logits.device)
    return fixed_cross_entropy(logits.reshape(-1, vocab_size), target, num_items_in_batch, ignore_index, **kwargs)


def masked_lm_loss(logits, labels, vocab_size: int, num_items_in_batch=None, ignore_index: int = -100, **kwargs):
    return fixed_cross_entropy(logits.reshape(-1, vocab_size), labels.reshape(-1).to(logits.device),
                               num_items_in_batch, ignore_index, **kwargs)


def sequence_classification_loss(labels, pooled_logits, config, **kwargs):
    """ForSequenceClassificationLoss (also image / video / audio classification): the
    single-label case by tigon; regression and multi-label stay torch's."""
    from transformers.loss import loss_utils
    num_labels = config.num_labels
    if config.problem_type is None:   # decided as transformers decides it (and remembered in config)
        if num_labels == 1:
            config.problem_type = "regression"
        elif num_labels > 1 and labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type != "single_label_classification":
        return loss_utils.ForSequenceClassificationLoss(labels, pooled_logits, config, **kwargs)
    labels = labels.to(pooled_logits.device)
    return fixed_cross_entropy(pooled_logits.reshape(-1, num_labels), labels.reshape(-1), **kwargs)


def token_classification_loss(logits, labels, config, **kwargs):
    logits = logits.reshape(-1, config.num_labels)
    return fixed_cross_entropy(logits, labels.reshape(-1).to(logits.device), **kwargs)


@functools.cache
def tigon_losses() -> dict:
    """transformers loss function -> its tigon version."""
    from transformers.loss import loss_utils as lu
    return {lu.ForCausalLMLoss: _tag(causal_lm_loss, "tigon ForCausalLMLoss"),
            lu.ForMaskedLMLoss: _tag(masked_lm_loss, "tigon ForMaskedLMLoss"),
            lu.ForSequenceClassificationLoss: _tag(sequence_classification_loss, "tigon ForSequenceClassificationLoss"),
            lu.ForTokenClassification: _tag(token_classification_loss, "tigon ForTokenClassification")}


def _current_loss_function(m):
    """The loss function a model would use, without the warning transformers logs for models
    that have no loss (None then)."""
    from transformers.loss.loss_utils import LOSS_MAPPING
    if "_loss_function" in m.__dict__:
        return m.__dict__["_loss_function"]
    loss_type = getattr(m, "loss_type", None)
    return LOSS_MAPPING.get(loss_type) if loss_type is not None else None


def patch_loss_function(m, record_set):
    """Give the model instance the tigon version of its loss function (through the
    ``loss_function`` setter, an instance attribute). Returns what was done, or None."""
    fn = _current_loss_function(m)
    if fn is None or is_tigon(fn):
        return None
    new = tigon_losses().get(fn)
    if new is None:
        return None
    record_set(m, "_loss_function", new, weak=True)
    return f"loss_function: {fn.__name__} -> {new._tigon}"


def loss_function_property():
    """A ``loss_function`` property for a model class: PreTrainedModel's, with the known loss
    functions mapped to tigon's (the setter and a user-set loss work as before)."""
    from transformers.modeling_utils import PreTrainedModel
    base = PreTrainedModel.__dict__["loss_function"]

    def fget(self):
        fn = base.fget(self)
        try:
            return tigon_losses().get(fn, fn)
        except TypeError:     # an unhashable callable set by the user
            return fn
    return property(_tag(fget, "tigon loss_function"), base.fset, doc=base.__doc__)


# ---- fused linear cross-entropy in the causal-LM forward ----------------------------------

def causal_lm_flce(hidden_states, lm_head: nn.Linear, labels=None, shift_labels=None, num_items_in_batch=None,
                   ignore_index: int = -100, final_logit_softcapping=None, **kwargs):
    """ForCausalLMLoss(lm_head(hidden_states), labels) without the logits."""
    target = _shift(labels, shift_labels, ignore_index).to(hidden_states.device)
    x = hidden_states.reshape(-1, hidden_states.shape[-1])
    weight, bias = lm_head.weight, lm_head.bias
    device = x.device.type
    if torch.is_autocast_enabled(device):     # what autocast does to lm_head's matmul
        dtype = torch.get_autocast_dtype(device)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
    reduction = "sum" if num_items_in_batch is not None else "mean"
    loss = _tigon().fused_linear_cross_entropy(x, weight, target, bias=bias,
                                               ignore_index=ignore_index, reduction=reduction,
                                               softcap=final_logit_softcapping)
    if reduction == "sum":
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        loss = loss / num_items_in_batch
    return loss


def _output_class(fn):
    """The ModelOutput class a transformers forward returns, from its annotation."""
    from transformers.modeling_outputs import CausalLMOutputWithPast
    from transformers.utils import ModelOutput
    ann = inspect.signature(fn).return_annotation
    if isinstance(ann, str):
        ns = vars(sys.modules[fn.__module__])
        try:
            ann = eval(ann, ns)  # noqa: S307 - the module's own annotation
        except Exception:
            return CausalLMOutputWithPast
    for t in (ann, *typing.get_args(ann)):
        if isinstance(t, type) and issubclass(t, ModelOutput):
            return t
    return CausalLMOutputWithPast


_lce_forwards: dict = {}
_PASSED_THROUGH = ("past_key_values", "hidden_states", "attentions", "rope_deltas")


def lce_forward(orig):
    """A causal-LM / conditional-generation forward that, in training with labels, takes the
    loss from the hidden states and lm_head's weight by fused linear cross-entropy and returns
    logits=None; otherwise (eval, no labels, ``skip_logits=False``, a user-set loss function)
    it is ``orig``. ``orig`` is the model class's forward, of the shape transformers 5.17 gives
    all of them: every argument but labels and logits_to_keep goes to ``self.model``, then
    ``lm_head`` on the last hidden state, then ``self.loss_function``."""
    if is_tigon(orig):
        return orig
    if orig in _lce_forwards:
        return _lce_forwards[orig]
    inner = inspect.unwrap(orig)
    sig = inspect.signature(inner)
    var_kw = next((p.name for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD), None)
    out_cls = _output_class(inner)
    out_fields = {f.name for f in dataclasses.fields(out_cls)}

    @functools.wraps(orig)
    def forward(self, *args, skip_logits=None, **kwargs):
        bound = sig.bind(self, *args, **kwargs)
        a = dict(bound.arguments)
        extra = dict(a.pop(var_kw, {}) or {}) if var_kw else {}
        labels = a.get("labels")
        shift_labels = extra.get("shift_labels")
        has_labels = labels is not None or shift_labels is not None
        if skip_logits is None:
            skip_logits = self.training and has_labels
        custom_loss = "_loss_function" in self.__dict__ and not is_tigon(self.__dict__["_loss_function"])
        linear_head = isinstance(getattr(self, "lm_head", None), nn.Linear)
        if not skip_logits or not has_labels or custom_loss or not linear_head:
            return orig(self, *args, **kwargs)
        return_dict = extra.pop("return_dict", None)
        if return_dict is None:
            return_dict = getattr(self.config, "return_dict", True)
        model_inputs = {k: v for k, v in a.items() if k not in ("self", "labels", "logits_to_keep")}
        outputs = self.model(**model_inputs, **extra)
        hidden_states = outputs[0]
        cfg = getattr(self.config, "get_text_config", lambda: self.config)()
        loss = causal_lm_flce(hidden_states, self.lm_head, labels, **extra,
                              final_logit_softcapping=getattr(cfg, "final_logit_softcapping", None))
        fields = {k: getattr(outputs, k, None) for k in _PASSED_THROUGH if k in out_fields}
        out = out_cls(loss=loss, logits=None, **fields)
        return out if return_dict else out.to_tuple()

    params = list(sig.parameters.values())
    skip = inspect.Parameter("skip_logits", inspect.Parameter.KEYWORD_ONLY, default=None)
    forward.__signature__ = sig.replace(parameters=[*[p for p in params if p.kind is not p.VAR_KEYWORD], skip,
                                                    *[p for p in params if p.kind is p.VAR_KEYWORD]])
    _tag(forward, "fused linear cross-entropy forward")
    _lce_forwards[orig] = forward
    return forward
