"""Finds and loads the op library (libtigon_torch.so), which registers torch.ops.tigon.*."""
import os
import pathlib

import torch

_HERE = pathlib.Path(__file__).resolve().parent
_NAME = "libtigon_torch.so"


def _candidates():
    env = os.environ.get("TIGON_LIBRARY_DIR")
    if env:
        yield pathlib.Path(env)
    yield _HERE / "_lib"                      # installed with pip
    yield _HERE.parents[1] / "build"          # a source checkout built with scripts/setup.sh


def library_dir() -> pathlib.Path:
    """The folder holding libtigon.so, libtigon_torch.so and the tigon tool."""
    for d in _candidates():
        if (d / _NAME).exists():
            return d
    searched = ", ".join(str(d) for d in _candidates())
    raise ImportError(f"tigon: {_NAME} not found (searched {searched}); build it with "
                      "`bash scripts/setup.sh` or set TIGON_LIBRARY_DIR")


def load():
    torch.ops.load_library(str(library_dir() / _NAME))
