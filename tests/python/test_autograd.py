"""PyTorch autograd through attnc kernels, without a GPU: every trainable spec in specs/ is
compiled by libattnc.so for the cpu target with its backward (attnc.compile(..., backward=True,
target="cpu")), wrapped as a torch.library custom op (attnc.torch.function), and its output and
the gradients of q, k, v and of the float params are checked against torch.autograd through the
float64 reference that `attnc compile --emit=torch` prints, at ragged sizes. Also: a float64
torch.autograd.gradcheck, torch.compile(fullgraph=True) through the op and its fake
implementation, and the errors a user meets.

CTest passes the libraries and the attnc binary it built ($ATTNC_JIT_LIB, $ATTNC_RUNTIME_LIB,
$ATTNC_BIN). As a script: exits 77 (skipped) when torch or pytest is missing.
"""
import os
import re
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

if __name__ == "__main__":
    import script_main  # skipped (77) without the modules the tests need
    script_main.run(__file__)

import importlib.util

import pytest

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(REPO / "tests" / "gpu"))
import attnc  # noqa: E402
import attnc.torch  # noqa: E402
import harness  # noqa: E402  (dim sizes and random inputs by manifest; device-agnostic)
from toy_model import Model, torch_alibi, train_side_by_side  # noqa: E402

ATTNC_BIN = Path(os.environ.get("ATTNC_BIN", REPO / "build" / "bin" / "attnc"))
SPECS = sorted((REPO / "specs").glob("*.attn"))
# What attn-grad must accept: every softmax-family, sigmoid, ReLU^2 and unnormalised variant.
TRAINABLE = {"alibi", "block_sparse", "causal", "cosine_attention", "diff_attention",
             "document", "forgetting_transformer",
             "gated_attention", "gqa", "gqa_decode",
             "longformer", "mha", "strided",
             "prefix_lm", "relative_bias", "relu2", "sigmoid", "sliding_window", "softcap",
             "t5_bias", "taylor", "tree_ancestors", "tree_decode"}
SHAPES = [(1, 1), (13, 29), (67, 33)]

ALIBI_CAUSAL = """variant alibi {
  dims b, h, i, j, d, dv = d
  input q[b, i, h, d] : bf16, k[b, j, h, d] : bf16, v[b, j, h, dv] : bf16
  param slope[h] : f32
  score s = dot(q, k) * rsqrt(d) + slope[h] * (j - i)
  mask j <= i
  output o[b, i, h, dv] = attend(s, v)
}
"""


