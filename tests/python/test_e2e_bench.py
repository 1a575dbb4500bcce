"""bench/e2e.py --tiny: every model, one warm-up and one timed step of each setup that runs
on the CPU, each in its own process; the JSON has the fields the report reads, finite
losses, and tigon's losses agree with the unpatched run's."""
import json
import math
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
E2E = ROOT / "bench" / "e2e.py"


def run_tiny(model, out):
    subprocess.run([sys.executable, str(E2E), "--tiny", "--model", model, "--steps", "1", "--warmup", "1",
                    "--out", str(out)], check=True, timeout=120)
    (result,) = out.glob("e2e-*.json")
    return json.loads(result.read_text())


@pytest.mark.parametrize("model", ["llama", "qwen2_vl", "vit"])
def test_tiny_run(model, tmp_path):
    doc = run_tiny(model, tmp_path)
    assert {"date", "device", "torch", "transformers", "tigon", "liger"} <= set(doc["meta"])
    entry = doc["models"][model]
    assert entry["batch"] == 2 and entry["steps"] == 1 and entry["warmup"] == 1
    setups = entry["setups"]
    assert set(setups) == {"unpatched", "tigon", "liger", "compile"}
    for setup in ("unpatched", "tigon"):
        res = setups[setup]
        assert "error" not in res, res["error"]
        assert res["first_step_s"] > 0 and res["throughput"] > 0 and res["step_s"] > 0
        assert len(res["losses"]) == 2 and all(math.isfinite(x) for x in res["losses"])
    assert setups["tigon"]["loss_agrees"], setups["tigon"]["loss_max_rel_diff"]
    assert setups["tigon"]["patch"].startswith("tigon.patch(")
    for setup in ("liger", "compile"):
        assert setups[setup]["skipped"].startswith(("skipped:", "unsupported:"))


def test_report(tmp_path):
    """--report merges runs, puts the table between its markers (replacing it on a rerun) and
    draws the chart."""
    pytest.importorskip("matplotlib")
    docs = [{"meta": {"date": "2026-01-01", "device": "CPU", "torch": "t", "transformers": "x", "triton": "y",
                      "tigon": "z", "liger": "l"},
             "models": {name: {"title": name, "unit": "tokens", "steps": 1, "warmup": 1, "batch": 2,
                               "batch_from": "fixed", "setups": {
                                   "unpatched": {"throughput": 10.0 * i, "losses": [1.0, 0.5], "first_step_s": 1.0},
                                   "tigon": {"throughput": 12.0 * i, "losses": [1.0, 0.5], "loss_max_rel_diff": 0.0,
                                             "loss_agrees": True, "first_step_s": 2.0, "first_step_warm_s": 0.1},
                                   "liger": {"skipped": "unsupported: none"}}}}}
            for i, name in enumerate(("llama", "vit"), 1)]
    files = []
    for i, d in enumerate(docs):
        files.append(tmp_path / f"run{i}.json")
        files[-1].write_text(json.dumps(d))
    doc_md = tmp_path / "benchmarks.md"
    doc_md.write_text("# Benchmarks\n\ntext\n\n## Plots\n\nmore\n")
    args = [sys.executable, str(E2E), "--report", *map(str, files), "--out", str(tmp_path / "results"),
            "--doc", str(doc_md), "--img", str(tmp_path / "img" / "e2e.png")]
    for _ in range(2):
        subprocess.run(args, check=True, timeout=120)
    text = doc_md.read_text()
    assert text.count("## End-to-end training") == 1 and text.index("End-to-end") < text.index("## Plots")
    assert "| tigon | 12 (+20.0%) |" in text and "### llama" in text and "### vit" in text
    assert (tmp_path / "img" / "e2e.png").stat().st_size > 0
    merged = json.loads((tmp_path / "results" / "e2e-CPU-2026-01-01.json").read_text())
    assert set(merged["models"]) == {"llama", "vit"}
