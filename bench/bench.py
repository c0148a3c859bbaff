"""attnc kernels side by side with the anchors of BENCH.md — PyTorch SDPA (flash and cuDNN
backends) and FlexAttention (torch.compile'd) — in one process, on one GPU, in one run.
Writes bench/results/YYYY-MM-DD-<tag>.md (and a copy plus raw JSON under $OUT when set).

  python3 bench/bench.py [--tag TAG] [--quick] [--suites dense,variants,gqa,headdim] [--no-flex]
                         [--baseline DIR]

With --baseline, the kernels in DIR (an earlier compiler's, say) are timed too, in the same
process and on the same inputs, as the column `before` with the ratio attnc/before: an A/B of
two compilers with the anchors beside them.

Kernels come from $ATTNC_KERNEL_DIR (default .device/kernels), loaded with the attnc package;
a kernel that is not there leaves its column empty, the anchors still run. Protocol: METHOD.md.
"""
import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

try:
    import triton
except ImportError:
    triton = None

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
import attnc  # noqa: E402

DTYPE = torch.bfloat16
WINDOW = 256      # specs/sliding_window.attn: i - 256 < j <= i
DOC_LEN = 1024    # document suite: packed documents of 1024 tokens (BENCH.md's FlexAttention anchor)
TOLERANCE = 2e-2  # relative error of a bf16 kernel against the float32 reference


@dataclass
class Variant:
    """A row kind: the attnc kernels that can serve it (first match wins) and its mask/score."""
    kernels: tuple
    mask: str                 # full, causal, sliding, document(_random), alibi, softcap, t5, taylor, forget
    group: int = 1            # query heads per kv head
    scale: float = None       # the scores' scale (None: 1 / sqrt(d); T5 does not scale)
    gate: bool = False        # an output gate o * sigmoid(g[b, i, h, dv]) (the peers: one more op)


# Bench name -> variant. Kernel names are manifest `variant`s in ATTNC_KERNEL_DIR; a kernel
# whose head dim is static serves only that head dim.
VARIANTS = {
    "mha_d64": Variant(("mha_d64", "mha"), "full"),
    "mha_d128": Variant(("mha_d128", "mha"), "full"),
    "causal_d64": Variant(("causal_d64", "causal"), "causal"),
    "causal_d128": Variant(("causal_d128", "causal"), "causal"),
    # the head-dim sweep (issue 15): bench/specs/causal_d{96,192,256}.attn
    "causal_d96": Variant(("causal_d96",), "causal"),
    "causal_d192": Variant(("causal_d192",), "causal"),
    "causal_d256": Variant(("causal_d256",), "causal"),
    "alibi": Variant(("alibi",), "alibi"),
    "softcap": Variant(("softcap",), "softcap"),
    "sliding_window": Variant(("sliding_window",), "sliding"),
    "document": Variant(("document",), "document"),
    "document_random": Variant(("document",), "document_random"),
    "gqa": Variant(("gqa",), "causal", group=4),
    # specs/gated_attention.attn: gqa with a sigmoid output gate in the epilogue (issue 17's
    # target: within 10% of gqa); SDPA and Flex apply the gate as a separate elementwise op
    "gated": Variant(("gated_attention",), "causal", group=4, gate=True),
    # the spec language's lets and computed param indices (issue 17), at d64 as the specs are
    "t5_bias": Variant(("t5_bias",), "t5", scale=1.0),
    "taylor": Variant(("taylor",), "taylor"),
    # an explicit layout (specs/block_sparse.attn): each 128-block of queries sees its own
    # block of keys and the one before (block-local attention, BigBird's sliding blocks)
    "block_local": Variant(("block_sparse",), "block_local"),
    # a forget-gate softmax (specs/forgetting_transformer.attn, FoX): causal, the scores gain
    # the log forget gates between key and query (issue 17's target: within 10% of causal_d128)
    "forget": Variant(("forgetting_transformer",), "forget"),
}
LAYOUT_BLOCK = 128
T5_BUCKETS = 32   # specs/t5_bias.attn: 16 exact distances, 16 log-spaced up to 128
SDPA_MASKS = {"full": False, "causal": True}  # what SDPA's flash/cuDNN backends express


