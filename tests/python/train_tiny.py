"""30 AdamW steps of each tiny model on the GPU, in bfloat16: unpatched, patched with
tigon.patch (an instance) and with tigon.apply (before the model is built), from the same
initial weights and the same batches. Prints the three loss curves side by side, the largest
relative loss difference of each step, and the peak memory of each run; exits 1 if a patched
loss leaves the tolerance at any step.

    python tests/python/train_tiny.py                       # all models, 30 steps, tol 5e-2
    python tests/python/train_tiny.py llama qwen2_vl --steps 50 --tol 0.03
    python tests/python/train_tiny.py --big                 # vocab 32000, seq 256, hidden 256:
                                                            # the fused loss's memory saving shows
    python tests/python/train_tiny.py --autocast            # float32 weights, bf16 autocast
    python tests/python/train_tiny.py --device cpu --steps 3   # a smoke run of the script itself

The tolerance is on |patched - reference| / |reference| per step. Both runs start from the
same weights, but bf16 rounding differs (tigon rounds once where transformers rounds after
each op), and 30 steps of AdamW carry those differences forward, so expect ~1e-3..1e-2."""
import argparse
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import tiny_models as tm  # noqa: E402

import tigon  # noqa: E402

WAYS = ("ref", "patch", "apply")


def batches(name, n, device, dtype):
    return [tm.inputs(name, seed=100 + i, device=device, dtype=dtype) for i in range(n)]


def train(name, way, init, data, args):
    tigon.unpatch()
    if way == "apply":
        tigon.apply(name)
    model = tm.build(name, device=args.device, dtype=torch.float32 if args.autocast else torch.bfloat16,
                     attn=args.attn)
    model.load_state_dict(init)
    if way == "patch":
        tigon.patch(model)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated() if cuda else 0
    losses = []
    for step in range(args.steps):
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.autocast):
            loss = model(**data[step % len(data)]).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    peak = 0
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    tigon.unpatch()
    del model, opt
    if cuda:
        torch.cuda.empty_cache()
    return losses, peak, peak - base


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=list(tm.MODELS))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--tol", type=float, default=5e-2)
    ap.add_argument("--batches", type=int, default=4, help="distinct batches, cycled")
    ap.add_argument("--big", action="store_true", help="vocab 32000, 256 tokens, hidden 256, batch 4")
    ap.add_argument("--autocast", action="store_true", help="float32 weights under bf16 autocast")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--device", default="cuda", help="cuda (the real run) or cpu (a smoke test; no memory figures)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("train_tiny.py needs a CUDA GPU (or --device cpu for a smoke run)")
    if args.big:
        tm.VOCAB, tm.SEQ, tm.HIDDEN, tm.BATCH = 32000, 256, 256, 4
    dtype = torch.float32 if args.autocast else torch.bfloat16
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "CPU (interpreter)"
    print(f"torch {torch.__version__}, tigon {tigon.__version__}, {gpu}, "
          f"{'autocast bf16' if args.autocast else 'bf16 weights'}, {args.steps} steps, lr {args.lr}, tol {args.tol}")
    failed = []
    summary = []
    for name in args.models:
        init = {k: v.detach().clone() for k, v in tm.build(name, device=args.device, dtype=dtype).state_dict().items()}
        data = batches(name, args.batches, args.device, dtype)
        runs = {way: train(name, way, init, data, args) for way in WAYS}
        ref = runs["ref"][0]
        print(f"\n== {name}")
        print(f"{'step':>4} {'ref':>10} {'patch':>10} {'apply':>10} {'max rel diff':>13}")
        worst = 0.0
        for i in range(args.steps):
            vals = [runs[w][0][i] for w in WAYS]
            d = max(abs(v - ref[i]) / max(abs(ref[i]), 1e-12) for v in vals[1:])
            worst = max(worst, d)
            flag = "  <-- out of tolerance" if d > args.tol or any(v != v for v in vals) else ""
            print(f"{i:>4} {vals[0]:>10.5f} {vals[1]:>10.5f} {vals[2]:>10.5f} {d:>13.2e}{flag}")
            if flag:
                failed.append((name, i))
        mem = "  ".join(f"{w} {runs[w][1] / 2**20:8.1f} MiB (+{runs[w][2] / 2**20:.1f} in training)" for w in WAYS)
        print(f"peak memory: {mem}")
        summary.append((name, worst, *(runs[w][1] for w in WAYS)))
    print("\n== summary")
    print(f"{'model':>11} {'max rel diff':>13} " + " ".join(f"{'peak ' + w + ' MiB':>16}" for w in WAYS))
    for name, worst, *peaks in summary:
        print(f"{name:>11} {worst:>13.2e} " + " ".join(f"{p / 2**20:>16.1f}" for p in peaks))
    if failed:
        print(f"\nFAIL: {len(failed)} steps out of tolerance {args.tol}: {failed[:10]}")
        sys.exit(1)
    print("\nOK: every patched loss within tolerance")


if __name__ == "__main__":
    main()
