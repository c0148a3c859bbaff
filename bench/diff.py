"""Several scores in one kernel: specs/diff_attention.attn (differential attention, two softmaxes
over one pass of K/V, a per-head RMSNorm with a gain) against, in the same process:
  - attnc's specs/gqa.attn at d = 128 (one softmax attention over the same K/V bytes: issue
    17's target is diff <= 1.3x its time),
  - the way the Differential Transformer runs it on the peers: two attention calls (SDPA, each
    backend that takes d = 64 with dv = 128; FlexAttention), then the mix, the RMSNorm and the
    gain as torch ops,
  - SDPA cuDNN / flash on the gqa shape, as BENCH.md's anchor.
Shape: b2 h32/8 s8192 causal, bf16 (the gqa suite of bench.py). Writes
bench/results/YYYY-MM-DD-<tag>.md (and a copy under $OUT).

With --backward: a training step (forward + backward) of each, attnc's through its two kernels
(diff_attention, then diff_attention_grad on its o and lses), the peers' through torch autograd
of the same two attention calls and mix; attnc's backward alone too, and its gradients against
SDPA cuDNN's autograd (a sanity check; the GPU tests judge correctness against float64).

  python3 bench/diff.py [--tag diff-attention] [--repeats 100] [--no-flex] [--backward]

Kernels come from $ATTNC_KERNEL_DIR (default .device/kernels). Protocol: METHOD.md.
"""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from compare import Table, load_kernels, parse_args, storage

B, H, HK, S, D, DV = 2, 32, 8, 8192, 64, 128
LAMBDA_INIT, EPS = 0.2, 1e-5


def flops(s=S):
    """Both scores: (Q K^T + P V) over the causal pairs, 2 (d + dv) per pair and head each."""
    return 2 * (2 * B * H * (s * s / 2) * (D + DV))


def train_flops(s=S):
    """Forward and backward: FlashAttention's count, the backward 2.5x the forward."""
    return 3.5 * flops(s)


def inputs(gen):
    """Canonical [b, h(k), s, d] tensors and the params (lambda per head near 0.3, gain near 1)."""
    r = lambda *shape: torch.randn(*shape, generator=gen, device="cuda", dtype=torch.bfloat16)  # noqa: E731
    t = {"q1": r(B, H, S, D), "k1": r(B, HK, S, D), "q2": r(B, H, S, D), "k2": r(B, HK, S, D),
         "v": r(B, HK, S, DV)}
    t["lambda"] = 0.3 + 0.05 * torch.randn(H, generator=gen, device="cuda")
    t["gain"] = 1 + 0.1 * torch.randn(DV, generator=gen, device="cuda")
    return t


def finish(y1, y2, lam, gain):
    """The mix, the per-head RMSNorm (over dv) and the gain, in f32 as the kernel does."""
    y = y1.float() - lam.view(1, H, 1, 1) * y2.float()
    y = y * torch.rsqrt((y * y).mean(-1, keepdim=True) + EPS)
    return (y * gain * (1 - LAMBDA_INIT)).to(torch.bfloat16)


def sdpa_pair(t, backend):
    def run():
        with sdpa_kernel([backend]):
            y1 = F.scaled_dot_product_attention(t["q1"], t["k1"], t["v"], is_causal=True,
                                                enable_gqa=True)
            y2 = F.scaled_dot_product_attention(t["q2"], t["k2"], t["v"], is_causal=True,
                                                enable_gqa=True)
        return finish(y1, y2, t["lambda"], t["gain"])
    return run


def flex_pair(t):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    mask = create_block_mask(lambda b, h, q, k: q >= k, None, None, S, S, device="cuda")
    flex = torch.compile(flex_attention)

    def run():
        y1 = flex(t["q1"], t["k1"], t["v"], block_mask=mask, enable_gqa=True)
        y2 = flex(t["q2"], t["k2"], t["v"], block_mask=mask, enable_gqa=True)
        return finish(y1, y2, t["lambda"], t["gain"])
    return run


