"""Recurrence-family benchmark (BENCH.md's flash-linear-attention shape, B2 T8192 H16 K=V=128,
bf16, forward): attnc's linear attention (relu and elu + 1 feature maps) and RetNet retention
next to flash-linear-attention's chunked Triton kernels, in the same process.

  python3 bench/recurrent.py [--tag TAG] [--dir KERNELS] [--shape b:t:h] [--mamba b:L:h]
                            [--baseline EARLIER_KERNELS] [--no-peers]

attnc compiles these variants to the chunked form (attn-chunk: one block per value slice, head
and batch walks the chunks, state in registers, tensor-core chunk matmuls). With --quadratic-dir
(kernels compiled with --no-chunk) the masked quadratic form o = (M * S) V is timed too, whose
cost grows with T^2. Correctness first: each attnc output is compared with
fla's on the same inputs (fla gets phi(q), phi(k), since its ops take mapped inputs), then
timed. fla's first call (Triton compile and autotune) is timed too; it needs fla-core and
einops on PYTHONPATH (bench/device_run.sh recurrent installs the carried wheels). Mamba-2 SSD
(BENCH.md's b2 L8192 h64 p64 n128, B/C shared by groups of 8 heads here; dt's softplus,
dt_bias and D computed inside by both) runs next to mamba_ssm's Triton
mamba_chunk_scan_combined (its ops/triton sources carried in .device/mamba_src).
"""
import argparse
import datetime
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "bench"))
import attnc  # noqa: E402
from bench import device_line, relative_error, time_ms, write_report  # noqa: E402

# (attnc variant, fla op, feature map applied to q and k before fla's op)
CASES = [
    ("linear_relu", "linear_attn", torch.relu),
    ("linear_elu", "linear_attn", lambda x: torch.nn.functional.elu(x) + 1),
    ("retnet", "retention", None),
]
ANCHORS_MS = {"linear_attn": 0.252, "retention": 0.463, "mamba_chunk_scan_combined": 0.893,
              "chunk_gla": "-", "chunk_rwkv6": "-", "linear_attn normalize": "-",
              "simple_gla + rmsnorm": "-",
              "features + linear_attn normalize": "-",
              "selective_state_update": "-", "torch selective_scan_ref": "-"}


def fla_op(name, q, k, v, scale):
    """fla's op `name` bound to its inputs, as a call without arguments."""
    if name == "linear_attn":
        from fla.ops.linear_attn import chunk_linear_attn
        # attnc's linear_elu has no 1/sqrt(d); linear_relu has it: the caller passes the scale.
        return lambda: chunk_linear_attn(q, k, v, scale=scale, normalize=False)[0]
    from fla.ops.retention import chunk_retention
    return lambda: chunk_retention(q, k, v, scale=scale)[0]


def mamba2_case(args):
    """attnc's mamba2_ssd (B/C shared by groups of 8 heads; dt_softplus, dt_bias and D inside)
    against mamba_ssm's Triton SSD (mamba_chunk_scan_combined, chunk 256) on the same inputs."""
    B, L, H = (int(x) for x in args.mamba.split(":"))
    P, N, G = 64, 128, H // 8
    row = {"variant": "mamba2_ssd", "fla_op": "mamba_chunk_scan_combined"}
    print(f"== mamba2_ssd vs mamba_ssm (b{B} L{L} h{H} p{P} n{N} groups{G})", flush=True)
    gen = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(B, L, H, P, device="cuda", dtype=torch.bfloat16, generator=gen)
    bm = torch.randn(B, L, G, N, device="cuda", dtype=torch.bfloat16, generator=gen) * 0.3
    c = torch.randn(B, L, G, N, device="cuda", dtype=torch.bfloat16, generator=gen) * 0.3
    dt = torch.randn(B, L, H, device="cuda", dtype=torch.float32, generator=gen) - 2
    dt_bias = torch.randn(H, device="cuda", dtype=torch.float32, generator=gen) * 0.5
    a_log = torch.rand(H, device="cuda", dtype=torch.float32, generator=gen) * 2
    d_skip = torch.randn(H, device="cuda", dtype=torch.float32, generator=gen)

    def peer():
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
        A = -torch.exp(a_log)
        return lambda: mamba_chunk_scan_combined(x, dt, A, bm, c, 256, D=d_skip,
                                                 dt_bias=dt_bias, dt_softplus=True)

    ref = time_peer(row, peer, args.repeats)
    inputs = dict(c=c, bm=bm, x=x, dt=dt, dt_bias=dt_bias, a_log=a_log, d_skip=d_skip)
    time_attnc(row, args, inputs, ("y", x), ref,
               B * H * L * L * (N + P))  # QK^T and PV over the causal half
    print("  " + json.dumps(row), flush=True)
    return row


