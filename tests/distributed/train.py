"""One training run of a tiny patched model, on one process or as one rank of a torchrun job.

    python tests/distributed/train.py --model llama --mode single --out single.json
    torchrun --nproc-per-node 2 tests/distributed/train.py --model llama --mode ddp --out ddp.json
    torchrun --nproc-per-node 2 tests/distributed/train.py --model qwen2_vl --mode fsdp2 --out fsdp2.json

Every run takes the same global batch at each step (--global-batch samples, made from the step
number); a rank of a distributed run takes its slice of it. Every sample has the same number of
scored tokens (and, for Qwen2-VL, one image), so the mean of the ranks' mean losses is the
single run's mean loss and the runs can be compared step by step.

Each rank writes OUT with "rank<r>" before its suffix (rank 0 of single: OUT itself): its loss
after each step (averaged over the ranks), the patch report's counts, the tigon ops found in
the autograd graph of its first loss, and, in distributed runs, what tigon does with a DTensor.
The driver is run.py."""
import argparse
import json
import os
import pathlib
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python"))
import tiny_models as tm  # noqa: E402

import tigon  # noqa: E402

def sample(name: str, seed: int, device, dtype) -> dict:
    """One sample: SEQ text tokens (Qwen2-VL: an image of GRID patches first), the first two
    tokens and the image not scored."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, tm.VOCAB - 8, (1, tm.SEQ), generator=g)
    batch = {}
    if name == "qwen2_vl":
        sp = tm._special()
        n_img = tm.GRID[0] * tm.GRID[1] * tm.GRID[2] // tm.MERGE ** 2
        image = torch.tensor([[sp["vision_start_token_id"]] + [sp["image_token_id"]] * n_img +
                              [sp["vision_end_token_id"]]])
        ids = torch.cat([ids[:, :1], image, ids[:, 1:]], dim=1)
        batch["mm_token_type_ids"] = (ids == sp["image_token_id"]).int()
        n_patches = tm.GRID[0] * tm.GRID[1] * tm.GRID[2]
        batch["pixel_values"] = torch.randn(n_patches, 3 * tm.TEMPORAL * tm.PATCH * tm.PATCH, generator=g).to(dtype)
        batch["image_grid_thw"] = torch.tensor([tm.GRID])
    labels = ids.clone()
    labels[:, :2] = -100
    if name == "qwen2_vl":
        labels[ids >= tm.VOCAB - 8] = -100
    batch.update(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
    return {k: v.to(device) for k, v in batch.items()}


def global_batch_slice(name: str, step: int, size: int, rank: int, world: int, device, dtype) -> dict:
    """Samples [rank * n, (rank + 1) * n) of step's global batch of size samples, n = size / world."""
    n = size // world
    parts = [sample(name, 1000 * step + i, device, dtype) for i in range(rank * n, (rank + 1) * n)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


CPP_NODES = {"RmsNorm": "rms_norm_fwd", "LayerNorm": "layer_norm_fwd", "Rope": "rope", "MRope": "mrope",
             "SwiGlu": "swiglu_fwd", "CrossEntropy": "cross_entropy_fwd",
             "FusedLinearCrossEntropy": "fused_linear_cross_entropy_fwd"}


def tigon_ops_in_graph(loss: torch.Tensor) -> dict:
    """{tigon op: autograd nodes} reachable from loss: the ops that really ran in this rank."""
    counts, seen, todo = {}, set(), [loss.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        name = fn.name()
        # Python autograd (torch.library): GeneratedBackwardFor_tigon_<op>_default...; the
        # autograd of the norms, RoPE and SwiGLU is C++ (ops/autograd.cpp): CppNode<tigon::ops::...::RmsNorm>
        op = (name.split("tigon_", 1)[1].split("_default")[0] if "tigon_" in name else
              CPP_NODES.get(name.rsplit("::", 1)[-1].rstrip(">")) if "tigon::ops" in name else None)
        if op:
            counts[op] = counts.get(op, 0) + 1
        todo.extend(f for f, _ in fn.next_functions)
    return counts


def dtensor_behaviour(device_type: str, world: int) -> str:
    """What tigon.rms_norm says to a row-sharded DTensor (the input of a sequence-parallel norm)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor
    mesh = init_device_mesh(device_type, (world,))
    x = distribute_tensor(torch.randn(4 * world, tm.HIDDEN, device=device_type), mesh, [Shard(0)])
    try:
        tigon.rms_norm(x, None)
    except TypeError as e:
        return str(e)
    return "accepted"


def wrap(model, mode: str, device_type: str, world: int, local_rank: int):
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel
        return DistributedDataParallel(model, device_ids=[local_rank] if device_type == "cuda" else None)
    if mode == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
        mesh = init_device_mesh(device_type, (world,))
        for m in model.modules():          # each decoder layer / vision block is its own unit
            if type(m).__name__.endswith(("DecoderLayer", "VisionBlock")):
                fully_shard(m, mesh=mesh)
        return fully_shard(model, mesh=mesh)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("llama", "qwen2_vl"), required=True)
    ap.add_argument("--mode", choices=("single", "ddp", "fsdp2"), required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--global-batch", type=int, default=8, help="samples per step over all ranks")
    ap.add_argument("--dtype", choices=("bf16", "f32"), default="bf16")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    tm.SEQ = args.seq
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    cuda = torch.cuda.is_available()
    device_type = "cuda" if cuda else "cpu"

    rank, world, local_rank = 0, 1, 0
    if args.mode != "single":
        dist.init_process_group("nccl" if cuda else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ["LOCAL_RANK"])
        if args.global_batch % world:
            sys.exit(f"the global batch ({args.global_batch}) must split evenly over {world} ranks")
    device = torch.device(device_type, local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)

    model = tm.build(args.model, seed=0, dtype=dtype, device=device, attn="sdpa")
    report = tigon.patch(model)
    model = wrap(model, args.mode, device_type, world, local_rank)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)

    result = {"model": args.model, "mode": args.mode, "rank": rank, "world": world, "device": str(device),
              "dtype": args.dtype, "replaced": len(report.replaced), "functions": len(report.functions),
              "forwards": len(report.forwards), "losses": []}
    for step in range(args.steps):
        batch = global_batch_slice(args.model, step, args.global_batch, rank, world, device, dtype)
        loss = model(**batch).loss
        if step == 0:
            result["tigon_ops"] = tigon_ops_in_graph(loss)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        mean = loss.detach().float()
        if world > 1:
            dist.all_reduce(mean)
            mean /= world
        result["losses"].append(mean.item())
    if world > 1:
        result["dtensor"] = dtensor_behaviour(device_type, world)
        dist.destroy_process_group()
    out = pathlib.Path(args.out)
    if args.mode != "single":
        out = out.with_name(f"{out.stem}.rank{rank}{out.suffix}")
    out.write_text(json.dumps(result, indent=1))
    if world > 1 and not cuda:
        # gloo's worker threads are sometimes still joinable when the interpreter tears down
        # ("terminate called without an active exception" even after destroy_process_group;
        # pytorch/pytorch#190489): the CPU ranks leave without running static destructors
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