@dataclass
class Case:
    suite: str
    bench: str                # a VARIANTS key
    b: int
    h: int
    s: int
    d: int
    results: dict = field(default_factory=dict)  # impl -> ms, or a string saying why not
    notes: list = field(default_factory=list)

    @property
    def variant(self):
        return VARIANTS[self.bench]

    @property
    def label(self):
        hk = self.h // self.variant.group
        heads = f"h{self.h}" if hk == self.h else f"h{self.h}/{hk}"
        return f"{self.bench} b{self.b} {heads} s{self.s} d{self.d}"

    def flops(self):
        return 4 * self.b * self.h * self.d * pairs(self.variant.mask, self.s)


def pairs(mask: str, s: int) -> float:
    """(query, key) pairs computed: FlashAttention's convention for causal (s^2 / 2), exact
    counts for the masks that drop more (sliding window, documents)."""
    if mask in ("full",):
        return s * s
    if mask in ("causal", "alibi", "softcap", "t5", "taylor", "forget"):
        return s * s / 2
    if mask == "sliding":  # sum over i of min(i + 1, W)
        w = min(WINDOW, s)
        return w * s - w * (w - 1) / 2
    if mask.startswith("document"):  # causal within each document
        return sum(n * (n + 1) / 2 for n in doc_lengths(mask, s))
    if mask == "block_local":  # two blocks of keys per query block, one for the first
        blocks = -(-s // LAYOUT_BLOCK)
        return (2 * blocks - 1) * LAYOUT_BLOCK * LAYOUT_BLOCK
    raise ValueError(mask)


def doc_lengths(mask: str, s: int) -> list:
    """Documents packed into s tokens: DOC_LEN each ("document"), or random lengths in
    [1, 2 DOC_LEN] from a fixed seed ("document_random"; the last one cut at s)."""
    if mask == "document":
        full, rest = divmod(s, DOC_LEN)
        return [DOC_LEN] * full + ([rest] if rest else [])
    gen, out = torch.Generator().manual_seed(0), []
    while sum(out) < s:
        out.append(min(int(torch.randint(1, 2 * DOC_LEN + 1, (1,), generator=gen)), s - sum(out)))
    return out


def cases(suites, quick):
    out = []
    if "dense" in suites:
        seqs = [1024, 4096, 16384] if quick else [512, 1024, 2048, 4096, 8192, 16384]
        for d in (64, 128):
            for s in seqs:
                for kind in ("mha", "causal"):
                    out.append(Case("dense", f"{kind}_d{d}", 16384 // s, 2048 // d, s, d))
    if "variants" in suites:
        for bench in ("mha_d128", "causal_d128", "alibi", "softcap", "sliding_window", "document",
                      "document_random"):
            out.append(Case("variants", bench, 2, 16, 8192, 128))
        for bench in ("causal_d64", "t5_bias", "taylor"):
            out.append(Case("variants", bench, 2, 16, 8192, 64))
        out.append(Case("variants", "block_local", 2, 16, 8192, 128))
        out.append(Case("variants", "forget", 2, 16, 8192, 128))
    if "headdim" in suites:  # causal, b2 h16 s8k, every head dim FlashAttention serves
        for d in (64, 96, 128, 192, 256):
            out.append(Case("headdim", f"causal_d{d}", 2, 16, 8192, d))
    if "gqa" in suites:
        out.append(Case("gqa", "gqa", 2, 32, 8192, 128))
        out.append(Case("gqa", "gated", 2, 32, 8192, 128))
    return out


# --- inputs ---------------------------------------------------------------------------------

def canonical(arg: dict, t):
    """A storage-order tensor viewed in canonical order ([b, h, s, d])."""
    return t.permute(*[arg["storage_dims"].index(n) for n in arg["dims"]])


def params_for(case: Case, h: int, s: int, b: int):
    """The runtime params of the variant, by spec name, in canonical = storage order."""
    if case.variant.gate:  # specs/gated_attention.attn: g[b, i, h, dv], bf16
        return {"g": torch.randn(b, s, h, case.d, device="cuda", dtype=DTYPE)}
    if case.variant.mask == "alibi":  # Press et al.: geometric slopes 2^(-8 k / h)
        return {"slope": torch.exp2(-8.0 * torch.arange(1, h + 1, device="cuda") / h)}
    if case.variant.mask.startswith("document"):
        lengths = doc_lengths(case.variant.mask, s)
        ids = torch.repeat_interleave(torch.arange(len(lengths), dtype=torch.int32),
                                      torch.tensor(lengths)).to("cuda")
        ids = ids.expand(b, s).contiguous()
        return {"doc_q": ids, "doc_k": ids.clone()}
    if case.variant.mask == "block_local":
        blocks = -(-s // LAYOUT_BLOCK)
        qb = torch.arange(blocks, device="cuda")[:, None]
        kb = torch.arange(blocks, device="cuda")[None, :]
        layout = ((kb == qb) | (kb == qb - 1)).to(torch.int32)
        return {"layout": layout.expand(b, h, blocks, blocks).contiguous()}
    if case.variant.mask == "forget":  # FoX's log forget gates: logsigmoid(logits), f near 0.95
        gen = torch.Generator(device="cuda").manual_seed(0)
        logits = 3 + torch.randn(b, h, s, generator=gen, device="cuda")
        return {"log_fgate": F.logsigmoid(logits)}
    if case.variant.mask == "t5":  # a learned table: random, of a trained table's magnitude
        gen = torch.Generator(device="cuda").manual_seed(0)
        return {"table": torch.randn(h, T5_BUCKETS, generator=gen, device="cuda")}
    return {}


def t5_bucket(n):
    """specs/t5_bias.attn's bucket of distance n = max(i - j, 0)."""
    n = n.clamp_min(0)
    far = 16 + torch.floor(torch.log(n.float() / 16.0) / math.log(8.0) * 16).clamp_min(-1e9)
    return torch.where(n < 16, n, far.long().clamp_max(T5_BUCKETS - 1))


def make_data(case: Case):
    """Fresh random q, k, v in canonical [b, h(k), s, d] plus the variant's params."""
    hk = case.h // case.variant.group
    q = torch.randn(case.b, case.h, case.s, case.d, device="cuda", dtype=DTYPE)
    k = torch.randn(case.b, hk, case.s, case.d, device="cuda", dtype=DTYPE)
    v = torch.randn(case.b, hk, case.s, case.d, device="cuda", dtype=DTYPE)
    return q, k, v, params_for(case, case.h, case.s, case.b)


def attnc_args(kernel, q, k, v, params):
    """The kernel's arguments in its storage order (a contiguous copy each, as a model would
    hold them), plus outputs; returns (args, canonical view of the output)."""
    sources = {"q": q, "k": k, "v": v}
    args = {}
    for a in kernel.manifest["args"]:
        if a["kind"] == "input":
            if a["name"] not in sources:
                raise attnc.Error(f"bench.py expects inputs q, k, v, not '{a['name']}'")
            perm = [a["dims"].index(n) for n in a["storage_dims"]]
            args[a["name"]] = sources[a["name"]].permute(*perm).contiguous()
        elif a["kind"] == "param":
            if a["name"] not in params:
                raise attnc.Error(f"bench.py has no values for param '{a['name']}'")
            args[a["name"]] = params[a["name"]]
    outs = kernel.allocate_outputs(**args)
    args.update(outs)
    o_arg = next(a for a in kernel.manifest["args"] if a["kind"] == "output")
    return args, canonical(o_arg, outs[o_arg["name"]])


# --- score and mask modifications (FlexAttention's signature; also used by the reference) ---

def mods(case: Case, params):
    causal = lambda b, h, qi, ki: qi >= ki  # noqa: E731
    mask = case.variant.mask
    if mask == "full":
        return None, None
    if mask in ("causal",):
        return None, causal
    if mask == "sliding":
        return None, lambda b, h, qi, ki: (qi >= ki) & (qi - ki < WINDOW)
    if mask.startswith("document"):
        dq, dk = params["doc_q"], params["doc_k"]
        return None, lambda b, h, qi, ki: (dq[b, qi] == dk[b, ki]) & (qi >= ki)
    if mask == "alibi":
        slope = params["slope"]
        return (lambda sc, b, h, qi, ki: sc + slope[h] * (ki - qi)), causal
    if mask == "softcap":
        return (lambda sc, b, h, qi, ki: 50.0 * torch.tanh(sc / 50.0)), causal
    if mask == "block_local":
        layout = params["layout"]
        return None, lambda b, h, qi, ki: layout[b, h, qi // LAYOUT_BLOCK, ki // LAYOUT_BLOCK] != 0
    if mask == "t5":
        table = params["table"]
        return (lambda sc, b, h, qi, ki: sc + table[h, t5_bucket(qi - ki)]), causal
    if mask == "forget":  # s + log f(j + 1) + ... + log f(i) = s + cum[i] - cum[j]
        cum = torch.cumsum(params["log_fgate"], -1)
        return (lambda sc, b, h, qi, ki: sc + cum[b, h, qi] - cum[b, h, ki]), causal
    if mask == "taylor":  # exp(s) = 1 + t + t^2 / 2: normalised second-order Taylor weights
        return (lambda sc, b, h, qi, ki: torch.log(1 + sc + sc * sc / 2)), causal
    raise ValueError(mask)


def reference(case: Case, q, k, v, params):
    """float32 attention, eager, by blocks of query rows (memory), with the same mods."""
    score_mod, mask_mod = mods(case, params)
    g = case.variant.group
    kf, vf = k.float().repeat_interleave(g, 1), v.float().repeat_interleave(g, 1)
    out = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    bi = torch.arange(case.b, device="cuda")[:, None, None, None]
    hi = torch.arange(case.h, device="cuda")[None, :, None, None]
    ki = torch.arange(case.s, device="cuda")[None, None, None, :]
    rows = max(1, (1 << 28) // (case.b * case.h * case.s))  # <= 1 GiB of f32 scores
    for i0 in range(0, case.s, rows):
        qi = torch.arange(i0, min(case.s, i0 + rows), device="cuda")[None, None, :, None]
        scale = case.variant.scale if case.variant.scale is not None else 1 / math.sqrt(case.d)
        sc = q[:, :, i0:i0 + rows].float() @ kf.transpose(-1, -2) * scale
        if score_mod:
            sc = score_mod(sc, bi, hi, qi, ki)
        if mask_mod:
            sc = sc.masked_fill(~mask_mod(bi, hi, qi, ki), -math.inf)
        p = torch.softmax(sc, -1).nan_to_num(0.0)  # rows with no key: 0
        out[:, :, i0:i0 + rows] = p @ vf
    return out * gate_of(case, params).float() if case.variant.gate else out


def gate_of(case: Case, params):
    """The output gate sigmoid(g) in canonical [b, h, i, dv] order (a view of g's [b, i, h, dv])."""
    return torch.sigmoid(params["g"].permute(0, 2, 1, 3))


def relative_error(got, ref) -> float:
    got = got.float()
    if torch.isnan(got).any():
        return math.nan
    return float((got - ref).norm() / ref.norm().clamp_min(1e-30))


# --- timing ---------------------------------------------------------------------------------

_flush = None


def time_ms(fn, repeats: int, warmup: int = 10) -> float:
    """Median of `repeats` CUDA-event timings, each after overwriting a 256 MiB buffer so that
    every call starts with a cold L2 (as triton's do_bench does)."""
    global _flush
    if _flush is None:
        _flush = torch.empty(256 << 20, dtype=torch.int8, device="cuda")
    for _ in range(warmup):
        fn()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(repeats)]
    for start, end in events:
        _flush.zero_()
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    times = sorted(start.elapsed_time(end) for start, end in events)
    return times[len(times) // 2]


def attempt(case: Case, name: str, build, repeats: int):
    """Times build()'s callable, recording the ms or why it could not run."""
    try:
        fn = build()
        if fn is None:
            return
        case.results[name] = time_ms(fn, repeats)
    except Exception as e:  # an anchor that fails is reported, the run goes on
        case.results[name] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
    print(f"  {name:6s} {fmt_ms(case.results.get(name))}", flush=True)


def fmt_ms(value):
    return f"{value:.3f} ms" if isinstance(value, float) else str(value)


# --- implementations ------------------------------------------------------------------------

def pick_kernel(kernels: dict, case: Case):
    for name in case.variant.kernels:
        kernel = kernels.get(name)
        if kernel is None:
            continue
        dims = {d["role"]: d for d in kernel.manifest["dims"]}
        static_d = dims.get("head_dim", {}).get("static")
        if static_d is None or static_d == case.d:
            return kernel
    return None


def run_attnc(case, kernels, q, k, v, params, repeats, name="attnc"):
    kernel = pick_kernel(kernels, case)
    if kernel is None:
        case.results[name] = "not compiled"
        return

    def build():
        args, o = attnc_args(kernel, q, k, v, params)
        launch = kernel.prepare(**args)
        o.fill_(math.nan)  # correctness first: NaN-poisoned output against float32
        launch()
        err = relative_error(o, reference(case, q, k, v, params))
        case.results[f"{name}_rel"] = err
        print(f"  {name:6s} {kernel.name}: rel err {err:.2e}", flush=True)
        if not err <= TOLERANCE:
            case.results[name] = f"wrong (rel err {err:.1e})"
            return None
        return launch

    attempt(case, name, build, repeats)
    if name == "attnc" and "block_plan" in kernel.manifest and isinstance(case.results.get(name), float):
        def reused():  # the plan computed once (FlexAttention's create_block_mask), then reused
            args, _ = attnc_args(kernel, q, k, v, params)
            launch, plan = kernel.prepare(**args), kernel.plan(**args)
            return lambda: launch(block_plan=plan)

        attempt(case, "attnc_reused", reused, repeats)


def run_sdpa(case, q, k, v, params, repeats):
    causal = SDPA_MASKS.get(case.variant.mask)
    for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        if causal is None:
            continue

        def build():
            gqa = case.variant.group > 1
            fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal,  # noqa: E731
                                                        enable_gqa=gqa)
            if case.variant.gate:
                fn = gated(case, params, fn)
            fn()
            return fn

        with sdpa_kernel([backend]):  # outside the timed calls
            attempt(case, name, build, repeats)


def gated(case, params, attention):
    """A peer's attention followed by the output gate, as a model without a fused epilogue
    runs it (sigmoid of g, then the product: two elementwise kernels)."""
    g = params["g"]
    return lambda: attention() * torch.sigmoid(g).permute(0, 2, 1, 3)


def run_flex(case, q, k, v, params, repeats, first_calls):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    score_mod, mask_mod = mods(case, params)

    def build():
        torch._dynamo.reset()  # one compiled graph per shape; stay under the recompile limit
        t0 = time.time()
        batch = case.b if case.variant.mask.startswith("document") else None
        if case.variant.mask == "block_local":
            batch = case.b
        block_mask = create_block_mask(mask_mod, batch, None, case.s, case.s) if mask_mod else None
        flex = torch.compile(flex_attention, dynamic=False)
        fn = lambda: flex(q, k, v, score_mod=score_mod, block_mask=block_mask,  # noqa: E731
                          enable_gqa=case.variant.group > 1, scale=case.variant.scale)
        if case.variant.gate:
            fn = gated(case, params, fn)
        fn()
        torch.cuda.synchronize()
        first_calls[case.label] = time.time() - t0
        return fn

    attempt(case, "flex", build, repeats)


# --- report ---------------------------------------------------------------------------------

def device_line():
    """'NVIDIA H100 80GB HBM3, driver 580.159.04, SM clock 1980 MHz (max 1980 MHz)'."""
    query = "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm"
    try:
        text = subprocess.run(["nvidia-smi", query, "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError) as e:
        return f"nvidia-smi failed: {e}"
    fields = [f.strip() for f in text.split(",")]
    if len(fields) != 4:
        return text
    return f"{fields[0]}, driver {fields[1]}, SM clock {fields[2]} (max {fields[3]})"


def tflops(case, name):
    ms = case.results.get(name)
    return case.flops() / ms / 1e9 if isinstance(ms, float) else None


def cell(case, name):
    value = tflops(case, name)
    if value is not None:
        return f"{value:.0f}"
    return "—" if case.results.get(name) is None else str(case.results[name])


def ratio(case, other, ours="attnc"):
    a, b = tflops(case, ours), tflops(case, other)
    return f"{a / b:.2f}" if a is not None and b is not None else "—"


def compile_section(kernel_dir: Path, first_calls: dict):
    lines = ["## Compile latency", ""]
    path = kernel_dir / "compile_times.json"
    if path.exists():
        times = json.loads(path.read_text())
        lines += ["attnc, spec to loaded kernel (from compile_times.json):", "",
                  "| variant | cold ms | warm ms |", "|---|---|---|"]
        for name, t in sorted(times.items()):
            lines.append(f"| {name} | {t.get('cold_ms', '—')} | {t.get('warm_ms', '—')} |")
    else:
        lines.append(f"attnc: no {path} (the compile step writes it).")
    if first_calls:
        lines += ["", "FlexAttention first call (torch.compile + block mask + run), s:", ""]
        lines += [f"- {label}: {secs:.1f}" for label, secs in first_calls.items()]
    return lines


def report(all_cases, args, kernel_dir, kernels, first_calls):
    today = datetime.date.today().isoformat()
    lines = [f"# attnc benchmark, {today} ({args.tag})", "",
             f"- Device: {device_line()}",
             f"- torch {torch.__version__} (CUDA {torch.version.cuda}), triton "
             f"{getattr(triton, '__version__', 'n/a')}",
             f"- Command: `{' '.join([Path(sys.executable).name] + sys.argv)}`",
             f"- Kernels: {kernel_dir} ({', '.join(sorted(kernels)) or 'none'})",
             "- Timing: median of CUDA-event timings, cold L2 (see bench/METHOD.md); bf16; "
             "TFLOP/s = 4·b·h·d·pairs (causal: s²/2; sliding window and documents: exact pairs)",
             "", "## Forward, TFLOP/s", ""]
    before = args.baseline is not None
    if before:
        lines.insert(-2, f"- Baseline (`before`): {args.baseline}")
    head = "| suite | config | attnc |" + (" before |" if before else "") + \
        " flash | cuDNN | flex |" + (" attnc/before |" if before else "") + \
        " attnc/flash | attnc/cuDNN | attnc/flex | attnc rel err |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for c in all_cases:
        rel = c.results.get("attnc_rel")
        lines.append(f"| {c.suite} | {c.label} | {cell(c, 'attnc')} | " +
                     (f"{cell(c, 'before')} | " if before else "") +
                     f"{cell(c, 'flash')} | {cell(c, 'cudnn')} | {cell(c, 'flex')} | " +
                     (f"{ratio(c, 'before')} | " if before else "") +
                     f"{ratio(c, 'flash')} | {ratio(c, 'cudnn')} | {ratio(c, 'flex')} | "
                     f"{'—' if rel is None else f'{rel:.1e}'} |")
    planned = [c for c in all_cases if isinstance(c.results.get("attnc_reused"), float)]
    if planned:  # what classifying the key tiles costs per call
        lines += ["", "## Block plans: computed at every call vs computed once and reused", "",
                  "| config | attnc ms | reused plan ms | plan share | reused TFLOP/s | reused/flex |",
                  "|---|---|---|---|---|---|"]
        for c in planned:
            t, r = c.results["attnc"], c.results["attnc_reused"]
            lines.append(f"| {c.label} | {t:.3f} | {r:.3f} | {100 * (t - r) / t:.1f}% | "
                         f"{cell(c, 'attnc_reused')} | {ratio(c, 'flex', 'attnc_reused')} |")
    lines += [""] + compile_section(kernel_dir, first_calls) + [""]
    return "\n".join(lines)


def write_report(text, raw, tag):
    """bench/results/<date>-<tag>.md and .json, and the .png of bench/plot.py where matplotlib
    is installed and the results are of a kind it draws (linked from the report); copies in
    $OUT when set."""
    name = f"{datetime.date.today().isoformat()}-{tag}"
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(raw, indent=1))
    png = None
    try:
        import plot  # bench/plot.py (matplotlib)
        png = plot.plot(results / f"{name}.json", title=f"{name}: {device_line()}")
        text = text.rstrip("\n") + f"\n\n![{name}]({png.name})\n"
    except ImportError as e:
        print(f"no plot: {e} (pip install matplotlib)")
    except ValueError as e:
        print(f"no plot: {e}")
    (results / f"{name}.md").write_text(text)
    print(f"wrote {results / f'{name}.md'}" + (f" and {png.name}" if png else ""))
    out = os.environ.get("OUT")
    if out:
        Path(out, f"bench-{name}.md").write_text(text)
        Path(out, f"bench-{name}.json").write_text(json.dumps(raw, indent=1))
        if png:
            Path(out, f"bench-{png.name}").write_bytes(png.read_bytes())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="run", help="report name suffix")
    parser.add_argument("--suites", default="dense,variants,gqa")
    parser.add_argument("--quick", action="store_true", help="3 sequence lengths, 30 repeats")
    parser.add_argument("--only", default=None,
                        help="comma-separated benches (VARIANTS keys) to keep, e.g. document")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per measurement")
    parser.add_argument("--no-flex", action="store_true", help="skip FlexAttention (compiles)")
    parser.add_argument("--baseline", default=None,
                        help="a second kernel directory, timed as `before` in the same run")
    args = parser.parse_args()
    repeats = args.repeats or (30 if args.quick else 100)
    torch.backends.cuda.matmul.allow_tf32 = False  # the float32 reference stays float32

    kernel_dir = Path(os.environ.get("ATTNC_KERNEL_DIR", ROOT / ".device" / "kernels"))
    skipped = lambda path, e: print(f"skipping {path.name}: {e}", flush=True)  # noqa: E731
    kernels = attnc.load_dir(kernel_dir, on_error=skipped) if kernel_dir.is_dir() else {}
    print(f"{device_line()}\nkernels: {', '.join(sorted(kernels)) or 'none'} ({kernel_dir})", flush=True)
    baseline = attnc.load_dir(Path(args.baseline), on_error=skipped) if args.baseline else {}

    all_cases, first_calls = cases(args.suites.split(","), args.quick), {}
    if args.only:
        all_cases = [c for c in all_cases if c.bench in args.only.split(",")]
    for case in all_cases:
        print(f"{case.suite}: {case.label}", flush=True)
        q, k, v, params = make_data(case)
        if baseline:  # before, then after, on the same inputs
            run_attnc(case, baseline, q, k, v, params, repeats, name="before")
        run_attnc(case, kernels, q, k, v, params, repeats)
        run_sdpa(case, q, k, v, params, repeats)
        if not args.no_flex:
            run_flex(case, q, k, v, params, repeats, first_calls)
        del q, k, v, params
        torch.cuda.empty_cache()

    text = report(all_cases, args, kernel_dir, kernels, first_calls)
    print(text)
    raw = [{"suite": c.suite, "config": c.label, "flops": c.flops(), **c.results} for c in all_cases]
    write_report(text, raw, args.tag)


if __name__ == "__main__":
    main()