def gla_case(args, q, k, v, flops):
    """attnc's gla (a per-channel forget gate) against fla's chunk_gla on the same inputs; the
    log gates are logsigmoid(x) / 16, as GLA normalises them."""
    B, T, H, D = q.shape
    row = {"variant": "gla", "fla_op": "chunk_gla"}
    print("== gla vs fla chunk_gla", flush=True)
    gen = torch.Generator(device="cuda").manual_seed(3)
    g = torch.nn.functional.logsigmoid(
        torch.randn(B, T, H, D, device="cuda", dtype=torch.float32, generator=gen)) / 16

    def peer():
        from fla.ops.gla import chunk_gla
        return lambda: chunk_gla(q, k, v, g.to(q.dtype), scale=D ** -0.5)[0]

    ref = time_peer(row, peer, args.repeats)
    # attnc gets the bf16-rounded gates too, so both see the same values
    time_attnc(row, args, dict(q=q, k=k, v=v, g=g.to(q.dtype).float()), ("o", q), ref, flops)
    print("  " + json.dumps(row), flush=True)
    return row


def normalised_cases(args, q, k, v, flops):
    """The normalisers and the projected feature map, each against fla composed the same way:
    linear_elu_norm vs chunk_linear_attn(normalize=True) on elu + 1 features; transnormer
    (TransNormerLLM's decay, rmsnorm of the output) vs chunk_simple_gla with the same log
    decays, then the rmsnorm in torch; performer (d 64, m 128, dv 64, FAVOR+ features) vs the
    features computed in torch, then chunk_linear_attn(normalize=True). The peers' times
    include their torch parts."""
    B, T, H, D = q.shape
    rows = []
    elu1 = lambda x: torch.nn.functional.elu(x.float()) + 1  # noqa: E731

    def linear_norm():
        from fla.ops.linear_attn import chunk_linear_attn
        qf, kf = elu1(q).to(q.dtype), elu1(k).to(k.dtype)
        return lambda: chunk_linear_attn(qf, kf, v, scale=1.0, normalize=True)[0]

    log_decay = -torch.exp2(-8.0 * (torch.arange(H, device="cuda") + 1) / H)  # log lambda_h
    g = log_decay.view(1, 1, H).expand(B, T, H).contiguous()

    def transnormer():
        from fla.ops.simple_gla import chunk_simple_gla

        def fn():
            o = chunk_simple_gla(q, k, v, g, scale=D ** -0.5)[0].float()
            return o * torch.rsqrt((o * o).mean(-1, keepdim=True) + 1e-6)
        return fn

    gen = torch.Generator(device="cuda").manual_seed(5)
    d, m = 64, 128
    qp, kp, vp = (x[..., :d].contiguous() for x in (q, k, v))
    w = torch.randn(m, d, device="cuda", generator=gen)

    def performer():
        from fla.ops.linear_attn import chunk_linear_attn

        def phi(x):
            x = x.float()
            sq = (x * x).sum(-1, keepdim=True)
            return (torch.exp(d ** -0.25 * (x @ w.T) - sq / (2 * d ** 0.5)) * m ** -0.5).to(q.dtype)
        return lambda: chunk_linear_attn(phi(qp), phi(kp), vp, scale=1.0, normalize=True)[0]

    for name, op, peer, inputs, like, work in [
            ("linear_elu_norm", "linear_attn normalize", linear_norm, dict(q=q, k=k, v=v), q,
             flops),
            ("transnormer", "simple_gla + rmsnorm", transnormer, dict(q=q, k=k, v=v), q, flops),
            ("performer", "features + linear_attn normalize", performer,
             dict(q=qp, k=kp, v=vp, w=w), vp, 4 * B * H * T * T * m / 2)]:
        row = {"variant": name, "fla_op": op}
        print(f"== {name} vs {op}", flush=True)
        ref = time_peer(row, peer, args.repeats)
        time_attnc(row, args, inputs, ("o", like), ref, work)
        print("  " + json.dumps(row), flush=True)
        rows.append(row)
    return rows


