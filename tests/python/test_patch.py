"""tigon.patch on arbitrary modules (what is replaced, what is kept, what is reported) and
tigon.unpatch (everything back, nothing leaked); the models themselves are in test_models.py."""
import copy
import importlib

import pytest
import torch
import transformers
from torch import nn

import tigon
from tigon import monkey
from conftest import DEVICES, rel

TRANSFORMERS_VERSION = "5.17.0"


def test_transformers_version():
    """The modeling tables in tigon.monkey and the forwards in tigon._hf follow transformers
    5.17.0; another version must be checked (and this pin moved) before trusting them."""
    assert transformers.__version__ == TRANSFORMERS_VERSION


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.fc = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=True, bias=False)
        self.norm3 = nn.LayerNorm(d, elementwise_affine=False)

    def forward(self, x):
        return self.norm3(self.norm2(x + self.fc(self.norm1(x))))


class TinyViT(nn.Module):
    """A plain ViT-like model of nn.LayerNorms: nothing tigon has seen before."""

    def __init__(self, d=32, depth=2):
        super().__init__()
        self.embed = nn.Linear(12, d)
        self.blocks = nn.ModuleList(Block(d) for _ in range(depth))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 5)
        with torch.no_grad():
            for n, p in self.named_parameters():
                if "norm" in n:
                    p.add_(0.1 * torch.randn_like(p))

    def forward(self, x):
        x = self.embed(x)
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x)).mean(1)


@pytest.mark.parametrize("device", DEVICES)
def test_plain_vit_keeps_parameters_and_configuration(device):
    torch.manual_seed(0)
    ref = TinyViT().to(device)
    model = copy.deepcopy(ref)
    params = {k: p for k, p in model.named_parameters()}
    configs = {k: (m.normalized_shape, m.eps, m.elementwise_affine, m.bias is not None)
               for k, m in model.named_modules() if isinstance(m, nn.LayerNorm)}
    keys = list(model.state_dict())
    report = tigon.patch(model)
    lns = [k for k in configs]
    assert sorted(report.replaced_paths()) == sorted(lns) and len(lns) == 7
    assert all(isinstance(model.get_submodule(k), nn.LayerNorm) for k in lns)   # still LayerNorms
    assert all(type(model.get_submodule(k)).__name__ == "TigonLayerNorm" for k in lns)
    for k, p in model.named_parameters():
        assert p is params[k]                                                  # the same tensors
        assert p.device.type == device and p.dtype == torch.float32
    assert {k: (m.normalized_shape, m.eps, m.elementwise_affine, m.bias is not None)
            for k, m in model.named_modules() if isinstance(m, nn.LayerNorm)} == configs
    assert list(model.state_dict()) == keys
    assert "blocks.0.norm1" in str(report) and "TigonLayerNorm" in str(report)
    x = torch.randn(2, 3, 12, device=device)
    y_ref, y = ref(x), model(x)
    assert rel(y, y_ref) < 1e-5
    y_ref.sum().backward()
    y.sum().backward()
    for k, p in model.named_parameters():
        assert rel(p.grad, dict(ref.named_parameters())[k].grad) < 1e-4, k
    # a state_dict round trip between the patched and an unpatched model
    fresh = TinyViT().to(device)
    fresh.load_state_dict(model.state_dict())
    assert rel(fresh(x), y_ref) < 1e-5


class MyRMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class MyLayerNorm(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x) * 2


def test_unknown_norms_are_left_untouched_and_named():
    model = nn.Sequential()
    model.add_module("fc", nn.Linear(8, 8))
    model.add_module("mine", MyRMSNorm(8))
    model.add_module("sub", MyLayerNorm(8))
    model.add_module("to2d", nn.Unflatten(1, (2, 4)))
    model.add_module("ln2d", nn.LayerNorm([2, 4]))
    model.add_module("to3d", nn.Unflatten(2, (4, 1)))
    model.add_module("flat", nn.Flatten(1, 2))
    model.add_module("bn", nn.BatchNorm1d(8))
    model.add_module("flat2", nn.Flatten())
    model.add_module("gn", nn.GroupNorm(2, 8))
    model.add_module("ln", nn.LayerNorm(8))
    x = torch.randn(4, 8)
    before = model(x)
    classes = {k: type(m) for k, m in model.named_children()}
    report = tigon.patch(model)
    assert report.replaced_paths() == ["ln"]
    assert all(type(m) is classes[k] for k, m in model.named_children() if k != "ln")
    untouched = {path: (cls, why) for path, cls, why in report.unknown}
    assert set(untouched) == {"mine", "sub", "ln2d", "bn", "gn"}
    assert untouched["mine"][0].endswith("MyRMSNorm") and "not a class tigon knows" in untouched["mine"][1]
    assert "not a class tigon knows" in untouched["sub"][1]           # a subclass may change forward
    assert "last dimension only" in untouched["ln2d"][1]
    text = str(report)
    assert "MyRMSNorm" in text and "BatchNorm1d" in text and "GroupNorm" in text
    assert rel(model(x), before) < 1e-5


