"""The CUDA backward kernels (`attnc compile --backward --emit=ptx`: <variant>_grad.{ptx,json})
against the autograd of the float64 torch reference (<variant>.ref.py), on random inputs at
ragged sizes: the forward runs through attnc's own kernel (o and lse as a user would have
them), then the backward; dq, dk, dv and every param gradient must match torch.autograd's
gradients of sum(o * dout) through the reference.

Kernels come from $ATTNC_GRAD_KERNEL_DIR (default .device/kernels-grad).
"""
import json
import math
import zlib
import os
from pathlib import Path

import pytest

import harness

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

GRAD_DIR = Path(os.environ.get("ATTNC_GRAD_KERNEL_DIR", harness.ROOT / ".device" / "kernels-grad"))
# (q_len, kv_len): ragged, q_len != kv_len, a key tile shorter than a tile, one exact multiple.
GRAD_SHAPES = [(1, 1), (77, 65), (130, 131), (300, 500), (128, 128)]


def grad_variants():
    found = harness.manifests(GRAD_DIR) if GRAD_DIR.exists() else {}
    return sorted(v[:-len("_grad")] for v in found if v.endswith("_grad") and v[:-len("_grad")] in found)


def canonical(kernel, name, x):
    """`x` (storage order) permuted to the argument's canonical dims."""
    arg = next(a for a in kernel.manifest["args"] if a["name"] == name)
    return x.permute([arg["storage_dims"].index(d) for d in arg["dims"]])


def reference_grads(reference, inputs, kernel, dout, out_name, out, d_from_out=True, p_dtype=None):
    """torch.autograd through the float64 reference of the backward as attnc defines it: the
    gradients of sum(o * dout), where softmax's D = rowsum(dout * out) reads the `out` the
    backward is given (`out`, the forward kernel's 16-bit output, as FlashAttention's does).
    A change e_i of D_i changes each param gradient by -sum_i e_i dlse_i/dp, so the loss gets
    the term -sum_i e_i lse_i (e fixed): the same gradients, computed exactly. Through an
    output expression (`d_from_out` False) D = dy . y of the recomputed rows: no such term.
    `p_dtype`: the reference rounds P to it before P V, as the kernel does (the precision the
    kernel promises, FlashAttention's same-precision reference)."""
    leaves = {}
    t = {}
    for a in kernel.manifest["args"]:
        if a["kind"] not in ("input", "param"):
            continue
        x = inputs[a["name"]]
        if x.dtype in (torch.float16, torch.bfloat16, torch.float32):
            leaves[a["name"]] = x.double().requires_grad_(True)
            t[a["name"]] = leaves[a["name"]]
        else:
            t[a["name"]] = x
    o, lse = reference(t, p_dtype=p_dtype)[:2]
    dout = dout.double().to(o.device)
    loss = (o * dout).sum()
    if lse is not None and d_from_out:
        e = ((canonical(kernel, out_name, out.double() - o.detach()) *
              canonical(kernel, out_name, dout)).sum(-1))
        loss = loss - (e * torch.where(torch.isfinite(lse), lse, 0.0)).sum()
    loss.backward()
    return {name: leaf.grad for name, leaf in leaves.items()}


def rel(got, want):
    got, want = got.double(), want.double().to(got.device)
    norm = float(want.norm())
    return float((got - want).norm()) / (norm if norm > 0 else 1.0)