def mamba2_step_case(args):
    """attnc's mamba2_step (one decoding step against the carried state, updated in place)
    against mamba_ssm's Triton selective_state_update on the same inputs (Mamba-2: A, dt and
    dt's softplus shared over the head's channels; B/C shared by groups of 8 heads)."""
    B, H = (int(x) for x in args.step.split(":"))
    P, N, G = 64, 128, H // 8
    row = {"variant": "mamba2_step", "fla_op": "selective_state_update"}
    print(f"== mamba2_step vs mamba_ssm selective_state_update (b{B} h{H} p{P} n{N})", flush=True)
    gen = torch.Generator(device="cuda").manual_seed(2)
    x = torch.randn(B, H, P, device="cuda", dtype=torch.bfloat16, generator=gen)
    bm = torch.randn(B, G, N, device="cuda", dtype=torch.bfloat16, generator=gen) * 0.3
    c = torch.randn(B, G, N, device="cuda", dtype=torch.bfloat16, generator=gen) * 0.3
    dt = torch.randn(B, H, device="cuda", dtype=torch.float32, generator=gen) - 2
    a_log = torch.rand(H, device="cuda", dtype=torch.float32, generator=gen) * 2
    dt_bias = torch.randn(H, device="cuda", dtype=torch.float32, generator=gen) * 0.5
    d_skip = torch.randn(H, device="cuda", dtype=torch.float32, generator=gen)
    state = torch.randn(B, H, P, N, device="cuda", dtype=torch.float32, generator=gen)

    def peer():
        from mamba_ssm.ops.triton.selective_state_update import selective_state_update
        A = (-torch.exp(a_log))[:, None, None].expand(H, P, N)
        # Mamba-2's call: channels tied through stride-0 views of the per-head values.
        s = state.clone()
        return lambda: selective_state_update(s, x, dt[..., None].expand(B, H, P), A, bm, c,
                                              D=d_skip[:, None].expand(H, P),
                                              dt_bias=dt_bias[:, None].expand(H, P),
                                              dt_softplus=True)

    ref = time_peer(row, peer, args.repeats)  # its first call used the initial state
    ssm = state.transpose(-1, -2).contiguous()  # attnc's spec stores it [b, h, n, p]
    inputs = dict(c=c[:, None], bm=bm[:, None], x=x[:, None], dt=dt[:, None], dt_bias=dt_bias,
                  a_log=a_log, d_skip=d_skip, ssm=ssm)
    time_attnc(row, args, inputs, ("y", x[:, None]), None if ref is None else ref[:, None],
               0, fresh=("ssm", state.transpose(-1, -2)))
    # Bytes of the step: the f32 state read and written, the rest negligible.
    if "attnc_ms" in row:
        row["attnc_gbs"] = 2 * state.numel() * 4 / row["attnc_ms"] / 1e6
    if "fla_ms" in row:
        row["fla_gbs"] = 2 * state.numel() * 4 / row["fla_ms"] / 1e6
    print("  " + json.dumps(row), flush=True)
    return row


