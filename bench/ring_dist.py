"""Ring attention on several GPUs (issue 20): `torchrun --nproc_per_node=P bench/ring_dist.py`.

1. Correctness: every rank holds its zigzag (or contiguous) shard of the same random inputs; the
   ring over the NCCL group (attnc.ring, K/V by batch_isend_irecv) gives each rank its rows of
   o and lse, gathered on rank 0 against attnc's single-GPU kernel on the whole sequence, at
   ragged lengths (causal, ALiBi with its backward, documents, sliding window).
2. Speed: b1 h16 d128 bf16, S = 32k-256k, causal (zigzag) and non-causal, the ring's forward
   (max over ranks of the median call) against attnc's single-GPU kernel on one GPU:
   per-GPU efficiency = single / (P x ring).

Env: ATTNC_KERNEL_DIR = scripts/compile_ring_kernels.sh's DIR, ATTNC_RUNTIME_LIB, $OUT.
"""
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import attnc
import attnc.ring
import attnc.torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "gpu"))
import harness  # noqa: E402
from ring_links import cuda_ms  # noqa: E402  (bench/: the median of CUDA-event timings)

H, D = 16, 128
KDIR = Path(os.environ["ATTNC_KERNEL_DIR"])


def load(kind, name):
    return attnc.load_kernel(KDIR / kind / f"{name}.ptx", KDIR / kind / f"{name}.json")


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def gather(t):
    """Every rank's tensor (shapes may differ) on every rank."""
    shapes = [None] * dist.get_world_size()
    dist.all_gather_object(shapes, list(t.shape))
    out = [torch.empty(s, dtype=t.dtype, device=t.device) for s in shapes]
    dist.all_gather(out, t.contiguous())
    return out


def median_ms(fn, repeats):
    """ring_links' timer with the ranks lined up (a barrier) before each call."""
    return cuda_ms(fn, repeats=repeats, warmup=1, before=dist.barrier)


def correctness(rank, world, lines):
    for name, length, layout, backward in [("causal", 1000, "zigzag", False),
                                           ("causal", 777, "contiguous", False),
                                           ("alibi", 1531, "zigzag", True),
                                           ("document", 999, "zigzag", False),
                                           ("sliding_window", 2049, "zigzag", False)]:
        full = load("full", name)
        full.grad = load("full", name + "_grad")
        ring = attnc.ring.RingKernel(load("ring", name), layout,
                                     grad=load("grad", name + "_grad") if backward else None)
        sizes = harness.dim_sizes(full, length, length, batch=2)
        tensors = harness.sort_ids(full, harness.make_inputs(full, sizes, seed=length,
                                                             device="cuda"), seed=length)
        floats = [n for n, t in tensors.items() if t.is_floating_point()] if backward else []
        local = {n: ring.shard(t, n, rank, world) for n, t in tensors.items()}
        for n in floats:
            local[n] = local[n].clone().requires_grad_(True)
        o, lse = ring(**local)
        errs = {}
        gen = torch.Generator(device="cuda").manual_seed(9)
        if backward:
            do_full = torch.randn(full.allocate_outputs(**tensors)["o"].shape, generator=gen,
                                  device="cuda").to(o.dtype)
            o.backward(ring.shard(do_full, "o", rank, world))
        o_all = ring.unshard(gather(o.detach()), "o")
        lse_all = ring.unshard(gather(lse), "lse")
        if rank == 0:
            want = harness.run(full, tensors)
            errs["o"] = rel(o_all, want["o"])
            finite = torch.isfinite(want["lse"])
            errs["lse_inf_match"] = bool(torch.equal(finite, torch.isfinite(lse_all)))
            if backward:
                fn = attnc.torch.function(full)
                ref = {n: (t.clone().requires_grad_(True) if n in floats else t)
                       for n, t in tensors.items()}
                fn(**ref).backward(do_full)
        for n in floats:
            if ring._seq_axis(n)[0] is None:
                mine = local[n].grad
            else:
                mine = ring.unshard(gather(local[n].grad), n)
            if rank == 0:
                errs["d" + n] = rel(mine, ref[n].grad)
        if rank == 0:
            ok = errs["o"] < 1.5e-2 and errs["lse_inf_match"] and all(
                v < 3e-2 for k, v in errs.items() if k.startswith("d"))
            lines.append(f"| {name} | {length} | {layout} | "
                         + ", ".join(f"{k} {v:.2e}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in errs.items())
                         + f" | {'PASS' if ok else 'FAIL'} |")
            print(lines[-1], flush=True)


def speed(rank, world, lines):
    lengths = [int(x) for x in os.environ.get("RING_LENGTHS", "32768,65536,131072,262144")
               .split(",")]
    for mask, name, layout in (("causal", "causal_d128", "zigzag"),
                               ("none", "mha_d128", "contiguous")):
        full = load("full", name)
        ring = attnc.ring.RingKernel(load("ring", name), layout)
        for S in lengths:
            gen = torch.Generator(device="cuda").manual_seed(S)
            q, k, v = (torch.randn(1, H, S, D, device="cuda", dtype=torch.bfloat16,
                                   generator=gen) for _ in range(3))
            perm = {a.name: [a.dims.index(n) for n in a.storage_dims] for a in full._args
                    if a.kind == "input"}
            tensors = {n: t.permute(*perm[n]) for n, t in (("q", q), ("k", k), ("v", v))}
            outs = full.allocate_outputs(**tensors)
            single = full.prepare(**tensors, **outs)
            t_single = median_ms(single, 5)
            local = {n: ring.shard(t, n, rank, world).contiguous() for n, t in tensors.items()}
            t_ring = median_ms(lambda: ring(**local), 5)
            worst = torch.tensor([t_ring], device="cuda")
            dist.all_reduce(worst, op=dist.ReduceOp.MAX)
            t_ring = worst.item()
            flops = 4 * H * D * S * S / (2 if mask == "causal" else 1)
            if rank == 0:
                lines.append(f"| {mask} | {S} | {layout} | {t_single:.2f} | "
                             f"{flops / t_single / 1e9:.0f} | {t_ring:.2f} | "
                             f"{flops / world / t_ring / 1e9:.0f} | "
                             f"{t_single / (world * t_ring):.3f} |")
                print(lines[-1], flush=True)
            del q, k, v, tensors, outs, local


def main():
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(rank)
    lines = [f"# ring attention on {world} x {torch.cuda.get_device_name()} (NCCL "
             f"{'.'.join(map(str, torch.cuda.nccl.version()))}, torch {torch.__version__})", "",
             "| spec | S | layout | errors vs single GPU | |", "|---|---|---|---|---|"]
    correctness(rank, world, lines)
    lines += ["", "| mask | S | layout | single ms | single TFLOP/s | ring ms (max rank) | "
              "per-GPU TFLOP/s | per-GPU efficiency |", "|---|---|---|---|---|---|---|---|"]
    if os.environ.get("RING_SPEED", "1") == "1":
        speed(rank, world, lines)
    if rank == 0:
        text = "\n".join(lines) + "\n"
        print(text)
        Path(os.environ.get("OUT", "."), "ring_dist.md").write_text(text)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
