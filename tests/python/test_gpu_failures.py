"""Failures on the GPU that calls must survive: kernel configs over the GPU's limits (the
autotuner skips them with a reason and falls back to one that fits) and running out of memory
(torch.OutOfMemoryError, the caller's tensors untouched, the next call fine). Skipped without
a CUDA GPU."""
import os
import subprocess
import sys
import textwrap
import uuid

import pytest
import torch
import torch.nn.functional as F

import tigon
from conftest import ROOT, rel

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")

OVER_LIMITS = ROOT / "tests" / "tiles" / "over_limits.tile"


def fresh_module(tmp_path):
    """over_limits.tile under a new source hash: no tuning decision of an earlier run applies."""
    path = tmp_path / "over_limits.tile"
    path.write_text(OVER_LIMITS.read_text() + f"\n// {uuid.uuid4()}\n")
    return tigon.load(path)


def columns():
    """x (64, 256) bf16 whose columns are permutations of 0/64 .. 63/64, and its column argmax."""
    perm = torch.rand(256, 64).argsort(dim=1).T.contiguous()
    return (perm.float() / 64).to(torch.bfloat16).cuda(), perm.argmax(0)


def run_python(code, tmp_path, **env):
    """Runs `code` in a fresh Python process with its own (empty) kernel cache."""
    path = os.pathsep.join([str(ROOT / "python"), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path, TIGON_CACHE_DIR=str(tmp_path / "cache"), **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=600)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.contiguous().view(torch.uint8),
                                                                     b.contiguous().view(torch.uint8))


# ---- configs over the limits --------------------------------------------------------------

@pytest.mark.parametrize("autotune", ["1", "0"])
def test_configs_over_the_limits_fall_back_to_one_that_fits(tmp_path, monkeypatch, autotune):
    monkeypatch.setenv("TIGON_AUTOTUNE", autotune)  # 0: the default config, which does not fit
    mod = fresh_module(tmp_path)
    x, ref = columns()
    out = torch.full((256,), -1, dtype=torch.int32, device="cuda")
    mod.col_argmax(x, out)
    assert torch.equal(out.cpu().long(), ref)


def test_rejected_configs_are_logged_with_their_reasons(tmp_path):
    r = run_python(f"""
        import torch, tigon
        mod = tigon.load({str(OVER_LIMITS)!r})
        out = torch.empty(256, dtype=torch.int32, device="cuda")
        mod.col_argmax(torch.rand(64, 256, device="cuda").to(torch.bfloat16), out)
        torch.cuda.synchronize()
    """, tmp_path, TIGON_LOG="info")
    assert r.returncode == 0, r.stderr
    assert "2 timed, 2 rejected" in r.stderr
    assert "rejected N=256 R=64 WARPS=32: kernel col_argmax" in r.stderr
    assert "needs 65536 bytes of shared memory" in r.stderr
    assert "rejected N=256 R=64 WARPS=1: kernel col_argmax" in r.stderr
    assert "needs 512 elements per thread" in r.stderr


def test_no_config_that_fits_is_a_clear_error(tmp_path):
    mod = fresh_module(tmp_path)
    x, _ = columns()
    out = torch.empty(256, dtype=torch.int32, device="cuda")
    with pytest.raises(RuntimeError) as e:
        mod.col_argmax(x, out, WARPS=32)
    assert "kernel col_argmax (N=256 R=64 WARPS=32): found no config that runs" in str(e.value)
    assert "needs 65536 bytes of shared memory" in str(e.value)


# ---- out of memory ------------------------------------------------------------------------