def test_shared_modules_hooks_and_twice():
    norm = nn.LayerNorm(16)
    model = nn.ModuleDict({"a": norm, "b": nn.Sequential(norm)})
    calls = []
    norm.register_forward_hook(lambda m, i, o: calls.append(1))
    report = tigon.patch(model)
    assert report.replaced_paths() == ["a"]                  # one module, reached twice
    assert type(model["b"][0]).__name__ == "TigonLayerNorm"
    model["a"](torch.randn(2, 16))
    assert calls == [1]                                     # hooks kept (same object)
    again = tigon.patch(model)
    assert again.replaced == [] and again.unknown == []


def test_pickle_and_deepcopy_of_a_patched_model():
    import pickle
    from transformers.models.llama.modeling_llama import LlamaRMSNorm
    model = nn.Sequential(nn.LayerNorm(8), LlamaRMSNorm(8, eps=1e-5))
    tigon.patch(model)
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert [type(m) for m in other] == [type(m) for m in model]
        assert other[1].variance_epsilon == 1e-5
        x = torch.randn(2, 8)
        assert torch.equal(other(x), model(x))


def test_overridden_forward_is_reported():
    norm = nn.LayerNorm(16)
    norm.forward = lambda x: x           # what accelerate's hooks do to a module
    report = tigon.patch(nn.Sequential(norm))
    assert report.replaced == [] and "overridden" in report.unknown[0][2]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("eps", [1e-5, None])
def test_torch_rms_norm(device, eps):
    torch.manual_seed(0)
    ref = nn.RMSNorm(32, eps=eps).to(device)
    with torch.no_grad():
        ref.weight.add_(0.1 * torch.randn_like(ref.weight))
    model = copy.deepcopy(ref)
    assert tigon.patch(model).replaced_paths() == [""]
    assert isinstance(model, nn.RMSNorm) and model.eps == eps
    x = torch.randn(3, 5, 32, device=device)
    assert rel(model(x), ref(x)) < 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_module(device):
    if not hasattr(tigon, "cross_entropy"):
        pytest.skip("tigon.cross_entropy not in this build yet")
    torch.manual_seed(0)
    logits = torch.randn(6, 11, device=device, requires_grad=True)
    target = torch.tensor([1, 2, -100, 4, 10, 0], device=device)
    for kw in (dict(), dict(reduction="sum"), dict(reduction="none"), dict(label_smoothing=0.1),
               dict(ignore_index=4)):
        target = target.clamp_min(0) if "ignore_index" in kw else target
        ref = nn.CrossEntropyLoss(**kw)
        mod = nn.Sequential(nn.CrossEntropyLoss(**kw))
        assert tigon.patch(mod).replaced_paths() == ["0"]
        assert isinstance(mod[0], nn.CrossEntropyLoss)
        assert rel(mod[0](logits, target), ref(logits, target)) < 1e-5, kw
        g_ref, = torch.autograd.grad(ref(logits, target).sum(), logits)
        g, = torch.autograd.grad(mod[0](logits, target).sum(), logits)
        assert rel(g, g_ref) < 1e-5, kw
    # (N, C, d) inputs
    x = torch.randn(2, 5, 3, device=device)
    t = torch.randint(0, 5, (2, 3), device=device)
    mod = nn.Sequential(nn.CrossEntropyLoss(reduction="none"))
    tigon.patch(mod)
    assert rel(mod[0](x, t), nn.functional.cross_entropy(x, t, reduction="none")) < 1e-5
    # class weights: torch's, left untouched and reported
    weighted = nn.Sequential(nn.CrossEntropyLoss(weight=torch.ones(11, device=device)))
    report = tigon.patch(weighted)
    assert report.replaced == [] and "class weights" in report.unknown[0][2]


