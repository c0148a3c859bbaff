"""Measurements for ring attention's cost model (issue 20), on a multi-GPU host:

1. the ring step's exchange: every rank sends a K/V block to the next rank and receives one from
   the previous (torch.distributed over NCCL, batch_isend_irecv), timed per block size;
2. attnc's forward on one block pair (s_local queries against s_local keys, non-causal, b1 h16
   d128, the kernel `mha_d128` or `mha` in ATTNC_KERNEL_DIR), on each rank's GPU.

A ring step hides its transfer when the block's compute time exceeds the exchange time; the
printed `hidden` column is compute / max(compute, exchange) for one step (the overlap bound
the ring can reach with the exchange on a side stream).

  torchrun --nproc_per_node=2 bench/ring_links.py   (ATTNC_KERNEL_DIR, ATTNC_RUNTIME_LIB set)
"""
import os
from pathlib import Path

import torch
import torch.distributed as dist

import attnc

H, D = 16, 128
SHARDS = [2048, 4096, 8192, 16384, 32768, 65536]


def cuda_ms(fn, repeats=20, warmup=3, before=None):
    """The median of `repeats` CUDA-event timings of fn(); `before` (untimed, e.g. a barrier of
    the ranks) runs ahead of each."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
            torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def main():
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(rank)
    nxt, prv = (rank + 1) % world, (rank - 1) % world
    kernels = attnc.load_dir(Path(os.environ["ATTNC_KERNEL_DIR"]))
    kernel = kernels.get("mha_d128") or kernels["mha"]
    rows = []
    for s in SHARDS:
        kv = torch.randn(2, 1, H, s, D, device="cuda", dtype=torch.bfloat16)  # K and V
        got = torch.empty_like(kv)

        def exchange():
            ops = [dist.P2POp(dist.isend, kv, nxt), dist.P2POp(dist.irecv, got, prv)]
            for r in dist.batch_isend_irecv(ops):
                r.wait()

        dist.barrier()
        ex_ms = cuda_ms(exchange)
        q = torch.randn(1, H, s, D, device="cuda", dtype=torch.bfloat16)
        args = {"q": q, "k": kv[0], "v": kv[1]}
        perm = {}
        for a in kernel.manifest["args"]:
            if a["kind"] == "input":
                perm[a["name"]] = [a["dims"].index(n) for n in a["storage_dims"]]
        args = {n: t.permute(*perm[n]).contiguous() for n, t in args.items()}
        args.update(kernel.allocate_outputs(**args))
        launch = kernel.prepare(**args)
        block_ms = cuda_ms(launch)
        gbps = kv.numel() * kv.element_size() / ex_ms / 1e6
        tflops = 4 * H * D * s * s / block_ms / 1e9
        rows.append((s, kv.numel() * kv.element_size() / 2**20, ex_ms, gbps, block_ms, tflops,
                     block_ms / max(block_ms, ex_ms)))
    if rank == 0:
        print(f"# ring step on {world} x {torch.cuda.get_device_name()} (NCCL "
              f"{'.'.join(map(str, torch.cuda.nccl.version()))}), b1 h{H} d{D} bf16, non-causal")
        print("| s per rank | K+V MiB | exchange ms | GB/s per direction | block ms | block TFLOP/s "
              "| hidden |")
        print("|---|---|---|---|---|---|---|")
        for s, mib, ex, gb, bl, tf, hid in rows:
            print(f"| {s} | {mib:.0f} | {ex:.3f} | {gb:.0f} | {bl:.3f} | {tf:.0f} | {hid:.2f} |")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
