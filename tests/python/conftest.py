import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tigon_bin():
    """The tigon command-line tool built by scripts/setup.sh."""
    path = pathlib.Path(os.environ.get("TIGON_BIN", ROOT / "build" / "tigon"))
    if not path.exists():
        pytest.fail(f"{path} is missing: build first (bash scripts/setup.sh)")
    return str(path)