def reference_for(spec: Path, tmp: Path, float32=False):
    """The float64 reference of the spec's variant: `attnc compile --emit=torch`; with
    `float32` the same module computing in float32 (every float64 conversion made a float32
    one): the error a float32 computation of the same math makes, by which an f32 kernel's
    gradients are judged where the float64 gradient comes from a cancellation."""
    out = tmp / f"{spec.stem}.ref.py"
    run = subprocess.run([str(ATTNC_BIN), "compile", str(spec), "--emit=torch", "-o", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    if float32:
        text = out.read_text()
        assert "torch.float64" in text
        out = tmp / f"{spec.stem}.ref32.py"
        out.write_text(text.replace("torch.float64", "torch.float32"))
    module_spec = importlib.util.spec_from_file_location(
        f"attnc_ref_{spec.stem}{'_32' if float32 else ''}", out)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.reference


def rel(got, want):
    norm = float(want.norm())
    return float((got.double() - want).norm()) / (norm if norm > 0 else 1.0)


@pytest.fixture(scope="module")
def tmp():
    with tempfile.TemporaryDirectory() as path:
        yield Path(path)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_trainable_spec_trains_through_autograd(spec, tmp):
    try:
        kernel = attnc.compile(spec.read_text(), backward=True, target="cpu")
    except attnc.Error as e:
        # Decode-only and recurrent variants have no backward: a clear error that says so.
        assert spec.stem not in TRAINABLE, f"{spec.stem}: {e}"
        assert "backward" in str(e) or "gradient" in str(e) or "dense K/V" in str(e), str(e)
        return
    assert spec.stem in TRAINABLE, f"{spec.stem} compiled a backward; add it to TRAINABLE"
    autograd_matches_reference(spec, kernel, tmp)


def autograd_matches_reference(spec, kernel, tmp):
    """`kernel` (spec's variant, compiled with its backward for the cpu target) through
    torch autograd: o and the gradient of every float input and param against the float64
    reference's autograd at SHAPES."""
    assert kernel.grad is not None and kernel.grad.name == kernel.name + "_grad"
    fn = attnc.torch.function(kernel, autocast=True)
    reference = reference_for(spec, tmp)
    reference32 = reference_for(spec, tmp, float32=True)
    out_name, _ = harness.output_names(kernel)
    for q_len, kv_len in SHAPES:
        sizes = harness.dim_sizes(kernel, q_len, kv_len, batch=2, head_dim=16)
        inputs = harness.make_inputs(kernel, sizes, device="cpu",
                                     seed=zlib.crc32(f"{spec.stem}{q_len}".encode()))
        grads_of = [a.name for a in kernel._args if a.kind in ("input", "param")
                    and inputs[a.name].is_floating_point()]
        dtypes = {a.name: a.dtype for a in kernel._args}
        mine = {n: (t.double().requires_grad_(True) if n in grads_of else t)
                for n, t in inputs.items()}
        theirs = {n: (t.double().requires_grad_(True) if n in grads_of else t)
                  for n, t in inputs.items()}
        f32 = {n: (t.float().requires_grad_(True) if n in grads_of else t)
               for n, t in inputs.items()}
        o = fn(**mine)
        o_ref = reference(theirs)[0]
        dout = torch.randn(o.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        (o * dout).sum().backward()
        (o_ref * dout).sum().backward()
        (reference32(f32)[0] * dout.float()).sum().backward()
        where = f"{spec.stem} at {q_len}x{kv_len}"
        assert rel(o.detach(), o_ref.detach()) < 1e-5, where
        for n in grads_of:
            want = theirs[n].grad
            got = mine[n].grad
            if want is None:  # a float param the score does not read (e.g. a mask's)
                assert got is None or float(got.abs().max()) == 0, f"{where}: d{n}"
                continue
            assert got is not None, f"{where}: no gradient for {n}"
            assert got.dtype == torch.float64 and got.shape == want.shape
            # a 16-bit param (an output gate) gets its gradient in its own dtype: the kernel's
            # f32 gradient rounded once (unit roundoff 2^-9 for bf16, 2^-11 for f16)
            tol = 1e-4 + {"bf16": 2.0 ** -9, "f16": 2.0 ** -11}.get(dtypes[n], 0.0)
            # ... or within 4x the error of the float32 reference (FlashAttention's tests take
            # 2-3x of a same-precision reference; its error is one sample of the rounding
            # noise): differential attention's lambda at one key reaches the output only
            # through the rmsnorm's eps, a ~1e5-fold cancellation no float32 computation survives
            tol = max(tol, 4 * rel(f32[n].grad, want))
            assert rel(got, want) < tol, f"{where}: d{n} relative error {rel(got, want):.2e}"


@pytest.fixture(scope="module")
def alibi():
    return attnc.torch.function(attnc.compile(ALIBI_CAUSAL, backward=True, target="cpu"),
                                autocast=True)


def alibi_inputs(dtype=torch.float64, b=1, s=6, h=2, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, s, h, d, dtype=dtype, generator=g).requires_grad_(True)
               for _ in range(3))
    slope = (-torch.rand(h, dtype=dtype, generator=g)).requires_grad_(True)
    return q, k, v, slope


def test_gradcheck_in_float64(alibi):
    """torch.autograd.gradcheck: the backward op against finite differences of the forward op.
    The cpu target computes in f32, so the step is 1e-3 and the tolerances 1e-3 (a wrong
    gradient is off by O(1)); the exact check is the reference comparison above."""
    inputs = alibi_inputs()
    assert torch.autograd.gradcheck(lambda q, k, v, s: alibi(q=q, k=k, v=v, slope=s), inputs,
                                    eps=1e-3, atol=1e-3, rtol=1e-3)


def test_torch_compile_traces_the_op_fullgraph(alibi):
    def loss(q, k, v, s):
        return (alibi(q=q, k=k, v=v, slope=s) ** 2).sum()

    eager = alibi_inputs(seed=1)
    traced = [t.detach().clone().requires_grad_(True) for t in eager]
    loss(*eager).backward()
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    compiled(*traced).backward()
    for a, b in zip(eager, traced):
        assert torch.allclose(a.grad, b.grad, rtol=1e-6, atol=1e-9)


def test_lse_is_returned_but_not_differentiable(alibi):
    q, k, v, slope = alibi_inputs()
    o, lse = alibi(q=q, k=k, v=v, slope=slope, return_lse=True)
    assert lse.shape == (1, 2, 6) and not lse.requires_grad
    with pytest.raises(RuntimeError):
        lse.sum().backward()


def test_errors_name_the_argument():
    fn = attnc.torch.function(attnc.compile(ALIBI_CAUSAL, backward=True, target="cpu"))
    q, k, v, slope = alibi_inputs(dtype=torch.float32)
    with pytest.raises(attnc.Error, match="missing slope"):
        fn(q=q, k=k, v=v)
    with pytest.raises(attnc.Error, match=r"argument 'q': expected dtype f32"):
        fn(q=q.double(), k=k, v=v, slope=slope)  # no autocast: the dtype must be the kernel's
    with pytest.raises(attnc.Error, match=r"argument 'k' axis 1"):
        fn(q=q, k=k[:, :3], v=v, slope=slope)
    forward_only = attnc.torch.function(attnc.compile(ALIBI_CAUSAL, target="cpu"))
    o = forward_only(q=q.detach(), k=k.detach(), v=v.detach(), slope=slope.detach())
    assert o.shape == q.shape and not forward_only.trainable


def test_the_one_liner_compiles_once_and_runs():
    q, k, v, slope = alibi_inputs(dtype=torch.float32)
    o = attnc.torch.attention(ALIBI_CAUSAL, q=q, k=k, v=v, slope=slope)
    o.sum().backward()
    assert q.grad is not None and slope.grad is not None and torch.isfinite(q.grad).all()
    assert len(attnc.torch._CACHE) == 1
    attnc.torch.attention(ALIBI_CAUSAL, q=q, k=k, v=v, slope=slope)
    assert len(attnc.torch._CACHE) == 1


def test_cuda_backward_compiles_without_a_gpu():
    """The JIT's backward for CUDA: <variant>_grad with its dK/dV kernel and manifest."""
    kernel = attnc.compile(ALIBI_CAUSAL, dims="d=64", backward=True, cache_dir="")
    assert kernel.grad.manifest["entry"] == "alibi_grad"
    assert kernel.grad.manifest["backward"]["dkdv_entry"] == "alibi_grad_dkdv"
    names = [a["name"] for a in kernel.grad.manifest["args"]]
    assert names == ["q", "k", "v", "slope", "o", "lse", "do", "dq", "dk", "dv", "dslope"]


def test_a_two_layer_model_trains_exactly_like_the_float32_reference():
    """The training test of tests/gpu/test_autograd.py on the cpu target: in f32 the attnc
    model's loss curve is the float32 torch model's up to rounding, step by step."""
    fn = attnc.torch.function(attnc.compile(ALIBI_CAUSAL, backward=True, target="cpu"))

    def attend(q, k, v, slope):
        return fn(q=q.contiguous(), k=k.contiguous(), v=v.contiguous(), slope=slope)

    torch.manual_seed(0)
    vocab, heads, head_dim = 16, 2, 16
    ours = Model(vocab, heads * head_dim, heads, attend)
    ref = Model(vocab, heads * head_dim, heads, torch_alibi)
    ref.load_state_dict(ours.state_dict())
    ours_c, ref_c = train_side_by_side((ours, ref), vocab, 60, "cpu", seq=32, batch=16)
    assert float((ours_c - ref_c).abs().max()) < 1e-4, (ours_c, ref_c)
    assert ref_c[-10:].mean() < ref_c[:10].mean() - 0.05  # it learns, the curves are not flat



SEVERAL_SCORES = REPO / "tests" / "python" / "specs" / "several_scores.attn"
# Three scores whose q and k are each read by two of them (the CUDA backward's paths too).
SHARED_INPUTS = REPO / "tests" / "python" / "specs" / "several_scores_shared.attn"


def several_scores_variant(variant):
    """The text of `variant` from the several-score test specs."""
    for path in (SEVERAL_SCORES, SHARED_INPUTS):
        found = re.search(r"(?ms)^variant " + variant + r" \{.*?^\}", path.read_text())
        if found:
            return found[0]
    raise KeyError(variant)


@pytest.mark.parametrize("variant", ["diff_gqa", "three_scores", "normalised_mix"])
def test_several_scores_forward_matches_reference(variant, tmp):
    """Several scores (differential attention) through libattnc.so's cpu target: the output
    and every score's lse (`lse`, then `lse_<score>`) against the float64 reference, which
    returns the lses stacked [score, b, h, i]."""
    text = re.search(r"(?ms)^variant " + variant + r" \{.*?^\}", SEVERAL_SCORES.read_text())[0]
    dims = "d=16" if ", d," in text else None  # a dynamic head dim gets 16
    kernel = attnc.compile(text, target="cpu", dims=dims)
    lses = [a.name for a in kernel._args if a.kind == "lse"]
    assert len(lses) >= 2 and lses[0] == "lse" and all(n.startswith("lse_") for n in lses[1:])
    spec = tmp / f"{variant}.attn"
    spec.write_text(text.replace(", d,", ", d = 16,"))
    reference = reference_for(spec, tmp)
    out_name, _ = harness.output_names(kernel)
    tol = 1e-5 if kernel.manifest["args"][0]["dtype"] == "f32" else 2e-2
    for q_len, kv_len in SHAPES:
        sizes = harness.dim_sizes(kernel, q_len, kv_len, batch=2, head_dim=16)
        inputs = harness.make_inputs(kernel, sizes, device="cpu",
                                     seed=zlib.crc32(f"{variant}{q_len}".encode()))
        outs = kernel.allocate_outputs(**inputs)
        kernel(**inputs, **outs)
        o_ref, lse_ref = reference(dict(inputs))[:2]
        where = f"{variant} at {q_len}x{kv_len}"
        assert rel(outs[out_name], o_ref) < tol, where
        assert lse_ref.shape[0] == len(lses), where
        for n, name in enumerate(lses):
            got, want = outs[name].double(), lse_ref[n]
            finite = torch.isfinite(want)
            assert torch.equal(torch.isfinite(got), finite), f"{where}: {name} infinities"
            assert rel(got[finite], want[finite]) < 1e-5, f"{where}: {name}"


@pytest.mark.parametrize("variant",
                         ["diff_gqa", "three_scores", "normalised_mix", "shared_inputs"])
def test_several_scores_backward_matches_reference(variant, tmp):
    """The backward of several scores through torch autograd on the cpu target: every score's
    q and k (a query shared by three scores gets one gradient, their sum; a key shared by two
    too), v, lambda and the rmsnorm's gain against the float64 reference's autograd."""
    text = several_scores_variant(variant)
    spec = tmp / f"{variant}_grad_test.attn"
    spec.write_text(text)
    kernel = attnc.compile(text, target="cpu", backward=True)
    grads = [a.name for a in kernel.grad._args if a.kind == "output"]
    inputs = [a.name for a in kernel._args if a.kind == "input"]
    assert [g for g in grads if g[1:] in inputs] == ["d" + n for n in inputs]  # one per input
    autograd_matches_reference(spec, kernel, tmp)
