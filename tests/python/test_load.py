"""tigon.load: user kernels from .tile files, called with tensors and scalars."""
import pytest
import torch

import tigon

AXPY = """
kernel axpy<T: float, BLOCK: tune[256, 1024]>(x: T[N], y: T[N], a: f32, z: out T[N])
grid cdiv(N, BLOCK)
{
    let i = program_id() * BLOCK + iota(BLOCK);
    z[i] = T(a * f32(x[i]) + f32(y[i]));
}

kernel scale_rows<C: const>(x: f32[R, C], s: f32[R], y: out f32[R, C]) grid R {
    let r = program_id();
    let c = iota(C);
    y[r, c] = x[r, c] * s[r];
}
"""


@pytest.fixture
def mod(tmp_path):
    p = tmp_path / "axpy.tile"
    p.write_text(AXPY)
    return tigon.load(p)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_call_binds_dtypes_and_sizes(mod, dtype):
    x, y = torch.randn(1000).to(dtype), torch.randn(1000).to(dtype)
    z = torch.full((1000,), float("nan"), dtype=dtype)
    out = mod.axpy(x, y, 2.5, z)
    assert out is z
    ref = (2.5 * x.float() + y.float()).to(dtype)
    assert torch.equal(z, ref)


def test_keywords_const_from_shapes_and_tune_values(mod):
    x, s = torch.randn(5, 33), torch.randn(5)
    y = torch.empty(5, 33)
    mod.scale_rows(x=x, s=s, y=y)
    assert torch.allclose(y, x * s[:, None])
    z = torch.empty(7)
    mod.axpy(torch.ones(7), torch.ones(7), 1.0, z, BLOCK=1024)
    assert torch.equal(z, torch.full((7,), 2.0))


def test_argument_errors(mod):
    x = torch.randn(8)
    with pytest.raises(TypeError, match="argument 'a' must be a float"):
        mod.axpy(x, x, "2", torch.empty(8))
    with pytest.raises(TypeError, match="missing argument 'z'"):
        mod.axpy(x, x, 2.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'b'"):
        mod.axpy(x, x, 2.0, torch.empty(8), b=1)
    with pytest.raises(ValueError, match="must have 1 dimensions, got 2"):
        mod.axpy(x.view(2, 4), x, 2.0, torch.empty(8))
    with pytest.raises(RuntimeError, match="BLOCK=3 is not in its tune list"):
        mod.axpy(x, x, 2.0, torch.empty(8), BLOCK=3)
    with pytest.raises(ValueError, match="C=4 but an earlier argument gave C=3"):
        mod.scale_rows(torch.randn(2, 3), torch.randn(2), torch.empty(2, 4))
    with pytest.raises(RuntimeError, match="expected f32 tensor, got bf16"):
        mod.scale_rows(torch.randn(2, 3).bfloat16(), torch.randn(2), torch.empty(2, 3))
    with pytest.raises(AttributeError, match="no kernel 'nope'"):
        mod.nope


def test_errors_in_the_file_carry_positions(tmp_path):
    p = tmp_path / "bad.tile"
    p.write_text("kernel k(x: f32[N]) grid 1 {\n    let a = foo;\n    let b = bar;\n}\n")
    with pytest.raises(tigon.TileError) as e:
        tigon.load(p)
    msg = str(e.value)
    assert f"{p}:2:13: error: unknown name 'foo'" in msg
    assert f"{p}:3:13: error: unknown name 'bar'" in msg
