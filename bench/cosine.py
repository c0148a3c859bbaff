"""Row norms in a score: specs/cosine_attention.attn (scaled cosine attention, the norms
dot(q, q) and dot(k, k) computed once per Q tile and K tile inside the kernel) against, in the
same process:
  - attnc's specs/gqa.attn (the nearest spec: the same shape without the norms; issue 17's
    target is cosine within 10% of its time),
  - the way the peers run it: q and k normalised by torch ops (F.normalize, q divided by the
    per-head temperature), then one attention call (SDPA cuDNN / flash, FlexAttention),
  - SDPA cuDNN on the gqa shape, as BENCH.md's anchor.
Shape: b2 h32/8 s8192 d128 causal, bf16 (the gqa suite of bench.py). Writes
bench/results/YYYY-MM-DD-<tag>.md (and a copy under $OUT).

  python3 bench/cosine.py [--tag cosine-attention] [--repeats 100] [--no-flex]

Kernels come from $ATTNC_KERNEL_DIR (default .device/kernels). Protocol: METHOD.md.
"""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from compare import Table, load_kernels, parse_args, storage

B, H, HK, S, D = 2, 32, 8, 8192, 128
FLOPS = 4 * B * H * (S * S / 2) * D  # QK^T and PV over the causal pairs


def inputs(gen):
    """Canonical [b, h(k), s, d] tensors and the temperature per head (near 0.1, as learned)."""
    r = lambda *shape: torch.randn(*shape, generator=gen, device="cuda", dtype=torch.bfloat16)  # noqa: E731
    t = {"q": r(B, H, S, D), "k": r(B, HK, S, D), "v": r(B, HK, S, D)}
    t["tau"] = 0.1 + 0.02 * torch.rand(H, generator=gen, device="cuda")
    return t


def normalised(t):
    """The peers' inputs: q / (|q| tau[h]) and k / |k| (the spec's 1e-12 under the root)."""
    def unit(x):
        x = x.float()
        return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + 1e-12)
    q = unit(t["q"]) / t["tau"].clamp_min(0.01).view(1, H, 1, 1)
    return q.to(torch.bfloat16), unit(t["k"]).to(torch.bfloat16)


def reference(t, rows=512):
    """float32 reference of the last `rows` queries."""
    q, k = normalised({n: x.float() if x.is_floating_point() else x for n, x in t.items()})
    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        mask = torch.ones(rows, S, dtype=torch.bool, device="cuda").tril(S - rows)
        return F.scaled_dot_product_attention(q.float()[:, :, -rows:], k.float(), t["v"].float(),
                                              attn_mask=mask, scale=1.0, enable_gqa=True)


def main():
    args = parse_args(__doc__, "cosine-attention")
    kernels = load_kernels()
    gen = torch.Generator(device="cuda").manual_seed(0)
    t = inputs(gen)
    table = Table(args.repeats, FLOPS)
    row, notes = table.row, table.notes

    cosine = kernels.get("cosine_attention")
    if cosine is not None:
        a = storage(cosine, t)
        a["o"].fill_(float("nan"))
        cosine(**a)
        torch.cuda.synchronize()
        o = a["o"][:, :, -512:].float()  # storage [b, h, s, d]
        want = reference(t)
        rel = float((o - want).norm() / want.norm())
        notes.append(f"attnc cosine_attention: relative error {rel:.2e} against the float32 "
                     f"reference (last 512 queries), {int(torch.isnan(a['o']).sum())} NaN")
        row("attnc cosine_attention (norms in the kernel)", lambda: cosine(**a))
    gqa = kernels.get("gqa")
    if gqa is not None:
        ga = storage(gqa, t)
        row("attnc gqa d128 (the nearest spec)", lambda: gqa(**ga))

    def peer(attend):
        def run():
            q, k = normalised(t)
            return attend(q, k)
        return run

    for name, backend in (("cuDNN", SDPBackend.CUDNN_ATTENTION),
                          ("flash", SDPBackend.FLASH_ATTENTION)):
        def sdpa(q, k, backend=backend):
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, k, t["v"], is_causal=True, scale=1.0,
                                                      enable_gqa=True)
        row(f"SDPA {name} + torch normalisation", peer(sdpa))
    if not args.no_flex:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        mask = create_block_mask(lambda b, h, q, k: q >= k, None, None, S, S, device="cuda")
        flex = torch.compile(flex_attention)
        row("FlexAttention + torch normalisation",
            peer(lambda q, k: flex(q, k, t["v"], block_mask=mask, scale=1.0, enable_gqa=True)))

    def anchor():
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            return F.scaled_dot_product_attention(t["q"], t["k"], t["v"], is_causal=True,
                                                  enable_gqa=True)
    row("SDPA cuDNN gqa d128 (anchor)", anchor)

    table.report(f"# Cosine attention: row norms in the score ({args.tag})",
                 f"Shape: b{B} h{H}/{HK} s{S} d{D} causal, bf16. FLOPs: 4 d per causal pair and "
                 f"head (the norms' 2 d per row are not counted). Median of {args.repeats} "
                 "CUDA-event timings, cold L2.",
                 "attnc cosine_attention (norms in the kernel)", "cosine / this", args.tag)


if __name__ == "__main__":
    main()
