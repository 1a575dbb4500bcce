import os
import pathlib

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tigon_bin():
    """The tigon command-line tool built by scripts/setup.sh."""
    default = pathlib.Path(os.environ.get("TIGON_LIBRARY_DIR", ROOT / "build")) / "tigon"
    path = pathlib.Path(os.environ.get("TIGON_BIN", default))
    if not path.exists():
        pytest.fail(f"{path} is missing: build first (bash scripts/setup.sh)")
    return str(path)


# Every op test runs on the CPU (the interpreter) and, where there is one, on the GPU; the
# GPU cases skip with a reason on machines without CUDA.
DEVICES = [pytest.param("cpu"),
           pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"))]


@pytest.fixture(autouse=True)
def unpatched():
    """Whatever a test patches is undone after it (tests that never patch are unaffected)."""
    yield
    import tigon
    tigon.unpatch()


def rel(a, b):
    """||a - b|| / ||b|| in float64."""
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()