@pytest.mark.parametrize("ids", ["random", "sorted"])
@pytest.mark.parametrize("trained", grad_variants())
@pytest.mark.parametrize("shape", GRAD_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_backward_matches_reference_autograd(trained, shape, ids):
    """`sorted`: kernels with a block plan (masks that read params) also with document ids
    ascending along the sequence, where the plan skips most tiles."""
    variant = trained
    fwd, reference = harness.load(GRAD_DIR, variant)
    grad, _ = harness.load(GRAD_DIR, variant + "_grad")
    assert reference is not None, f"{variant}.ref.py is missing"
    if ids == "sorted" and "block_plan" not in grad.manifest:
        pytest.skip(f"{variant}_grad has no block plan")
    sizes = harness.dim_sizes(fwd, *shape)
    inputs = harness.make_inputs(fwd, sizes, seed=zlib.crc32(f"{variant}{shape}".encode()))
    if ids == "sorted":
        inputs = harness.sort_ids(fwd, inputs, seed=shape[1])
    outs = harness.run(fwd, inputs)
    out_name, _ = harness.output_names(fwd)
    gen = torch.Generator(device="cuda").manual_seed(7)
    dout = torch.randn(outs[out_name].shape, generator=gen, device="cuda").to(outs[out_name].dtype)
    # o and every lse (several scores: one per score) as the forward returned them
    taken = {a["name"] for a in grad.manifest["args"] if a["kind"] != "output"}
    args = {**inputs, **{n: x for n, x in outs.items() if n in taken}, "d" + out_name: dout}
    grads = grad.allocate_outputs(**args)
    for g in grads.values():
        g.fill_(math.nan)
    grad(**args, **grads)
    torch.cuda.synchronize()
    want = reference_grads(reference, inputs, fwd, dout, out_name, outs[out_name],
                           d_from_out="dy_width" not in grad.manifest["backward"])
    tol = 3e-2 if harness.tolerance(fwd) > 1e-3 else 1e-3
    if harness.routed_mix(GRAD_DIR, variant):
        # max/min of near-equal rows (three_scores: diffuse softmaxes over 16 channels) routes
        # some elements differently here and in float64; measured 3.7e-2 at worst here and
        # 5.9e-2 through autograd (H100, 2026-12-06). A lost term costs far more.
        tol = 0.1
    # A param gradient is a sum over many positions of signed terms (dout is random): where
    # they cancel, the sum is small next to its terms, and the 16-bit rounding of P in each
    # term is large next to the sum (tanh_sigmoid's dt at 128x128: the terms' magnitudes sum
    # to 764, dt to 4). As FlashAttention's tests do, a gradient may then be off by twice the
    # error of a reference of the kernel's precision (P rounded to the inputs' 16-bit type
    # before P V), measured against the exact one; a lost or wrong term is off by far more.
    rounded_err = {}
    if tol > 1e-3:
        p_dtype = next(harness.torch_dtype(a["dtype"]) for a in fwd.manifest["args"]
                       if a["kind"] == "input")
        rounded = reference_grads(reference, inputs, fwd, dout, out_name, outs[out_name],
                                  d_from_out="dy_width" not in grad.manifest["backward"],
                                  p_dtype=p_dtype)
        rounded_err = {name: rel(rounded[name], w) for name, w in want.items()}
    problems = []
    for name, w in want.items():
        g = grads.get("d" + name)
        assert g is not None, f"the backward has no gradient 'd{name}'"
        nans = int(torch.isnan(g).sum())
        err = rel(g, w)
        limit = max(tol, 2 * rounded_err.get(name, 0.0))
        harness.REPORT.append(f"{variant}_grad {shape}: d{name} rel {err:.2e}"
                              + (f" (P in 16 bits: {rounded_err[name]:.1e})"
                                 if name in rounded_err else ""))
        if nans or not err <= limit:
            problems.append(f"d{name}: relative error {err:.3e} (tol {limit:.1e}), {nans} NaN")
    assert not problems, f"{variant}_grad at {shape}: " + "; ".join(problems)


def test_backward_kernels_were_compiled():
    """Asked for by ATTNC_GRAD_KERNEL_DIR (bench/device_run.sh grad sets it), an empty
    directory must not pass silently."""
    if "ATTNC_GRAD_KERNEL_DIR" not in os.environ and not GRAD_DIR.exists():
        pytest.skip(f"no backward kernels compiled ({GRAD_DIR}); bench/device_run.sh grad runs them")
    assert grad_variants(), f"no <variant>_grad kernels in {GRAD_DIR}"
