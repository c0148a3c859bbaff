"""Decoding benchmark (BENCH.md's decode shapes): one query token per sequence, GQA 32 query /
8 kv heads, d = 128, bf16, against a KV cache of kv_len tokens. attnc's gqa_decode (contiguous
cache) and paged_decode (page pools, several page sizes) next to SDPA flash / cuDNN and
FlexAttention in the same process. Memory-bound: the figure is GB/s of K + V read (each byte
once) against the copy ceiling, plus the ms.

  python3 bench/decode.py [--tag TAG] [--dirs NAME=DIR,...] [--no-flex] [--shapes b:kv,...]

Each DIR holds kernels compiled with some options (`attnc compile --emit=ptx`); every kernel
named gqa_decode / paged_decode in each DIR is timed, so compile options are compared in one run.
Correctness first: every attnc output is checked against SDPA's (float32 math) before timing.
"""
import argparse
import datetime
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "bench"))
import attnc  # noqa: E402
from bench import device_line, relative_error, time_ms, write_report  # noqa: E402

SHAPES = [(1, 32768), (8, 8192), (32, 4096), (1, 131072)]
HQ, HKV, D = 32, 8, 128
COPY_CEILING = 4240.0  # GB/s, device-to-device copy on the H200 (BENCH.md, 2026-12-03)
ANCHORS = {"b1 kv32768": (2301, 2699, 117), "b8 kv8192": (3282, 3403, 860),
           "b32 kv4096": (2627, 4030, 2792), "b1 kv131072": (3464, 3934, 122)}


def load_kernels(dirs):
    """{label: Kernel} for every gqa_decode / paged_decode manifest in each directory."""
    out = {}
    for label, directory in dirs:
        for name in ("gqa_decode", "paged_decode", "int8_kv_decode", "int8_group_decode",
                     "fp8_paged_decode", "unified_max_decode", "int4_kv_decode",
                     "int4_paged_decode", "int8_paged_decode", "fp8_kv_decode"):
            manifest = Path(directory) / f"{name}.json"
            if manifest.exists():
                try:
                    out[f"{label}/{name}"] = attnc.load_kernel(Path(directory) / f"{name}.ptx",
                                                               manifest)
                except attnc.Error as e:
                    print(f"cannot load {manifest}: {e}")
    return out


def contiguous_args(kernel, q, k, v, kv_len):
    """[b, s, h, d] tensors as the spec declares them, kv_lens = kv_len for every sequence."""
    b = q.shape[0]
    o = torch.empty_like(q)
    lens = torch.full((b,), kv_len, dtype=torch.int32, device="cuda")
    lse = torch.empty(b, HQ, 1, dtype=torch.float32, device="cuda")
    return {"q": q, "k": k, "v": v, "kv_lens": lens, "o": o, "lse": lse}, o


