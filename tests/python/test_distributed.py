"""tests/distributed/run.py on 2 CPU processes (gloo, tigon's interpreter): DDP and FSDP2 of a
tiny patched Llama and Qwen2-VL match a single process, every rank runs tigon's ops, and a
DTensor input is refused with tigon's message. The GPU run (NCCL, the shared kernel cache)
is scripts/gpu-check.sh on a machine of 2 or more GPUs."""
import json
import os
import subprocess
import sys

import torch.distributed as dist
import pytest

from conftest import ROOT


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch without gloo")
def test_ddp_and_fsdp2_match_a_single_process(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, str(ROOT / "tests/distributed/run.py"), "--cpu", "--steps", "3",
                          "--global-batch", "4", "--tol", "1e-3", "--out", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {(s["model"], s["mode"]) for s in summary} == {(m, k) for m in ("llama", "qwen2_vl")
                                                           for k in ("ddp", "fsdp2", "single")}
    for s in summary:
        assert s["ok"] and len(s["losses"]) == 3
        assert s["ranks"] == (1 if s["mode"] == "single" else 2)
        if s["mode"] != "single":
            assert "is a DTensor" in s["dtensor"]
