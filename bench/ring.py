"""Ring attention on one GPU (issue 20): the ring's schedule with P virtual ranks, timed rank by
rank, against attnc's single-GPU kernel and the anchors (cuDNN and FlashAttention-2 through
torch SDPA) on the same problem, b1 h16 d128 bf16, causal (zigzag shards) and non-causal; then
a cost model that adds the measured link (bench/results/2026-12-04-ring-links.md, 2 x H200
NVLink) to predict the per-GPU efficiency at 2-1024 GPUs.

- single: attnc's kernel on the whole sequence (ms, TFLOP/s; causal counts half the FLOPs).
- ring P: each virtual rank's whole schedule (its 2 or 1 query chunks against every key chunk,
  the merges by Kernel.combine) timed alone; `max rank` is what a GPU of a P-GPU ring computes,
  `balance` = mean / max over the ranks, `efficiency` = single / (P x max rank): the fraction
  of the ideal P-fold speedup the block decomposition keeps if every transfer hides.
- model: per step, a GPU computes its block pairs and exchanges one K+V block (S/P tokens);
  step time = max(compute, transfer) with transfer = bytes / BW(bytes) from the measured link;
  predicted efficiency = ideal / sum of step times. The per-pair compute comes from attnc's
  measured TFLOP/s at each chunk size (fitted here on blocks of n x n).

  python bench/ring.py   (ATTNC_KERNEL_DIR: scripts/compile_ring_kernels.sh's DIR; $OUT)
"""
import math
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import attnc
import attnc.ring
from ring_links import cuda_ms  # bench/: the median of CUDA-event timings

H, D = 16, 128
LENGTHS = [int(x) for x in os.environ.get("RING_LENGTHS", "32768,65536,131072").split(",")]
WORLDS = [2, 4, 8]
# 2 x H200 NVLink, batch_isend_irecv of K+V per direction (bench/results/2026-12-04-ring-links.md)
LINK = [(16, 109), (32, 152), (64, 203), (128, 244), (256, 254), (512, 324)]  # MiB, GB/s


def link_gbps(mib):
    """Measured per-direction bandwidth, log-interpolated in the block size."""
    if mib <= LINK[0][0]:
        return LINK[0][1] * mib / LINK[0][0]  # small blocks: latency-bound, linear below 16 MiB
    for (m0, g0), (m1, g1) in zip(LINK, LINK[1:]):
        if mib <= m1:
            t = math.log(mib / m0) / math.log(m1 / m0)
            return g0 + t * (g1 - g0)
    return LINK[-1][1]


def storage(kernel, name, canonical):
    a = kernel._by_name[name]
    return canonical.permute(*[a.dims.index(n) for n in a.storage_dims])