def paged_args(kernel, q, k, v, kv_len, gen):
    """The same cache cut into pages of the kernel's page size, pages shuffled in one pool."""
    page = kernel.manifest["paged"]["page_size"]
    b = q.shape[0]
    per_seq = -(-kv_len // page)
    pages = b * per_seq
    perm = torch.randperm(pages, generator=gen, device="cuda")
    table = perm.view(b, per_seq).to(torch.int32)

    def pool(x):  # x [b, kv, hk, d] -> pool [pages, page, hk, d] with x's pages at table
        raw = x.view(torch.uint8) if x.element_size() == 1 else x  # fp8: copy the bytes
        last = x.shape[-1]  # d, or d / 2 bytes of packed i4
        padded = torch.zeros(b, per_seq * page, HKV, last, dtype=raw.dtype, device="cuda")
        padded[:, :kv_len] = raw
        p = torch.empty(pages, page, HKV, last, dtype=raw.dtype, device="cuda")
        p[table.long().flatten()] = padded.view(b * per_seq, page, HKV, last)
        return p.view(x.dtype) if raw is not x else p

    o = torch.empty_like(q)
    lens = torch.full((b,), kv_len, dtype=torch.int32, device="cuda")
    lse = torch.empty(b, HQ, 1, dtype=torch.float32, device="cuda")
    return {"q": q, "k": pool(k), "v": pool(v), "block_table": table, "kv_lens": lens, "o": o,
            "lse": lse}, o


def quantize(kernel, k, v):
    """(k, v, extra args, dequantised k, v) in the kernel's storage: int8 or int4 (packed two per
    byte, low nibble first) with per-token or per-group scales, or e4m3 with per-head scales,
    computed from the bf16 cache."""
    args = {a["name"]: a for a in kernel.manifest["args"]}
    out, deq = {}, []
    for name, x in (("k", k), ("v", v)):
        a = args[name]
        scale_dt = {"f32": torch.float32, "f16": torch.float16}[args[a["scale"]]["dtype"]]
        xf = x.float()
        if a["dtype"] in ("i8", "i4"):  # per token and kv head, over groups of g channels (or d)
            top = 127 if a["dtype"] == "i8" else 7
            g = a["scale_group"] if a["scale_group"] > 1 else xf.shape[-1]
            grouped = xf.view(*xf.shape[:-1], -1, g)
            sc = (grouped.abs().amax(-1) / top).clamp_min(1e-8).to(scale_dt)
            qx = torch.round(grouped / sc.float().unsqueeze(-1)).clamp(-top, top)
            deq.append((qx * sc.float().unsqueeze(-1)).view_as(xf).to(torch.bfloat16))
            if a["dtype"] == "i8":
                out[name] = qx.view_as(xf).to(torch.int8)
            else:
                n = qx.view_as(xf).to(torch.int64) & 15
                out[name] = (n[..., 0::2] | (n[..., 1::2] << 4)).to(torch.uint8)
            out[a["scale"]] = sc if a["scale_group"] > 1 else sc.squeeze(-1)
        else:  # f8e4m3, one scale per kv head (dim 2 of [b, s, hk, d])
            sc = (xf.abs().amax(dim=(0, 1, 3)) / 448).clamp_min(1e-8).to(scale_dt)
            qx = (xf / sc.float().view(1, 1, -1, 1)).to(torch.float8_e4m3fn)
            deq.append((qx.float() * sc.float().view(1, 1, -1, 1)).to(torch.bfloat16))
            out[name] = qx
            out[a["scale"]] = sc
    return out, deq[0], deq[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tag", default="decode")
    parser.add_argument("--dirs", default=f"default={ROOT / '.device' / 'kernels'}")
    parser.add_argument("--no-flex", action="store_true")
    parser.add_argument("--shapes", default="")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--sweep-splits", default="",
                        help="also time each kernel with these forced split counts, e.g. 8,16,32")
    args = parser.parse_args()
    dirs = [item.split("=", 1) for item in args.dirs.split(",") if item]
    shapes = SHAPES if not args.shapes else [tuple(int(x) for x in s.split(":"))
                                             for s in args.shapes.split(",")]
    kernels = load_kernels(dirs)
    print("kernels:", ", ".join(kernels) or "none", flush=True)
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows, raw = [], {}
    for b, kv_len in shapes:
        key = f"b{b} kv{kv_len}"
        print(f"== {key}", flush=True)
        q = torch.randn(b, 1, HQ, D, device="cuda", dtype=torch.bfloat16, generator=gen)
        k = torch.randn(b, kv_len, HKV, D, device="cuda", dtype=torch.bfloat16, generator=gen)
        v = torch.randn(b, kv_len, HKV, D, device="cuda", dtype=torch.bfloat16, generator=gen)
        kv_bytes = 2 * k.numel() * k.element_size()
        # SDPA takes [b, h, s, d] views of the same tensors.
        qs, ks, vs = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        with sdpa_kernel([SDPBackend.MATH]):
            ref = F.scaled_dot_product_attention(qs.float(), ks.float(), vs.float(),
                                                 enable_gqa=True).transpose(1, 2)
        results = {}
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION),
                              ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel([backend]):
                    fn = lambda: F.scaled_dot_product_attention(qs, ks, vs, enable_gqa=True)
                    fn()
                    results[name] = time_ms(fn, args.repeats)
            except Exception as e:
                results[name] = f"failed: {type(e).__name__}"
        if not args.no_flex:
            try:
                from torch.nn.attention.flex_attention import flex_attention
                fl = torch.compile(flex_attention, dynamic=False)
                fl(qs, ks, vs, enable_gqa=True)
                results["flex"] = time_ms(lambda: fl(qs, ks, vs, enable_gqa=True), args.repeats)
                torch._dynamo.reset()
            except Exception as e:
                results["flex"] = f"failed: {type(e).__name__}"
        for label, kernel in kernels.items():
            try:
                kq, vq, want = k, v, ref
                quantised = any(a.get("scale") for a in kernel.manifest["args"])
                if quantised:  # the kernel is judged against attention over its dequantised cache
                    qargs, kd, vd = quantize(kernel, k, v)
                    with sdpa_kernel([SDPBackend.MATH]):
                        want = F.scaled_dot_product_attention(
                            qs.float(), kd.transpose(1, 2).float(), vd.transpose(1, 2).float(),
                            enable_gqa=True).transpose(1, 2)
                    kq, vq = qargs["k"], qargs["v"]
                if kernel.manifest.get("paged"):
                    targs, o = paged_args(kernel, q, kq, vq, kv_len, gen)
                else:
                    targs, o = contiguous_args(kernel, q, kq, vq, kv_len)
                if quantised:
                    targs.update({n: t for n, t in qargs.items() if n not in ("k", "v")})
                launch = kernel.prepare(**targs)
                o.fill_(math.nan)
                launch()
                torch.cuda.synchronize()
                err = relative_error(o, want.float())
                if not err <= 2e-2:
                    results[label] = f"wrong (rel err {err:.1e})"
                    continue
                results[label] = time_ms(launch, args.repeats)
                results[label + ":splits"] = kernel.last_splits
                results[label + ":err"] = err
                for forced in [int(x) for x in args.sweep_splits.split(",") if x]:
                    kernel.set_splits(forced)
                    launch = kernel.prepare(**targs)
                    launch()
                    ms = time_ms(launch, args.repeats)
                    results[f"{label}:S{kernel.last_splits}"] = ms
                    print(f"  {label:28s} S={kernel.last_splits:<4d} {ms:.4f} ms "
                          f"{kv_bytes / ms / 1e6:7.0f} GB/s", flush=True)
                kernel.set_splits(0)
                del targs
            except Exception as e:
                results[label] = f"failed: {type(e).__name__}: {str(e)[:120]}"
        for name, value in results.items():
            if isinstance(value, float) and ":" not in name and name in kernels and any(
                    a.get("scale") for a in kernels[name].manifest["args"]):
                print(f"  {name:36s} {value:.4f} ms  {kv_bytes / value / 1e6:7.0f} GB/s-bf16-equiv "
                      f"({kv_bytes / 2 / value / 1e6:.0f} GB/s of 8-bit values)", flush=True)
            elif isinstance(value, float) and ":" not in name:
                print(f"  {name:36s} {value:.4f} ms  {kv_bytes / value / 1e6:7.0f} GB/s", flush=True)
            elif ":" not in name:
                print(f"  {name:36s} {value}", flush=True)
        raw[key] = {"kv_bytes": kv_bytes, **results}
        rows.append((key, kv_bytes, results))
        del q, k, v, ref
        torch.cuda.empty_cache()

    names = ["flash", "cudnn"] + ([] if args.no_flex else ["flex"]) + list(kernels)
    lines = [f"# Decode benchmark ({args.tag}), {datetime.date.today().isoformat()}", "",
             f"Device: {device_line()}; torch {torch.__version__}.", "",
             f"GQA {HQ}/{HKV}, d {D}, bf16, one query token; GB/s of K + V read (copy ceiling "
             f"{COPY_CEILING:.0f} GB/s). attnc kernels checked against SDPA math "
             "(relative error) before timing; `splits` is the split count the runtime chose.", "",
             "| shape | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, kv_bytes, results in rows:
        cells = []
        for name in names:
            value = results.get(name)
            if isinstance(value, float):
                cell = f"{kv_bytes / value / 1e6:.0f} GB/s ({value * 1e3:.0f} us)"
                if results.get(name + ":splits"):
                    cell += f", S={results[name + ':splits']}"
                cells.append(cell)
            else:
                cells.append(str(value) if value is not None else "")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += ["", "BENCH.md anchors (flash / cuDNN / Flex GB/s): " +
              "; ".join(f"{k} {a[0]} / {a[1]} / {a[2]}" for k, a in ANCHORS.items()), ""]
    text = "\n".join(lines)
    print(text)
    write_report(text, raw, args.tag)


if __name__ == "__main__":
    main()
