"""The benchmark: every op, forward and forward+backward, for tigon and its peers measured in
the same run (torch eager in the Hugging Face style, torch.compile of it, the native
torch.nn.functional op where one exists, Liger-Kernel), on one GPU.

For each op and shape it reports the median time, GB/s over the fewest bytes the op must
move (each input read once, each output written once) and that as a percent of the device's
measured copy bandwidth. Writes <out>/<device>-<date>.json, <out>/benchmarks.md (the table
for docs/benchmarks.md) and PNG plots.

    python bench/bench.py --out /tmp/bench            # everything (about 5 minutes on an H200)
    python bench/bench.py --ops rms_norm --quick      # a smoke run
"""
import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

import torch
import triton
import triton.testing

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "bench"))
import tigon  # noqa: E402
from ops_registry import OPS  # noqa: E402

try:
    sys.path.insert(0, str(ROOT / ".peers" / "src"))
    import liger_kernel  # noqa: F401
    HAVE_LIGER = True
except Exception as e:  # the peer is optional: a missing checkout drops its column
    print(f"Liger-Kernel not available ({e}); its column is left out", file=sys.stderr)
    HAVE_LIGER = False


def copy_bandwidth():
    """A 2 GiB device-to-device copy; bytes read plus bytes written, in GB/s."""
    src = torch.empty(2 << 30, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    ms = triton.testing.do_bench(lambda: dst.copy_(src), warmup=50, rep=300, return_mode="median")
    del src, dst
    torch.cuda.empty_cache()
    return 2 * (2 << 30) / (ms * 1e-3) / 1e9


def time_ms(fn, graph):
    """Median device time of one call: from a CUDA graph of many calls, so the host's launch
    cost (reported apart) does not hide the kernels' speed. Where graph capture is not possible
    (ops that sync with the host; `graph` false), or fails, plain do_bench, which includes the
    host's time. Returns (ms, how: "graph", "do_bench" or "do_bench, capture failed")."""
    how = "do_bench"
    if graph:
        try:
            with torch.cuda.stream(torch.cuda.Stream()):
                return triton.testing.do_bench_cudagraph(fn, rep=100, return_mode="median"), "graph"
        except Exception:  # a peer that cannot be captured is timed with its host time
            torch.cuda.synchronize()
            how = "do_bench, capture failed"
    return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median"), how


def cloned(out):
    """Tensors in nested tuples and lists, copied."""
    if isinstance(out, torch.Tensor):
        return out.clone()
    return type(out)(cloned(o) for o in out) if isinstance(out, (tuple, list)) else out


def run_case(op, shape, mode, dtype, copy_gbs, impls):
    """Times every implementation of one op at one shape; returns rows of results."""
    rows = []
    case = op.make(shape, dtype)
    nbytes = op.bytes(case, mode)
    reference = None
    for name, fn in impls.items():
        try:
            runner = op.runner(fn, case, mode)
            # first call: compiles, autotunes; also checks the result. Cloned: Liger writes its
            # gradients into the upstream gradient's memory, which the next call reuses
            out = cloned(runner())
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            runner()
            torch.cuda.synchronize()
            peak_gib = (torch.cuda.max_memory_allocated() - base) / 2**30
            if reference is None:
                reference = out
                ok = True
            else:
                ok = op.agrees(out, reference, dtype)
            ms, timing = time_ms(runner, graph=op.graphed)
            # forward+backward also with the host's time: autograd and launch costs, which bound
            # the small shapes
            ms_host = time_ms(runner, graph=False)[0] if mode != "fwd" and timing == "graph" else None
            gbs = nbytes / (ms * 1e-3) / 1e9
            rows.append(dict(op=op.name, mode=mode, shape=op.label(shape), dtype=str(dtype).replace("torch.", ""),
                             impl=name, ms=ms, timing=timing, ms_with_host=ms_host, gbs=gbs,
                             pct_copy=100 * gbs / copy_gbs, bytes=nbytes, agrees=ok, peak_extra_gib=peak_gib))
            del out
        except Exception as e:  # one failing peer must not stop the run
            rows.append(dict(op=op.name, mode=mode, shape=op.label(shape), dtype=str(dtype).replace("torch.", ""),
                             impl=name, error=f"{type(e).__name__}: {str(e)[:200]}"))
        torch.cuda.empty_cache()
    return rows


def overheads():
    """Compile, first-call and per-call costs, each in a fresh process with its own cache."""
    code = r"""
import os, sys, time, torch
sys.path.insert(0, os.environ["TIGON_PY"])
import tigon
x = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
torch.cuda.synchronize()
t0 = time.perf_counter(); tigon.rms_norm(x, w); torch.cuda.synchronize()
first = (time.perf_counter() - t0) * 1e3
xs, ws = torch.randn(1, 128, device="cuda"), torch.randn(128, device="cuda")
tigon.rms_norm(xs, ws); torch.cuda.synchronize()
def per_call(f, n=2000):
    f(); torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(n): f()
    torch.cuda.synchronize(); return (time.perf_counter() - t0) / n * 1e6
res = {"first_call_ms": first, "tigon_us": per_call(lambda: tigon.rms_norm(xs, ws)),
       "torch_us": per_call(lambda: torch.nn.functional.rms_norm(xs, (128,), ws, 1e-6))}
try:
    sys.path.insert(0, os.environ["LIGER_PY"])
    from liger_kernel.ops.rms_norm import LigerRMSNormFunction
    res["liger_us"] = per_call(lambda: LigerRMSNormFunction.apply(xs, ws, 1e-6))
except Exception as e:
    res["liger_us"] = None
print("RESULT", res)
"""
    import tempfile
    cache = tempfile.mkdtemp() + "/cache"
    env = dict(os.environ, TIGON_CACHE_DIR=cache, TIGON_LOG="info", TIGON_PY=str(ROOT / "python"),
               LIGER_PY=str(ROOT / ".peers" / "src"))
    out = {}
    for label in ("cold", "warm"):
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        result = [line for line in p.stdout.splitlines() if line.startswith("RESULT")]
        if not result:
            out[label] = {"error": p.stderr[-500:]}
            continue
        out[label] = eval(result[0][len("RESULT "):])  # our own dict literal
        compiled = [float(line.split(" in ")[-1].split()[0]) for line in p.stderr.splitlines()
                    if "] compiled " in line]
        tuned = [line for line in p.stderr.splitlines() if "] tuned " in line]
        out[label]["kernels_compiled"] = len(compiled)
        out[label]["median_compile_ms"] = sorted(compiled)[len(compiled) // 2] if compiled else None
        out[label]["tuned"] = [t.split("] ", 1)[1] for t in tuned]
    return out


def markdown(results, device, copy_gbs, meta, over):
    lines = [f"# Benchmarks", "",
             f"Produced by `bench/bench.py` on {meta['date']}, {device}; torch {meta['torch']}, "
             f"triton {meta['triton']}, Liger-Kernel {meta['liger']}, tigon {meta['tigon']}.", "",
             f"Measured device copy bandwidth: **{copy_gbs:.0f} GB/s** (2 GiB device-to-device copy, "
             f"bytes read + written). GB/s below count the fewest bytes each op must move; % is of "
             f"that copy bandwidth. Times are medians of device time from CUDA-graph replays "
             f"(triton.testing.do_bench_cudagraph), forward and forward+backward alike; the "
             f"cross-entropy ops, which may sync with the host, and any call that cannot be "
             f"captured (marked †) are timed with triton.testing.do_bench, host time included. "
             f"Forward+backward cells also give the time with the host's work (do_bench: autograd, "
             f"allocations, launches), which bounds the small shapes.", ""]
    by_case = {}
    for r in results:
        by_case.setdefault((r["op"], r["mode"], r["dtype"]), []).append(r)
    for (op, mode, dtype), rows in by_case.items():
        impls = list(dict.fromkeys(r["impl"] for r in rows))
        shapes = list(dict.fromkeys(r["shape"] for r in rows))
        lines += [f"## {op} {mode} ({dtype})", "",
                  "| shape | " + " | ".join(impls) + " |", "|---|" + "---|" * len(impls)]
        for s in shapes:
            cells = []
            for i in impls:
                r = next((r for r in rows if r["shape"] == s and r["impl"] == i), None)
                if r is None or "error" in r:
                    cells.append("error" if r else "")
                else:
                    flag = "" if r["agrees"] else " (differs!)"
                    flag += " †" if r.get("timing") == "do_bench, capture failed" else ""
                    host = f"; {r['ms_with_host']*1e3:.0f} µs with host" if r.get("ms_with_host") else ""
                    if r["bytes"]:
                        cells.append(f"{r['ms']*1e3:.1f} µs, {r['gbs']:.0f} GB/s ({r['pct_copy']:.0f}%){host}{flag}")
                    else:
                        cells.append(f"{r['ms']:.2f} ms, peak +{r['peak_extra_gib']:.2f} GiB{flag}")
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        lines.append("")
    if over:
        lines += ["## Compile and call overheads", "",
                  "| | cold cache | warm cache |", "|---|---|---|"]
        c, w = over.get("cold", {}), over.get("warm", {})
        lines.append(f"| first call of rms_norm bf16 4096×4096 (compile + autotune or load) | "
                     f"{c.get('first_call_ms', float('nan')):.1f} ms | {w.get('first_call_ms', float('nan')):.1f} ms |")
        lines.append(f"| kernels compiled / median compile (source → loaded cubin) | {c.get('kernels_compiled')} / "
                     f"{c.get('median_compile_ms')} ms | {w.get('kernels_compiled')} |")
        lines.append(f"| host time per call, 1×128 f32: tigon / torch / Liger | "
                     f"{c.get('tigon_us', 0):.1f} / {c.get('torch_us', 0):.1f} / {c.get('liger_us') or 0:.1f} µs | "
                     f"{w.get('tigon_us', 0):.1f} µs |")
        lines.append("")
    errors = [r for r in results if "error" in r]
    if errors:
        lines += ["## Errors", ""] + [f"- {r['op']} {r['mode']} {r['shape']} {r['impl']}: {r['error']}" for r in errors] + [""]
    return "\n".join(lines)


def plots(results, outdir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    outdir.mkdir(parents=True, exist_ok=True)
    by_case = {}
    for r in results:
        if "error" not in r:
            by_case.setdefault((r["op"], r["mode"], r["dtype"]), []).append(r)
    files = []
    for (op, mode, dtype), rows in by_case.items():
        if len({r["shape"] for r in rows}) < 2:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for impl in dict.fromkeys(r["impl"] for r in rows):
            pts = [(r["shape"], r["gbs"]) for r in rows if r["impl"] == impl]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=impl)
        ax.set_title(f"{op} {mode} ({dtype})")
        ax.set_ylabel("GB/s")
        ax.set_xlabel("shape")
        ax.tick_params(axis="x", rotation=30)
        ax.legend()
        fig.tight_layout()
        f = outdir / f"{op}_{mode.replace('+', '_')}_{dtype}.png"
        fig.savefig(f, dpi=80)
        plt.close(fig)
        files.append(f.name)
    return files


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--quick", action="store_true", help="one shape per op")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--from-json", nargs="+", metavar="RESULTS",
                    help="no measuring: rebuild the table and plots from the JSON of earlier runs (one device)")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        runs = [json.loads(pathlib.Path(f).read_text()) for f in args.from_json]
        meta, results, over = runs[0]["meta"], [r for run in runs for r in run["results"]], {}
        for run in runs:
            over = run.get("overheads") or over
        (out / "benchmarks.md").write_text(markdown(results, meta["device"], meta["copy_gbs"], meta, over))
        print("plots:", plots(results, out / "img"))
        return
    torch.manual_seed(0)
    device = torch.cuda.get_device_name()
    copy_gbs = copy_bandwidth()
    print(f"{device}: copy {copy_gbs:.0f} GB/s", flush=True)
    liger_rev = "not available"
    if HAVE_LIGER:
        rev = ROOT / ".peers" / "REVISION"
        liger_rev = rev.read_text().strip() if rev.exists() else "checkout"
    meta = dict(date=datetime.date.today().isoformat(), device=device, torch=torch.__version__,
                triton=triton.__version__, tigon=tigon.__version__, liger=liger_rev, copy_gbs=copy_gbs)
    stem = f"{device.replace(' ', '-')}-{meta['date']}"

    def write(results, over):  # after every op, so a cut-short run still leaves its numbers
        (out / f"{stem}.json").write_text(json.dumps(dict(meta=meta, results=results, overheads=over), indent=1))
        (out / "benchmarks.md").write_text(markdown(results, device, copy_gbs, meta, over))

    results = []
    for name in args.ops.split(","):
        op = OPS[name]
        for dtype in op.dtypes:
            for shape in (op.shapes[:1] if args.quick else op.shapes):
                for mode in op.modes:
                    impls = op.impls(HAVE_LIGER)
                    rows = run_case(op, shape, mode, dtype, copy_gbs, impls)
                    results += rows
                    for r in rows:
                        msg = r.get("error") or f"{r['ms']*1e3:9.1f} us {r['gbs']:7.0f} GB/s {r['pct_copy']:5.1f}%" \
                            f" peak+{r['peak_extra_gib']:.2f}GiB" + ("" if r["agrees"] else "  DIFFERS")
                        print(f"{r['op']:<12} {r['mode']:<8} {r['dtype']:<9} {r['shape']:<28} {r['impl']:<14} {msg}",
                              flush=True)
        write(results, {})
    over = overheads() if not args.quick else {}
    print("overheads", over, flush=True)
    write(results, over)
    print("plots:", plots(results, out / "img"))


if __name__ == "__main__":
    main()
