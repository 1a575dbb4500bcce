"""The end-to-end training benchmark: bf16 training steps (AdamW, sdpa attention, one GPU) of
three models built from local configs with random weights, in four setups: unpatched
transformers, tigon.patch(model), Liger-Kernel's instance patch (where it has one for the
model) and torch.compile of the unpatched model.

    python bench/e2e.py --model llama --out DIR    # GPU: writes DIR/e2e-<device>-<date>.json
    python bench/e2e.py --report A.json B.json     # merge runs; table into docs/benchmarks.md,
                                                   # chart docs/img/e2e.png, JSON to bench/results
    python bench/e2e.py --tiny --out DIR           # tiny models on the CPU (tigon's interpreter)

Models: a Llama-3.2-1B-sized decoder at sequence 4096; a Qwen2-VL-2B-sized model, each sample
one 448x448 image (256 merged tokens) in 1024 tokens; a ViT-L/16-sized classifier at 224x224.
Every setup runs in its own process, from the same initial weights (seed 0) and the same
batches (N_DATA of them, cycled, so the loss falls as the model learns them), at one batch
size per model: ViT's 256, for the others the largest that fits unpatched (found first, in a
process of its own). A process reports: the time of its first step (compile and autotune
included, all caches empty), tokens or images per second over --steps timed steps after
--warmup steps (the first one included), peak memory over those steps, every step's loss,
and the largest batch that fits it: peak memory at two batch sizes extrapolated to MARGIN of
the card, verified by one real step, stepped down on OOM, capped per model; then a few steps
timed at that batch. For tigon a second process measures the first step on the filled cache.
Losses of every setup are compared step by step with the unpatched run (LOSS_TOL).

Each process gets what is left of --budget (default 540 s), so one invocation ends within ten
minutes; what did not fit is reported as not run. Estimated (not yet measured) on an H200: vit
about 3 minutes for all four setups; llama and qwen2_vl about 4-5 minutes without
torch.compile, and 3-5 minutes for torch.compile alone (a cold compile, then a recompile when
the batch search changes the batch size). So split those two over two calls,
`--setups unpatched,tigon,liger` and then `--setups compile --batch B` with the batch the
first call found; --report merges the calls setup by setup.

On the CPU (--tiny) the GPU-only parts are left out: Liger-Kernel and torch.compile (skipped,
with the reason, unless named in --setups), the batch search and the warm-cache process."""
import argparse
import collections
import datetime
import gc
import json
import math
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIGER_SRC = ROOT / ".peers" / "src"
SETUPS = {"unpatched": "unpatched", "tigon": "tigon", "liger": "Liger-Kernel", "compile": "torch.compile"}
LR = 1e-4
N_DATA = 4              # distinct batches, cycled
N_TOKENS, N_LABELS = 1000, 10   # text and labels drawn from the first ids / classes only, so that
                                # the loss falls visibly as the model learns which occur
LOSS_TOL = 2e-2         # largest relative loss difference from the unpatched run, any step
MARGIN = 0.95           # of the card's memory, for the predicted largest batch
MAX_TRIES = 4           # verification steps of the largest batch (the first plus step-downs)
STEPS_AT_MAX = 3        # timed steps at the largest batch
TINY_BATCH = 2
BEGIN, END = "<!-- e2e:begin -->", "<!-- e2e:end -->"


# ---- the models: config and batches -------------------------------------------------------

def _llama(tiny):
    from transformers import LlamaConfig, LlamaForCausalLM
    dims = (dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16) if tiny else
            dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                 num_attention_heads=32, num_key_value_heads=8, head_dim=64))
    cfg = LlamaConfig(**dims, max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=True,
                      rope_parameters={"rope_type": "default", "rope_theta": 500000.0}, use_cache=False)
    return LlamaForCausalLM, cfg, dict(seq=32 if tiny else 4096)