def test_hf_rms_norms_keep_configuration():
    """Gemma: offset 1 and gemma casting; Llama: llama casting; both keep HF's attributes, eps,
    class (isinstance) and name pattern ("RMSNorm" in the class name, which HF's
    _init_weights looks for)."""
    from transformers.models.gemma.modeling_gemma import GemmaRMSNorm
    from transformers.models.llama.modeling_llama import LlamaRMSNorm
    torch.manual_seed(0)
    g, l = GemmaRMSNorm(16, eps=1e-5), LlamaRMSNorm(16, eps=1e-5)
    with torch.no_grad():
        g.weight.normal_(0, 0.1)
        l.weight.normal_(1, 0.1)
    ref_g, ref_l = copy.deepcopy(g), copy.deepcopy(l)
    model = nn.ModuleList([g, l])
    tigon.patch(model)
    assert isinstance(g, GemmaRMSNorm) and "RMSNorm" in type(g).__name__ and g.eps == 1e-5
    assert isinstance(l, LlamaRMSNorm) and l.variance_epsilon == 1e-5
    assert "offset=1.0, casting_mode=gemma" in repr(g) and "casting_mode=llama" in repr(l)
    x = torch.randn(4, 16)
    assert rel(g(x), ref_g(x)) < 1e-5 and rel(l(x), ref_l(x)) < 1e-5
    # weights kept in float32 while the activations are bfloat16 (mixed precision)
    xb = x.bfloat16()
    for new, old in ((g, ref_g), (l, ref_l)):
        y, y_ref = new(xb), old(xb)
        assert y.dtype == y_ref.dtype and rel(y, y_ref) < 1e-2


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("x_dtype", [torch.float32, torch.bfloat16])
def test_layer_norm_under_autocast(device, x_dtype):
    """Under CUDA autocast torch runs layer_norm in float32, under CPU autocast in the input's
    dtype (with float32 weights): the patched module gives the same dtype and values."""
    torch.manual_seed(0)
    ref = nn.LayerNorm(16).to(device)
    model = copy.deepcopy(ref)
    tigon.patch(model)
    x = torch.randn(4, 16, device=device).to(x_dtype)
    with torch.autocast(device, dtype=torch.bfloat16):
        y, y_ref = model(x), ref(x)
    assert y.dtype == y_ref.dtype and rel(y, y_ref) < 1e-5


def _snapshot():
    """Every attribute of the transformers modeling modules tigon knows, of the classes they
    define, of torch.nn, torch.nn.functional and transformers' loss functions."""
    mods = [importlib.import_module(monkey.module_name(t)) for t in monkey.MODELS]
    mods += [torch.nn, torch.nn.functional, importlib.import_module("transformers.loss.loss_utils"),
             importlib.import_module("transformers.modeling_utils")]
    snap = {}
    for mod in mods:
        for k, v in list(vars(mod).items()):
            snap[(mod.__name__, k)] = v
            if isinstance(v, type):
                for ck, cv in list(vars(v).items()):
                    snap[(mod.__name__, k, ck)] = cv
    return snap


def test_unpatch_restores_everything():
    from tiny_models import build
    copy.deepcopy(build("qwen2_vl")), copy.deepcopy(build("llama"))    # transformers' own class caches
    before = _snapshot()
    reports = [tigon.apply(t) for t in monkey.MODELS]
    assert all(r.functions for r in reports)
    model = build("qwen2_vl")
    tigon.patch(build("llama"))
    assert nn.LayerNorm is before[("torch.nn", "LayerNorm")]                       # never touched
    assert nn.functional.cross_entropy is before[("torch.nn.functional", "cross_entropy")]
    during = _snapshot()
    changed = {k for k in before if during.get(k, None) is not before[k]}
    assert changed, "apply changed nothing?"
    assert not any(k[0].startswith("torch.") for k in changed)
    assert ("transformers.models.vit.modeling_vit", "nn") in changed                 # a view of torch.nn
    assert ("transformers.models.llama.modeling_llama", "apply_rotary_pos_emb") in changed
    assert tigon.unpatch() > 0
    after = _snapshot()
    assert after.keys() == before.keys()
    assert [k for k in before if after[k] is not before[k]] == []                   # identical objects
    # instances patched in place get their own classes back
    m = build("llama")
    norm_cls = type(m.model.norm)
    tigon.patch(m)
    assert type(m.model.norm) is not norm_cls and "forward" in m.__dict__
    tigon.unpatch()
    assert type(m.model.norm) is norm_cls and "forward" not in m.__dict__ and "_loss_function" not in m.__dict__
    del model