def main():
    out_dir = Path(os.environ.get("OUT", "."))
    kdir = Path(os.environ["ATTNC_KERNEL_DIR"])
    load = lambda kind, n: attnc.load_kernel(kdir / kind / f"{n}.ptx",  # noqa: E731
                                             kdir / kind / f"{n}.json")
    lines = [f"# ring attention on one {torch.cuda.get_device_name()}: virtual ranks, "
             f"b1 h{H} d{D} bf16 (torch {torch.__version__})", ""]
    rate = {}  # chunk n -> attnc TFLOP/s of a non-causal n x n block
    mha_full = load("full", "mha_d128")
    for n in [1024, 2048, 4096, 8192, 16384, 32768, 65536]:
        q, k, v = (torch.randn(1, H, n, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        args = {"q": storage(mha_full, "q", q), "k": storage(mha_full, "k", k),
                "v": storage(mha_full, "v", v)}
        args.update(mha_full.allocate_outputs(**args))
        launch = mha_full.prepare(**args)
        ms = cuda_ms(launch, repeats=9, warmup=2)
        rate[n] = 4 * H * D * n * n / ms / 1e9
    lines += ["block n x n (non-causal): " + ", ".join(f"{n}: {r:.0f}" for n, r in rate.items())
              + " TFLOP/s", ""]
    # What a ring step adds to a block: the block kernel (offsets, f32 partial output) against
    # the plain kernel, one merge by Kernel.combine, and the host time of one launch + merge.
    ring_mha = attnc.ring.RingKernel(load("ring", "mha_d128"))
    lines += ["| n | plain block ms | ring block ms (f32 out, offsets) | combine ms | host us per "
              "pair (launch + merge) |", "|---|---|---|---|---|"]
    for n in [4096, 16384, 65536]:
        q, k, v = (torch.randn(1, H, n, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        args = {"q": storage(mha_full, "q", q), "k": storage(mha_full, "k", k),
                "v": storage(mha_full, "v", v)}
        plain = mha_full.prepare(**args, **mha_full.allocate_outputs(**args))
        kern = ring_mha.kernel
        work = torch.empty(3, 1, H, n, D, device="cuda")
        lse = torch.empty(3, 1, H, n, device="cuda")
        zero = torch.tensor(0, dtype=torch.int32, device="cuda")
        perm_o = [ring_mha.out.perm.index(p) for p in range(4)]
        block = kern.prepare(**args, q_offset=zero, k_offset=zero,
                             o=work[1].permute(perm_o), lse=lse[1])
        merge = lambda: kern.combine(work[0:2], lse[0:2], work[2], lse[2])  # noqa: E731
        work.zero_()
        lse.zero_()
        state = {"start": 0, "q": args, "o": work, "lse": lse, "acc": 0}
        keys = {"k": args["k"], "v": args["v"]}
        torch.cuda.synchronize()
        import time
        t0 = time.perf_counter()
        for _ in range(10):
            state["acc"] = 0
            ring_mha._pair(state, keys, 0, perm_o, torch.device("cuda"))
        host_us = (time.perf_counter() - t0) / 10 * 1e6
        torch.cuda.synchronize()
        lines.append(f"| {n} | {cuda_ms(plain, 9, 2):.3f} | {cuda_ms(block, 9, 2):.3f} | "
                     f"{cuda_ms(merge, 9, 2):.3f} | {host_us:.0f} |")
        del q, k, v, args, work, lse
    lines.append("")
    lines += ["| mask | S | single ms | single TFLOP/s | cuDNN ms | FA2 ms | P | layout | "
              "max rank ms | balance | efficiency |", "|---" * 11 + "|"]
    for mask, name in (("causal", "causal_d128"), ("none", "mha_d128")):
        full = load("full", name)
        ring = attnc.ring.RingKernel(load("ring", name))
        causal = mask == "causal"
        for S in LENGTHS:
            flops = 4 * H * D * S * S / (2 if causal else 1)
            q, k, v = (torch.randn(1, H, S, D, device="cuda", dtype=torch.bfloat16)
                       for _ in range(3))
            tensors = {"q": storage(full, "q", q), "k": storage(full, "k", k),
                       "v": storage(full, "v", v)}
            outs = full.allocate_outputs(**tensors)
            launch = full.prepare(**tensors, **outs)
            single = cuda_ms(launch, repeats=5, warmup=1)
            anchors = []
            for backend in (torch.nn.attention.SDPBackend.CUDNN_ATTENTION,
                            torch.nn.attention.SDPBackend.FLASH_ATTENTION):
                try:
                    with torch.nn.attention.sdpa_kernel(backend):
                        anchors.append(cuda_ms(lambda: F.scaled_dot_product_attention(
                            q, k, v, is_causal=causal), repeats=5, warmup=1))
                except RuntimeError:
                    anchors.append(float("nan"))
            want = outs["o"].float()
            for world in WORLDS:
                for layout in (("zigzag", "contiguous") if causal else ("contiguous",)):
                    ring.layout = layout
                    shards = [{n: ring.shard(t, n, r, world) for n, t in tensors.items()}
                              for r in range(world)]
                    per_rank = []
                    results = []
                    for r in range(world):
                        def blocks(step, r=r):
                            src = (r - step) % world
                            return {n: shards[src][n] for n in ("k", "v")}, src

                        def run(r=r, blocks=blocks):
                            return ring._rank_forward(r, world, S, shards[r], blocks)
                        per_rank.append(cuda_ms(run, repeats=3, warmup=1))
                        results.append(run()[0])
                    o = ring.unshard(results, "o")
                    err = ((o.float() - want).norm() / want.norm()).item()
                    worst = max(per_rank)
                    lines.append(
                        f"| {mask} | {S} | {single:.2f} | {flops / single / 1e9:.0f} | "
                        f"{anchors[0]:.2f} | {anchors[1]:.2f} | {world} | {layout} | "
                        f"{worst:.2f} | {sum(per_rank) / len(per_rank) / worst:.3f} | "
                        f"{single / (world * worst):.3f} |")
                    if err > 2e-2:
                        lines.append(f"  (ring vs single relative error {err:.2e}: WRONG)")
                    print(lines[-1], flush=True)
            del q, k, v, tensors, outs
    # The cost model: per-GPU efficiency with the measured link, zigzag causal and non-causal.
    ns = sorted(rate)

    def pair_ms(n, fraction=1.0):  # an n x n block pair at the measured rate (log-interpolated)
        n = max(n, 1)
        r = rate[ns[0]] * min(1.0, n / ns[0])
        for n0, n1 in zip(ns, ns[1:]):
            if n0 <= n <= n1:
                t = math.log(n / n0) / math.log(n1 / n0)
                r = rate[n0] + t * (rate[n1] - rate[n0])
        if n > ns[-1]:
            r = rate[ns[-1]]
        return fraction * 4 * H * D * n * n / r / 1e9

    lines += ["", "cost model (b1 h16 d128 bf16; link = 2 x H200 NVLink measured; compute = "
              "attnc's measured block rate; NCCL's SM and HBM use during compute not modelled):",
              "", "| S total | P | tokens per GPU | step compute ms | transfer ms | causal zigzag "
              "eff. | non-causal eff. |", "|---|---|---|---|---|---|---|"]
    for S in (131072, 1 << 20, 1 << 22):
        for P in (2, 4, 8, 16, 64, 256, 1024):
            n = S // P
            if n < 256:
                continue
            mib = 2 * n * H * D * 2 / 2**20
            transfer = 2 * n * H * D * 2 / (link_gbps(mib) * 1e6)  # ms
            full_step = pair_ms(n)
            causal_step = 2 * pair_ms(n // 2)  # zigzag: two full chunk pairs per step (t > 0)
            eff_nc = full_step / max(full_step, transfer)
            steps = [causal_step] * P  # step 0 (the diagonal chunks) waits for no block
            ideal = sum(steps)
            real = steps[0] + sum(max(c, transfer) for c in steps[1:])
            eff_c = ideal / real
            lines.append(f"| {S} | {P} | {n} | {full_step:.3f} | {transfer:.3f} | {eff_c:.3f} | "
                         f"{eff_nc:.3f} |")
    hide = next((n for n in range(256, 1 << 20, 256)
                 if pair_ms(n) >= 2 * n * H * D * 2 / (link_gbps(2 * n * H * D * 2 / 2**20) * 1e6)),
                None)
    hide_c = next((n for n in range(256, 1 << 20, 256)
                   if 2 * pair_ms(n // 2) >= 2 * n * H * D * 2 /
                   (link_gbps(2 * n * H * D * 2 / 2**20) * 1e6)), None)
    lines += ["", f"transfer hides from {hide} tokens per GPU (non-causal) and {hide_c} "
              "(causal zigzag) with this link"]
    text = "\n".join(lines) + "\n"
    print(text)
    (out_dir / "ring.md").write_text(text)


if __name__ == "__main__":
    sys.exit(main())
