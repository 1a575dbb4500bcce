"""tigon under torchrun: tiny patched Llama and Qwen2-VL trained with DDP and FSDP2, checked
against a single-process run with the same global batch. One command:

    python tests/distributed/run.py                  # every GPU (NCCL), 20 steps, bf16
    python tests/distributed/run.py --cpu --steps 3  # 2 CPU processes (gloo, tigon's interpreter)

For each model, in a fresh shared cache directory: DDP (all ranks start on the empty cache at
once), then FSDP2, then one process. Checks, for every rank of every run:
  - it exits 0; the patch report replaced modules; the autograd graph of its first loss holds
    every tigon op the model should use (RMSNorm, RoPE, SwiGLU, fused linear cross-entropy;
    LayerNorm for the Qwen2-VL vision tower);
  - its loss after each step is the single run's within --tol (relative);
  - a DTensor input is refused with tigon's message (docs/distributed.md);
  - on GPUs (TIGON_LOG=info): the first run compiled kernels on every rank and no (kernel,
    config) twice on one rank; the later runs compiled nothing and every kernel loaded from
    the cache (so the cache the racing ranks wrote is valid); no cache warning anywhere.
Writes OUT/summary.json and the ranks' logs; exits 1 on any failure."""
import argparse
import collections
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
TRAIN = HERE / "train.py"
EXPECTED_OPS = {"llama": {"rms_norm_fwd", "rope", "swiglu_fwd", "fused_linear_cross_entropy_fwd"},
                "qwen2_vl": {"rms_norm_fwd", "rope", "swiglu_fwd", "fused_linear_cross_entropy_fwd", "layer_norm_fwd"}}
# NVLink multicast can take a shared host's GPUs out of service: keep it off in every rank
NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
COMPILED = re.compile(r"^\[tigon\] compiled (\S+) \((.*)\) for ")


def launch(model, mode, args, cache, out):
    """Runs one training job; returns (exit code, [per-rank result], [per-rank stderr text])."""
    env = dict(os.environ, TIGON_CACHE_DIR=str(cache), TIGON_LOG="info", **NO_MULTICAST)
    if args.cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    job = out / f"{model}-{mode}"
    shutil.rmtree(job, ignore_errors=True)
    job.mkdir(parents=True)
    train = [str(TRAIN), "--model", model, "--mode", mode, "--steps", str(args.steps), "--dtype", args.dtype,
             "--global-batch", str(args.global_batch), "--out", str(job / "result.json")]
    if mode == "single":
        with open(job / "stderr.log", "w") as err:
            rc = subprocess.run([sys.executable, *train], env=env, stderr=err).returncode
        results, logs = [job / "result.json"], [job / "stderr.log"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.nproc),
               "--log-dir", str(job / "logs"), "--redirects", "2", *train]
        rc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).returncode
        results = [job / f"result.rank{r}.json" for r in range(args.nproc)]
        logs = sorted(job.glob("logs/*/attempt_0/*/stderr.log"), key=lambda p: int(p.parent.name))
    ranks = [json.loads(p.read_text()) if p.exists() else None for p in results]
    return rc, ranks, [p.read_text() for p in logs]


def compiles(log: str) -> collections.Counter:
    return collections.Counter(m.groups() for m in map(COMPILED.match, log.splitlines()) if m)


