"""Tiny transformers models, patched both ways (tigon.patch on an instance, tigon.apply before
the model is built), against the same model unpatched: same weights, same batch, the loss of a
training step with labels (fused linear cross-entropy for the language models), the logits
of an eval forward, and the gradient of every parameter.

Tolerances (relative error in norm, |a - b| / |b|, per tensor; for gradients |b| is at least
1e-3 of the largest gradient norm, as some are zero but for rounding):
  float32: 1e-4 for loss, logits and gradients. Both sides compute in float32; what differs
           is the order of the reductions (tigon's kernels vs torch's), which moves the
           results by ~1e-6; 1e-4 leaves room for the cancellation in small gradients.
  bfloat16 (CUDA only): 2e-2 for loss and logits, 8e-2 for gradients. tigon rounds once where
           transformers rounds after every multiply and add (RoPE, Llama's RMSNorm weight
           product, SwiGLU), so the two runs differ by a few bf16 ulps per op, amplified
           through two layers and the backward pass.
"""
import copy

import pytest
import torch

import tigon
import tiny_models as tm
from conftest import DEVICES, rel

TOL = {torch.float32: dict(loss=1e-4, logits=1e-4, grad=1e-4),
       torch.bfloat16: dict(loss=2e-2, logits=2e-2, grad=8e-2)}

# What tigon.patch must replace in each tiny model (2 layers; the VL vision towers have 1 or 2 blocks).
EXPECTED = {
    "llama": {"TigonLlamaRMSNorm": 5, "TigonLlamaMLP": 2},
    "mistral": {"TigonMistralRMSNorm": 5, "TigonMistralMLP": 2},
    "qwen2": {"TigonQwen2RMSNorm": 5, "TigonQwen2MLP": 2},
    "qwen3": {"TigonQwen3RMSNorm": 9, "TigonQwen3MLP": 2},              # + q_norm / k_norm per layer
    "gemma": {"TigonGemmaRMSNorm": 5},                                   # GeGLU MLP: not SwiGLU
    "qwen2_vl": {"TigonQwen2VLRMSNorm": 5, "TigonQwen2MLP": 2, "TigonLayerNorm": 3},   # vision norm1/2, ln_q
    "qwen2_5_vl": {"TigonQwen2_5_VLRMSNorm": 10, "TigonQwen2MLP": 2, "TigonQwen2_5_VLMLP": 2},
    "vit": {"TigonLayerNorm": 5},
}
LMS = {"llama", "mistral", "qwen2", "qwen3", "gemma", "qwen2_vl", "qwen2_5_vl"}
ROPE = {"llama", "mistral", "qwen2", "qwen3", "gemma", "qwen2_vl", "qwen2_5_vl"}

# every device of conftest.DEVICES in float32, and bfloat16 on the GPU
CASES = [pytest.param(d.values[0], torch.float32, marks=d.marks, id=f"{d.values[0]}-f32") for d in DEVICES] + \
        [pytest.param(d.values[0], torch.bfloat16, marks=d.marks, id=f"{d.values[0]}-bf16")
         for d in DEVICES if d.values[0] != "cpu"]


def step(model, name, device, dtype):
    """Loss and gradients of a training step, then the logits of an eval forward."""
    model.zero_grad(set_to_none=True)
    model.train()
    out = model(**tm.inputs(name, device=device, dtype=dtype))
    out.loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}
    model.eval()
    with torch.no_grad():
        logits = model(**tm.inputs(name, device=device, dtype=dtype, labels=False)).logits
    model.train()
    return out, grads, logits


def compare(ref, got, dtype):
    tol = TOL[dtype]
    (ref_out, ref_grads, ref_logits), (out, grads, logits) = ref, got
    assert rel(out.loss, ref_out.loss) < tol["loss"], (out.loss.item(), ref_out.loss.item())
    assert rel(logits, ref_logits) < tol["logits"]
    check_grads(grads, ref_grads, tol["grad"])


def check_grads(grads, ref_grads, tol):
    """Each gradient within tol of the reference, relative to its norm, or to 1e-3 of the
    largest gradient norm for those that are zero but for rounding (the key bias: softmax
    does not see it)."""
    assert grads.keys() == ref_grads.keys()
    floor = 1e-3 * max(g.double().norm().item() for g in ref_grads.values())
    err = {k: (grads[k].double() - ref.double()).norm().item() / max(ref.double().norm().item(), floor)
           for k, ref in ref_grads.items()}
    bad = {k: e for k, e in err.items() if not e < tol}
    assert not bad, f"gradients differ: {bad}"


def _needs_ops(name):
    missing = [op for op in ("rope", "swiglu", "cross_entropy", "fused_linear_cross_entropy")
               if not hasattr(tigon, op)]
    if missing:
        pytest.skip(f"tigon.{', tigon.'.join(missing)} not in this build yet")


def _check_replaced(model, name):
    counts = {}
    for m in model.modules():
        if isinstance(m, tigon.TigonModule):
            counts[type(m).__name__] = counts.get(type(m).__name__, 0) + 1
    assert counts == EXPECTED[name]