def mamba1_case(args):
    """attnc's mamba1_selective_scan (the scan kernel: a thread per channel over the sequence)
    against a float32 torch selective scan written like mamba_ssm's selective_scan_ref (one
    step per position); mamba_ssm's own selective_scan is a CUDA extension, not carried."""
    B, L = (int(x) for x in args.mamba1.split(":"))
    H, N = 1536, 16
    row = {"variant": "mamba1_selective_scan", "fla_op": "torch selective_scan_ref"}
    print(f"== mamba1_selective_scan vs a torch scan (b{B} L{L} d_inner{H} n{N})", flush=True)
    gen = torch.Generator(device="cuda").manual_seed(4)
    u = torch.randn(B, L, H, 1, device="cuda", dtype=torch.bfloat16, generator=gen)
    bm = torch.randn(B, L, 1, N, device="cuda", dtype=torch.bfloat16, generator=gen) * 0.3
    c = torch.randn(B, L, 1, N, device="cuda", dtype=torch.bfloat16, generator=gen) * 0.3
    dt = torch.randn(B, L, H, device="cuda", dtype=torch.float32, generator=gen) - 2
    dt_bias = torch.randn(H, device="cuda", dtype=torch.float32, generator=gen) * 0.5
    a_log = torch.log(torch.arange(1, N + 1, device="cuda", dtype=torch.float32)).repeat(H, 1)
    d_skip = torch.randn(H, device="cuda", dtype=torch.float32, generator=gen)

    def peer():
        def scan():
            delta = torch.nn.functional.softplus(dt + dt_bias)  # [B, L, H]
            dA = torch.exp(delta[..., None] * -torch.exp(a_log))  # [B, L, H, N]
            dBu = delta[..., None] * bm.float() * u.float()  # [B, L, H, N]
            x = torch.zeros(B, H, N, device="cuda")
            ys = []
            for t in range(L):
                x = dA[:, t] * x + dBu[:, t]
                ys.append((x * c[:, t].float()).sum(-1))
            return (torch.stack(ys, 1) + d_skip * u[..., 0].float())[..., None]
        return scan

    ref = time_peer(row, peer, max(1, args.repeats // 10))
    inputs = dict(c=c, bm=bm, u=u, dt=dt, dt_bias=dt_bias, a_log=a_log, d_skip=d_skip)
    time_attnc(row, args, inputs, ("y", u), ref, 0)
    # Bytes: u, y (bf16) and dt (f32) per channel and step, B and C once per step.
    if "attnc_ms" in row:
        row["attnc_gbs"] = B * L * (H * (2 + 2 + 4) + 4 * N) / row["attnc_ms"] / 1e6
    print("  " + json.dumps(row), flush=True)
    return row


NO_PEERS = False  # --no-peers: attnc's kernels only (the peers' first calls take ~30 s each)


def rwkv6_case(args):
    """attnc's rwkv6 (a strict-causal recurrence: a gate per key channel and the bonus u of the
    current token) against fla's chunk_rwkv6 on the same inputs: RWKV-6's head size 64, twice
    --shape's heads (the same model width as the K=V=128 cases), log decays logsigmoid(x) as
    fla's docstring draws them."""
    B, T, H = (int(x) for x in args.shape.split(":"))
    H, D = 2 * H, 64
    row = {"variant": "rwkv6", "fla_op": "chunk_rwkv6"}
    print(f"== rwkv6 vs fla chunk_rwkv6 (b{B} T{T} h{H} d{D})", flush=True)
    gen = torch.Generator(device="cuda").manual_seed(4)
    r, k = (torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16, generator=gen) * 0.5
            for _ in range(2))
    v = torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16, generator=gen)
    w = torch.nn.functional.logsigmoid(
        torch.randn(B, T, H, D, device="cuda", dtype=torch.float32, generator=gen))
    u = torch.randn(H, D, device="cuda", dtype=torch.float32, generator=gen) * 0.5

    def peer():
        from fla.ops.rwkv6 import chunk_rwkv6
        return lambda: chunk_rwkv6(r, k, v, w, u, scale=D ** -0.5)[0]

    ref = time_peer(row, peer, args.repeats)
    time_attnc(row, args, dict(r=r, k=k, v=v, w=w, u=u), ("o", r), ref,
               4 * B * H * T * T * D / 2)
    print("  " + json.dumps(row), flush=True)
    return row


def time_peer(row, make, repeats):
    """The peer's output (or None) and row["fla_first_s"] / ["fla_ms"]; make() -> fn."""
    if NO_PEERS:
        row["fla"] = "not run (--no-peers)"
        return None
    try:
        fn = make()
        t0 = time.time()
        ref = fn()
        torch.cuda.synchronize()
        row["fla_first_s"] = time.time() - t0
        row["fla_ms"] = time_ms(fn, repeats)
        return ref
    except Exception as e:  # the peer missing or failing: attnc is still timed
        row["fla"] = f"failed: {type(e).__name__}: {str(e)[:160]}"
        return None