def test_out_of_memory_while_autotuning_is_an_out_of_memory_error(tmp_path):
    # a fresh cache, so the first call tunes: its scratch copy of y does not fit
    r = run_python("""
        import torch, tigon
        x = torch.randn(32768, 4096, device="cuda", dtype=torch.bfloat16)  # 256 MiB, as y
        free, _ = torch.cuda.mem_get_info()
        hog = torch.empty(free - 384 * 2**20, dtype=torch.uint8, device="cuda")
        try:
            tigon.rms_norm(x)
        except torch.OutOfMemoryError as e:
            print("out of memory:", str(e).splitlines()[0])
        else:
            raise SystemExit("expected torch.OutOfMemoryError")
        del hog
        torch.cuda.empty_cache()
        y = tigon.rms_norm(x).double()
        ref = x.double() * torch.rsqrt(x.double().pow(2).mean(-1, keepdim=True) + 1e-6)
        assert ((y - ref).norm() / ref.norm()).item() < 1e-2
    """, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "out of memory: " in r.stdout


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_fused_linear_cross_entropy_out_of_memory_leaves_the_callers_tensors_alone(reduction):
    torch.manual_seed(0)
    bt, h, v = 1024, 512, 32000
    x = (torch.randn(bt, h, device="cuda") * 0.5).to(torch.bfloat16).requires_grad_()
    w = (torch.randn(v, h, device="cuda") * 0.02).to(torch.bfloat16).requires_grad_()
    b = torch.randn(v, device="cuda").to(torch.bfloat16).requires_grad_()
    target = torch.randint(0, v, (bt,), device="cuda")
    params = (x, w, b)

    def step():  # "mean": the gradients come with the loss; "none": from the backward
        loss = tigon.fused_linear_cross_entropy(x, w, target, bias=b, reduction=reduction, chunk_rows=256)
        (loss.sum() if reduction == "none" else loss).backward()

    step()  # compiles and tunes with memory to spare
    for p in params:
        p.grad = torch.randn_like(p)  # gradients already present

    def watched():  # every tensor of the caller's: inputs, target and the gradients present
        return (*params, target, *(p.grad for p in params))

    before = [t.detach().clone() for t in watched()]

    # let each call have a few MiB more than is in use, so allocations fail at different points
    total = torch.cuda.get_device_properties(0).total_memory
    ooms = 0
    try:
        for extra_mib in (0, 1, 2, 8, 24, 34, 40, 48, 56, 64, 96):
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_reserved() + extra_mib * 2**20) / total)
            try:
                step()
                out_of_memory = False
            except torch.OutOfMemoryError:
                out_of_memory = True
            finally:   # the comparison below allocates too
                torch.cuda.set_per_process_memory_fraction(1.0)
            if out_of_memory:
                ooms += 1
                changed = [i for i, (t, old) in enumerate(zip(watched(), before)) if not same_bits(t, old)]
                assert not changed, f"out of memory with {extra_mib} MiB to spare changed tensors {changed}"
            else:
                for p, old in zip(params, before[4:]):
                    p.grad.copy_(old)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert ooms > 0

    # with memory again, a call works and adds torch's gradients
    for p in params:
        p.grad = None
    step()
    xr, wr, br = (p.detach().float().requires_grad_() for p in params)
    ref = F.cross_entropy(xr @ wr.T + br, target, reduction=reduction)
    (ref.sum() if reduction == "none" else ref).backward()
    assert rel(x.grad, xr.grad) < 2e-2 and rel(w.grad, wr.grad) < 2e-2 and rel(b.grad, br.grad) < 2e-2


# ---- tuning on PyTorch's autograd worker thread --------------------------------------------

def test_backward_kernels_tune_on_the_autograd_thread(tmp_path):
    """A first backward in a fresh process tunes its kernels on the autograd engine's worker
    thread, which may not have touched the GPU yet (the caching allocator hands it blocks freed
    earlier, so no CUDA runtime call made the context current there). Seen on an H200: every
    config was rejected with "invalid device context" until the scratch timing made the
    context current itself. Every norm and loss backward is run the first time here."""
    result = run_python("""
        import torch, tigon
        for n in (128, 1024, 4096):
            x = torch.randn(4096, n, device="cuda", dtype=torch.bfloat16, requires_grad=True)
            w = torch.ones(n, device="cuda", dtype=torch.bfloat16, requires_grad=True)
            dy = torch.randn_like(x)
            spare = [torch.empty_like(x) for _ in range(4)]  # freed: blocks the backward can reuse
            del spare
            for fn in (lambda: tigon.rms_norm(x, w), lambda: tigon.layer_norm(x, w, w)):
                dx, dw = torch.autograd.grad(fn(), (x, w), dy)
                assert torch.isfinite(dx).all() and torch.isfinite(dw).all()
        logits = torch.randn(512, 32000, device="cuda", requires_grad=True)
        (g,) = torch.autograd.grad(tigon.cross_entropy(logits, torch.randint(0, 32000, (512,), device="cuda"),
                                                       reduction="none").sum(), logits)
        torch.cuda.synchronize()
        print("ok")
    """, tmp_path, TIGON_LOG="info")
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
    assert "invalid device context" not in result.stderr, result.stderr[-3000:]


# ---- tuning per vocabulary --------------------------------------------------------------

def test_cross_entropy_tunes_each_vocabulary_size_class_apart(tmp_path):
    """The best cross-entropy config depends on V, a run-time size: on an H200 the decision
    for 8192 x 32000 (8 per thread, 16 warps) ran 8192 x 128256 about 4% slower than its own
    (32 per thread, 32 warps) when both shared one tuning key (rows only)."""
    result = run_python("""
        import torch, tigon
        for v in (1000, 70000, 100000):
            logits = torch.randn(64, v, device="cuda", requires_grad=True)
            loss = tigon.cross_entropy(logits, torch.randint(0, v, (64,), device="cuda"))
            (g,) = torch.autograd.grad(loss, logits)
        torch.cuda.synchronize()
        print("ok")
    """, tmp_path, TIGON_LOG="info")
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
    tuned = [line for line in result.stderr.splitlines() if "tuned cross_entropy_fwd_bwd" in line]
    assert len(tuned) == 2, result.stderr[-3000:]  # 70000 and 100000 share a class
    assert "columns~1024" in tuned[0] and "columns~131072" in tuned[1], tuned