def _qwen2_vl(tiny):
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    text = (dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, mrope_section=[2, 3, 3]) if tiny else
            dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, mrope_section=[16, 24, 24]))
    vision = (dict(depth=2, embed_dim=32, num_heads=2, patch_size=2) if tiny else
              dict(depth=32, embed_dim=1280, num_heads=16, patch_size=14))
    section = text.pop("mrope_section")
    vocab = text["vocab_size"]
    cfg = Qwen2VLConfig(
        text_config=dict(**text, max_position_embeddings=32768, rms_norm_eps=1e-6, use_cache=False,
                         bos_token_id=None, eos_token_id=None,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": section}),
        vision_config=dict(**vision, mlp_ratio=4, in_channels=3, spatial_merge_size=2, temporal_patch_size=2,
                           hidden_size=text["hidden_size"]),
        # the special tokens: the last ids of the vocabulary (text is drawn below them)
        image_token_id=vocab - 8, vision_start_token_id=vocab - 7, vision_end_token_id=vocab - 6,
        video_token_id=vocab - 5, tie_word_embeddings=True)
    return Qwen2VLForConditionalGeneration, cfg, dict(seq=32 if tiny else 1024, image=8 if tiny else 448)


def _vit(tiny):
    from transformers import ViTConfig, ViTForImageClassification
    dims = (dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=16,
                 patch_size=4, num_labels=10) if tiny else
            dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                 image_size=224, patch_size=16, num_labels=1000))
    return ViTForImageClassification, ViTConfig(**dims), {}


# batch: a fixed batch size, or None for the largest that fits unpatched (probes: the two batch
# sizes of that search); cap: the largest batch the search may predict
MODELS = {
    "llama": dict(make=_llama, unit="tokens", batch=None, probes=(1, 4), cap=64,
                  title="Llama-3.2-1B-sized decoder (hidden 2048, 16 layers, vocabulary 128256, tied), "
                        "sequence 4096"),
    "qwen2_vl": dict(make=_qwen2_vl, unit="tokens", batch=None, probes=(1, 4), cap=64,
                     title="Qwen2-VL-2B-sized (vision 32 blocks, text 28 layers, vocabulary 151936), "
                           "one 448x448 image (256 tokens) in 1024 tokens per sample"),
    "vit": dict(make=_vit, unit="images", batch=256, cap=2048,
                title="ViT-L/16-sized classifier (hidden 1024, 24 layers), 224x224, 1000 labels"),
}
LIGER = {"llama": "apply_liger_kernel_to_llama", "qwen2_vl": "apply_liger_kernel_to_qwen2_vl"}


def make_batch(name, cfg, shape, n, seed, device):
    """n samples of random data: token ids with labels (an image in each Qwen2-VL sample), or
    images with class labels. The same (n, seed) gives the same batch on the same device."""
    import torch
    g = torch.Generator(device).manual_seed(seed)
    if name == "vit":
        size = cfg.image_size
        return {"pixel_values": torch.randn(n, 3, size, size, generator=g, device=device).bfloat16(),
                "labels": torch.randint(0, min(N_LABELS, cfg.num_labels), (n,), generator=g, device=device)}
    if name == "llama":
        ids = torch.randint(0, min(N_TOKENS, cfg.vocab_size), (n, shape["seq"]), generator=g, device=device)
        return {"input_ids": ids, "labels": ids.clone()}
    v = cfg.vision_config
    side = shape["image"] // v.patch_size                  # patches per side (32 at 448x448)
    n_img = side * side // v.spatial_merge_size ** 2       # tokens of an image after merging (256)
    ids = torch.randint(0, min(N_TOKENS, cfg.text_config.vocab_size - 8), (n, shape["seq"]), generator=g,
                        device=device)
    ids[:, 1] = cfg.vision_start_token_id
    ids[:, 2:2 + n_img] = cfg.image_token_id
    ids[:, 2 + n_img] = cfg.vision_end_token_id
    image = ids == cfg.image_token_id
    patch = 3 * v.temporal_patch_size * v.patch_size ** 2
    return {"input_ids": ids, "labels": ids.masked_fill(image, -100), "mm_token_type_ids": image.int(),
            "pixel_values": torch.randn(n * side * side, patch, generator=g, device=device).bfloat16(),
            "image_grid_thw": torch.tensor([[1, side, side]] * n, device=device)}


# ---- one setup, in a child process ---------------------------------------------------------

def environment(device):
    import importlib.metadata
    import torch
    import transformers
    import tigon
    rev = ROOT / ".peers" / "REVISION"
    try:
        triton = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton = "not installed"
    env = dict(date=datetime.date.today().isoformat(), torch=torch.__version__,
               transformers=transformers.__version__, triton=triton, tigon=tigon.__version__,
               liger=rev.read_text().strip() if rev.exists() else "not available")
    if device == "cuda":
        return dict(env, device=torch.cuda.get_device_name(),
                    gpu_gib=torch.cuda.get_device_properties(0).total_memory / 2**30)
    return dict(env, device="CPU")