def time_attnc(row, args, inputs, output, ref, flops, directory=None, key="attnc", fresh=None):
    """attnc's kernel row["variant"] (from `directory`, default --dir) on `inputs`, its output
    (name, a tensor it is shaped like) `output`: error against the peer's `ref`, ms and TFLOP/s
    into row under `key`. `fresh` (name, tensor): an in-place state, reset to the tensor before
    the checked launch."""
    if key == "quadratic":
        directory = getattr(args, "quadratic_dir", None)
        if not directory:
            return
    elif key == "before":
        directory = args.baseline
    try:
        name = row["variant"]
        directory = Path(directory or args.dir)
        kernel = attnc.load_kernel(directory / f"{name}.ptx", directory / f"{name}.json")
        out_name, like = output
        out = torch.empty_like(like)
        launch = kernel.prepare(**inputs, **{out_name: out})
        out.fill_(math.nan)
        if fresh:
            inputs[fresh[0]].copy_(fresh[1])
        launch()
        torch.cuda.synchronize()
        if ref is not None:
            row[f"{key}_err_vs_fla"] = relative_error(out, ref.float())
        if key == "attnc":
            AFTER_OUT[name] = out.clone()
        elif key == "before" and name in AFTER_OUT:
            row["before_err_vs_attnc"] = relative_error(out.float(), AFTER_OUT[name].float())
        row[f"{key}_ms"] = time_ms(launch, args.repeats)
        if flops:
            row[f"{key}_tflops"] = flops / row[f"{key}_ms"] / 1e9
    except Exception as e:
        row[key] = f"failed: {type(e).__name__}: {str(e)[:160]}"
    if key == "attnc" and getattr(args, "baseline", ""):
        # --baseline: the same kernel from an earlier compiler, same inputs, same process.
        time_attnc(row, args, inputs, output, ref, flops, key="before", fresh=fresh)


