"""The tigon command line, as a user runs it."""
import pathlib
import subprocess

from conftest import ROOT

RMS = str(ROOT / "kernels_src" / "rms_norm.tile")


def run(tigon_bin, *args, **kw):
    return subprocess.run([tigon_bin, *args], capture_output=True, text=True, timeout=120, **kw)


def test_check_builtin_kernels(tigon_bin):
    files = sorted(str(p) for p in (ROOT / "kernels_src").glob("*.tile"))
    assert files
    r = run(tigon_bin, "check", *files)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_check_reports_every_error_with_position(tigon_bin, tmp_path):
    bad = tmp_path / "bad.tile"
    bad.write_text("kernel k<N: const>(x: f32[M, N]) grid M {\n    let a = foo;\n    let b = bar;\n}\n")
    r = run(tigon_bin, "check", str(bad))
    assert r.returncode == 1
    assert f"{bad}:2:13: error: unknown name 'foo'" in r.stderr
    assert f"{bad}:3:13: error: unknown name 'bar'" in r.stderr
    assert "            ^" in r.stderr


def test_emit_ir_is_specialized(tigon_bin):
    r = run(tigon_bin, "compile", RMS, "--kernel", "rms_norm_fwd", "-D", "N=1000", "--dtype", "T=bf16",
            "-D", "ROWS=2", "--emit", "ir")
    assert r.returncode == 0, r.stderr
    assert "x: bf16[M, 1000]" in r.stdout
    assert "load x" in r.stdout and "reduce sum axis=1" in r.stdout
    assert "ROWS=2" in r.stdout


def test_emit_ast(tigon_bin):
    r = run(tigon_bin, "compile", RMS, "--emit", "ast")
    assert r.returncode == 0, r.stderr
    assert "kernel rms_norm_fwd" in r.stdout and "generic ROWS: tune[1, 2, 4, 8]" in r.stdout


def test_missing_const_is_an_error(tigon_bin):
    r = run(tigon_bin, "compile", RMS, "--kernel", "rms_norm_fwd", "--emit", "ir")
    assert r.returncode == 1
    assert "N is a const parameter of 'rms_norm_fwd'" in r.stderr


def test_unknown_kernel_lists_kernels(tigon_bin):
    r = run(tigon_bin, "compile", RMS, "--kernel", "nope", "-D", "N=8", "--emit", "ir")
    assert r.returncode == 1
    assert "no kernel 'nope'" in r.stderr and "rms_norm_fwd" in r.stderr


def test_usage_errors_exit_2(tigon_bin):
    assert run(tigon_bin, "frobnicate").returncode == 2
    assert run(tigon_bin, "compile", RMS, "--emit", "sass").returncode == 2
    assert run(tigon_bin, "ptx", "rms_norm").returncode == 2
    r = run(tigon_bin, "ptx", "no_such_op", "--hidden", "8", "--arch", "sm_90")
    assert r.returncode == 1 and "unknown op 'no_such_op'" in r.stderr


def test_list(tigon_bin):
    r = run(tigon_bin, "list")
    assert r.returncode == 0
    assert "rms_norm" in r.stdout


def test_ptx_of_cross_entropy_sees_rows_as_chunks_that_divide_the_vocabulary(tigon_bin):
    """--hidden is the vocabulary: W, the forward kernels' chunk width, follows from it and the
    dtype (16 bytes where V allows; 1 for an odd V), and a 16-byte chunk loads as one v4."""
    for v, dtype, w in (("128256", "bf16", 8), ("128256", "f32", 4), ("50257", "bf16", 1), ("30522", "bf16", 2)):
        r = run(tigon_bin, "ptx", "cross_entropy", "--hidden", v, "--dtype", dtype, "--arch", "sm_90", "--emit", "ir")
        assert r.returncode == 0, r.stderr
        assert f"W={w} " in r.stdout and f"[BT, VC, {w}]" in r.stdout, r.stdout[:400]
    r = run(tigon_bin, "ptx", "cross_entropy", "--hidden", "128256", "--dtype", "bf16", "--arch", "sm_90",
            "--backward")
    assert r.returncode == 0, r.stderr
    assert "ld.global.v4" in r.stdout or "ld.global.nc.v4" in r.stdout


def test_ptx_of_rope_binds_hidden_to_rotary_width_and_head_dim(tigon_bin):
    """--hidden binds both R and D (a full rotary) and the head counts default to 32 and 8;
    -D overrides any of them (a partial rotary, Qwen2-VL-7B's 28 and 4 heads)."""
    r = run(tigon_bin, "ptx", "rope", "--hidden", "128", "--dtype", "bf16", "--arch", "sm_90", "--emit", "ir")
    assert r.returncode == 0, r.stderr
    assert "D=128 " in r.stdout and "HK=8 " in r.stdout and "HQ=32 " in r.stdout and "R=128 " in r.stdout, r.stdout[:400]
    r = run(tigon_bin, "ptx", "rope", "--hidden", "128", "-D", "R=64", "-D", "HQ=28", "-D", "HK=4", "--dtype", "bf16",
            "--arch", "sm_90", "--emit", "ir")
    assert r.returncode == 0, r.stderr
    assert "D=128 " in r.stdout and "HK=4 " in r.stdout and "HQ=28 " in r.stdout and "R=64 " in r.stdout, r.stdout[:400]