def test_vit_namespace_view_forwards_torch_nn():
    tigon.apply("vit")
    from transformers.models.vit import modeling_vit
    assert modeling_vit.nn is not torch.nn
    assert modeling_vit.nn.LayerNorm.__name__ == "TigonLayerNorm"
    assert modeling_vit.nn.Linear is torch.nn.Linear and modeling_vit.nn.functional is torch.nn.functional
    assert issubclass(modeling_vit.nn.LayerNorm, torch.nn.LayerNorm)
    tigon.unpatch()
    assert modeling_vit.nn is torch.nn


def test_apply_functions_and_options():
    assert callable(tigon.apply_to_qwen2_5_vl) and tigon.apply_to_vit.__name__ == "apply_to_vit"
    with pytest.raises(ValueError, match="unknown model_type"):
        tigon.apply("bert")
    from transformers.models.llama import modeling_llama as ml
    orig_norm, orig_mlp, orig_rope = ml.LlamaRMSNorm, ml.LlamaMLP, ml.apply_rotary_pos_emb
    report = tigon.apply_to_llama(rope=False, swiglu=False, cross_entropy=False, fused_linear_cross_entropy=False)
    assert ml.LlamaRMSNorm is not orig_norm and issubclass(ml.LlamaRMSNorm, orig_norm)
    assert ml.LlamaMLP is orig_mlp and ml.apply_rotary_pos_emb is orig_rope
    assert [w for w, _ in report.functions] == ["transformers.models.llama.modeling_llama.LlamaRMSNorm"]
    assert tigon.apply_to_llama(rope=False, swiglu=False, cross_entropy=False,
                                fused_linear_cross_entropy=False).functions == []    # twice: no-op


def _rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


@pytest.mark.parametrize("device", DEVICES)
def test_rotary_wrappers_match_transformers(device):
    """The functions swapped into the modeling modules: apply_rotary_pos_emb (both layouts),
    the vision one (float32 tables, bf16 q/k) and, for older transformers, Qwen2-VL's
    apply_multimodal_rotary_pos_emb (checked against its transformers 4.x formula)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb as hf_rope
    from transformers.models.qwen2_vl.modeling_qwen2_vl import apply_rotary_pos_emb_vision as hf_vision
    from tigon import _hf
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 5, 8, device=device), torch.randn(2, 2, 5, 8, device=device)
    cos, sin = torch.randn(2, 5, 8, device=device), torch.randn(2, 5, 8, device=device)
    for got, ref in zip(_hf.apply_rotary_pos_emb(q, k, cos, sin), hf_rope(q, k, cos, sin)):
        assert rel(got, ref) < 1e-5
    qt, kt = q.transpose(1, 2), k.transpose(1, 2)                   # (B, S, H, D), unsqueeze_dim=2
    for got, ref in zip(_hf.apply_rotary_pos_emb(qt, kt, cos, sin, unsqueeze_dim=2),
                        hf_rope(qt, kt, cos, sin, unsqueeze_dim=2)):
        assert got.shape == ref.shape and got.is_contiguous() and rel(got, ref) < 1e-5
    qv, kv = torch.randn(6, 2, 8, device=device).bfloat16(), torch.randn(6, 2, 8, device=device).bfloat16()
    cv, sv = torch.randn(6, 8, device=device), torch.randn(6, 8, device=device)
    for got, ref in zip(_hf.apply_rotary_pos_emb_vision(qv, kv, cv, sv), hf_vision(qv, kv, cv, sv)):
        assert got.dtype == ref.dtype and rel(got, ref) < 1e-2
    section = [1, 1, 2]
    c3, s3 = torch.randn(3, 2, 5, 8, device=device), torch.randn(3, 2, 5, 8, device=device)

    def pick(t):
        return torch.cat([m[i % 3] for i, m in enumerate(t.split(section * 2, dim=-1))], dim=-1).unsqueeze(1)
    got = _hf.apply_multimodal_rotary_pos_emb(q, k, c3, s3, section)
    for g, x in zip(got, (q, k)):
        assert rel(g, x * pick(c3) + _rotate_half(x) * pick(s3)) < 1e-5