AFTER_OUT = {}  # variant -> attnc's output, which --baseline's kernel is compared against


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tag", default="recurrent")
    parser.add_argument("--dir", default=str(ROOT / ".device" / "kernels"))
    parser.add_argument("--quadratic-dir", default="",
                        help="kernels compiled with --no-chunk, timed as the quadratic form")
    parser.add_argument("--shape", default="2:8192:16")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--step", default="128:64",
                        help="b:h of the Mamba-2 decoding step (p 64, n 128); '' skips it")
    parser.add_argument("--mamba", default="2:8192:64",
                        help="b:L:h of the Mamba-2 SSD case (p 64, n 128, chunk 256); '' skips it")
    parser.add_argument("--mamba1", default="2:2048",
                        help="b:L of the Mamba-1 selective scan (d_inner 1536, n 16); '' skips it")
    parser.add_argument("--no-peers", action="store_true", help="time attnc's kernels only")
    parser.add_argument("--only", default="",
                        help="comma-separated variants to run (default: all)")
    parser.add_argument("--baseline", default="",
                        help="kernels of an earlier compiler: each timed after attnc's (A/B)")
    args = parser.parse_args()
    global NO_PEERS
    NO_PEERS = args.no_peers
    B, T, H = (int(x) for x in args.shape.split(":"))
    D = 128
    gen = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16, generator=gen) * 0.5
    k = torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16, generator=gen) * 0.5
    v = torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16, generator=gen)
    flops = 4 * B * H * T * T * D / 2  # the quadratic form, causal
    rows, raw = [], {}
    only = set(filter(None, args.only.split(",")))

    def wanted(variant):
        return not only or variant in only

    for variant, op, feature in CASES:
        if not wanted(variant):
            continue
        row = {"variant": variant, "fla_op": op}
        print(f"== {variant} vs fla {op}", flush=True)
        scale = 1.0 if variant == "linear_elu" else 1 / math.sqrt(D)
        qf = feature(q.float()).to(q.dtype) if feature else q
        kf = feature(k.float()).to(k.dtype) if feature else k
        ref = time_peer(row, lambda: fla_op(op, qf, kf, v, scale), args.repeats)
        for key in ("attnc", "quadratic"):
            time_attnc(row, args, dict(q=q, k=k, v=v), ("o", q), ref, flops, key=key)
        print("  " + json.dumps(row), flush=True)
        rows.append(row)
        raw[variant] = row

    # (the variants a case runs, the case): a case runs when --only names one of them
    cases = [(("gla",), lambda: [gla_case(args, q, k, v, flops)]),
             (("rwkv6",), lambda: [rwkv6_case(args)]),
             (("linear_elu_norm", "transnormer", "performer"),
              lambda: normalised_cases(args, q, k, v, flops))]
    if args.mamba:
        cases.append((("mamba2_ssd",), lambda: [mamba2_case(args)]))
    if args.step:
        cases.append((("mamba2_step",), lambda: [mamba2_step_case(args)]))
    if args.mamba1:
        cases.append((("mamba1_selective_scan",), lambda: [mamba1_case(args)]))
    for names, run in cases:
        if any(wanted(name) for name in names):
            for row in run():
                rows.append(row)
                raw[row["variant"]] = row

    def cell(row, key, fmt):
        return fmt.format(row[key]) if key in row else row.get(key.split("_")[0], "")

    lines = [f"# Recurrence family, chunked form vs flash-linear-attention ({args.tag}), "
             f"{datetime.date.today().isoformat()}", "",
             f"Device: {device_line()}; torch {torch.__version__}.", "",
             f"B{B} T{T} H{H} K=V={D}, bf16, forward. attnc runs the chunked form (attn-chunk, "
             "chunk 64); `quadratic` is the masked quadratic form (--no-chunk; TFLOP/s counted "
             "as 4·B·H·T²·D/2 for both, the quadratic form's work); fla its chunked Triton kernels "
             "(chunk_linear_attn normalize=False, chunk_retention). `err` is attnc's relative "
             "error against fla on the same inputs. The mamba2_ssd row (if run): "
             f"b{args.mamba.replace(':', ' L', 1).replace(':', ' h', 1)} p64 n128 against "
             "mamba_ssm (chunk 256), TFLOP/s counted as B·H·L²·(N+P). The mamba2_step row: one "
             f"decoding step, b{args.step.replace(':', ' h')} p64 n128, against mamba_ssm's "
             "selective_state_update (the f32 state read and written in place). The "
             f"mamba1_selective_scan row: b{args.mamba1.replace(':', ' L')} d_inner 1536 n16, "
             "attnc's scan kernel against a float32 torch scan (one step per position; "
             "mamba_ssm's CUDA selective_scan is not carried). linear_elu_norm, transnormer "
             "and performer (d 64, m 128, dv 64): fla composed with torch for the normaliser, "
             "the rmsnorm and the random features (see normalised_cases).", "",
             "| variant | fla op | fla ms | fla first call | BENCH.md fla ms | attnc ms | "
             "attnc / fla time | err | quadratic ms | quadratic TFLOP/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    if args.baseline:
        lines[-2] += " before ms | attnc / before time | before vs attnc err |"
        lines[-1] += "---|---|---|"
        lines[-2:-2] = [f"A/B: attnc's kernels from {args.dir}, `before` from {args.baseline}, "
                        "each pair timed back to back on the same inputs in this process.", ""]
    for row in rows:
        ratio = (f"{row['attnc_ms'] / row['fla_ms']:.1f}x" if "attnc_ms" in row and "fla_ms" in row
                 else "")
        lines.append(f"| {row['variant']} | {row['fla_op']} | {cell(row, 'fla_ms', '{:.3f}')} | "
                     f"{cell(row, 'fla_first_s', '{:.1f} s')} | {ANCHORS_MS[row['fla_op']]} | "
                     f"{cell(row, 'attnc_ms', '{:.3f}')} | {ratio} | "
                     f"{cell(row, 'attnc_err_vs_fla', '{:.1e}')} | "
                     f"{cell(row, 'quadratic_ms', '{:.3f}')} | "
                     f"{cell(row, 'quadratic_tflops', '{:.0f}')} |")
        if args.baseline:
            ab = (f"{row['attnc_ms'] / row['before_ms']:.3f}x"
                  if "attnc_ms" in row and "before_ms" in row else "")
            lines[-1] += (f" {cell(row, 'before_ms', '{:.3f}')} | {ab} | "
                          f"{cell(row, 'before_err_vs_attnc', '{:.1e}')} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_report(text, raw, args.tag)


if __name__ == "__main__":
    main()