def reference(t, rows=512):
    """float32 reference of the last `rows` queries (the efficient backend computes in f32)."""
    f = {n: x.float() for n, x in t.items()}
    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        mask = torch.ones(rows, S, dtype=torch.bool, device="cuda").tril(S - rows)
        ys = [F.scaled_dot_product_attention(f[q][:, :, -rows:], f[k], f["v"], attn_mask=mask,
                                             enable_gqa=True) for q, k in (("q1", "k1"), ("q2", "k2"))]
    y = ys[0] - f["lambda"].view(1, H, 1, 1) * ys[1]
    y = y * torch.rsqrt((y * y).mean(-1, keepdim=True) + EPS)
    return y * f["gain"] * (1 - LAMBDA_INIT)


def gqa_anchors(g):
    """BENCH.md's anchors on the gqa d128 shape: (name, SDPA call) for cuDNN and flash."""
    def anchor(backend):
        def run():
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(g["q"], g["k"], g["v"], is_causal=True,
                                                      enable_gqa=True)
        return run
    return [("cuDNN", anchor(SDPBackend.CUDNN_ATTENTION)),
            ("flash", anchor(SDPBackend.FLASH_ATTENTION))]


def autograd_step(run, leaves, dout):
    """A training step of a torch function of `leaves`: forward, then torch.autograd.grad."""
    def step():
        return torch.autograd.grad(run(), list(leaves.values()), dout)
    return step


def attnc_step(fwd, grad, t, dout):
    """attnc's forward, then its backward on the forward's o and lses: (step, backward, grads)."""
    a = storage(fwd, t)
    o_arg = next(x for x in fwd.manifest["args"] if x["kind"] == "output")
    ga = {x["name"]: a[x["name"]] for x in grad.manifest["args"] if x["name"] in a}
    ga["d" + o_arg["name"]] = dout.permute(*[o_arg["dims"].index(n)
                                             for n in o_arg["storage_dims"]]).contiguous()
    ga.update(grad.allocate_outputs(**ga))
    fwd(**a)
    grad(**ga)
    torch.cuda.synchronize()
    grads = {}
    for x in grad.manifest["args"]:
        if x["kind"] == "output" and x["name"][1:] in t and x["name"][1:] in ("q1", "k1", "v"):
            grads[x["name"][1:]] = ga[x["name"]].permute(
                *[x["storage_dims"].index(n) for n in x["dims"]]).float()
    return (lambda: (fwd(**a), grad(**ga))), (lambda: grad(**ga)), grads


