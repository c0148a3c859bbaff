"""attnc's CUDA backward (`attnc compile --backward`: <variant>_grad, the dQ and dK/dV kernels)
beside the anchors of BENCH.md in one process: SDPA's backward on its flash (FlashAttention-2)
and cuDNN backends for the dense shapes, FlexAttention's (torch.compile'd) for the variants.

Timed: the backward alone (the forward's o and lse are inputs; each anchor's
torch.autograd.grad of a forward built once), median of CUDA-event timings with a cold L2
(bench.time_ms). "speed vs X" = X's time / attnc's (> 1: attnc faster). TFLOP/s with BENCH.md's convention: 2.5x the forward's FLOPs over the
computed pairs. Each row also gives the relative difference of attnc's dq, dk, dv from the
first anchor's gradients (the float64 check is tests/gpu/test_backward.py).
  usage: python3 bench/backward.py [--kernels DIR] [--repeats N] [--quick] [--also NAME=DIR,...]
"""
import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (shared cases, inputs, timing and report helpers)
from bench import Case, DTYPE  # noqa: E402


def grad_cases(quick):
    out = []
    for d in (64, 128):
        for kind in ("mha", "causal"):
            out.append(Case("dense", f"{kind}_d{d}", 4, 2048 // d, 4096, d))
    if not quick:
        for name in ("causal_d128", "alibi", "softcap", "sliding_window", "document",
                     "document_random", "forget"):
            out.append(Case("variants", name, 2, 16, 8192, 128))
    return out


def attnc_backward(case, fwd, grad, q, k, v, params, dout_c):
    """A callable running attnc's backward on its own forward's o and lse, and its grads."""
    args, o_c = bench.attnc_args(fwd, q, k, v, params)
    fwd(**args)
    o_arg = next(a for a in fwd.manifest["args"] if a["kind"] == "output")
    perm = [o_arg["dims"].index(n) for n in o_arg["storage_dims"]]
    args["d" + o_arg["name"]] = dout_c.permute(*perm).contiguous()
    gargs = {a["name"]: args[a["name"]] for a in grad.manifest["args"]
             if a["kind"] == "input" or a["kind"] == "param"}
    gargs.update(grad.allocate_outputs(**gargs))
    run = lambda: grad(**gargs)  # noqa: E731
    run()
    torch.cuda.synchronize()
    grads = {}
    for a in grad.manifest["args"]:
        if a["name"] in ("dq", "dk", "dv"):
            grads[a["name"]] = bench.canonical(a, gargs[a["name"]])
    return run, grads


def anchor_backward(forward, q, k, v, dout):
    """A callable timing torch.autograd.grad of forward(q, k, v), and its grads."""
    q, k, v = (x.detach().requires_grad_(True) for x in (q, k, v))
    out = forward(q, k, v)
    run = lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)  # noqa: E731
    dq, dk, dv = run()
    torch.cuda.synchronize()
    return run, {"dq": dq, "dk": dk, "dv": dv}


def anchors(case, q, k, v, params):
    """name -> forward(q, k, v) of the anchors that serve this case."""
    out = {}
    mask = case.variant.mask
    if mask in ("full", "causal"):
        causal = mask == "causal"
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION),
                              ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            def fwd(q, k, v, backend=backend):
                with sdpa_kernel(backend):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            out[name] = fwd
    if case.suite == "variants":
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        score_mod, mask_mod = bench.mods(case, params)
        block = create_block_mask(mask_mod, case.b, None, case.s, case.s) if mask_mod else None
        flex = torch.compile(flex_attention)
        out["flex"] = lambda q, k, v: flex(q, k, v, score_mod=score_mod, block_mask=block)
    return out


def rel(got, want):
    return float((got.float() - want.float()).norm() / want.float().norm().clamp_min(1e-30))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernels", default=str(bench.ROOT / ".device" / "kernels-grad"))
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=None, help="comma-separated case names to keep")
    parser.add_argument("--also", default="",
                        help="NAME=DIR,...: more attnc kernel sets timed in the same process "
                             "(schedule A/B); one line each after the row")
    args = parser.parse_args()
    kernels = bench.attnc.load_dir(args.kernels, on_error=lambda *e: None)
    also = {n: bench.attnc.load_dir(d, on_error=lambda *e: None)
            for n, d in (item.split("=", 1) for item in args.also.split(",") if item)}
    print(bench.device_line())
    rows = []
    for case in grad_cases(args.quick):
        if args.only and case.bench not in args.only.split(","):
            continue
        q, k, v, params = bench.make_data(case)
        dout = torch.randn_like(q)
        flops = 2.5 * 4 * case.b * case.h * bench.pairs(case.variant.mask, case.s) * case.d
        kernel = bench.pick_kernel(kernels, case)
        name = next((n for n in case.variant.kernels if kernels.get(n) is kernel), None)
        results, errors = {}, {}
        reference = None
        for anchor, forward in anchors(case, q, k, v, params).items():
            try:
                run, grads = anchor_backward(forward, q, k, v, dout)
                results[anchor] = bench.time_ms(run, args.repeats)
                reference = reference or grads
            except Exception as e:  # an anchor that fails is reported, the run goes on
                results[anchor] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
        if name and name + "_grad" in kernels:
            run, grads = attnc_backward(case, kernels[name], kernels[name + "_grad"], q, k, v,
                                        params, dout)
            results["attnc"] = bench.time_ms(run, args.repeats)
            if reference:
                errors = {g: rel(grads[g], reference[g]) for g in ("dq", "dk", "dv")}
        line = f"| {case.suite} | {case.bench} | b{case.b} h{case.h} s{case.s} d{case.d} |"
        for col in ("attnc", "flash", "cudnn", "flex"):
            r = results.get(col)
            line += f" {flops / r / 1e9:.0f} ({r:.3f} ms) |" if isinstance(r, float) else " - |"
        a = results.get("attnc")
        for col in ("flash", "cudnn", "flex"):
            r = results.get(col)
            line += f" {r / a:.2f} |" if isinstance(a, float) and isinstance(r, float) else " - |"
        line += " " + (" ".join(f"{g} {e:.1e}" for g, e in errors.items()) or "-") + " |"
        rows.append(line)
        print(line, flush=True)
        for tag, other in also.items():
            if name and name + "_grad" in other and isinstance(results.get("attnc"), float):
                run, _ = attnc_backward(case, other[name], other[name + "_grad"], q, k, v,
                                        params, dout)
                t = bench.time_ms(run, args.repeats)
                rows.append(f"|   {tag} | {case.bench} | | {flops / t / 1e9:.0f} ({t:.3f} ms) | "
                            f"{results['attnc'] / t:.2f}x the first |")
                print(rows[-1], flush=True)
        for col, r in results.items():
            if isinstance(r, str):
                print(f"  {col}: {r}")
    print("\n| suite | case | shape | attnc TFLOP/s (ms) | flash | cudnn | flex | speed vs flash "
          "| vs cudnn | vs flex | rel. diff. to the first anchor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