def child(spec):
    """Runs one setup as `spec` says and writes what it measured to spec["result"], after each
    phase, so a process that is killed or crashes still leaves its numbers."""
    res = {}
    path = pathlib.Path(spec["result"])

    def save():
        path.write_text(json.dumps(res))
    try:
        _child(spec, res, save)
    except Exception as e:  # an OOM or a failing peer is a result, not a crash
        import traceback
        traceback.print_exc()
        res["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    save()


def _child(spec, res, save):
    import torch
    sys.path.insert(0, str(ROOT / "python"))
    name, setup = spec["model"], spec["setup"]
    device = "cpu" if spec["tiny"] else "cuda"
    res["env"] = environment(device)
    save()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    cls, cfg, shape = MODELS[name]["make"](spec["tiny"])
    torch.manual_seed(0)
    with torch.device(device):
        model = cls._from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa").train()
    if setup == "tigon":
        import tigon
        res["patch"] = str(tigon.patch(model)).splitlines()[0]
    elif setup == "liger":
        sys.path.insert(0, str(LIGER_SRC))
        import liger_kernel.transformers
        getattr(liger_kernel.transformers, LIGER[name])(model=model)
        forwards = collections.Counter(m.forward.__qualname__ for m in model.modules() if "forward" in m.__dict__)
        res["patch"] = f"{LIGER[name]}(model=model): forwards " + ", ".join(f"{n} x {f}" for f, n in forwards.items())
    elif setup == "compile":
        model.compile()
        res["patch"] = "model.compile()"
    modeling = sys.modules[type(model).__module__]   # which rotary functions attention calls now
    res["rope"] = {f: f"{getattr(modeling, f).__module__}.{getattr(modeling, f).__name__}"
                   for f in ("apply_rotary_pos_emb", "apply_rotary_pos_emb_vision") if hasattr(modeling, f)}
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    per_sample = shape.get("seq", 1)   # tokens, or one image

    def step(batch):
        try:
            loss = model(**batch).loss
            loss.backward()
            opt.step()
        finally:   # also after an OOM, so that partial gradients do not stay
            opt.zero_grad(set_to_none=True)
        return loss.detach()

    batch_size = spec["batch"]
    if batch_size:   # training at the common batch size
        data = [make_batch(name, cfg, shape, batch_size, 1000 + i, device) for i in range(N_DATA)]
        sync()
        t0 = time.perf_counter()
        losses = [step(data[0])]
        sync()
        res.update(batch=batch_size, first_step_s=time.perf_counter() - t0)
        if spec["first_only"]:
            return
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for i in range(1, spec["warmup"]):
            losses.append(step(data[i % N_DATA]))
        sync()
        t0 = time.perf_counter()
        for i in range(spec["warmup"], spec["warmup"] + spec["steps"]):
            losses.append(step(data[i % N_DATA]))
        sync()
        elapsed = time.perf_counter() - t0
        res.update(step_s=elapsed / spec["steps"], throughput=spec["steps"] * batch_size * per_sample / elapsed,
                   losses=[x.item() for x in losses])
        if device == "cuda":
            res["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        save()
    if spec["search"]:
        res["search"] = largest_batch(lambda n: step(make_batch(name, cfg, shape, n, 7, device)), spec, res, save)
        found = res["search"]["max_batch"]
        if batch_size and found != batch_size:
            big = make_batch(name, cfg, shape, found, 7, device)
            sync()
            t0 = time.perf_counter()
            for _ in range(STEPS_AT_MAX):
                step(big)
            sync()
            res["throughput_at_max"] = STEPS_AT_MAX * found * per_sample / (time.perf_counter() - t0)
        elif batch_size:
            res["throughput_at_max"] = res["throughput"]


def largest_batch(run, spec, res, save):
    """The largest batch that fits: peak memory at two batch sizes (the training batch and half
    of it, or the model's two probes, after one step that creates the optimizer state),
    extrapolated linearly to MARGIN of the card, capped, verified by one step and stepped
    down on OOM. run(n) makes one training step at batch n."""
    import torch

    def peak(n):   # peak memory of one step at batch n, None on OOM
        torch.cuda.reset_peak_memory_stats()
        try:
            run(n)
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated()
        except torch.OutOfMemoryError:
            pass
        gc.collect()   # outside the except clause: the traceback no longer holds the activations
        torch.cuda.empty_cache()
        return None

    batch = spec["batch"]
    if batch:
        other = batch // 2 if batch > 1 else 2
        points = {batch: res["peak_gib"] * 2**30, other: peak(other)}
    else:
        small, big = MODELS[spec["model"]]["probes"]
        run(small)   # the optimizer state exists from here on
        points = {small: peak(small), big: peak(big)}
    fits = [n for n, p in points.items() if p is not None]
    out = dict(points=sorted([n, p / 2**30 if p else None] for n, p in points.items()), tries=[])
    if not fits:
        raise RuntimeError(f"no batch fits: out of memory at {sorted(points)}")
    if len(fits) < 2:
        return dict(out, max_batch=max(fits), predicted=None)
    (n1, p1), (n2, p2) = sorted((n, points[n]) for n in fits)
    slope = (p2 - p1) / (n2 - n1)
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info()
    usable = free + torch.cuda.memory_reserved()
    predicted = math.floor((MARGIN * usable - (p1 - slope * n1)) / slope) if slope > 0 else math.inf
    out.update(predicted=predicted if predicted != math.inf else None, usable_gib=usable / 2**30,
               cap=MODELS[spec["model"]]["cap"])
    n = min(predicted, out["cap"])
    while n > n2 and len(out["tries"]) < MAX_TRIES:
        ok = peak(n) is not None
        out["tries"].append([n, "ok" if ok else "OOM"])
        print(f"largest batch: predicted {predicted}, batch {n}: {out['tries'][-1][1]}", flush=True)
        res["search"] = out
        save()
        if ok:
            return dict(out, max_batch=n)
        n = max(n2, min(n - 1, int(n * 0.9)))
    return dict(out, max_batch=n2)


# ---- the parent: one process per setup ---------------------------------------------------

def spawn(spec, env, timeout, tmp):
    """Runs child(spec) in a new process (its own process group, killed whole on timeout) and
    returns what it wrote, with an error when it crashed or ran out of time."""
    fd, result = tempfile.mkstemp(suffix=".json", dir=tmp)
    os.close(fd)
    result = pathlib.Path(result)
    spec = dict(spec, result=str(result))
    t0 = time.time()
    p = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)], env=env, start_new_session=True)
    try:
        rc = p.wait(timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:   # it ended just now
            pass
        p.wait()
        rc = None
    text = result.read_text()
    res = json.loads(text) if text else {}
    if rc is None:
        res["error"] = f"killed after {timeout:.0f} s: the invocation's --budget was spent"
    elif rc != 0 and "error" not in res:
        res["error"] = f"the process exited with status {rc}"
    res["wall_s"] = time.time() - t0
    return res


def skip_reason(name, setup, args, explicit):
    if setup == "liger" and name not in LIGER:
        return (f"unsupported: Liger-Kernel has no patch for {name} (no '{name}' in "
                "liger_kernel.transformers.monkey_patch.MODEL_TYPE_TO_APPLY_LIGER_FN)")
    if setup == "liger" and not (LIGER_SRC / "liger_kernel").is_dir():
        return f"skipped: no Liger-Kernel checkout in {LIGER_SRC}"
    if args.tiny and setup in ("liger", "compile") and not explicit:
        return {"liger": "skipped: --tiny runs on the CPU, and Liger-Kernel's Triton kernels need a CUDA GPU",
                "compile": "skipped: --tiny runs on the CPU, where torch.compile's C++ compile takes minutes"}[setup]
    return None


def bench_model(name, args, doc, write, deadline, tmp):
    m = MODELS[name]
    title = ("tiny stand-in for: " if args.tiny else "") + m["title"]
    entry = doc["models"][name] = dict(title=title, unit=m["unit"], steps=args.steps, warmup=args.warmup,
                                       tiny=args.tiny, setups={})
    setups = entry["setups"]
    base = dict(model=name, tiny=args.tiny, steps=args.steps, warmup=args.warmup, first_only=False)

    def run(setup, **spec):
        left = deadline - time.time()
        if left < 10:
            print(f"== {name} {setup}: not run, the --budget is spent", flush=True)
            return {"error": f"not run: the invocation's --budget ({args.budget:.0f} s) was spent"}, None
        d = pathlib.Path(tempfile.mkdtemp(dir=tmp, prefix=setup + "-"))
        env = dict(os.environ, TIGON_CACHE_DIR=str(spec.pop("cache", d / "tigon")),
                   TORCHINDUCTOR_CACHE_DIR=str(d / "inductor"), TRITON_CACHE_DIR=str(d / "triton"),
                   PYTORCH_CUDA_ALLOC_CONF="expandable_segments:True")
        print(f"== {name} {setup} {spec}", flush=True)
        res = spawn(dict(base, setup=setup, **spec), env, left, tmp)
        doc["meta"] = res.pop("env", None) or doc["meta"]
        print(f"== {name} {setup}: {summary(res)}", flush=True)
        return res, env["TIGON_CACHE_DIR"]

    searched = None
    batch = args.batch or (TINY_BATCH if args.tiny else m["batch"])
    entry["batch_from"] = "--batch" if args.batch else "fixed" if batch else "the largest that fits unpatched"
    if batch is None:
        searched, _ = run("unpatched", batch=None, search=True)
        batch = searched.get("search", {}).get("max_batch")
        if "error" in searched or not batch:
            setups["unpatched"] = searched
            entry["error"] = "the search for the largest unpatched batch failed"
            write()
            return
    entry["batch"] = batch
    for setup in args.setups:
        reason = skip_reason(name, setup, args, setup in (args.explicit or ()))
        if reason:
            setups[setup] = {"skipped": reason}
            write()
            continue
        res, cache = run(setup, batch=batch, search=not args.tiny and not (setup == "unpatched" and searched))
        if setup == "unpatched" and searched:   # the largest batch is the training batch
            res.update(search=searched["search"], throughput_at_max=res.get("throughput"),
                       search_wall_s=searched["wall_s"])
        if setup == "tigon" and not args.tiny and "first_step_s" in res:
            warm, _ = run(setup, batch=batch, search=False, first_only=True, cache=cache)
            res["first_step_warm_s"] = warm.get("first_step_s")
            if "error" in warm:
                res["warm_error"] = warm["error"]
        setups[setup] = res
        compare_losses(entry)
        write()


def compare_losses(entry):
    """Each setup's losses against the unpatched run's, step by step (same weights, same data)."""
    ref = entry["setups"].get("unpatched", {})
    for res in entry["setups"].values():
        losses = res.get("losses")
        comparable = res.get("batch") == ref.get("batch") and losses and len(losses) == len(ref.get("losses") or ())
        if comparable:
            rel = [abs(a - b) / max(abs(b), 1e-12) if math.isfinite(a) else math.inf
                   for a, b in zip(losses, ref["losses"])]
            res["loss_max_rel_diff"] = max(rel)
            res["loss_agrees"] = max(rel) <= LOSS_TOL


def summary(res):
    if "skipped" in res:
        return res["skipped"]
    parts = [f"{k} {res[k]:.4g}" for k in ("first_step_s", "throughput", "peak_gib", "throughput_at_max")
             if res.get(k) is not None]
    if res.get("search"):
        parts.append(f"max batch {res['search'].get('max_batch')}")
    if res.get("losses"):
        parts.append(f"loss {res['losses'][0]:.4f} -> {res['losses'][-1]:.4f}")
    if "error" in res:
        parts.append(f"ERROR {res['error']}")
    return ", ".join(parts) + f" ({res.get('wall_s', 0):.0f} s)"


def result_path(out, meta):
    return out / f"e2e-{meta['device'].replace(' ', '-')}-{meta['date']}.json"


def merge(docs):
    """Later runs replace earlier ones setup by setup (a model may be measured in several
    calls: --setups, with --batch set to the batch the first call found, whose origin is then
    kept); the meta of the last run is kept."""
    merged = {"meta": None, "models": {}}
    for d in docs:
        merged["meta"] = d.get("meta") or merged["meta"]
        for name, entry in d["models"].items():
            old = merged["models"].get(name, {})
            new = merged["models"][name] = {**old, **entry, "setups": {**old.get("setups", {}), **entry["setups"]}}
            if entry.get("batch_from") == "--batch" and old.get("batch") == entry.get("batch"):
                new["batch_from"] = old["batch_from"]
            compare_losses(new)
    return merged


# ---- the table and the chart ---------------------------------------------------------------

def _num(x, fmt):
    return "—" if x is None else format(x, fmt)


def markdown(doc):
    meta = doc["meta"]
    first = next(iter(doc["models"].values()))
    lines = [BEGIN, "## End-to-end training", "",
             f"Produced by `bench/e2e.py` on {meta['date']}, {meta['device']}; torch {meta['torch']}, "
             f"transformers {meta['transformers']}, triton {meta['triton']}, Liger-Kernel {meta['liger']}, "
             f"tigon {meta['tigon']}.", "",
             f"Training steps of models built from their configs with random weights: bf16 weights, AdamW "
             f"(lr {LR}, weight decay 0.01), sdpa attention, one GPU. Each setup in its own process, from the "
             f"same initial weights and the same {N_DATA} batches (cycled). Throughput over {first['steps']} "
             f"timed steps after {first['warmup']} warm-up steps, at one batch size per model; peak memory is "
             f"`torch.cuda.max_memory_allocated` over those steps. Largest batch: peak memory at two batch "
             f"sizes extrapolated to {MARGIN:.0%} of the card, verified by one step, stepped down on OOM "
             f"(capped); then {STEPS_AT_MAX} steps timed at it. Loss: after the last step, and the largest "
             f"relative difference from the unpatched run at any step (flagged above {LOSS_TOL}). First step: "
             f"compile and autotune included, with empty tigon, Inductor and Triton caches / in a second "
             f"process on tigon's filled cache. Below each table: what each patch replaced, and the rotary "
             f"functions attention called.", ""]
    for name, entry in doc["models"].items():
        unit = entry["unit"]
        lines += [f"### {entry['title']}", "",
                  f"Batch {entry.get('batch', '—')} ({entry['batch_from']})." + (
                      f" **{entry['error']}**." if "error" in entry else ""), "",
                  f"| setup | {unit}/s | peak memory (GiB) | largest batch | {unit}/s at it | loss after "
                  f"{entry['steps'] + entry['warmup']} steps (max rel. diff) | first step: cold / warm |",
                  "|---|---|---|---|---|---|---|"]
        ref = entry["setups"].get("unpatched", {}).get("throughput")
        for setup, res in entry["setups"].items():
            label = SETUPS[setup]
            if "skipped" in res:
                lines.append(f"| {label} | {res['skipped']} | | | | | |")
                continue
            tput = _num(res.get("throughput"), ",.0f")
            if ref and res.get("throughput") and setup != "unpatched":
                tput += f" ({res['throughput'] / ref - 1:+.1%})"
            loss = "—"
            if res.get("losses"):
                loss = f"{res['losses'][-1]:.4f}"
                if "loss_max_rel_diff" in res and setup != "unpatched":
                    loss += f" ({res['loss_max_rel_diff']:.1e}{'' if res['loss_agrees'] else ', **differs**'})"
            search = res.get("search") or {}
            most = search.get("max_batch")
            if most is not None and search.get("predicted") is not None and search["predicted"] > search["cap"]:
                most = f"{most} (cap; predicted {search['predicted']})"
            first_step = " / ".join(f"{res[k]:.3g} s" for k in ("first_step_s", "first_step_warm_s")
                                    if res.get(k) is not None) or "—"
            error = f" **{res['error']}**" if "error" in res else ""
            lines.append(f"| {label}{error} | {tput} | {_num(res.get('peak_gib'), '.1f')} | {_num(most, '')} | "
                         f"{_num(res.get('throughput_at_max'), ',.0f')} | {loss} | {first_step} |")
        lines.append("")
        for setup, res in entry["setups"].items():
            if res.get("patch") or res.get("rope"):
                rope = ", ".join(f"{f} = `{where}`" for f, where in (res.get("rope") or {}).items())
                lines.append(f"- {SETUPS[setup]}: {res.get('patch', 'nothing patched')}"
                             + (f"; {rope}" if rope else ""))
        lines.append("")
    lines += ["![end-to-end training](img/e2e.png)", "", END]
    return "\n".join(lines)


def write_doc(doc_path, section):
    """Puts the section between the markers of doc_path (replacing what was there), or before
    its '## Plots' section the first time."""
    text = doc_path.read_text() if doc_path.exists() else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    elif "\n## Plots" in text:
        i = text.index("\n## Plots") + 1
        text = text[:i] + section + "\n\n" + text[i:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc_path.write_text(text)


def chart(doc, path):
    """Throughput relative to unpatched (at the common batch and at each setup's largest) and
    peak memory, per model and setup."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = list(doc["models"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(SETUPS)
    for i, (setup, label) in enumerate(SETUPS.items()):
        rel, rel_max, peak = [], [], []
        for name in models:
            s = doc["models"][name]["setups"]
            ref = s.get("unpatched", {}).get("throughput")
            res = s.get(setup, {})
            rel.append(res.get("throughput", 0) / ref if ref and res.get("throughput") else 0)
            rel_max.append(res.get("throughput_at_max", 0) / ref if ref and res.get("throughput_at_max") else 0)
            peak.append(res.get("peak_gib") or 0)
        x = [j + (i - (len(SETUPS) - 1) / 2) * width for j in range(len(models))]
        bars = ax1.bar(x, rel, width, label=label)
        ax1.bar(x, [max(b - a, 0) for a, b in zip(rel, rel_max)], width, bottom=rel, color=bars[0].get_facecolor(),
                alpha=0.35, hatch="//")
        ax2.bar(x, peak, width)
    ax1.axhline(1.0, color="gray", lw=0.8)
    ax1.set_title("throughput / unpatched (hatched: at the setup's largest batch)", fontsize=9)
    ax2.set_title("peak memory at the common batch (GiB)", fontsize=9)
    for ax in (ax1, ax2):
        ax.set_xticks(range(len(models)), models)
    fig.legend(*ax1.get_legend_handles_labels(), loc="lower center", ncol=len(SETUPS), fontsize=8)
    fig.suptitle(f"End-to-end training, {doc['meta']['device']}", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def report(files, out, doc_path, img):
    doc = merge(json.loads(pathlib.Path(f).read_text()) for f in files)
    out.mkdir(parents=True, exist_ok=True)
    target = result_path(out, doc["meta"])
    target.write_text(json.dumps(doc, indent=1))
    write_doc(doc_path, markdown(doc))
    chart(doc, img)
    print(f"wrote {target}, {doc_path}, {img}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="all", choices=[*MODELS, "all"])
    ap.add_argument("--setups", type=lambda s: s.split(","),
                    help=f"comma-separated, of {','.join(SETUPS)} (default: all)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="steps before the timed ones, the first (cold) one included")
    ap.add_argument("--batch", type=int,
                    help="the common batch size (default: the model's, or the largest that fits unpatched)")
    ap.add_argument("--tiny", action="store_true", help="tiny models on the CPU: a smoke test")
    ap.add_argument("--budget", type=float, default=540,
                    help="seconds this invocation may take (processes are cut at it)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder of the JSON")
    ap.add_argument("--report", "--from-json", nargs="+", metavar="RESULTS",
                    help="no measuring: merge these JSONs into --out, the table into --doc, the chart into --img")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--img", default=str(ROOT / "docs" / "img" / "e2e.png"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(json.loads(args.child))
    out = pathlib.Path(args.out)
    if args.report:
        return report(args.report, out, pathlib.Path(args.doc), pathlib.Path(args.img))
    if args.warmup < 1 or args.steps < 1:
        ap.error("--warmup and --steps must be at least 1 (the first step is a warm-up step)")
    args.explicit, args.setups = args.setups, args.setups or list(SETUPS)
    if unknown := set(args.setups) - set(SETUPS):
        ap.error(f"unknown setups {sorted(unknown)}")
    deadline = time.time() + args.budget
    doc = {"meta": None, "models": {}}
    out.mkdir(parents=True, exist_ok=True)

    def write():   # after every process: merged with this device's and day's earlier runs
        if doc["meta"] is None:
            return
        path = result_path(out, doc["meta"])
        earlier = [json.loads(path.read_text())] if path.exists() else []
        path.write_text(json.dumps(merge(earlier + [doc]), indent=1))

    tmp = tempfile.mkdtemp(prefix="tigon-e2e-")
    try:
        for name in MODELS if args.model == "all" else [args.model]:
            bench_model(name, args, doc, write, deadline, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if doc["meta"] is None:
        sys.exit("no process reported anything")
    print("\n" + markdown(doc))
    print(f"\nwrote {result_path(out, doc['meta'])}; table and chart: python bench/e2e.py --report FILE.json")


if __name__ == "__main__":
    main()