def main_backward(args, kernels, t, gen):
    table = Table(args.repeats, train_flops())
    row, notes = table.row, table.notes
    dout = torch.randn(B, H, S, DV, generator=gen, device="cuda", dtype=torch.bfloat16)
    leaves = {n: x.detach().clone().requires_grad_(True) for n, x in t.items()}
    try:  # the peers' gradients, for a sanity check of attnc's (flash takes no dv != d)
        peer_grads = dict(zip(leaves, autograd_step(sdpa_pair(leaves, SDPBackend.CUDNN_ATTENTION),
                                                    leaves, dout)()))
    except RuntimeError as e:
        peer_grads = {}
        notes.append(f"no SDPA cuDNN gradients to compare with: {str(e).splitlines()[0][:120]}")
    diff, diff_grad = kernels.get("diff_attention"), kernels.get("diff_attention_grad")
    if diff is not None and diff_grad is not None:
        step, backward, grads = attnc_step(diff, diff_grad, t, dout)
        for n, g in grads.items():
            if n in peer_grads:
                want = peer_grads[n].float()
                notes.append(f"attnc d{n}: relative difference "
                             f"{float((g - want).norm() / want.norm()):.2e} to SDPA cuDNN x2's "
                             f"autograd, {int(torch.isnan(g).sum())} NaN")
        row("attnc diff_attention fwd + bwd", step)
        row("attnc diff_attention_grad (bwd alone)", backward, 2.5 * flops())
    gqa, gqa_grad = kernels.get("gqa"), kernels.get("gqa_grad")
    g = {"q": torch.cat([t["q1"], t["q2"]], -1), "k": torch.cat([t["k1"], t["k2"]], -1),
         "v": t["v"]}
    gqa_flops = 3.5 * 4 * B * H * (S * S / 2) * 128
    if gqa is not None and gqa_grad is not None:
        row("attnc gqa d128 fwd + bwd (one softmax, same K/V)",
            attnc_step(gqa, gqa_grad, g, dout)[0], gqa_flops)
    for name, backend in (("cuDNN", SDPBackend.CUDNN_ATTENTION),
                          ("flash", SDPBackend.FLASH_ATTENTION),
                          ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
        row(f"SDPA {name} x2 + torch mix/rmsnorm, fwd + bwd",
            autograd_step(sdpa_pair(leaves, backend), leaves, dout))
    if not args.no_flex:
        row("FlexAttention x2 + torch mix/rmsnorm, fwd + bwd",
            autograd_step(flex_pair(leaves), leaves, dout))
    gl = {n: x.detach().clone().requires_grad_(True) for n, x in g.items()}
    for name, anchor in gqa_anchors(gl):
        row(f"SDPA {name} gqa d128 fwd + bwd (anchor)", autograd_step(anchor, gl, dout), gqa_flops)
    table.report(f"# Training differential attention ({args.tag})",
                 f"Shape: b{B} h{H}/{HK} s{S} causal, bf16; diff: q1/k1 and q2/k2 of d {D}, v of "
                 f"dv {DV}; gqa: d 128. FLOPs: 3.5x the forward's (2 (d + dv) per causal pair, "
                 f"head and score), the backward alone 2.5x. Median of {args.repeats} CUDA-event "
                 f"timings, cold L2.",
                 "attnc diff_attention fwd + bwd", "attnc / this", args.tag)


def main():
    args = parse_args(__doc__, "diff-attention")
    kernels = load_kernels()
    gen = torch.Generator(device="cuda").manual_seed(0)
    t = inputs(gen)
    if args.backward:
        main_backward(args, kernels, t, gen)
        return
    table = Table(args.repeats, flops())
    row, notes = table.row, table.notes

    diff = kernels.get("diff_attention")
    if diff is not None:
        a = storage(diff, t)
        lse = [x["name"] for x in diff.manifest["args"] if x["kind"] == "lse"]
        a["o"].fill_(float("nan"))
        diff(**a)
        torch.cuda.synchronize()
        o = a["o"].permute(0, 2, 1, 3)[:, :, -512:].float()  # storage [b, s, h, dv]
        want = reference(t)
        rel = float((o - want).norm() / want.norm())
        notes.append(f"attnc diff_attention: relative error {rel:.2e} against the float32 "
                     f"reference (last 512 queries), {int(torch.isnan(a['o']).sum())} NaN; "
                     f"lses returned: {', '.join(lse)}")
        row("attnc diff_attention (one kernel)", lambda: diff(**a))
    gqa = kernels.get("gqa")
    g = {"q": torch.cat([t["q1"], t["q2"]], -1), "k": torch.cat([t["k1"], t["k2"]], -1),
         "v": t["v"]}
    gqa_flops = 4 * B * H * (S * S / 2) * 128
    if gqa is not None:
        ga = storage(gqa, g)
        row("attnc gqa d128 (one softmax, same K/V)", lambda: gqa(**ga), gqa_flops)
    for name, backend in (("cuDNN", SDPBackend.CUDNN_ATTENTION),
                          ("flash", SDPBackend.FLASH_ATTENTION),
                          ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
        row(f"SDPA {name} x2 + torch mix/rmsnorm", sdpa_pair(t, backend))
    if not args.no_flex:
        row("FlexAttention x2 + torch mix/rmsnorm", flex_pair(t))
    for name, anchor in gqa_anchors(g):
        row(f"SDPA {name} gqa d128 (anchor)", anchor, gqa_flops)

    table.report(f"# Differential attention in one kernel ({args.tag})",
                 f"Shape: b{B} h{H}/{HK} s{S} causal, bf16; diff: q1/k1 and q2/k2 of d {D}, v of "
                 f"dv {DV}; gqa: d 128. FLOPs: 2 (d + dv) per causal pair and head per score. "
                 f"Median of {args.repeats} CUDA-event timings, cold L2.",
                 "attnc diff_attention (one kernel)", "diff / this", args.tag)


if __name__ == "__main__":
    main()