@pytest.mark.parametrize("device,dtype", CASES)
@pytest.mark.parametrize("name", list(tm.MODELS))
def test_patch_instance_matches(name, device, dtype):
    _needs_ops(name)
    ref_model = tm.build(name, device=device, dtype=dtype)
    ref = step(ref_model, name, device, dtype)          # before: rope=True patches the modeling module
    model = copy.deepcopy(ref_model)
    params = {k: id(p) for k, p in model.named_parameters()}
    keys = list(model.state_dict())
    report = tigon.patch(model)
    assert {k: id(p) for k, p in model.named_parameters()} == params
    assert list(model.state_dict()) == keys
    assert sorted(report.replaced_paths()) == sorted(
        p for p, m in model.named_modules() if isinstance(m, tigon.TigonModule))
    assert report.unknown == []
    _check_replaced(model, name)
    if name in LMS:
        assert any("fused linear cross-entropy" in what for _, what in report.forwards)
    if name in ROPE:
        assert any(where.endswith(".apply_rotary_pos_emb") for where, _ in report.functions)
    got = step(model, name, device, dtype)
    if name in LMS:
        assert got[0].logits is None                    # the fused loss never made the logits
    compare(ref, got, dtype)


@pytest.mark.parametrize("device,dtype", CASES)
@pytest.mark.parametrize("name", list(tm.MODELS))
def test_apply_before_init_matches(name, device, dtype):
    _needs_ops(name)
    ref_model = tm.build(name, device=device, dtype=dtype)
    ref = step(ref_model, name, device, dtype)
    report = tigon.apply(name)
    assert report.functions
    model = tm.build_like(name, ref_model)
    _check_replaced(model, name)
    if name in LMS:
        assert getattr(type(model).forward, "_tigon", None)
    got = step(model, name, device, dtype)
    if name in LMS:
        assert got[0].logits is None
    compare(ref, got, dtype)


@pytest.mark.parametrize("name", ["llama", "qwen2_vl"])
def test_skip_logits_false_and_num_items_in_batch(name):
    """skip_logits=False keeps the logits (the original forward); num_items_in_batch (the
    Trainer's gradient accumulation) divides the summed loss in both paths."""
    _needs_ops(name)
    ref_model = tm.build(name)
    batch = tm.inputs(name)
    n = (batch["labels"][:, 1:] != -100).sum() * 2
    ref = ref_model(**batch, num_items_in_batch=n).loss
    tigon.apply(name)
    model = tm.build_like(name, ref_model)
    # the Trainer keeps the dataset columns named in inspect.signature(model.forward)
    import inspect
    assert set(inspect.signature(ref_model.forward).parameters) <= set(inspect.signature(model.forward).parameters)
    out = model(**batch, num_items_in_batch=n)
    assert out.logits is None and rel(out.loss, ref) < 1e-4
    out = model(**batch, skip_logits=False)
    assert out.logits is not None and rel(out.loss, ref_model(**batch).loss) < 1e-4
    tup = model(**batch, return_dict=False)
    assert rel(tup[0], ref_model(**batch).loss) < 1e-4


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["llama", "gemma", "qwen2_vl"])
def test_autocast_mixed_precision(name, device):
    """float32 weights under bf16 autocast (the Trainer's bf16=True): norms see bf16
    activations with float32 weights, RoPE bf16 q/k with float32 tables, the fused loss bf16
    (autocast's dtype for lm_head). Same results as transformers within bf16 tolerances."""
    _needs_ops(name)
    ref_model = tm.build(name, device=device)
    model = copy.deepcopy(ref_model)
    batch = tm.inputs(name, device=device)

    def run(m):
        m.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = m(**batch).loss
        loss.backward()
        return loss, {k: p.grad for k, p in m.named_parameters() if p.grad is not None}

    ref_loss, ref_grads = run(ref_model)
    tigon.patch(model)
    loss, grads = run(model)
    assert rel(loss, ref_loss) < TOL[torch.bfloat16]["loss"]
    check_grads(grads, ref_grads, TOL[torch.bfloat16]["grad"])


class UnknownRMSNorm(torch.nn.Module):
    """An RMSNorm tigon has never seen (like T5LayerNorm): it must be left as it is."""

    def __init__(self, d):
        super().__init__()
        self.weight = torch.nn.Parameter(1 + 0.1 * torch.randn(d))

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


def test_model_with_an_unknown_norm():
    _needs_ops("qwen3")
    torch.manual_seed(0)
    ref_model = tm.build("qwen3")
    ref_model.model.norm = UnknownRMSNorm(32)
    ref_model.model.layers[1].self_attn.k_norm = UnknownRMSNorm(8)
    ref = step(ref_model, "qwen3", "cpu", torch.float32)
    model = copy.deepcopy(ref_model)
    report = tigon.patch(model)
    untouched = {path: cls for path, cls, _ in report.unknown}
    assert set(untouched) == {"model.norm", "model.layers.1.self_attn.k_norm"}
    assert all(cls.endswith("UnknownRMSNorm") for cls in untouched.values())
    assert type(model.model.norm) is UnknownRMSNorm
    assert "model.layers.1.self_attn.q_norm" in report.replaced_paths()
    assert len(report.replaced) == 7 + 2            # 9 RMSNorms - 2 unknown, 2 MLPs
    compare(ref, step(model, "qwen3", "cpu", torch.float32), torch.float32)