def check_run(model, mode, rc, ranks, logs, reference, first, args) -> list:
    """The failures of one run, as sentences."""
    bad = []
    if rc != 0 or any(r is None for r in ranks):
        tail = "\n".join(log[-2000:] for log in logs)
        return [f"exit code {rc}, {sum(r is None for r in ranks)} ranks wrote no result; stderr tails:\n{tail}"]
    for r in ranks:
        who = f"rank {r['rank']}"
        if r["replaced"] == 0:
            bad.append(f"{who}: tigon.patch replaced nothing")
        missing = EXPECTED_OPS[model] - set(r["tigon_ops"])
        if missing:
            bad.append(f"{who}: tigon ops missing from the autograd graph: {sorted(missing)}")
        if mode != "single" and not r.get("dtensor", "").startswith("rms_norm: x is a DTensor"):
            bad.append(f"{who}: a DTensor was not refused with tigon's message: {r.get('dtensor')!r}")
        if reference is not None:
            for step, (a, b) in enumerate(zip(r["losses"], reference)):
                if not abs(a - b) <= args.tol * abs(b):
                    bad.append(f"{who}: step {step} loss {a:.6f} vs single {b:.6f} (tol {args.tol})")
                    break
    if not args.cpu:        # the interpreter compiles nothing: the cache checks need GPUs
        for r, log in zip(ranks, logs):
            counts = compiles(log)
            twice = [k for k, n in counts.items() if n > 1]
            if twice:
                bad.append(f"rank {r['rank']}: compiled more than once: {twice[:3]}")
            if first and not counts:
                bad.append(f"rank {r['rank']}: compiled nothing on an empty cache (no TIGON_LOG lines?)")
            if not first and counts:
                bad.append(f"rank {r['rank']}: compiled {sum(counts.values())} kernels on a warm cache")
            if not first and "[tigon] loaded " not in log:
                bad.append(f"rank {r['rank']}: loaded nothing from the cache")
            if "[tigon warning]" in log:
                warnings = [line for line in log.splitlines() if line.startswith("[tigon warning]")]
                bad.append(f"rank {r['rank']}: warnings: {warnings[:3]}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="gloo on CPU processes (tigon's interpreter)")
    ap.add_argument("--nproc", type=int, default=0, help="ranks (default: every GPU; 2 with --cpu)")
    ap.add_argument("--models", nargs="+", default=list(EXPECTED_OPS), choices=list(EXPECTED_OPS))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--global-batch", type=int, default=8)
    ap.add_argument("--dtype", choices=("bf16", "f32"), default="bf16")
    ap.add_argument("--tol", type=float, default=2e-2, help="relative loss tolerance against the single run")
    ap.add_argument("--out", default="build/distributed")
    args = ap.parse_args()
    if not args.nproc:
        if args.cpu:
            args.nproc = 2
        else:
            import torch
            args.nproc = torch.cuda.device_count()
            if args.nproc < 2:
                sys.exit(f"run.py needs 2 or more GPUs ({args.nproc} found); use --cpu for the gloo run")
    out = pathlib.Path(args.out).resolve()
    summary, failures = [], []
    for model in args.models:
        cache = out / f"cache-{model}"
        shutil.rmtree(cache, ignore_errors=True)
        runs = {}
        for mode in ("ddp", "fsdp2", "single"):
            runs[mode] = launch(model, mode, args, cache, out)
        single = runs["single"][1][0]
        reference = single["losses"] if single else None
        for i, mode in enumerate(("ddp", "fsdp2", "single")):
            rc, ranks, logs = runs[mode]
            bad = check_run(model, mode, rc, ranks, logs, reference if mode != "single" else None, i == 0, args)
            losses = ranks[0]["losses"] if ranks and ranks[0] else []
            worst = max((abs(a - b) / abs(b) for a, b in zip(losses, reference or [])), default=float("nan"))
            n_compiled = [sum(compiles(log).values()) for log in logs]
            summary.append({"model": model, "mode": mode, "ranks": len(ranks), "ok": not bad, "failures": bad,
                            "losses": losses, "max_rel_diff_vs_single": worst, "compiled_per_rank": n_compiled,
                            "tigon_ops": ranks[0]["tigon_ops"] if ranks and ranks[0] else {},
                            "dtensor": ranks[0].get("dtensor") if ranks and ranks[0] else None})
            failures += [f"{model} {mode}: {b}" for b in bad]
    device = "CPU (gloo, interpreter)" if args.cpu else "GPU (NCCL)"
    print(f"{device}, {args.nproc} ranks, {args.steps} steps, {args.dtype}, global batch {args.global_batch}")
    print(f"{'model':>9} {'mode':>6} {'ranks':>5} {'first loss':>10} {'last loss':>10} {'max rel diff':>12} "
          f"{'compiled per rank':>18}  result")
    for s in summary:
        first, last = (f"{s['losses'][0]:.5f}", f"{s['losses'][-1]:.5f}") if s["losses"] else ("-", "-")
        print(f"{s['model']:>9} {s['mode']:>6} {s['ranks']:>5} {first:>10} {last:>10} "
              f"{s['max_rel_diff_vs_single']:>12.2e} {str(s['compiled_per_rank']):>18}  {'ok' if s['ok'] else 'FAIL'}")
    if summary and summary[0]["dtensor"]:
        print(f"DTensor input: {summary[0]['dtensor']}")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if failures:
        print("\nFAIL:\n" + "\n".join(failures))
        sys.exit(1)
    print("\nOK: every rank used tigon, matched the single run and shared the cache")


if __name__ == "__main__":
    main()
